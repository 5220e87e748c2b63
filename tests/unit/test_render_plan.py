"""The plan as text: each line says why it is there, the header says what guards the change."""

from __future__ import annotations

import io
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.cidrs import Network, build_desired, parse_network
from allowlist_sync.dbt.models import Cidr, Rule
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan, Provenance, compute_plan, explain
from allowlist_sync.render import render_plan_text
from allowlist_sync.sources.ranges import Ranges, RangeSet

PUBLISHED = ("20.190.128.0/18", "40.126.0.0/18", "2603:1006:2000::/48")
FEED = RangeSet(
    (
        Ranges(
            name="azure",
            type="azure-service-tags",
            source=SourceInfo(kind="file", location="tags.json", cloud="Public", change_number=375),
            prefixes={"AzureActiveDirectory": PUBLISHED},
        ),
    )
)


def nets(*texts: str) -> tuple[Network, ...]:
    return tuple(parse_network(t) for t in texts)


def rule(*cidrs: str) -> Rule:
    """The owned rule (id 7) holding `cidrs`, entry ids from 100."""
    return Rule(
        id=7, name="aad", type=1, cidrs=[Cidr(id=100 + i, cidr=c) for i, c in enumerate(cidrs)]
    )


def why(**fields: object) -> Provenance:
    """Where the desired set came from: the published prefixes plus `fields`."""
    return Provenance(published=nets(*PUBLISHED), **fields)  # type: ignore[arg-type]


def text(plan: Plan, current: Rule | None = None) -> str:
    out = io.StringIO()
    render_plan_text(plan, FEED, current, out)
    return out.getvalue()


def test_removals_say_not_published_or_excluded_and_extras_are_named() -> None:
    """A partner IP is `not published`, an excluded range `excluded`, an extra `EXTRA_CIDRS`."""
    current = rule("20.190.128.0/18", "40.126.0.0/18", "198.51.100.7")
    desired = nets("20.190.128.0/18", "2603:1006:2000::/48", "203.0.113.5/32")
    provenance = why(extra=nets("203.0.113.5/32"), exclude=nets("40.126.0.0/18"))
    plan = explain(compute_plan(desired, current, rule_name="aad"), provenance)
    shown = text(plan, current)
    assert "  + 203.0.113.5/32  (extra: ALLOWLIST_SYNC_EXTRA_CIDRS)\n" in shown
    assert "  + 2603:1006:2000::/48\n" in shown
    assert "  - 40.126.0.0/18  (id 101, excluded by ALLOWLIST_SYNC_EXCLUDE_CIDRS)\n" in shown
    assert "  - 198.51.100.7  (id 102, not published)\n" in shown
    assert "Plan: add 2, remove 2, keep 1.\n" in shown


def test_every_other_reason_for_a_removal_is_named() -> None:
    """Families, deny rules, duplicates, broader entries and junk each get their own words."""
    current = rule(
        "20.190.128.0/18",
        "20.190.128.0/18",
        "40.126.0.0/18",
        "2603:1006:2000::/48",
        "20.190.128.0/17",
        "not\na network\x1b[0m",
    )
    provenance = why(families=("ipv4",), denied=((parse_network("40.126.0.0/18"), 12),))
    plan = explain(compute_plan(nets("20.190.128.0/18"), current, rule_name="aad"), provenance)
    reasons = [r.text() for r in plan.remove_reasons]
    assert reasons == [
        "duplicate",
        "excluded: deny rule 12 holds it",
        "excluded by ALLOWLIST_SYNC_IP_FAMILIES=ipv4",
        "not published (only part of it is)",
        "not a network",
    ]
    shown = text(plan, current)
    assert "  - 'not\\na network\\x1b[0m'  (id 105, not a network)\n" in shown
    assert "\x1b" not in shown


def test_a_stored_range_the_desired_set_holds_in_another_shape_is_replaced() -> None:
    """Two stored halves of an aggregated range are removed as `replaced by` the whole."""
    halves = ("20.190.128.0/19", "20.190.160.0/19")
    current = rule(*halves)
    provenance = Provenance(published=nets(*halves))
    plan = explain(compute_plan(nets("20.190.128.0/18"), current, rule_name="aad"), provenance)
    assert [r.text() for r in plan.remove_reasons] == ["replaced by 20.190.128.0/18"] * 2
    assert [r.text() for r in plan.add_reasons] == ["published"]


def test_a_range_only_partly_published_is_not_published() -> None:
    """A stored range broader than what is published is `not published` (in part)."""
    current = rule("20.190.128.0/16")
    plan = explain(compute_plan(nets(*PUBLISHED), current, rule_name="aad"), why())
    assert [r.text() for r in plan.remove_reasons] == ["not published (only part of it is)"]


def test_the_header_says_enforcement_and_the_lockout_answer() -> None:
    """Enforcement off, on without removals, and on with the lock-out check's two answers."""
    current = rule("20.190.128.0/18", "198.51.100.7")
    plan = explain(compute_plan(nets(*PUBLISHED), current, rule_name="aad"), why())
    assert "Enforcement: off\n" in text(replace(plan, enforcement=False), current)
    assert "Enforcement: on\n" in text(replace(plan, enforcement=True), current)
    allowed = replace(plan, enforcement=True, caller_allowed_without_rule=True)
    assert (
        "Enforcement: on; lock-out check: this job's address is let in by another rule\n"
        in text(allowed, current)
    )
    alone = replace(plan, enforcement=True, caller_allowed_without_rule=False)
    assert (
        "Enforcement: on; lock-out check: this job's address is let in only by this rule\n"
        in text(alone, current)
    )
    assert "Enforcement" not in text(plan, current)  # not known: not claimed


def test_a_short_plan_lists_its_lines_then_the_counts() -> None:
    """Up to 40 lines, the plan reads top to bottom: the lines, then one summary."""
    plan = explain(compute_plan(nets(*PUBLISHED), None, rule_name="aad"), why())
    shown = text(plan)
    assert "IPv4" not in shown and shown.count("Plan: ") == 1
    assert shown.index("  + 20.190.128.0/18") < shown.index("Plan: create the rule with 3")


def long_plan() -> tuple[Plan, Rule]:
    """A plan of 60 lines: 30 IPv4 and 25 IPv6 additions, 5 removals (4 IPv4, 1 IPv6)."""
    v4 = [f"20.{i}.0.0/16" for i in range(30)]
    v6 = [f"2603:1006:{i:x}::/48" for i in range(25)]
    current = rule(
        "198.51.100.7", "20.200.0.0/16", "20.201.0.0/16", "20.202.0.0/16", "2001:db8::/48"
    )
    provenance = Provenance(
        published=nets(*v4, *v6, "20.200.0.0/16"), exclude=nets("20.200.0.0/16")
    )
    plan = explain(compute_plan(nets(*v4, *v6), current, rule_name="aad"), provenance)
    return plan, current


def test_a_long_plan_shows_its_counts_first_and_groups_lines_by_family() -> None:
    """Over 40 lines, the counts come before any line, and IPv4 and IPv6 lines are grouped."""
    plan, current = long_plan()
    shown = text(plan, current)
    first_line = shown.index("\n  ")
    summary = "Plan: add 55, remove 5, keep 0."
    assert shown.index(summary) < first_line and shown.count(summary) == 2
    assert "  IPv4: 30 to add, 4 to remove\n  IPv6: 25 to add, 1 to remove\n" in shown
    assert "  removals: 4 not published, 1 excluded\n" in shown
    v4_block, v6_block = shown.index("IPv4 (30 to add, 4 to remove):\n"), shown.index("IPv6 (")
    assert v4_block < shown.index("  - 198.51.100.7") < v6_block
    assert v6_block < shown.index("  + 2603:1006::/48") and v6_block < shown.index(
        "  - 2001:db8::/48"
    )
    lines = [line for line in shown.splitlines() if line.startswith(("  + ", "  - "))]
    assert len(lines) == 60


def test_json_keeps_every_entry_with_its_reason() -> None:
    """`--output json` lists all adds and removes as before, and every reason beside them."""
    plan, _ = long_plan()
    plan = replace(plan, enforcement=True, caller_allowed_without_rule=True)
    data = Outcome(status="changes_pending", dry_run=True, plan=plan).to_json()
    assert len(data["add"]) == 55 and all(isinstance(c, str) for c in data["add"])
    assert data["remove"] == [c.cidr for c in plan.remove]
    assert [r["cidr"] for r in data["add_reasons"]] == data["add"]
    assert {r["reason"] for r in data["add_reasons"]} == {"published"}
    assert [(r["cidr"], r["id"]) for r in data["remove_reasons"]] == [
        (c.cidr, c.id) for c in plan.remove
    ]
    assert data["remove_reasons"][1] == {
        "cidr": "20.200.0.0/16",
        "id": 101,
        "reason": "excluded",
        "by": "ALLOWLIST_SYNC_EXCLUDE_CIDRS",
    }
    assert data["lockout_check"] == {"caller_allowed_without_owned_rule": True}


def test_an_unexplained_plan_still_renders_and_serialises() -> None:
    """A Plan built without provenance shows bare lines and null reasons, as before."""
    current = rule("198.51.100.7")
    plan = compute_plan(nets(*PUBLISHED), current, rule_name="aad")
    assert "  - 198.51.100.7  (id 100)\n" in text(plan, current)
    data = Outcome(status="changes_pending", dry_run=True, plan=plan).to_json()
    assert data["remove_reasons"] == [
        {"cidr": "198.51.100.7", "id": 100, "reason": None, "by": None}
    ]
    assert data["lockout_check"] is None


_BLOCKS = st.builds(
    lambda third, length: parse_network(f"20.1.{third}.0/{length}"),
    st.integers(0, 15),
    st.integers(20, 26),
)


@settings(max_examples=150, deadline=None)
@given(
    published=st.lists(_BLOCKS, min_size=1, max_size=8),
    stored=st.lists(_BLOCKS, max_size=10),
    exclude=st.lists(_BLOCKS, max_size=2),
)
def test_every_removal_gets_a_reason_that_matches_the_sources(
    published: list[Network], stored: list[Network], exclude: list[Network]
) -> None:
    """Each removal has one reason; `not published` only when no published address is in it."""
    desired = build_desired(
        [str(n) for n in published], families=("ipv4",), exclude=[str(e) for e in exclude]
    )
    current = rule(*(str(n) for n in stored))
    why = Provenance(published=tuple(published), exclude=tuple(exclude))
    plan = explain(compute_plan(desired, current, rule_name="aad"), why)
    assert len(plan.remove_reasons) == len(plan.remove) and len(plan.add_reasons) == len(plan.add)
    assert {r.code for r in plan.add_reasons} <= {"published"}
    for entry, reason in zip(plan.remove, plan.remove_reasons, strict=True):
        network = parse_network(entry.cidr)
        touches_published = any(network.overlaps(p) for p in published)  # type: ignore[arg-type]
        assert (reason.code == "not_published" and not reason.partly) == (not touches_published)
        if reason.code == "replaced":
            assert any(network.subnet_of(d) for d in desired)  # type: ignore[arg-type]


def test_a_plan_of_other_or_several_sources_names_each_source() -> None:
    """An Okta-only target names its source and cell; a mixed target lists every source with
    its origin and its counts per tag or cell."""
    okta = Ranges(
        name="okta",
        type="okta-ip-ranges",
        source=SourceInfo(kind="url", location="https://okta.example/ip_ranges.json"),
        prefixes={"us_cell_1": ("3.33.136.245/32",)},
    )
    plan = compute_plan(nets("3.33.136.245/32"), None, rule_name="scim")
    out = io.StringIO()
    render_plan_text(plan, RangeSet((okta,)), None, out)
    assert "Source okta: url https://okta.example/ip_ranges.json\n" in out.getvalue()
    assert "Desired: 1 CIDRs from okta (us_cell_1: 1 prefixes)\n" in out.getvalue()
    both = io.StringIO()
    render_plan_text(plan, RangeSet((*FEED.items, okta)), None, both)
    assert "Source azure: file tags.json (cloud Public, changeNumber 375)\n" in both.getvalue()
    assert "from azure (AzureActiveDirectory: 3 prefixes), okta (us_cell_1: 1 prefixes)" in (
        both.getvalue()
    )
