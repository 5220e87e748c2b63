"""The Plan: what to add to and remove from the owned rule. A value; computing it has no effects.

`compute_plan` compares networks, not strings: a stored `52.45.144.63` keeps a desired
`52.45.144.63/32`. A stored entry that is a duplicate of another, or not a network at all, is
removed. Policies (`add-only`) are pure functions from a plan to a plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from allowlist_sync.cidrs import Network, network_or_none
from allowlist_sync.dbt.models import Cidr, Rule


@dataclass(frozen=True)
class Plan:
    """Changes that make the owned rule hold exactly `desired`."""

    rule_name: str
    rule_id: int | None  # None: the rule does not exist yet and will be created
    desired: tuple[Network, ...]
    current_count: int  # active CIDR entries stored in the rule now
    add: tuple[Network, ...] = ()
    remove: tuple[Cidr, ...] = ()
    keep: tuple[Cidr, ...] = ()
    mode: str = "sync"

    @property
    def creates_rule(self) -> bool:
        return self.rule_id is None

    @property
    def has_changes(self) -> bool:
        return self.creates_rule or bool(self.add) or bool(self.remove)

    def __repr__(self) -> str:
        target = "new rule" if self.creates_rule else f"rule {self.rule_id}"
        return (
            f"<Plan {target} {self.rule_name!r}: +{len(self.add)} -{len(self.remove)} "
            f"={len(self.keep)} desired={len(self.desired)} mode={self.mode}>"
        )


def compute_plan(desired: Sequence[Network], current: Rule | None, *, rule_name: str) -> Plan:
    """The plan that turns `current` (None: no rule yet) into exactly `desired`."""
    desired_t = tuple(desired)
    if current is None:
        return Plan(
            rule_name=rule_name, rule_id=None, desired=desired_t, current_count=0, add=desired_t
        )
    wanted = set(desired_t)
    seen: set[Network] = set()
    keep: list[Cidr] = []
    remove: list[Cidr] = []
    active = current.active_cidrs
    for entry in active:
        network = network_or_none(entry.cidr)
        if network is not None and network in wanted and network not in seen:
            keep.append(entry)
            seen.add(network)
        else:
            remove.append(entry)
    add = tuple(n for n in desired_t if n not in seen)
    return Plan(
        rule_name=rule_name,
        rule_id=current.id,
        desired=desired_t,
        current_count=len(active),
        add=add,
        remove=tuple(remove),
        keep=tuple(keep),
    )


def add_only(plan: Plan) -> Plan:
    """The `add-only` policy: never remove anything."""
    return replace(plan, remove=(), keep=plan.keep + plan.remove, mode="add-only")


def apply_mode(plan: Plan, mode: str) -> Plan:
    """The plan under the configured mode (`sync` or `add-only`)."""
    return add_only(plan) if mode == "add-only" else plan
