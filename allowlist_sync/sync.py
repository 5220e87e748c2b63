"""One run of the job, top to bottom:

    source -> desired -> current -> plan -> guards -> apply -> verify -> outcome

`run_once` is the whole pipeline; the CLI, the scheduler and the tests are thin shells around it.
Every expected failure becomes an Outcome carrying the error, so every shell reports it the same
way; nothing is written unless every step before the write succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import httpx

from allowlist_sync.apply import WriteFacts, apply_plan, verify
from allowlist_sync.azure.cache import default_cache_dir
from allowlist_sync.cidrs import Network, build_desired, network_or_none, parse_network
from allowlist_sync.config import RunSettings, Settings
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Rule
from allowlist_sync.dbt.rules import (
    deny_conflicts,
    find_owned_rule,
    rule_set_enabled,
)
from allowlist_sync.errors import (
    AllowlistSyncError,
    ApiResponseError,
    OwnershipError,
    UnsafePlanError,
)
from allowlist_sync.guards import (
    Limits,
    check_lockout,
    check_overlap,
    check_plan,
    check_rollback,
    lockout_question,
)
from allowlist_sync.logs import get_logger
from allowlist_sync.net.deadline import run_deadline
from allowlist_sync.outcome import DEFAULT_TARGET, Outcome
from allowlist_sync.plan import Plan, Provenance, apply_mode, compute_plan, explain
from allowlist_sync.record import read_records
from allowlist_sync.runlock import run_lock
from allowlist_sync.sources.load import load_ranges
from allowlist_sync.sources.ranges import Ranges, RangeSet
from allowlist_sync.sources.specs import AzureSource

__all__ = ["RunOptions", "find_owned_rule", "rule_set_enabled", "run_once"]

log = get_logger(__name__)

#: The name of the environment's one source (in logs and the JSON `sources` list).
ENV_SOURCE = "azure"


@dataclass(frozen=True)
class RunOptions:
    """How this run differs from the settings: flags of `allowlist-sync sync`."""

    dry_run: bool = False
    force: bool = False
    allow_lockout_risk: bool = False
    source_file: str | None = None
    source_url: str | None = None
    #: Called with each plan before the guards run (the CLI renders it here).
    on_plan: Callable[[Plan, RangeSet, Rule | None], None] | None = None


def run_once(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    dbt_transport: httpx.BaseTransport | None = None,
    feed_transport: httpx.BaseTransport | None = None,
    stdin: BinaryIO | None = None,
) -> Outcome:
    """Run the pipeline once for the environment's one target; errors land in the Outcome."""
    options = options or RunOptions()
    outcome = new_outcome(options, DEFAULT_TARGET, settings.rule_name, settings.account_id)
    started = time.monotonic()
    with ExitStack() as stack, recorded(outcome):
        stack.enter_context(run_deadline(settings.run_timeout))
        stack.enter_context(run_lock(lock_dir(settings)))
        # 1. Source: fetched and validated (scope included) before the target is touched.
        ranges = load_source(settings, options, outcome, stdin=stdin, transport=feed_transport)
        sync_target(settings, RangeSet((ranges,)), options, outcome, transport=dbt_transport)
    finish(outcome, started)
    return outcome


def new_outcome(options: RunOptions, target: str, rule_name: str, account_id: int) -> Outcome:
    """The Outcome of a target's run that has not got anywhere yet (a failure until it says
    otherwise)."""
    return Outcome(
        status="failed",
        dry_run=options.dry_run,
        target=target,
        rule_name=rule_name,
        account_id=account_id,
    )


def finish(outcome: Outcome, started: float) -> None:
    """Time the run and log its one summary event."""
    outcome.duration_seconds = time.monotonic() - started
    log_finished(outcome)


def sync_target(
    settings: Settings,
    ranges: RangeSet,
    options: RunOptions,
    outcome: Outcome,
    *,
    transport: httpx.BaseTransport | None,
) -> None:
    """Steps 2 to 7 for one target whose sources are loaded; raises what `recorded` maps."""
    outcome.source = ranges.source
    outcome.sources = [r.to_json() for r in ranges.items]
    outcome.warnings.extend(ranges.all_warnings())  # ages, a cached fallback, a rollback kept out
    # Every source passed the feed scope gate when it was loaded (`sources.load.load_ranges`,
    # with the same limits: they are process settings), so it is not checked once per target.
    # 2. Desired set.
    desired = desired_set(ranges, settings)
    with connected(settings, outcome, transport) as client:
        # 3. Current rule, and what the platform would refuse anyway.
        account = read_account(client, settings.rule_name, outcome)
        conflicts = deny_conflicts(desired, account.rules)
        why = provenance(ranges, settings, conflicts)
        desired = drop_deny_conflicts(desired, conflicts, outcome)
        # 4. Plan, each line with its reason, and the platform's lock-out answer for it.
        plan = ask_lockout(make_plan(desired, account, settings, why), account, client)
        outcome.plan = plan
        log_plan(plan)
        if options.on_plan is not None:  # rendered by the caller
            options.on_plan(plan, ranges, account.current)
        # 5. Guards.
        guard(plan, ranges, account, settings, options)
        if not plan.has_changes:
            outcome.status = "in_sync"
        elif options.dry_run:
            outcome.status = "changes_pending"
        else:
            # 6. Apply, 7. verify.
            apply_and_verify(
                client, plan, account, desired, why, ranges, settings, options, outcome
            )
    if outcome.failed_cidrs:
        # The rule cannot hold the whole desired set: monitoring must see it (exit 1).
        outcome.status = "failed"


@contextmanager
def recorded(outcome: Outcome) -> Iterator[None]:
    """Turn an expected failure into the Outcome's status and error (a refusal or a failure)."""
    try:
        yield
    except UnsafePlanError as exc:
        outcome.status, outcome.error = "refused", exc
        log.error("plan_refused", guard=exc.guard, reason=str(exc), **exc.details)
    except OwnershipError as exc:
        outcome.status, outcome.error = "refused", exc
        log.error("plan_refused", guard="ownership", reason=str(exc))
    except AllowlistSyncError as exc:
        outcome.status, outcome.error = "failed", exc
        log.error("run_failed", kind=exc.kind, error=str(exc))


@contextmanager
def connected(
    settings: Settings, outcome: Outcome, transport: httpx.BaseTransport | None
) -> Iterator[DbtClient]:
    """The dbt client for the run; its request and write counts land in the Outcome."""
    client = DbtClient.connect(
        settings.dbt_connection(), owned_rule_name=settings.rule_name, transport=transport
    )
    try:
        yield client
    finally:
        outcome.requests = client.request_count
        outcome.writes = client.write_count
        client.close()


def log_finished(outcome: Outcome) -> None:
    """The one summary event of a run: `added` / `removed` written, `planned_*` asked for."""
    log.info(
        "run_finished",
        status=outcome.status,
        dry_run=outcome.dry_run,
        rule_id=outcome.rule_id,
        added=outcome.added,
        removed=outcome.removed,
        planned_add=len(outcome.plan.add) if outcome.plan else 0,
        planned_remove=len(outcome.plan.remove) if outcome.plan else 0,
        failed_cidrs=len(outcome.failed_cidrs),
        requests=outcome.requests,
        writes=outcome.writes,
        duration_seconds=round(outcome.duration_seconds, 3),
    )


def written_counts(plan: Plan, refused: tuple[str, ...]) -> tuple[int, int]:
    """(added, removed) by a verified write of `plan`, less the CIDRs the platform refused.

    Counted against the plan made from the rule as first read: after a re-plan (an unconfirmed
    write settled by re-reading), verification still proves the rule went from that to this.
    """
    refused_networks = {n for n in map(network_or_none, refused) if n is not None}
    return len([n for n in plan.add if n not in refused_networks]), len(plan.remove)


def lock_dir(settings: RunSettings) -> Path:
    """The folder whose lock serialises runs on one machine: the feed cache's."""
    return settings.cache_dir or default_cache_dir()


def load_source(
    settings: Settings,
    options: RunOptions,
    outcome: Outcome,
    *,
    stdin: BinaryIO | None,
    transport: httpx.BaseTransport | None,
) -> Ranges:
    """Step 1 of the environment's run: its Azure source, from a flag, the settings or discovery."""
    ranges = load_ranges(
        azure_source(settings, options), limits(settings), stdin=stdin, transport=transport
    )
    outcome.source = ranges.source
    return ranges


def azure_source(settings: Settings, options: RunOptions) -> AzureSource:
    """The environment's one source; a flag wins over ALLOWLIST_SYNC_SOURCE_FILE/_URL, which
    serve mode (no flags) relies on."""
    query = settings.feed_query()
    if options.source_file is not None or options.source_url is not None:
        return AzureSource(
            ENV_SOURCE, replace(query, source_url=options.source_url), file=options.source_file
        )
    return AzureSource(ENV_SOURCE, query, file=settings.source_file)


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
    desired: tuple[Network, ...], conflicts: dict[Network, int], outcome: Outcome
) -> tuple[Network, ...]:
    """CIDRs a deny rule holds (`dbt.rules.deny_conflicts`) are refused by the platform: never
    sent, reported (exit 1)."""
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
    plan: Plan, ranges: RangeSet, account: Account, settings: Settings, options: RunOptions
) -> None:
    """Step 5: every guard on the plan; the same before the first write and after a re-plan."""
    check_plan(plan, limits(settings), force=options.force)
    check_overlap(plan, account.rules, limits(settings), force=options.force)
    if plan.has_changes and account.current is not None:
        recorded_before = read_records(account.current.description)
        for record in ranges.records():
            check_rollback(
                record,
                recorded_before.get(record.cloud),
                rule_id=account.current.id,
                force=options.force,
            )
    check_lockout(
        plan,
        enforcement=account.enforcement,
        allowed_without_rule=plan.caller_allowed_without_rule,
        allow_risk=options.allow_lockout_risk,
    )


def ask_lockout(plan: Plan, account: Account, client: DbtClient) -> Plan:
    """The plan with the platform's answer to the lock-out guard's question, when it has one:
    would this caller be let in without the owned rule? (Asked before the plan is shown, so
    the plan can say it.)"""
    if not lockout_question(plan, account.enforcement):
        return plan
    if account.rule_set_id is None:
        raise ApiResponseError("rules carry no ip_restriction_rule_set_id; cannot check lock-out")
    assert plan.rule_id is not None
    allowed = client.caller_allowed(account.rule_set_id, without_rule_id=plan.rule_id)
    log.info("lockout_check", caller_allowed_without_owned_rule=allowed)
    return replace(plan, caller_allowed_without_rule=allowed)


def apply_and_verify(
    client: DbtClient,
    plan: Plan,
    account: Account,
    desired: tuple[Network, ...],
    why: Provenance,
    ranges: RangeSet,
    settings: Settings,
    options: RunOptions,
    outcome: Outcome,
) -> None:
    """Steps 6 and 7: write the plan, then read the rule back."""

    def replan(current: Rule | None) -> Plan:
        now = replace(account, current=current)
        again = ask_lockout(make_plan(desired, now, settings, why), now, client)
        guard(again, ranges, now, settings, options)
        if again.has_changes:
            log_plan(again, replanned=True)
        return again

    facts = WriteFacts(
        records=ranges.records(),
        enforcement=account.enforcement,
        new_rule_description=settings.rule_description,
        retry=settings.retry_policy(),
    )
    applied = apply_plan(client, plan, account.current, write=facts, replan=replan)
    outcome.rule_id = applied.rule_id
    outcome.failed_cidrs += applied.failed_cidrs
    outcome.already_existed = applied.already_existed
    if applied.rule_id is not None:
        verify(client, applied.rule_id, applied.plan, applied.failed_cidrs, applied.stored)
    outcome.added, outcome.removed = written_counts(plan, applied.failed_cidrs)
    outcome.status = "applied"
    if applied.failed_cidrs:
        outcome.warnings.append(
            f"the platform refused {len(applied.failed_cidrs)} CIDR(s): "
            + ", ".join(applied.failed_cidrs)
        )


def desired_set(ranges: RangeSet, settings: Settings) -> tuple[Network, ...]:
    """Step 2: the networks the owned rule must hold, from the sources and the settings."""
    desired = build_desired(
        ranges.all_prefixes(),
        families=settings.ip_families,
        extra=settings.extra_cidrs,
        exclude=settings.exclude_cidrs,
        collapse=settings.aggregate,
    )
    log.info(
        "desired_set",
        cidrs=len(desired),
        published=len(ranges.all_prefixes()),
        families=settings.ip_families,
        aggregated=settings.aggregate,
    )
    return desired


def make_plan(
    desired: tuple[Network, ...], account: Account, settings: Settings, why: Provenance
) -> Plan:
    """The plan for the account's owned rule under the configured mode, each line explained."""
    plan = compute_plan(desired, account.current, rule_name=settings.rule_name)
    plan = explain(apply_mode(plan, settings.mode), why)
    return replace(plan, enforcement=account.enforcement)


def provenance(ranges: RangeSet, settings: Settings, denied: dict[Network, int]) -> Provenance:
    """Where the desired set came from (`denied`: what deny rules took out of it), for the plan
    to say why each line is there."""
    return Provenance(
        published=tuple(parse_network(p) for p in ranges.all_prefixes()),
        extra=tuple(parse_network(c) for c in settings.extra_cidrs),
        exclude=tuple(parse_network(c) for c in settings.exclude_cidrs),
        families=tuple(settings.ip_families),
        denied=tuple(denied.items()),
    )


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


def limits(settings: Settings) -> Limits:
    """The guards' thresholds from the settings."""
    return Limits(
        min_prefixes=settings.min_prefixes,
        max_delete_fraction=settings.max_delete_fraction,
        min_prefix_length_ipv4=settings.min_prefix_length_ipv4,
        min_prefix_length_ipv6=settings.min_prefix_length_ipv6,
    )
