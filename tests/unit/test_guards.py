"""Size guards: refuse with numbers, yield to --force, never allow emptying the rule."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from allowlist_sync.cidrs import parse_network
from allowlist_sync.dbt.models import Cidr, Rule
from allowlist_sync.errors import ExitCode, UnsafePlanError
from allowlist_sync.guards import Limits, adoption_candidates, check_overlap, check_plan
from allowlist_sync.plan import Plan, compute_plan


def make_plan(desired: int, current: int, keep: int) -> Plan:
    """A plan over /32s: `current` stored, the first `keep` of them still desired."""
    stored = [f"10.0.{i // 256}.{i % 256}" for i in range(current)]
    wanted = stored[:keep] + [f"10.1.{i // 256}.{i % 256}" for i in range(desired - keep)]
    existing = Rule(
        id=1, name="r", type=1, cidrs=[Cidr(id=i, cidr=c) for i, c in enumerate(stored)]
    )
    return compute_plan(tuple(parse_network(w) for w in wanted), existing, rule_name="r")


def test_empty_desired_set_is_refused_even_with_force() -> None:
    """An empty desired set can never empty the rule, --force or not."""
    plan = make_plan(desired=0, current=20, keep=0)
    for force in (False, True):
        with pytest.raises(UnsafePlanError, match="desired set has 0 CIDRs") as info:
            check_plan(plan, Limits(), force=force)
        assert info.value.guard == "empty_desired"
        assert info.value.exit_code == ExitCode.REFUSED


def test_tiny_feed_is_refused_with_numbers() -> None:
    """Fewer prefixes than the floor are refused, and the message carries both numbers."""
    plan = make_plan(desired=3, current=0, keep=0)
    with pytest.raises(UnsafePlanError, match=r"has 3 CIDRs, fewer than .*MIN_PREFIXES=10") as e:
        check_plan(plan, Limits(min_prefixes=10))
    assert e.value.details == {"desired": 3, "min": 10}


def test_large_removal_is_refused_with_numbers() -> None:
    """Removing half of a 20-entry rule is refused at the default 30%."""
    plan = make_plan(desired=20, current=20, keep=10)
    with pytest.raises(UnsafePlanError, match=r"removes 10 of 20 CIDRs \(50%\)") as e:
        check_plan(plan, Limits())
    assert e.value.guard == "max_delete"


def test_force_overrides_size_guards_loudly() -> None:
    """--force lets a large removal through and logs a warning that says so."""
    plan = make_plan(desired=20, current=20, keep=10)
    with capture_logs() as logs:
        check_plan(plan, Limits(), force=True)
    assert [e["guard"] for e in logs if e["event"] == "guard_overridden"] == ["max_delete"]
    assert logs[0]["log_level"] == "warning"


def test_removal_guard_has_a_floor() -> None:
    """Below 10 current entries any removal fraction is allowed."""
    check_plan(make_plan(desired=10, current=9, keep=1), Limits(min_prefixes=1))


def test_largest_real_weekly_change_passes() -> None:
    """The largest legitimate weekly removal since 2019 (15 of 95) passes the default guard."""
    check_plan(make_plan(desired=95, current=95, keep=80), Limits())


def _rule(rule_id: int, name: str, cidrs: list[str], **fields: int) -> Rule:
    return Rule(
        id=rule_id, name=name, type=fields.get("type", 1), state=fields.get("state", 1),
        cidrs=[Cidr(id=i, cidr=c) for i, c in enumerate(cidrs)],
    )  # fmt: skip


def test_adoption_counts_a_range_covered_by_smaller_entries_together() -> None:
    """Two stored halves hold a desired /23; entries outside the set do not count."""
    desired = tuple(parse_network(n) for n in ("20.1.0.0/23", "20.2.0.0/24", "2603:1::/48"))
    rule = _rule(5, "by hand", ["20.1.0.0/24", "20.1.1.0/24", "20.9.0.0/24", "2603:1::/48"])
    found = adoption_candidates(desired, [rule], owned_name="job", limits=Limits())
    assert [(o.rule_id, o.held, o.desired) for o in found] == [(5, 2, 3)]


def test_adoption_skips_the_owned_deleted_deny_and_too_broad_rules() -> None:
    """Only an active allow rule the job does not own, with narrow entries, is a candidate."""
    desired = (parse_network("20.1.0.0/24"),)
    rules = [
        _rule(1, "job", ["20.1.0.0/24"]),
        _rule(2, "gone", ["20.1.0.0/24"], state=2),
        _rule(3, "deny", ["20.1.0.0/24"], type=2),
        _rule(4, "everyone", ["0.0.0.0/0", "20.0.0.0/8", "not a network"]),
    ]
    assert adoption_candidates(desired, rules, owned_name="job", limits=Limits()) == []
    assert adoption_candidates((), rules, owned_name="x", limits=Limits()) == []


def test_overlap_is_checked_only_when_the_rule_would_be_created() -> None:
    """An existing owned rule is never refused for overlap; a create is, and --force lifts it."""
    desired = (parse_network("20.1.0.0/24"), parse_network("20.2.0.0/24"))
    other = [_rule(9, "by hand", ["20.1.0.0/24"])]
    create = compute_plan(desired, None, rule_name="job")
    update = compute_plan(desired, _rule(1, "job", []), rule_name="job")
    check_overlap(update, other, Limits())
    with pytest.raises(UnsafePlanError, match=r"holds 1 of the 2 desired CIDRs \(50%\)") as e:
        check_overlap(create, other, Limits())
    assert e.value.guard == "overlap" and e.value.exit_code == ExitCode.REFUSED
    with capture_logs() as logs:
        check_overlap(create, other, Limits(), force=True)
    assert [(e["guard"], e["flag"]) for e in logs] == [("overlap", "--force")]
