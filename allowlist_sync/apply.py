"""Steps 6 and 7: write a plan to the owned rule, settle what is uncertain, read it back.

    apply_plan   create the rule or send one PUT; an unconfirmed write (timeout, 5xx, 409) is
                 never replayed: the rule is re-read and re-planned, through the same guards
                 (`replan`), up to MAX_WRITE_ROUNDS; a create is followed by a re-list that
                 settles a race with a concurrent run (`settle_duplicate_create`)
    verify       the stored rule must hold exactly what the plan leads to

Each write records what it applied in the rule's description (`record.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from allowlist_sync.cidrs import network_or_none
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Rule, WriteResult
from allowlist_sync.dbt.rules import find_owned_rule, owned_candidates
from allowlist_sync.errors import (
    AmbiguousWriteError,
    CidrsRejectedError,
    ConflictError,
    VerifyError,
)
from allowlist_sync.logs import get_logger
from allowlist_sync.net.deadline import run_remaining
from allowlist_sync.net.retries import RetryPolicy, backoff_seconds
from allowlist_sync.plan import Plan
from allowlist_sync.record import FeedRecord, with_records

log = get_logger(__name__)

#: After an ambiguous write, how many times to re-read, re-plan and write what is still missing.
MAX_WRITE_ROUNDS = 3


@dataclass(frozen=True)
class WriteFacts:
    """What every write of this run sends besides the CIDRs."""

    #: The feeds applied, recorded in the rule's description (versioned sources only).
    records: tuple[FeedRecord, ...]
    #: The account's `rule_set_enabled`, sent back unchanged.
    enforcement: bool
    #: The description of a rule this run creates (the record is appended).
    new_rule_description: str
    #: The backoff between write rounds.
    retry: RetryPolicy


@dataclass(frozen=True)
class Applied:
    """What a write achieved: the plan finally written (after any re-plan) and what was refused."""

    plan: Plan
    rule_id: int | None
    failed_cidrs: tuple[str, ...] = ()
    already_existed: tuple[str, ...] = ()
    #: The rule as read back right after the write (a create re-lists), for verify to reuse.
    stored: Rule | None = None


def apply_plan(
    client: DbtClient,
    plan: Plan,
    current: Rule | None,
    *,
    write: WriteFacts,
    replan: Callable[[Rule | None], Plan],
) -> Applied:
    """Write the plan: create the rule, or one PUT. An ambiguous write is re-read, not replayed.

    CIDRs the platform refuses are reported in the result, not retried: the rest of the change
    stays applied, and the next run tries only what is still missing. A create is followed by a
    re-read that settles a race with a concurrent run (see `settle_duplicate_create`).
    """
    for round_ in range(1, MAX_WRITE_ROUNDS + 1):
        try:
            result = _write(client, plan, current, write)
        except CidrsRejectedError as exc:
            log.error(
                "cidrs_rejected", failed_cidrs=exc.failed_cidrs, already_existed=exc.already_exists
            )
            return Applied(
                plan,
                current.id if current else None,
                tuple(exc.failed_cidrs),
                tuple(exc.already_exists),
            )
        except (AmbiguousWriteError, ConflictError) as exc:
            if round_ == MAX_WRITE_ROUNDS:
                raise
            log.warning(
                "write_unconfirmed",
                round=round_,
                error=str(exc),
                action="re-reading the rule and re-planning; not replaying the write",
            )
            _pause(write.retry, round_)
            current = find_owned_rule(client.list_rules(), client.owned_rule_name)
        else:
            log.info(
                "applied",
                rule_id=result.rule.id,
                created=plan.creates_rule,
                added=len(plan.add),
                removed=len(plan.remove),
                failed_cidrs=result.failed_cidrs,
                already_existed=result.cidrs_already_exists,
            )
            if not plan.creates_rule:
                return Applied(
                    plan,
                    result.rule.id,
                    tuple(result.failed_cidrs),
                    tuple(result.cidrs_already_exists),
                )
            survivor, stored = settle_duplicate_create(
                client, result.rule.id, client.owned_rule_name
            )
            if survivor is None:
                return Applied(
                    plan,
                    result.rule.id,
                    tuple(result.failed_cidrs),
                    tuple(result.cidrs_already_exists),
                    stored,
                )
            current = survivor
        # Re-plan against what the account holds now, through the same guards.
        plan = replan(current)
        if not plan.has_changes:
            log.info("write_confirmed_by_reread", round=round_)
            return Applied(plan, current.id if current else None)
    raise AmbiguousWriteError(  # pragma: no cover - the last round returns or raises above
        f"the rule did not settle after {MAX_WRITE_ROUNDS} writes"
    )


def settle_duplicate_create(
    client: DbtClient, created_id: int, rule_name: str
) -> tuple[Rule | None, Rule | None]:
    """After creating the owned rule, make sure it is the only one: (rule to switch to, created).

    Two runs started together on an account without the rule may both create it. Each re-lists
    after its create; when several active rules carry the owned name, the run whose rule has the
    highest id deletes that rule (the one delete this client can make, by the id the API returned
    to this very run) and goes on with the lowest-id one. The listing doubles as the read-back
    that verifies the created rule, so a create costs no extra request.
    """
    owned = owned_candidates(client.list_rules(), rule_name)
    ids = [r.id for r in owned]
    created = next((r for r in owned if r.id == created_id), None)
    if len(owned) <= 1 or created is None:
        return None, created
    log.warning("duplicate_owned_rule", rule_ids=ids, created=created_id)
    if created_id != max(ids):
        return None, created  # the run whose rule has the higher id deletes its own
    client.delete_created_rule(created_id)
    survivor = owned[0]
    log.warning("duplicate_owned_rule_deleted", deleted=created_id, kept=survivor.id)
    return survivor, None


def _pause(policy: RetryPolicy, round_: int) -> None:
    """Wait before re-reading after an unconfirmed write: the retry backoff, within the deadline."""
    wait = backoff_seconds(policy, round_ + 1)
    remaining = run_remaining()
    if remaining is not None:
        wait = min(wait, max(0.0, remaining))
    time.sleep(wait)


def _write(client: DbtClient, plan: Plan, current: Rule | None, write: WriteFacts) -> WriteResult:
    if current is None:
        return client.create_owned_rule(
            cidrs=[str(n) for n in plan.add],
            description=with_records(write.new_rule_description, write.records),
            rule_set_enabled=write.enforcement,
        )
    return client.update_owned_rule(
        current,
        add=[str(n) for n in plan.add],
        remove=plan.remove,
        description=with_records(current.description, write.records),
    )


def verify(
    client: DbtClient,
    rule_id: int,
    plan: Plan,
    refused: tuple[str, ...],
    stored_rule: Rule | None = None,
) -> None:
    """Read the rule back: it must hold exactly what the plan leads to, less refused CIDRs.

    In `sync` mode that is the desired set, each network once; in `add-only` mode it also
    includes what the plan deliberately kept.
    """
    rule = stored_rule if stored_rule is not None else client.get_rule(rule_id)
    refused_networks = {n for n in map(network_or_none, refused) if n is not None}
    added = [n for n in plan.add if n not in refused_networks]
    kept = [network_or_none(c.cidr) for c in plan.keep]
    expected = set(added) | {n for n in kept if n is not None}
    stored = [network_or_none(c.cidr) for c in rule.active_cidrs]
    stored_set = {n for n in stored if n is not None}
    missing = expected - stored_set
    unexpected = stored_set - expected
    surplus = len(stored) - (len(kept) + len(added))  # duplicates or entries nobody planned
    if missing or unexpected or surplus:
        raise VerifyError(
            f"rule {rule_id} does not hold the planned set after applying: {len(missing)} "
            f"missing, {len(unexpected)} unexpected, {surplus:+d} entries against the plan"
        )
    log.info("verified", rule_id=rule_id, cidrs=len(stored))
