"""Reading an account's rules: the one rule this job owns, enforcement, and deny-rule conflicts."""

from __future__ import annotations

from allowlist_sync.cidrs import Network, network_or_none, sort_key
from allowlist_sync.dbt.models import Rule, RuleType
from allowlist_sync.errors import ApiResponseError, OwnershipError


def owned_candidates(rules: list[Rule], name: str) -> list[Rule]:
    """The active rules named `name`, lowest id first (normally none or one)."""
    return sorted((r for r in rules if r.is_active and r.name == name), key=lambda r: r.id)


def find_owned_rule(rules: list[Rule], name: str) -> Rule | None:
    """The one active rule named `name`; OwnershipError when it is ambiguous or a deny rule."""
    owned = owned_candidates(rules, name)
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
