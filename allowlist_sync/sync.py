"""One run of the job, top to bottom:

    source -> desired -> current -> plan -> guards -> apply -> verify -> outcome

`run_once` is the whole pipeline; the CLI, the scheduler and the tests are thin shells around it.
Every expected failure becomes an Outcome carrying the error, so every shell reports it the same
way; nothing is written unless every step before the write succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import httpx

from allowlist_sync.azure.feed import Feed
from allowlist_sync.azure.source import load_feed
from allowlist_sync.cidrs import Network, build_desired, network_or_none, sort_key
from allowlist_sync.config import Settings
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Rule, RuleType, WriteResult
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
from allowlist_sync.guards import Limits, check_plan
from allowlist_sync.logs import get_logger
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan, apply_mode, compute_plan

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
        # 1. Source: fetched and validated before the target is touched at all.
        # A flag wins over ALLOWLIST_SYNC_SOURCE_FILE, which serve mode (no flags) relies on.
        from_flags = options.source_file is not None or options.source_url is not None
        feed = load_feed(
            settings,
            source_file=options.source_file if from_flags else settings.source_file,
            source_url=options.source_url,
            stdin=stdin,
            transport=feed_transport,
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

        # 2. Desired set.
        desired = desired_set(feed, settings)
        log.info(
            "desired_set",
            cidrs=len(desired),
            published=len(feed.all_prefixes()),
            families=settings.ip_families,
            aggregated=settings.aggregate,
        )

        # 3. Current rule.
        client = DbtClient.from_settings(settings, transport=dbt_transport)
        rules = client.list_rules()
        current = find_owned_rule(rules, settings.rule_name)
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
        # The platform refuses a CIDR in an allow rule that a deny rule holds: known in advance,
        # so never sent (a write that fails every week), only reported.
        conflicts = deny_conflicts(desired, rules)
        if conflicts:
            desired = tuple(n for n in desired if n not in conflicts)
            outcome.failed_cidrs = tuple(str(n) for n in conflicts)
            where = ", ".join(f"{n} (deny rule {rule_id})" for n, rule_id in conflicts.items())
            outcome.warnings.append(
                f"{len(conflicts)} published CIDR(s) are held by deny rules, so the platform "
                f"would refuse them: {where}; remove them from the deny rule, or add them to "
                "ALLOWLIST_SYNC_EXCLUDE_CIDRS to stop this warning"
            )
            log.error("deny_rule_conflict", cidrs={str(n): r for n, r in conflicts.items()})

        # 4. Plan (rendered by the caller), 5. guards.
        plan = make_plan(desired, current, settings)
        outcome.plan = plan
        log_plan(plan)
        if options.on_plan is not None:
            options.on_plan(plan, feed, current)
        check_plan(plan, _limits(settings), force=options.force)
        check_lockout(client, plan, rules, enforcement, allow_risk=options.allow_lockout_risk)

        if not plan.has_changes:
            outcome.status = "in_sync"
        elif options.dry_run:
            outcome.status = "changes_pending"
        else:
            # 6. Apply, 7. verify.
            applied = apply_plan(client, plan, current, desired, settings, options, enforcement)
            outcome.rule_id = applied.rule_id
            outcome.failed_cidrs += applied.failed_cidrs
            outcome.already_existed = applied.already_existed
            if applied.rule_id is not None:
                verify(client, applied.rule_id, applied.plan, applied.failed_cidrs)
            outcome.status = "applied"
            if applied.failed_cidrs:
                outcome.warnings.append(
                    f"the platform refused {len(applied.failed_cidrs)} CIDR(s): "
                    + ", ".join(applied.failed_cidrs)
                )
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


def desired_set(feed: Feed, settings: Settings) -> tuple[Network, ...]:
    """The networks the owned rule must hold, from the feed and the settings."""
    return build_desired(
        feed.all_prefixes(),
        families=settings.ip_families,
        extra=settings.extra_cidrs,
        exclude=settings.exclude_cidrs,
        collapse=settings.aggregate,
    )


def find_owned_rule(rules: list[Rule], name: str) -> Rule | None:
    """The one active rule named `name`; OwnershipError when it is ambiguous or a deny rule."""
    owned = [r for r in rules if r.is_active and r.name == name]
    if len(owned) > 1:
        ids = ", ".join(str(r.id) for r in owned)
        raise OwnershipError(
            f"{len(owned)} active rules are named {name!r} (ids {ids}); this job owns exactly "
            "one: delete or rename the extra ones"
        )
    if owned and owned[0].type != RuleType.ALLOW:
        raise OwnershipError(
            f"rule {owned[0].id} named {name!r} is a deny rule; this job only manages an allow "
            "rule: rename it or set ALLOWLIST_SYNC_RULE_NAME"
        )
    return owned[0] if owned else None


def deny_conflicts(desired: tuple[Network, ...], rules: list[Rule]) -> dict[Network, int]:
    """Desired networks that an active deny rule holds, each with that rule's id."""
    wanted = set(desired)
    held: dict[Network, int] = {}
    for rule in rules:
        if rule.is_active and rule.type == RuleType.DENY:
            for entry in rule.active_cidrs:
                network = network_or_none(entry.cidr)
                if network in wanted:
                    held.setdefault(network, rule.id)
    return dict(sorted(held.items(), key=lambda item: sort_key(item[0])))


def rule_set_enabled(rules: list[Rule]) -> bool:
    """Whether the account enforces IP restrictions now (False with no rules at all)."""
    values = {r.rule_set_enabled for r in rules if r.is_active}
    if len(values) > 1:
        raise ApiResponseError("the account's rules disagree on rule_set_enabled")
    return values.pop() if values else False


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


def check_lockout(
    client: DbtClient, plan: Plan, rules: list[Rule], enforcement: bool, *, allow_risk: bool
) -> None:
    """Refuse removals when enforcement is on and this caller is only allowed by the owned rule."""
    if not (enforcement and plan.remove and plan.rule_id is not None):
        return
    set_ids = {r.ip_restriction_rule_set_id for r in rules if r.ip_restriction_rule_set_id}
    if not set_ids:
        raise ApiResponseError("rules carry no ip_restriction_rule_set_id; cannot check lock-out")
    allowed_without = client.caller_allowed(set_ids.pop(), without_rule_id=plan.rule_id)
    if allowed_without:
        log.info("lockout_check", caller_allowed_without_owned_rule=True)
        return
    message = (
        f"IP restrictions are enforced and this job's own address is allowed only by "
        f"rule {plan.rule_id}; removing {len(plan.remove)} CIDR(s) from it could lock this job "
        "(and anyone behind the same egress) out, which only dbt support can undo. Allow the "
        "job's egress IP in another rule, or re-run with --allow-lockout-risk"
    )
    if not allow_risk:
        raise UnsafePlanError(
            message, guard="lockout", details={"rule_id": plan.rule_id, "remove": len(plan.remove)}
        )
    log.warning(
        "guard_overridden",
        guard="lockout",
        flag="--allow-lockout-risk",
        rule_id=plan.rule_id,
        remove=len(plan.remove),
    )


@dataclass(frozen=True)
class Applied:
    """What a write achieved: the plan finally written (after any re-plan) and what was refused."""

    plan: Plan
    rule_id: int | None
    failed_cidrs: tuple[str, ...] = ()
    already_existed: tuple[str, ...] = ()


def apply_plan(
    client: DbtClient,
    plan: Plan,
    current: Rule | None,
    desired: tuple[Network, ...],
    settings: Settings,
    options: RunOptions,
    enforcement: bool,
) -> Applied:
    """Write the plan: create the rule, or one PUT. An ambiguous write is re-read, not replayed.

    CIDRs the platform refuses are reported in the result, not retried: the rest of the change
    stays applied, and the next run tries only what is still missing.
    """
    for round_ in range(1, MAX_WRITE_ROUNDS + 1):
        try:
            result = _write(client, plan, current, settings, enforcement)
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
            time.sleep(min(settings.retry_backoff * 2**round_, 30.0))
            rules = client.list_rules()
            current = find_owned_rule(rules, settings.rule_name)
            plan = make_plan(desired, current, settings)
            check_plan(plan, _limits(settings), force=options.force)
            if not plan.has_changes:
                log.info("write_confirmed_by_reread", round=round_)
                return Applied(plan, current.id if current else None)
            log_plan(plan, replanned=True)
            continue
        log.info(
            "applied",
            rule_id=result.rule.id,
            created=plan.creates_rule,
            added=len(plan.add),
            removed=len(plan.remove),
            failed_cidrs=result.failed_cidrs,
            already_existed=result.cidrs_already_exists,
        )
        return Applied(
            plan, result.rule.id, tuple(result.failed_cidrs), tuple(result.cidrs_already_exists)
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _write(
    client: DbtClient, plan: Plan, current: Rule | None, settings: Settings, enforcement: bool
) -> WriteResult:
    if current is None:
        return client.create_owned_rule(
            cidrs=[str(n) for n in plan.add],
            description=settings.rule_description,
            rule_set_enabled=enforcement,
        )
    return client.update_owned_rule(current, add=[str(n) for n in plan.add], remove=plan.remove)


def verify(client: DbtClient, rule_id: int, plan: Plan, refused: tuple[str, ...]) -> None:
    """Read the rule back: it must hold exactly what the plan leads to, less refused CIDRs.

    In `sync` mode that is the desired set, each network once; in `add-only` mode it also
    includes what the plan deliberately kept.
    """
    rule = client.get_rule(rule_id)
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


def _limits(settings: Settings) -> Limits:
    return Limits(
        min_prefixes=settings.min_prefixes, max_delete_fraction=settings.max_delete_fraction
    )
