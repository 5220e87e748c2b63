"""Plans: what to add and remove so the owned rule equals the desired set."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from allowlist_sync.cidrs import Network, parse_network
from allowlist_sync.dbt.models import Cidr, Rule
from allowlist_sync.plan import add_only, apply_mode, compute_plan

NAME = "owned"


def rule(*cidrs: str, deleted: tuple[str, ...] = ()) -> Rule:
    entries = [Cidr(id=100 + i, cidr=c) for i, c in enumerate(cidrs)]
    entries += [Cidr(id=900 + i, cidr=c, state=2) for i, c in enumerate(deleted)]
    return Rule(id=7, name=NAME, type=1, cidrs=entries)


def nets(*texts: str) -> tuple[Network, ...]:
    return tuple(parse_network(t) for t in texts)


def test_no_rule_means_create_with_everything() -> None:
    """Without an owned rule, the plan creates it with the whole desired set."""
    plan = compute_plan(nets("10.0.0.0/8"), None, rule_name=NAME)
    assert plan.creates_rule and plan.has_changes
    assert plan.add == nets("10.0.0.0/8") and plan.remove == ()


def test_equal_sets_give_an_empty_plan() -> None:
    """A rule that already holds the desired set needs nothing."""
    plan = compute_plan(
        nets("10.0.0.0/8", "2603:1006:2000::/48"),
        rule("2603:1006:2000::/48", "10.0.0.0/8"),
        rule_name=NAME,
    )
    assert not plan.has_changes
    assert len(plan.keep) == 2


def test_networks_are_compared_not_strings() -> None:
    """A stored bare IP keeps the desired /32; host bits do not matter."""
    plan = compute_plan(
        nets("52.45.144.63/32", "1.6.7.0/24"), rule("52.45.144.63", "1.6.7.10/24"), rule_name=NAME
    )
    assert not plan.has_changes


def test_add_and_remove_carry_what_is_needed() -> None:
    """Removals carry the stored id and the stored string; additions are networks."""
    plan = compute_plan(
        nets("10.0.0.0/8", "192.0.2.0/24"), rule("10.0.0.0/8", "198.51.100.7"), rule_name=NAME
    )
    assert plan.add == nets("192.0.2.0/24")
    assert [(c.id, c.cidr) for c in plan.remove] == [(101, "198.51.100.7")]
    assert [c.cidr for c in plan.keep] == ["10.0.0.0/8"]


def test_duplicates_and_garbage_are_removed() -> None:
    """A second entry for the same network and an unparsable entry are removed."""
    plan = compute_plan(
        nets("10.0.0.0/8"), rule("10.0.0.0/8", "10.0.0.0/8", "bogus"), rule_name=NAME
    )
    assert [c.id for c in plan.remove] == [101, 102]
    assert not plan.add


def test_deleted_entries_are_ignored() -> None:
    """Entries the API reports as deleted (state 2) are not current."""
    plan = compute_plan(
        nets("10.0.0.0/8"), rule("10.0.0.0/8", deleted=("192.0.2.0/24",)), rule_name=NAME
    )
    assert not plan.has_changes and plan.current_count == 1


def test_add_only_never_removes() -> None:
    """The add-only policy keeps everything and still adds."""
    plan = compute_plan(nets("192.0.2.0/24"), rule("10.0.0.0/8"), rule_name=NAME)
    safe = add_only(plan)
    assert safe.remove == () and safe.add == nets("192.0.2.0/24") and safe.mode == "add-only"
    assert apply_mode(plan, "sync") is plan


def test_repr_is_one_line() -> None:
    """The plan's repr is one line with its counts."""
    plan = compute_plan(nets("192.0.2.0/24"), rule("10.0.0.0/8"), rule_name=NAME)
    assert repr(plan) == "<Plan rule 7 'owned': +1 -1 =0 desired=1 mode=sync>"


networks = st.one_of(
    st.builds(
        lambda a, p: ipaddress.ip_network((a, p), strict=False),
        st.integers(0, 2**32 - 1),
        st.integers(16, 32),
    ),
    st.builds(
        lambda a, p: ipaddress.ip_network((a, p), strict=False),
        st.integers(0, 2**128 - 1),
        st.integers(32, 128),
    ),
)
stored_text = networks.map(
    lambda n: str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
)


def apply(current: Rule, plan_add: tuple[Network, ...], removed_ids: set[int | None]) -> Rule:
    """What the platform does with the plan: additive update, removal by id."""
    kept = [c for c in current.active_cidrs if c.id not in removed_ids]
    added = [Cidr(id=10_000 + i, cidr=str(n)) for i, n in enumerate(plan_add)]
    return Rule(id=current.id, name=current.name, type=1, cidrs=kept + added)


@given(st.sets(networks, max_size=30), st.lists(stored_text, max_size=30))
def test_applying_a_plan_yields_the_desired_set(
    desired: set[Network], current_texts: list[str]
) -> None:
    """Applying any plan gives exactly the desired set, and the next plan is empty."""
    desired_t = tuple(desired)
    current = rule(*current_texts)
    plan = compute_plan(desired_t, current, rule_name=NAME)
    after = apply(current, plan.add, {c.id for c in plan.remove})
    stored = [parse_network(c.cidr) for c in after.active_cidrs]
    assert sorted(map(str, stored)) == sorted(map(str, desired_t))
    assert not compute_plan(desired_t, after, rule_name=NAME).has_changes
