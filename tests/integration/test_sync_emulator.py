"""The whole pipeline (`run_once`) against the emulator over loopback."""

from __future__ import annotations

from pathlib import Path

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorStore
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import BOTH_MODES, owned_rule, stored_networks
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc, write_feed

pytestmark = BOTH_MODES
PUBLISHED = aad_prefixes(feed_doc())


def run(settings: Settings, source: Path = PUBLIC_FEED, **options: object) -> object:
    return run_once(settings, RunOptions(source_file=str(source), **options))  # type: ignore[arg-type]


def test_first_run_creates_then_steady_state(settings: Settings, store: EmulatorStore) -> None:
    """The first run creates the rule in one write; the second run reads once and writes nothing."""
    first = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert first.status == "applied" and first.writes == 1 and first.requests == 3
    rule = owned_rule(store)
    assert rule is not None and rule["type"] == 1
    assert stored_networks(rule) == set(PUBLISHED)
    second = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert second.status == "in_sync" and second.writes == 0 and second.requests == 1


def test_changed_feed_converges_in_one_write(
    settings: Settings, store: EmulatorStore, tmp_path: Path
) -> None:
    """A feed that drops two ranges and adds one is applied with exactly one PUT and verified."""
    run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    changed = [*PUBLISHED[2:], "20.20.64.0/19"]
    feed = write_feed(tmp_path / "next.json", changed)
    outcome = run_once(settings, RunOptions(source_file=str(feed)))
    assert outcome.status == "applied" and outcome.writes == 1 and outcome.requests == 3
    assert outcome.plan is not None
    assert [str(n) for n in outcome.plan.add] == ["20.20.64.0/19"]
    assert sorted(c.cidr for c in outcome.plan.remove) == sorted(PUBLISHED[:2])
    rule = owned_rule(store)
    assert rule is not None and stored_networks(rule) == set(changed)


def test_other_rules_and_enforcement_are_untouched(
    settings: Settings, store: EmulatorStore
) -> None:
    """Rules the job does not own and the account's enforcement stay exactly as they were."""
    other = store.seed_rule("Office VPN", cidrs=["198.51.100.0/24", "203.0.113.10"])
    deny = store.seed_rule("Blocked", type=2, cidrs=["192.0.2.0/24"])
    store.set_enforcement(True)
    store.caller_ip = "198.51.100.20"  # allowed by the office rule
    before = {r["id"]: r for r in store.snapshot()}
    assert run_once(settings, RunOptions(source_file=str(PUBLIC_FEED))).status == "applied"
    after = {r["id"]: r for r in store.snapshot()}
    assert after[other] == before[other] | {"rule_set_enabled": True}
    assert after[deny]["cidrs"] == before[deny]["cidrs"]
    assert store.rule_set_enabled is True and store.enforcement_flips == 0
    created = owned_rule(store)
    assert created is not None and created["rule_set_enabled"] is True


def test_dry_run_writes_nothing(settings: Settings, store: EmulatorStore) -> None:
    """A dry run reports the pending change and sends no write."""
    outcome = run_once(settings, RunOptions(dry_run=True, source_file=str(PUBLIC_FEED)))
    assert outcome.status == "changes_pending"
    assert outcome.plan is not None and len(outcome.plan.add) == len(PUBLISHED)
    assert store.write_count() == 0 and owned_rule(store) is None


def test_stored_bare_ips_and_duplicates_are_normalised(
    settings: Settings, store: EmulatorStore
) -> None:
    """A bare IP equal to a published /32 is kept; a duplicate entry of it is removed."""
    bare = [p.removesuffix("/32") for p in PUBLISHED]
    a_slash_32 = next(p for p in PUBLISHED if p.endswith("/32"))
    store.seed_rule(settings.rule_name, cidrs=[*bare, a_slash_32])
    outcome = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert outcome.plan is not None and not outcome.plan.add
    assert len(outcome.plan.remove) == 1 and outcome.status == "applied"
    rule = owned_rule(store)
    assert rule is not None and stored_networks(rule) == set(PUBLISHED)


def test_request_counts_per_scenario(settings: Settings, store: EmulatorStore) -> None:
    """First run: list, create, re-list (race check and verify); steady: one list per page."""
    for i in range(150):
        store.seed_rule(f"team {i}", cidrs=[f"10.{i}.0.0/16"])
    first = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert (first.requests, first.writes) == (2 + 1 + 2, 1)  # two pages of 151 rules
    steady = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert (steady.requests, steady.writes) == (2, 0)
    dry = run_once(settings, RunOptions(dry_run=True, source_file=str(PUBLIC_FEED)))
    assert (dry.requests, dry.writes) == (2, 0)
