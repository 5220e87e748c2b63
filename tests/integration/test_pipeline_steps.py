"""The named steps of `sync.run_once`, one at a time, and the order `run_once` runs them in.

The dbt side is the emulator on loopback; the source is the real trimmed feed. What
`test_sync_emulator.py` (whole runs), `test_guards_emulator.py` (each guard),
`test_faults.py` (ambiguous writes, refused CIDRs) and `test_verify_emulator.py` (a rule the
platform stored differently) prove is not repeated here.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from allowlist_sync.cidrs import Network, parse_network
from allowlist_sync.config import Settings
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Cidr, Rule
from allowlist_sync.dbt.rules import deny_conflicts
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import ApiResponseError, ExitCode, OwnershipError, VerifyError
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan, Provenance
from allowlist_sync.sources.ranges import RangeSet
from allowlist_sync.sync import (
    Account,
    RunOptions,
    ask_lockout,
    desired_set,
    drop_deny_conflicts,
    guard,
    load_source,
    make_plan,
    read_account,
    run_once,
    verify,
)
from tests.emulated import RULE_NAME, emulator_settings, owned_rule
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc, write_feed

PUBLISHED = aad_prefixes(feed_doc())
FROM_FILE = RunOptions(source_file=str(PUBLIC_FEED))


def outcome_for(settings: Settings) -> Outcome:
    """A fresh Outcome, as run_once starts one."""
    return Outcome(status="failed", dry_run=False, rule_name=settings.rule_name)


def feed_of(settings: Settings, path: Path = PUBLIC_FEED) -> RangeSet:
    """Step 1 on a file: the validated feed, as the target's one source."""
    ranges = load_source(
        settings,
        RunOptions(source_file=str(path)),
        outcome_for(settings),
        stdin=None,
        transport=None,
    )
    return RangeSet((ranges,))


@pytest.fixture
def client(settings: Settings) -> Iterator[DbtClient]:
    """A client of the emulator owning the default rule name."""
    with DbtClient.connect(settings.dbt_connection(), owned_rule_name=RULE_NAME) as dbt:
        yield dbt


def refusing_transport(calls: list[str]) -> httpx.MockTransport:
    """A dbt transport answering 500 to everything and recording each request in `calls`."""

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        return httpx.Response(500)

    return httpx.MockTransport(handler)


def rule(rule_id: int, cidrs: list[str], **fields: Any) -> Rule:
    """An allow rule named like the owned one, holding `cidrs` with ids 1, 2, ..."""
    entries = [Cidr(cidr=c, id=i) for i, c in enumerate(cidrs, start=1)]
    return Rule(id=rule_id, name=fields.pop("name", RULE_NAME), type=1, cidrs=entries, **fields)


# --- step 1: source ---


def test_source_flag_wins_over_the_configured_file(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A --source-file flag is read instead of ALLOWLIST_SYNC_SOURCE_FILE, and recorded."""
    other = write_feed(tmp_path / "other.json", PUBLISHED[:12])
    settings = emulator_settings(emulator, monkeypatch, source_file=str(other))
    outcome = outcome_for(settings)
    feed = load_source(settings, FROM_FILE, outcome, stdin=None, transport=None)
    assert set(feed.all_prefixes()) == set(PUBLISHED)
    assert outcome.source is not None and outcome.source.location == str(PUBLIC_FEED)


def test_source_without_flags_uses_the_configured_file(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no flag, ALLOWLIST_SYNC_SOURCE_FILE is the source (what serve mode relies on)."""
    other = write_feed(tmp_path / "other.json", PUBLISHED[:12])
    settings = emulator_settings(emulator, monkeypatch, source_file=str(other))
    feed = load_source(settings, RunOptions(), outcome_for(settings), stdin=None, transport=None)
    assert set(feed.all_prefixes()) == set(PUBLISHED[:12])


def test_source_from_stdin(settings: Settings) -> None:
    """`--source-file -` reads the feed from the given stdin."""
    outcome = outcome_for(settings)
    stdin = io.BytesIO(PUBLIC_FEED.read_bytes())
    feed = load_source(settings, RunOptions(source_file="-"), outcome, stdin=stdin, transport=None)
    assert set(feed.all_prefixes()) == set(PUBLISHED)


def test_source_logs_one_event_with_its_counts(settings: Settings) -> None:
    """Loading the source logs `source_loaded` with the cloud, changeNumber and count per tag."""
    with capture_logs() as logs:
        feed_of(settings)
    (event,) = [e for e in logs if e["event"] == "source_loaded"]
    assert event["cloud"] == "Public" and event["change_number"] == 375
    assert event["tags"] == {"AzureActiveDirectory": len(PUBLISHED)}


# --- step 2: desired set ---


def test_desired_set_applies_extra_exclude_and_families(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extra CIDRs are added, excluded ones dropped, and only the chosen family kept."""
    v4 = [p for p in PUBLISHED if ":" not in p]
    settings = emulator_settings(
        emulator,
        monkeypatch,
        ip_families="ipv4",
        extra_cidrs="8.8.8.0/24,2620:1ec::/36",
        exclude_cidrs=v4[0],
        aggregate=False,
    )
    desired = {str(n) for n in desired_set(feed_of(settings), settings)}
    assert desired == (set(v4) - {v4[0]}) | {"8.8.8.0/24"}


def test_desired_set_aggregates_adjacent_networks(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With aggregation on, two adjacent /25s become one /24; off, both stay."""
    feed_path = write_feed(
        tmp_path / "adjacent.json", [*PUBLISHED[:12], "81.2.69.0/25", "81.2.69.128/25"]
    )
    on = emulator_settings(emulator, monkeypatch, aggregate=True)
    off = emulator_settings(emulator, monkeypatch, aggregate=False)
    assert "81.2.69.0/24" in {str(n) for n in desired_set(feed_of(on, feed_path), on)}
    kept = {str(n) for n in desired_set(feed_of(off, feed_path), off)}
    assert {"81.2.69.0/25", "81.2.69.128/25"} <= kept


# --- step 3: reading the account ---


def test_read_account_picks_the_owned_rule_and_enforcement(
    store: EmulatorStore, client: DbtClient, settings: Settings
) -> None:
    """The owned rule is found by name among others; enforcement and the rule set are read."""
    store.seed_rule("Office VPN", cidrs=["198.51.100.0/24"])
    owned = store.seed_rule(RULE_NAME, cidrs=["20.190.128.0/18"])
    store.set_enforcement(True)
    store.caller_ip = "198.51.100.20"  # allowed by the office rule
    outcome = outcome_for(settings)
    account = read_account(client, RULE_NAME, outcome)
    assert account.current is not None and account.current.id == owned
    assert account.enforcement is True and outcome.rule_set_enabled is True
    assert outcome.rule_id == owned and len(account.rules) == 2
    assert account.rule_set_id is not None


def test_read_account_without_the_rule(client: DbtClient, settings: Settings) -> None:
    """An empty account: no current rule, enforcement off, no rule set, no rule id."""
    outcome = outcome_for(settings)
    account = read_account(client, RULE_NAME, outcome)
    assert account.current is None and account.enforcement is False
    assert account.rule_set_id is None and outcome.rule_id is None


def test_read_account_refuses_two_rules_with_the_owned_name(
    store: EmulatorStore, client: DbtClient, settings: Settings
) -> None:
    """Two active rules with the owned name: OwnershipError naming both ids."""
    first = store.seed_rule(RULE_NAME, cidrs=["20.190.128.0/18"])
    second = store.seed_rule(RULE_NAME, cidrs=["40.126.0.0/18"])
    with pytest.raises(OwnershipError, match=f"{first}, {second}"):
        read_account(client, RULE_NAME, outcome_for(settings))


# --- step 3b: deny conflicts ---


def test_deny_conflicts_are_dropped_and_reported(settings: Settings) -> None:
    """A desired network a deny rule holds is dropped, listed in failed_cidrs and warned about."""
    desired = (parse_network("20.190.128.0/18"), parse_network("40.126.0.0/18"))
    deny = Rule(id=7, name="Blocked", type=2, cidrs=[Cidr(cidr="40.126.0.0/18", id=1)])
    outcome = outcome_for(settings)
    kept = drop_deny_conflicts(desired, deny_conflicts(desired, [deny]), outcome)
    assert kept == (parse_network("20.190.128.0/18"),)
    assert outcome.failed_cidrs == ("40.126.0.0/18",)
    assert "deny rule 7" in outcome.warnings[0]


def test_deleted_deny_rules_and_entries_do_not_conflict(settings: Settings) -> None:
    """A deleted deny rule, or a deleted entry of an active one, takes nothing away."""
    desired = (parse_network("40.126.0.0/18"),)
    deleted_rule = Rule(id=7, name="Old", type=2, state=2, cidrs=[Cidr(cidr="40.126.0.0/18")])
    deleted_entry = Rule(id=8, name="Blocked", type=2, cidrs=[Cidr(cidr="40.126.0.0/18", state=2)])
    outcome = outcome_for(settings)
    conflicts = deny_conflicts(desired, [deleted_rule, deleted_entry])
    assert drop_deny_conflicts(desired, conflicts, outcome) == desired
    assert outcome.failed_cidrs == () and outcome.warnings == []


# --- step 4: plan ---


def plan_for(desired: tuple[Network, ...], current: Rule | None, settings: Settings) -> Plan:
    """The pipeline's plan for `current`, as if the account held only it (enforcement off)."""
    account = Account([current] if current else [], current, enforcement=False, rule_set_id=None)
    return make_plan(desired, account, settings, Provenance(published=desired))


def test_plan_in_add_only_mode_keeps_what_sync_mode_removes(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same desired set and rule plan a removal in sync mode and none in add-only mode."""
    current = rule(5, ["20.190.128.0/18", "198.51.100.0/24"])
    desired = (parse_network("20.190.128.0/18"),)
    synced = plan_for(desired, current, emulator_settings(emulator, monkeypatch, mode="sync"))
    added = plan_for(desired, current, emulator_settings(emulator, monkeypatch, mode="add-only"))
    assert [c.cidr for c in synced.remove] == ["198.51.100.0/24"]
    assert added.remove == () and len(added.keep) == 2 and added.mode == "add-only"


# --- step 5: guard ---


def test_guard_refuses_lockout_check_without_a_rule_set_id(
    store: EmulatorStore, client: DbtClient, settings: Settings
) -> None:
    """Under enforcement, a removal with no rule set id to validate against is an API error."""
    current = rule(5, [*PUBLISHED[:20], "198.51.100.0/24"])
    plan = plan_for(tuple(parse_network(p) for p in PUBLISHED[:20]), current, settings)
    account = Account([current], current, enforcement=True, rule_set_id=None)
    with pytest.raises(ApiResponseError, match="ip_restriction_rule_set_id"):
        ask_lockout(plan, account, client)
    assert store.requests == []


def test_guard_asks_the_platform_only_when_removing_under_enforcement(
    store: EmulatorStore, client: DbtClient, settings: Settings
) -> None:
    """An add-only plan under enforcement runs the guards without any lock-out request."""
    current = rule(5, PUBLISHED[:20], ip_restriction_rule_set_id=1, rule_set_enabled=True)
    plan = plan_for(tuple(parse_network(p) for p in PUBLISHED), current, settings)
    account = Account([current], current, enforcement=True, rule_set_id=1)
    guard(ask_lockout(plan, account, client), feed_of(settings), account, settings, RunOptions())
    assert store.requests == []


# --- step 7: verify ---


def expected_plan(stored: list[str], desired: list[str], settings: Settings) -> Plan:
    """The plan from a rule holding `stored` to `desired`."""
    return plan_for(tuple(parse_network(p) for p in desired), rule(5, stored), settings)


def test_verify_passes_when_the_refused_cidrs_are_missing(
    client: DbtClient, settings: Settings
) -> None:
    """A CIDR the platform refused is not expected in the rule read back."""
    plan = expected_plan([], ["20.190.128.0/18", "40.126.0.0/18"], settings)
    stored = rule(5, ["20.190.128.0/18"])
    verify(client, 5, plan, ("40.126.0.0/18",), stored)


def test_verify_catches_a_duplicate_entry(client: DbtClient, settings: Settings) -> None:
    """The planned set stored twice over (one entry too many) fails verification, counted."""
    plan = expected_plan([], ["20.190.128.0/18"], settings)
    stored = rule(5, ["20.190.128.0/18", "20.190.128.0/18"])
    with pytest.raises(VerifyError, match=r"\+1 entries"):
        verify(client, 5, plan, (), stored)


def test_verify_in_add_only_mode_expects_what_was_kept(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, client: DbtClient
) -> None:
    """In add-only mode the rule read back must still hold what the plan kept."""
    settings = emulator_settings(emulator, monkeypatch, mode="add-only")
    plan = expected_plan(["198.51.100.0/24"], ["20.190.128.0/18"], settings)
    verify(client, 5, plan, (), rule(5, ["198.51.100.0/24", "20.190.128.0/18"]))
    with pytest.raises(VerifyError, match="1 missing"):
        verify(client, 5, plan, (), rule(5, ["20.190.128.0/18"]))


def test_verify_reads_the_rule_back_when_not_given(
    store: EmulatorStore, client: DbtClient, settings: Settings
) -> None:
    """Without a rule in hand, verify reads it by id from the platform."""
    rule_id = store.seed_rule(RULE_NAME, cidrs=["20.190.128.0/18"])
    plan = expected_plan([], ["20.190.128.0/18"], settings)
    verify(client, rule_id, plan, ())
    assert [r.method for r in store.requests] == ["GET"]
    assert store.requests[0].path.rstrip("/").endswith(f"/ip-restrictions/{rule_id}")


# --- run_once: the order of the steps and what each failure becomes ---


def test_a_bad_source_stops_the_run_before_the_api(settings: Settings, tmp_path: Path) -> None:
    """A feed that fails to load is a failed outcome and no request reaches the dbt API."""
    calls: list[str] = []
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    outcome = run_once(
        settings, RunOptions(source_file=str(broken)), dbt_transport=refusing_transport(calls)
    )
    assert outcome.status == "failed" and outcome.exit_code() == ExitCode.FAILED
    assert outcome.error is not None and outcome.error.kind == "feed"
    assert calls == [] and outcome.requests == 0


def test_a_feed_outside_scope_stops_the_run_before_the_api(
    settings: Settings, tmp_path: Path
) -> None:
    """A feed with a prefix broader than the scope limit is refused before any request."""
    calls: list[str] = []
    wide = write_feed(tmp_path / "wide.json", [*PUBLISHED, "20.0.0.0/8"])
    outcome = run_once(
        settings, RunOptions(source_file=str(wide)), dbt_transport=refusing_transport(calls)
    )
    assert outcome.status == "refused" and outcome.exit_code() == ExitCode.REFUSED
    assert calls == []


def test_the_plan_is_shown_before_the_guards_refuse_it(
    settings: Settings, store: EmulatorStore
) -> None:
    """`on_plan` sees the plan even when a guard then refuses it, and nothing is written."""
    store.seed_rule(RULE_NAME, cidrs=[*PUBLISHED, *[f"10.{i}.0.0/16" for i in range(200)]])
    seen: list[Plan] = []
    options = RunOptions(
        source_file=str(PUBLIC_FEED), on_plan=lambda plan, feed, current: seen.append(plan)
    )
    outcome = run_once(settings, options)
    assert outcome.status == "refused" and len(seen) == 1 and len(seen[0].remove) == 200
    assert outcome.plan is seen[0] and store.write_count() == 0


def test_an_ownership_problem_is_a_refusal(settings: Settings, store: EmulatorStore) -> None:
    """A deny rule carrying the owned name is refused (exit 3), logged as the ownership guard."""
    store.seed_rule(RULE_NAME, type=2, cidrs=["192.0.2.0/24"])
    with capture_logs() as logs:
        outcome = run_once(settings, FROM_FILE)
    assert outcome.status == "refused" and outcome.exit_code() == ExitCode.REFUSED
    (event,) = [e for e in logs if e["event"] == "plan_refused"]
    assert event["guard"] == "ownership"


def test_the_steps_log_in_pipeline_order(settings: Settings) -> None:
    """One applying run logs source, desired, current, plan, applied, verified, then the summary."""
    with capture_logs() as logs:
        outcome = run_once(settings, FROM_FILE)
    assert outcome.status == "applied"
    steps = [
        "source_loaded",
        "desired_set",
        "current_rule",
        "plan",
        "applied",
        "verified",
        "run_finished",
    ]
    events = [e["event"] for e in logs if e["event"] in steps]
    assert events == steps


def test_the_summary_carries_counts_and_closes_the_client(settings: Settings) -> None:
    """`run_finished` carries the status, counts and request totals of the outcome."""
    with capture_logs() as logs:
        outcome = run_once(settings, FROM_FILE)
    (summary,) = [e for e in logs if e["event"] == "run_finished"]
    assert summary["status"] == "applied" and summary["added"] == len(PUBLISHED)
    assert summary["requests"] == outcome.requests == 3 and summary["writes"] == 1
    assert summary["removed"] == 0 and summary["failed_cidrs"] == 0


def test_a_dry_run_with_changes_pending_exits_2_only_when_detailed(settings: Settings) -> None:
    """A dry run with changes is `changes_pending`: exit 0, or 2 with --detailed-exitcode."""
    outcome = run_once(settings, RunOptions(dry_run=True, source_file=str(PUBLIC_FEED)))
    assert outcome.status == "changes_pending" and outcome.writes == 0
    assert outcome.exit_code() == ExitCode.OK
    assert outcome.exit_code(detailed=True) == ExitCode.CHANGES_PENDING


def test_deny_conflicts_fail_an_otherwise_in_sync_run(
    settings: Settings, store: EmulatorStore
) -> None:
    """With every other CIDR stored, a CIDR held by a deny rule still makes the run exit 1."""
    store.seed_rule("Blocked", type=2, cidrs=[PUBLISHED[0]])
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[1:])
    outcome = run_once(settings, FROM_FILE)
    assert outcome.status == "failed" and outcome.exit_code() == ExitCode.FAILED
    assert outcome.failed_cidrs == (PUBLISHED[0],) and outcome.writes == 0
    stored = owned_rule(store)
    assert stored is not None and len(stored["cidrs"]) == len(PUBLISHED) - 1
