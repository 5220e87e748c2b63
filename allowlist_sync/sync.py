"""One run of the job, top to bottom:

    source -> desired -> current -> plan -> guards -> apply -> verify -> outcome

`run_once` is the whole pipeline; the CLI, the scheduler and the tests are thin shells around it.
Every expected failure becomes an Outcome carrying the error, so every shell reports it the same
way; nothing is written unless every step before the write succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import httpx

from allowlist_sync.azure.cache import default_cache_dir
from allowlist_sync.azure.feed import Feed
from allowlist_sync.azure.source import load_feed
from allowlist_sync.cidrs import Network, build_desired, network_or_none
from allowlist_sync.config import Settings
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Rule, WriteResult
from allowlist_sync.dbt.rules import (
    deny_conflicts,
    find_owned_rule,
    owned_candidates,
    rule_set_enabled,
)
from allowlist_sync.errors import (
    AllowlistSyncError,
    AmbiguousWriteError,
    ApiResponseError,
    CidrsRejectedError,
    ConflictError,
    OwnershipError,
    UnsafePlanError,
    VerifyError,
)
from allowlist_sync.guards import (
    Limits,
    check_feed_scope,
    check_lockout,
    check_plan,
    check_rollback,
    lockout_question,
)
from allowlist_sync.logs import get_logger
from allowlist_sync.net.deadline import run_deadline, run_remaining
from allowlist_sync.net.retries import backoff_seconds
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan, apply_mode, compute_plan
from allowlist_sync.record import FeedRecord, read_record, with_record
from allowlist_sync.runlock import run_lock

__all__ = ["RunOptions", "find_owned_rule", "rule_set_enabled", "run_once"]

log = get_logger(__name__)

#: After an ambiguous write, how many times to re-read, re-plan and write what is still missing.
MAX_WRITE_ROUNDS = 3


@dataclass(frozen=True)
class RunOptions:
    """How this run differs from the settings: flags of `allowlist-sync sync`."""

    dry_run: bool = False
    force: bool = False
    allow_lockout_risk: bool = False
    source_file: str | None = None
    source_url: str | None = None
    #: Called with each plan before the guards run (the CLI renders it here).
    on_plan: Callable[[Plan, Feed, Rule | None], None] | None = None


def run_once(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    dbt_transport: httpx.BaseTransport | None = None,
    feed_transport: httpx.BaseTransport | None = None,
    stdin: BinaryIO | None = None,
) -> Outcome:
    """Run the pipeline once and return its Outcome (errors included, never raised)."""
    options = options or RunOptions()
    started = time.monotonic()
    outcome = Outcome(status="failed", dry_run=options.dry_run, rule_name=settings.rule_name)
    client: DbtClient | None = None
    try:
        with run_deadline(settings.run_timeout), run_lock(lock_dir(settings)):
            # 1. Source: fetched and validated (scope included) before the target is touched.
            feed = load_source(settings, options, outcome, stdin=stdin, transport=feed_transport)
            check_feed_scope(feed.all_prefixes(), limits(settings))
            # 2. Desired set.
            desired = desired_set(feed, settings)
            # 3. Current rule, and what the platform would refuse anyway.
            client = DbtClient.connect(
                settings.dbt_connection(),
                owned_rule_name=settings.rule_name,
                transport=dbt_transport,
            )
            account = read_account(client, settings.rule_name, outcome)
            desired = drop_deny_conflicts(desired, account.rules, outcome)
            # 4. Plan (rendered by the caller), 5. guards.
            plan = make_plan(desired, account.current, settings)
            outcome.plan = plan
            log_plan(plan)
            if options.on_plan is not None:
                options.on_plan(plan, feed, account.current)
            guard(plan, feed, account, client, settings, options)
            if not plan.has_changes:
                outcome.status = "in_sync"
            elif options.dry_run:
                outcome.status = "changes_pending"
            else:
                # 6. Apply, 7. verify.
                apply_and_verify(client, plan, account, desired, feed, settings, options, outcome)
        if outcome.failed_cidrs:
            # The rule cannot hold the whole desired set: monitoring must see it (exit 1).
            outcome.status = "failed"
    except UnsafePlanError as exc:
        outcome.status = "refused"
        outcome.error = exc
        log.error("plan_refused", guard=exc.guard, reason=str(exc), **exc.details)
    except OwnershipError as exc:
        outcome.status = "refused"
        outcome.error = exc
        log.error("plan_refused", guard="ownership", reason=str(exc))
    except AllowlistSyncError as exc:
        outcome.status = "failed"
        outcome.error = exc
        log.error("run_failed", kind=exc.kind, error=str(exc))
    finally:
        if client is not None:
            outcome.requests = client.request_count
            outcome.writes = client.write_count
            client.close()
        outcome.duration_seconds = time.monotonic() - started
    log.info(
        "run_finished",
        status=outcome.status,
        dry_run=outcome.dry_run,
        rule_id=outcome.rule_id,
        added=len(outcome.plan.add) if outcome.plan else 0,
        removed=len(outcome.plan.remove) if outcome.plan else 0,
        failed_cidrs=len(outcome.failed_cidrs),
        requests=outcome.requests,
        writes=outcome.writes,
        duration_seconds=round(outcome.duration_seconds, 3),
    )
    return outcome


def lock_dir(settings: Settings) -> Path:
    """The folder whose lock serialises runs on one machine: the feed cache's."""
    return settings.cache_dir or default_cache_dir()


def load_source(
    settings: Settings,
    options: RunOptions,
    outcome: Outcome,
    *,
    stdin: BinaryIO | None,
    transport: httpx.BaseTransport | None,
) -> Feed:
    """Step 1: the validated feed, from a flag, the settings or discovery."""
    # A flag wins over ALLOWLIST_SYNC_SOURCE_FILE, which serve mode (no flags) relies on.
    from_flags = options.source_file is not None or options.source_url is not None
    feed = load_feed(
        settings.feed_query(),
        source_file=options.source_file if from_flags else settings.source_file,
        source_url=options.source_url,
        stdin=stdin,
        transport=transport,
    )
    outcome.source = feed.source
    outcome.warnings.extend(feed.warnings)  # its age, a cached fallback, a rollback kept out
    log.info(
        "source_loaded",
        kind=feed.source.kind,
        location=feed.source.location,
        cloud=feed.cloud,
        change_number=feed.change_number,
        tags={t: len(p) for t, p in feed.prefixes.items()},
    )
    return feed


@dataclass(frozen=True)
class Account:
    """What the account holds now: every rule, the owned one (if any), and enforcement."""

    rules: list[Rule]
    current: Rule | None
    enforcement: bool
    rule_set_id: int | None


def read_account(client: DbtClient, rule_name: str, outcome: Outcome) -> Account:
    """Step 3: list the rules and pick the owned one."""
    rules = client.list_rules()
    current = find_owned_rule(rules, rule_name)
    enforcement = rule_set_enabled(rules)
    outcome.rule_set_enabled = enforcement
    outcome.rule_id = current.id if current else None
    log.info(
        "current_rule",
        rule_id=outcome.rule_id,
        rules_in_account=len(rules),
        cidrs=len(current.active_cidrs) if current else None,
        enforcement=enforcement,
    )
    set_ids = {r.ip_restriction_rule_set_id for r in rules if r.ip_restriction_rule_set_id}
    return Account(rules, current, enforcement, min(set_ids) if set_ids else None)


def drop_deny_conflicts(
    desired: tuple[Network, ...], rules: list[Rule], outcome: Outcome
) -> tuple[Network, ...]:
    """CIDRs a deny rule holds are refused by the platform: never sent, reported (exit 1)."""
    conflicts = deny_conflicts(desired, rules)
    if not conflicts:
        return desired
    outcome.failed_cidrs = tuple(str(n) for n in conflicts)
    where = ", ".join(f"{n} (deny rule {rule_id})" for n, rule_id in conflicts.items())
    outcome.warnings.append(
        f"{len(conflicts)} published CIDR(s) are held by deny rules, so the platform "
        f"would refuse them: {where}; remove them from the deny rule, or add them to "
        "ALLOWLIST_SYNC_EXCLUDE_CIDRS to stop this warning"
    )
    log.error("deny_rule_conflict", cidrs={str(n): r for n, r in conflicts.items()})
    return tuple(n for n in desired if n not in conflicts)


def guard(
    plan: Plan,
    feed: Feed,
    account: Account,
    client: DbtClient,
    settings: Settings,
    options: RunOptions,
) -> None:
    """Step 5: every guard on the plan; the same before the first write and after a re-plan."""
    check_plan(plan, limits(settings), force=options.force)
    if plan.has_changes and account.current is not None:
        check_rollback(
            applied_record(feed),
            read_record(account.current.description),
            rule_id=account.current.id,
            force=options.force,
        )
    allowed_without: bool | None = None
    if lockout_question(plan, account.enforcement):
        if account.rule_set_id is None:
            raise ApiResponseError(
                "rules carry no ip_restriction_rule_set_id; cannot check lock-out"
            )
        assert plan.rule_id is not None
        allowed_without = client.caller_allowed(account.rule_set_id, without_rule_id=plan.rule_id)
        log.info("lockout_check", caller_allowed_without_owned_rule=allowed_without)
    check_lockout(
        plan,
        enforcement=account.enforcement,
        allowed_without_rule=allowed_without,
        allow_risk=options.allow_lockout_risk,
    )


def applied_record(feed: Feed) -> FeedRecord:
    """What a write of this feed records in the rule's description."""
    return FeedRecord(feed.cloud, feed.change_number, feed.source.file_date)


def apply_and_verify(
    client: DbtClient,
    plan: Plan,
    account: Account,
    desired: tuple[Network, ...],
    feed: Feed,
    settings: Settings,
    options: RunOptions,
    outcome: Outcome,
) -> None:
    """Steps 6 and 7: write the plan, then read the rule back."""
    applied = apply_plan(client, plan, account, desired, feed, settings, options)
    outcome.rule_id = applied.rule_id
    outcome.failed_cidrs += applied.failed_cidrs
    outcome.already_existed = applied.already_existed
    if applied.rule_id is not None:
        verify(client, applied.rule_id, applied.plan, applied.failed_cidrs, applied.stored)
    outcome.status = "applied"
    if applied.failed_cidrs:
        outcome.warnings.append(
            f"the platform refused {len(applied.failed_cidrs)} CIDR(s): "
            + ", ".join(applied.failed_cidrs)
        )


def desired_set(feed: Feed, settings: Settings) -> tuple[Network, ...]:
    """Step 2: the networks the owned rule must hold, from the feed and the settings."""
    desired = build_desired(
        feed.all_prefixes(),
        families=settings.ip_families,
        extra=settings.extra_cidrs,
        exclude=settings.exclude_cidrs,
        collapse=settings.aggregate,
    )
    log.info(
        "desired_set",
        cidrs=len(desired),
        published=len(feed.all_prefixes()),
        families=settings.ip_families,
        aggregated=settings.aggregate,
    )
    return desired


def make_plan(desired: tuple[Network, ...], current: Rule | None, settings: Settings) -> Plan:
    """The plan for the current rule under the configured mode."""
    plan = compute_plan(desired, current, rule_name=settings.rule_name)
    return apply_mode(plan, settings.mode)


def log_plan(plan: Plan, *, replanned: bool = False) -> None:
    """The `plan` event: its counts, and whether it was made again after an unconfirmed write."""
    log.info(
        "plan",
        add=len(plan.add),
        remove=len(plan.remove),
        keep=len(plan.keep),
        create=plan.creates_rule,
        mode=plan.mode,
        replanned=replanned,
    )


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
    account: Account,
    desired: tuple[Network, ...],
    feed: Feed,
    settings: Settings,
    options: RunOptions,
) -> Applied:
    """Write the plan: create the rule, or one PUT. An ambiguous write is re-read, not replayed.

    CIDRs the platform refuses are reported in the result, not retried: the rest of the change
    stays applied, and the next run tries only what is still missing. A create is followed by a
    re-read that settles a race with a concurrent run (see `settle_duplicate_create`).
    """
    current = account.current
    for round_ in range(1, MAX_WRITE_ROUNDS + 1):
        try:
            result = _write(client, plan, current, feed, settings, account.enforcement)
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
            _pause(settings, round_)
            current = _reread(client, settings.rule_name)
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
            survivor, stored = settle_duplicate_create(client, result.rule.id, settings.rule_name)
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
        plan = make_plan(desired, current, settings)
        guard(plan, feed, replace(account, current=current), client, settings, options)
        if not plan.has_changes:
            log.info("write_confirmed_by_reread", round=round_)
            return Applied(plan, current.id if current else None)
        log_plan(plan, replanned=True)
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


def _reread(client: DbtClient, rule_name: str) -> Rule | None:
    return find_owned_rule(client.list_rules(), rule_name)


def _pause(settings: Settings, round_: int) -> None:
    """Wait before re-reading after an unconfirmed write: the retry backoff, within the deadline."""
    wait = backoff_seconds(settings.retry_policy(), round_ + 1)
    remaining = run_remaining()
    if remaining is not None:
        wait = min(wait, max(0.0, remaining))
    time.sleep(wait)


def _write(
    client: DbtClient,
    plan: Plan,
    current: Rule | None,
    feed: Feed,
    settings: Settings,
    enforcement: bool,
) -> WriteResult:
    record = applied_record(feed)
    if current is None:
        return client.create_owned_rule(
            cidrs=[str(n) for n in plan.add],
            description=with_record(settings.rule_description, record),
            rule_set_enabled=enforcement,
        )
    return client.update_owned_rule(
        current,
        add=[str(n) for n in plan.add],
        remove=plan.remove,
        description=with_record(current.description, record),
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


def limits(settings: Settings) -> Limits:
    """The guards' thresholds from the settings."""
    return Limits(
        min_prefixes=settings.min_prefixes,
        max_delete_fraction=settings.max_delete_fraction,
        min_prefix_length_ipv4=settings.min_prefix_length_ipv4,
        min_prefix_length_ipv6=settings.min_prefix_length_ipv6,
    )
