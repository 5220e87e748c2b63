"""Guards: checks a feed and a plan must pass before anything is written. Each refusal carries
its numbers and says what would override it.

| guard         | refuses                                               | override             |
|---------------|-------------------------------------------------------|----------------------|
| feed_scope    | a published prefix not global unicast, or too broad   | none                 |
| overlap       | creating the rule while another holds >= half the set | --force              |
| rollback      | a feed older than the one last applied to the rule    | --force              |
| empty_desired | an empty desired set                                  | none                 |
| min_prefixes  | a desired set under ALLOWLIST_SYNC_MIN_PREFIXES       | --force              |
| max_delete    | removing more than ALLOWLIST_SYNC_MAX_DELETE_FRACTION | --force              |
| lockout       | removals while only the owned rule lets this job in   | --allow-lockout-risk |

Each is a pure function handed what it needs; the pipeline asks the platform for the lock-out
check's one fact (is this caller let in without the owned rule?) and passes the answer in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from allowlist_sync.cidrs import Network, network_or_none, parse_network, scope_problem
from allowlist_sync.dbt.models import Rule, RuleType
from allowlist_sync.errors import UnsafePlanError
from allowlist_sync.logs import get_logger
from allowlist_sync.plan import AddressSpan, Plan
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


#: An allow rule the job does not own that already holds this share of the desired set is offered
#: for adoption instead of a second rule being created beside it.
ADOPT_FRACTION = 0.5
#: How much of a rule's name a message quotes (names come from the account: anyone's text).
_NAME_SHOWN = 80


@dataclass(frozen=True)
class Overlap:
    """An allow rule the job does not own, and how many of the desired CIDRs it already holds."""

    rule_id: int
    rule_name: str
    held: int
    desired: int

    @property
    def share(self) -> float:
        return self.held / self.desired if self.desired else 0.0


def adoption_candidates(
    desired: Sequence[Network], rules: Iterable[Rule], *, owned_name: str, limits: Limits
) -> list[Overlap]:
    """Active allow rules, other than the owned one, holding >= ADOPT_FRACTION of `desired`,
    the one holding most first.

    A desired network counts as held when the rule's entries cover all of its addresses. Entries
    broader than a feed could publish (the feed-scope prefix lengths: `0.0.0.0/0`, a /8) are left
    out: a rule letting everyone in covers every range but is no copy of the set to adopt.
    """
    if not desired:
        return []
    found = []
    for rule in rules:
        if not rule.is_active or rule.type != RuleType.ALLOW or rule.name == owned_name:
            continue
        span = _coverage(rule, limits)
        held = sum(1 for network in desired if span.covers(network))
        if held / len(desired) >= ADOPT_FRACTION:
            found.append(Overlap(rule.id, rule.name, held, len(desired)))
    return sorted(found, key=lambda o: (-o.held, o.rule_id))


def _coverage(rule: Rule, limits: Limits) -> AddressSpan:
    """The addresses the rule lets in, broad entries left out."""
    minimum = {4: limits.min_prefix_length_ipv4, 6: limits.min_prefix_length_ipv6}
    networks = [network_or_none(c.cidr) for c in rule.active_cidrs]
    return AddressSpan(n for n in networks if n is not None and n.prefixlen >= minimum[n.version])


def check_overlap(
    plan: Plan, rules: Iterable[Rule], limits: Limits, *, force: bool = False
) -> None:
    """Refuse to create the owned rule while another allow rule already holds half the set.

    The person who keeps such a rule by hand meant it for these ranges: a second rule beside it
    would leave theirs holding ranges Microsoft has dropped, forever. Adopt it by name, or
    `--force` a separate rule.
    """
    if not plan.creates_rule:
        return
    found = adoption_candidates(plan.desired, rules, owned_name=plan.rule_name, limits=limits)
    if not found:
        return
    top, others = found[0], len(found) - 1
    also = (
        f" ({others} other rule{'s' if others > 1 else ''} also hold{'' if others > 1 else 's'}"
        " half or more)"
        if others
        else ""
    )
    name = _quoted(top.rule_name)
    message = (
        f"rule {name} (id {top.rule_id}) already holds {top.held} of the {top.desired} desired "
        f"CIDRs ({top.share:.0%}){also}, and this job's rule {_quoted(plan.rule_name)} does not "
        "exist yet: creating it would leave two rules for the same ranges. Adopt that rule "
        f"(set ALLOWLIST_SYNC_RULE_NAME={name}: this job then manages its CIDRs and keeps its "
        "description's text), or create a separate rule anyway (re-run with --force)"
    )
    details: dict[str, object] = {
        "rule_id": top.rule_id,
        "held": top.held,
        "desired": top.desired,
        "other_candidates": others,
    }
    if not force:
        raise UnsafePlanError(message, guard="overlap", details=details)
    log.warning("guard_overridden", guard="overlap", flag="--force", **details)


def _quoted(name: str) -> str:
    """A rule name for a one-line message: quoted, escaped, and cut when very long."""
    return repr(name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "...")


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
