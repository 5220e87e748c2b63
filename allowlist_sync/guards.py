"""Guards: checks a feed and a plan must pass before anything is written. Each refusal carries
its numbers and says what would override it.

| guard         | refuses                                               | override             |
|---------------|-------------------------------------------------------|----------------------|
| feed_scope    | a published prefix not global unicast, or too broad   | none                 |
| rollback      | a feed older than the one last applied to the rule    | --force              |
| empty_desired | an empty desired set                                  | none                 |
| min_prefixes  | a desired set under ALLOWLIST_SYNC_MIN_PREFIXES       | --force              |
| max_delete    | removing more than ALLOWLIST_SYNC_MAX_DELETE_FRACTION | --force              |
| lockout       | removals while only the owned rule lets this job in   | --allow-lockout-risk |

Each is a pure function handed what it needs; the pipeline asks the platform for the lock-out
check's one fact (is this caller let in without the owned rule?) and passes the answer in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from allowlist_sync.cidrs import parse_network, scope_problem
from allowlist_sync.errors import UnsafePlanError
from allowlist_sync.logs import get_logger
from allowlist_sync.plan import Plan
from allowlist_sync.record import FeedRecord

log = get_logger(__name__)

#: Below this many current entries, any removal fraction is allowed (octoDNS's floor too).
DELETE_GUARD_FLOOR = 10


@dataclass(frozen=True)
class Limits:
    """The thresholds of the size guards."""

    min_prefixes: int = 10
    max_delete_fraction: float = 0.3
    min_prefix_length_ipv4: int = 16
    min_prefix_length_ipv6: int = 32


#: How many offending prefixes a refusal names before it only counts the rest.
_SHOWN = 5


def check_feed_scope(prefixes: Iterable[str], limits: Limits) -> None:
    """Refuse a feed holding any prefix that is not global unicast or is too broad; no override.

    An identity provider's egress is a few hundred public networks, never `0.0.0.0/0`, a private
    range or an IPv4-mapped IPv6 form: such an entry means the feed or its mirror was tampered
    with, and allowlisting it would switch IP restrictions off in effect.
    """
    bad: dict[str, str] = {}
    for text in prefixes:
        problem = scope_problem(
            parse_network(text),
            min_prefix_v4=limits.min_prefix_length_ipv4,
            min_prefix_v6=limits.min_prefix_length_ipv6,
        )
        if problem is not None:
            bad.setdefault(text, problem)
    if not bad:
        return
    shown = "; ".join(f"{p} {why}" for p, why in list(bad.items())[:_SHOWN])
    more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
    raise UnsafePlanError(
        f"the feed holds {len(bad)} prefix(es) that cannot be a provider's published egress: "
        f"{shown}{more}; the feed or its mirror looks tampered with. Nothing was written; "
        "this guard has no override (limits: ALLOWLIST_SYNC_MIN_PREFIX_LENGTH_IPV4="
        f"{limits.min_prefix_length_ipv4}, _IPV6={limits.min_prefix_length_ipv6})",
        guard="feed_scope",
        details={"prefixes": list(bad)[:_SHOWN], "count": len(bad)},
    )


def check_rollback(
    feed: FeedRecord, recorded: FeedRecord | None, *, rule_id: int | None, force: bool = False
) -> None:
    """Refuse a feed of the same cloud older (lower changeNumber) than the one last applied."""
    if recorded is None or recorded.cloud != feed.cloud:
        return
    if feed.change_number >= recorded.change_number:
        return
    _refuse_or_force(
        f"the feed is {feed.cloud} changeNumber {feed.change_number}"
        f"{_dated(feed.file_date)}, older than changeNumber {recorded.change_number}"
        f"{_dated(recorded.file_date)} that rule {rule_id} was last synced to (a rolled-back "
        "or replayed file?)",
        guard="rollback",
        details={
            "cloud": feed.cloud,
            "change_number": feed.change_number,
            "applied_change_number": recorded.change_number,
        },
        force=force,
    )


def _dated(file_date: str | None) -> str:
    return f" (file {file_date})" if file_date else ""


def check_plan(plan: Plan, limits: Limits, *, force: bool = False) -> None:
    """Raise UnsafePlanError when the plan is unsafe; `force` lifts the size guards only."""
    desired = len(plan.desired)
    if desired == 0:
        raise UnsafePlanError(
            "refusing to empty the rule: the desired set has 0 CIDRs (is the feed broken?)",
            guard="empty_desired",
            details={"desired": 0, "current": plan.current_count},
        )
    if desired < limits.min_prefixes:
        _refuse_or_force(
            f"the desired set has {desired} CIDRs, fewer than ALLOWLIST_SYNC_MIN_PREFIXES="
            f"{limits.min_prefixes} (a truncated feed?)",
            guard="min_prefixes",
            details={"desired": desired, "min": limits.min_prefixes},
            force=force,
        )
    removing = len(plan.remove)
    current = plan.current_count
    if current >= DELETE_GUARD_FLOOR and removing / current > limits.max_delete_fraction:
        _refuse_or_force(
            f"the plan removes {removing} of {current} CIDRs ({removing / current:.0%}), over "
            f"ALLOWLIST_SYNC_MAX_DELETE_FRACTION={limits.max_delete_fraction:g}",
            guard="max_delete",
            details={
                "remove": removing,
                "current": current,
                "max_fraction": limits.max_delete_fraction,
            },
            force=force,
        )


def check_lockout(
    plan: Plan, *, enforcement: bool, allowed_without_rule: bool | None, allow_risk: bool
) -> None:
    """Refuse removals when enforcement is on and only the owned rule lets this caller in.

    `allowed_without_rule` is the platform's validate answer with the owned rule left out (None
    when it was not asked: no enforcement, no removals or no rule yet).
    """
    if not (enforcement and plan.remove and plan.rule_id is not None) or allowed_without_rule:
        return
    message = (
        f"IP restrictions are enforced and this job's own address is allowed only by "
        f"rule {plan.rule_id}; removing {len(plan.remove)} CIDR(s) from it could lock this job "
        "(and anyone behind the same egress) out, which only dbt support can undo. Allow the "
        "job's egress IP in another rule (the platform does not say which address it sees: "
        "`allowlist-sync check` lists the rules and whether one besides the owned rule lets "
        "this job in), or re-run with --allow-lockout-risk"
    )
    details: dict[str, object] = {"rule_id": plan.rule_id, "remove": len(plan.remove)}
    if not allow_risk:
        raise UnsafePlanError(message, guard="lockout", details=details)
    log.warning("guard_overridden", guard="lockout", flag="--allow-lockout-risk", **details)


def lockout_question(plan: Plan, enforcement: bool) -> bool:
    """Whether the lock-out guard needs the platform's answer for this plan."""
    return enforcement and bool(plan.remove) and plan.rule_id is not None


def _refuse_or_force(message: str, *, guard: str, details: dict[str, object], force: bool) -> None:
    if not force:
        raise UnsafePlanError(
            f"{message}; re-run with --force if this is intended",
            guard=guard,
            details=details,
        )
    log.warning("guard_overridden", guard=guard, reason=message, flag="--force", **details)
