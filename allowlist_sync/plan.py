"""The Plan: what to add to and remove from the owned rule. A value; computing it has no effects.

`compute_plan` compares networks, not strings: a stored `52.45.144.63` keeps a desired
`52.45.144.63/32`. A stored entry that is a duplicate of another, or not a network at all, is
removed. Policies (`add-only`) are pure functions from a plan to a plan. `explain` gives each
line its reason (`Provenance`: where the desired set came from), so a plan says why a range goes:
Microsoft stopped publishing it, or a setting cut it out.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from allowlist_sync.cidrs import Network, network_or_none
from allowlist_sync.dbt.models import Cidr, Rule


@dataclass(frozen=True)
class Reason:
    """Why a line is in the plan: a stable `code` and, when one is known, what is behind it."""

    #: published | extra (additions); not_published | excluded | duplicate | replaced |
    #: not_a_network (removals)
    code: str
    #: The setting, rule or range behind it ("ALLOWLIST_SYNC_EXCLUDE_CIDRS", "deny rule 12").
    by: str | None = None
    #: Only part of the entry is concerned (a stored range broader than what is published).
    partly: bool = False

    def text(self) -> str:
        """The reason in words, as the plan shows it."""
        if self.code == "not_published":
            return "not published (only part of it is)" if self.partly else "not published"
        if self.code == "excluded" and self.by and self.by.startswith("deny rule"):
            return f"excluded: {self.by} holds {'part of it' if self.partly else 'it'}"
        if self.code == "replaced":
            return f"replaced by {self.by}"
        if self.code == "extra":
            return f"extra: {self.by}"
        words = self.code.replace("_", " ")
        return f"{words} by {self.by}" if self.by else words


@dataclass(frozen=True)
class Provenance:
    """Where the desired set came from: what was published, and what the settings changed."""

    #: The selected tags' prefixes, as published (before families, exclusions, aggregation).
    published: tuple[Network, ...]
    extra: tuple[Network, ...] = ()
    exclude: tuple[Network, ...] = ()
    families: tuple[str, ...] = ("ipv4", "ipv6")
    #: Networks the account's deny rules hold, each with its rule's id.
    denied: tuple[tuple[Network, int], ...] = ()


class AddressSpan:
    """The addresses some networks cover, as merged ranges: does it cover or touch a network?"""

    def __init__(self, networks: Iterable[Network]) -> None:
        merged: dict[int, list[list[int]]] = {4: [], 6: []}
        bounds = sorted((n.version, *_bounds(n)) for n in networks)
        for version, start, end in bounds:
            ranges = merged[version]
            if ranges and start <= ranges[-1][1] + 1:
                ranges[-1][1] = max(ranges[-1][1], end)
            else:
                ranges.append([start, end])
        self._ranges = merged
        self._starts = {v: [r[0] for r in ranges] for v, ranges in merged.items()}

    def _last_from(self, network: Network, address: int) -> list[int] | None:
        at = bisect_right(self._starts[network.version], address) - 1
        return self._ranges[network.version][at] if at >= 0 else None

    def covers(self, network: Network) -> bool:
        """Every address of `network` is in the span."""
        start, end = _bounds(network)
        found = self._last_from(network, start)
        return found is not None and found[1] >= end

    def touches(self, network: Network) -> bool:
        """Some address of `network` is in the span."""
        start, end = _bounds(network)
        found = self._last_from(network, end)
        return found is not None and found[1] >= start


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
    #: Why each addition and removal is there, index by index (empty: not explained).
    add_reasons: tuple[Reason, ...] = field(default=(), repr=False)
    remove_reasons: tuple[Reason, ...] = field(default=(), repr=False)
    #: The account's enforcement, and the lock-out check's answer when it was asked (None: not).
    enforcement: bool | None = None
    caller_allowed_without_rule: bool | None = None

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
    return replace(
        plan, remove=(), remove_reasons=(), keep=plan.keep + plan.remove, mode="add-only"
    )


def apply_mode(plan: Plan, mode: str) -> Plan:
    """The plan under the configured mode (`sync` or `add-only`)."""
    return add_only(plan) if mode == "add-only" else plan


def explain(plan: Plan, why: Provenance) -> Plan:
    """The plan with a reason for each addition and removal."""
    published, extra = AddressSpan(why.published), AddressSpan(why.extra)
    add = tuple(
        Reason("published")
        if published.covers(n) or not extra.touches(n)
        else Reason("extra", "ALLOWLIST_SYNC_EXTRA_CIDRS")
        for n in plan.add
    )
    context = _Removals(why, plan.desired)
    return replace(plan, add_reasons=add, remove_reasons=tuple(map(context.reason, plan.remove)))


_FAMILY = {4: "ipv4", 6: "ipv6"}


class _Removals:
    """Says why a stored entry leaves the rule, against one desired set and its provenance."""

    def __init__(self, why: Provenance, desired: Sequence[Network]) -> None:
        self.why = why
        self.desired = set(desired)
        self.sources = AddressSpan((*why.published, *why.extra))
        self.excluded = AddressSpan(why.exclude)
        # Desired networks are disjoint: the one that may hold an entry starts at or before it.
        self.by_start = sorted(desired, key=_start)
        self.starts = [_start(n) for n in self.by_start]

    def reason(self, entry: Cidr) -> Reason:
        network = network_or_none(entry.cidr)
        if network is None:
            return Reason("not_a_network")
        if network in self.desired:
            return Reason("duplicate")  # the same network is kept under another entry
        if not self.sources.touches(network):
            return Reason("not_published")
        if self.excluded.touches(network):
            return Reason("excluded", "ALLOWLIST_SYNC_EXCLUDE_CIDRS")
        if _FAMILY[network.version] not in self.why.families:
            families = ",".join(self.why.families)
            return Reason("excluded", f"ALLOWLIST_SYNC_IP_FAMILIES={families}")
        for held, rule_id in self.why.denied:
            if _overlap(held, network) and self.sources.touches(held):
                return Reason("excluded", f"deny rule {rule_id}", partly=not _within(network, held))
        if not self.sources.covers(network):
            return Reason("not_published", partly=True)
        whole = self.container(network)
        return Reason("replaced", str(whole) if whole else "narrower ranges")

    def container(self, network: Network) -> Network | None:
        """The desired network holding all of `network`, if one does."""
        at = bisect_right(self.starts, _start(network)) - 1
        if at >= 0 and _within(network, self.by_start[at]):
            return self.by_start[at]
        return None


def _bounds(network: Network) -> tuple[int, int]:
    """The first and last address of `network`, as integers (cheaper than its properties)."""
    start = int(network.network_address)
    return start, start | ((1 << (network.max_prefixlen - network.prefixlen)) - 1)


def _start(network: Network) -> tuple[int, int]:
    return (network.version, int(network.network_address))


def _overlap(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def _within(inner: Network, outer: Network) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]
