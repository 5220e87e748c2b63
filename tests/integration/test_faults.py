"""Faults injected into the emulator: every run ends with the allowlist exactly right.

After each fault: the owned rule holds the desired set, there is one owned rule, no CIDR twice,
the other rule untouched, enforcement unchanged, and the outcome's exit code is documented.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from allowlist_sync.errors import ExitCode
from allowlist_sync.outcome import Outcome
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import ACCOUNT_ID, BOTH_MODES, TOKEN, emulator_settings, owned_rule
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc, write_feed

pytestmark = BOTH_MODES
PUBLISHED = aad_prefixes(feed_doc())
RULES = r"/ip-restrictions/$"
ONE_RULE = r"/ip-restrictions/\d+$"
OTHER_ACCOUNT = 5151


@pytest.fixture
def other_rule(store: EmulatorStore) -> int:
    """A rule somebody else owns, with enforcement on and the caller allowed by it."""
    rule_id = store.seed_rule("Office VPN", cidrs=["198.51.100.0/24"])
    store.set_enforcement(True)
    store.caller_ip = "198.51.100.9"
    return rule_id


def assert_exactly(store: EmulatorStore, expected: list[str], other_rule: int) -> None:
    """The allowlist is exactly right and nothing else moved."""
    rule = owned_rule(store)
    assert rule is not None
    stored = [c["cidr"] for c in rule["cidrs"]]
    assert sorted(stored) == sorted(expected), "owned rule differs from the desired set"
    others = [r for r in store.snapshot() if r["id"] == other_rule]
    assert [c["cidr"] for c in others[0]["cidrs"]] == ["198.51.100.0/24"]
    assert store.rule_set_enabled is True and store.enforcement_flips == 0


def run(settings: Settings, feed: Path = PUBLIC_FEED) -> Outcome:
    return run_once(settings, RunOptions(source_file=str(feed)))


def test_rate_limited_with_retry_after(
    settings: Settings, store: EmulatorStore, other_rule: int
) -> None:
    """429s with Retry-After on the first requests are waited out, then the job succeeds."""
    store.add_fault(Fault(action="status", status=429, retry_after="0", times=2))
    outcome = run(settings)
    assert outcome.status == "applied" and outcome.exit_code() == ExitCode.OK
    assert outcome.requests == 5  # 2 refused lists, then list, create, verify
    assert_exactly(store, PUBLISHED, other_rule)


def test_rate_limited_with_an_http_date(
    settings: Settings, store: EmulatorStore, other_rule: int
) -> None:
    """A Retry-After given as an HTTP date in the past is honoured as 'now'."""
    store.add_fault(Fault(action="status", status=429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
    assert run(settings).status == "applied"
    assert_exactly(store, PUBLISHED, other_rule)


def test_503_on_the_write_is_re_read_not_replayed(
    settings: Settings, store: EmulatorStore, other_rule: int, tmp_path: Path
) -> None:
    """A 503 on the PUT leads to a re-read and a re-plan, then exactly one processed write."""
    run(settings)
    changed = [*PUBLISHED[1:], "20.20.64.0/19"]
    store.add_fault(Fault(method="PUT", action="status", status=503))
    outcome = run(settings, write_feed(tmp_path / "f.json", changed))
    assert outcome.status == "applied"
    assert store.write_count() == 2  # the create and one processed PUT
    assert_exactly(store, changed, other_rule)


def test_connection_dropped_after_the_put_was_applied(
    settings: Settings, store: EmulatorStore, other_rule: int, tmp_path: Path
) -> None:
    """A PUT applied but unanswered is confirmed by a re-read, never sent twice."""
    run(settings)
    changed = [*PUBLISHED[2:], "20.20.64.0/19"]
    store.add_fault(Fault(method="PUT", action="drop_after"))
    outcome = run(settings, write_feed(tmp_path / "f.json", changed))
    assert outcome.status == "applied"
    assert [r.method for r in store.requests].count("PUT") == 1
    assert_exactly(store, changed, other_rule)


def test_connection_dropped_after_the_create(
    settings: Settings, store: EmulatorStore, other_rule: int
) -> None:
    """A create applied but unanswered never produces a second rule with the owned name."""
    store.add_fault(Fault(method="POST", path_regex=RULES, action="drop_after"))
    outcome = run(settings)
    assert outcome.status == "applied" and outcome.rule_id is not None
    assert [r.method for r in store.requests].count("POST") == 1
    assert_exactly(store, PUBLISHED, other_rule)


def test_slow_put_past_the_timeout(
    settings: Settings, store: EmulatorStore, other_rule: int, tmp_path: Path
) -> None:
    """A PUT that is applied but answered after the client's timeout is re-read, not replayed."""
    run(settings)
    changed = [*PUBLISHED[1:], "20.20.64.0/19"]
    store.add_fault(Fault(method="PUT", action="delay_after", seconds=2.0))
    quick = settings.model_copy(update={"http_timeout": 0.5})
    outcome = run(quick, write_feed(tmp_path / "f.json", changed))
    assert outcome.status == "applied"
    assert [r.method for r in store.requests].count("PUT") == 1
    assert_exactly(store, changed, other_rule)


def test_slow_read_past_the_timeout_is_retried(
    settings: Settings, store: EmulatorStore, other_rule: int
) -> None:
    """A list request slower than the timeout is simply retried."""
    store.add_fault(Fault(method="GET", path_regex=RULES, action="delay_before", seconds=2.0))
    quick = settings.model_copy(update={"http_timeout": 0.5})
    assert run(quick).status == "applied"
    assert_exactly(store, PUBLISHED, other_rule)


def test_persistent_outage_fails_without_writing(
    settings: Settings, store: EmulatorStore, other_rule: int
) -> None:
    """An API that answers 500 to everything fails the run (exit 1) after bounded retries."""
    store.add_fault(Fault(action="status", status=500, times=100))
    outcome = run(settings)
    assert outcome.status == "failed" and outcome.exit_code() == ExitCode.FAILED
    assert outcome.requests == settings.retry_attempts
    assert "HTTP 500" in str(outcome.error) and store.write_count() == 0
    assert owned_rule(store) is None


def test_writes_failing_every_time_give_up_after_bounded_rounds(
    settings: Settings, store: EmulatorStore, other_rule: int, tmp_path: Path
) -> None:
    """PUTs that keep failing with 502 stop after a bounded number of re-plans, rule intact."""
    run(settings)
    store.add_fault(Fault(method="PUT", action="status", status=502, times=100))
    outcome = run(settings, write_feed(tmp_path / "f.json", [*PUBLISHED[1:], "20.20.64.0/19"]))
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.kind == "ambiguous_write"
    assert_exactly(store, PUBLISHED, other_rule)


def test_cidr_held_by_a_deny_rule_is_reported_and_never_sent(
    settings: Settings, store: EmulatorStore, other_rule: int
) -> None:
    """A published CIDR in a deny rule fails the run (exit 1) without a write that must fail."""
    blocked = PUBLISHED[5]
    deny = store.seed_rule("Blocked", type=2, cidrs=[blocked])
    outcome = run(settings)
    assert outcome.status == "failed" and outcome.exit_code() == ExitCode.FAILED
    assert outcome.failed_cidrs == (blocked,)
    assert outcome.to_json()["failed_cidrs"] == [blocked]
    assert outcome.to_json()["rule"]["created"] is True
    assert f"{blocked} (deny rule {deny})" in outcome.warnings[0]
    create = next(r for r in store.requests if r.method == "POST")
    assert blocked not in [c["cidr"] for c in create.body["cidrs"]]
    assert_exactly(store, [p for p in PUBLISHED if p != blocked], other_rule)
    again = run(settings)  # the next run does not send the doomed CIDR again
    assert again.status == "failed" and again.failed_cidrs == (blocked,) and again.writes == 0
    excluded = settings.model_copy(update={"exclude_cidrs": [blocked]})
    assert run(excluded).status == "in_sync"  # the documented way to accept the deny rule


class RaceTransport(httpx.HTTPTransport):
    """Someone adds a deny rule between this job's read and its write."""

    def __init__(self, store: EmulatorStore, cidr: str) -> None:
        super().__init__()
        self.store, self.cidr = store, cidr

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method in ("POST", "PUT") and self.cidr:
            self.store.seed_rule("Blocked meanwhile", type=2, cidrs=[self.cidr])
            self.cidr = ""
        return super().handle_request(request)


def test_cidrs_the_platform_refuses_are_reported_and_the_rest_applied(
    settings: Settings, store: EmulatorStore, other_rule: int
) -> None:
    """A CIDR refused in failed_cidrs fails the run (exit 1) while every other CIDR is applied."""
    blocked = PUBLISHED[5]
    outcome = run_once(
        settings,
        RunOptions(source_file=str(PUBLIC_FEED)),
        dbt_transport=RaceTransport(store, blocked),
    )
    assert outcome.status == "failed" and outcome.exit_code() == ExitCode.FAILED
    assert outcome.failed_cidrs == (blocked,) and outcome.writes == 1
    assert "the platform refused 1 CIDR(s)" in outcome.warnings[0]
    assert_exactly(store, [p for p in PUBLISHED if p != blocked], other_rule)
    again = run(settings)
    assert again.failed_cidrs == (blocked,) and again.writes == 0


def test_a_write_whose_every_cidr_is_refused_changes_nothing(
    settings: Settings, store: EmulatorStore, other_rule: int, tmp_path: Path
) -> None:
    """A 400 listing failed_cidrs is reported as refused CIDRs; the rule is left as it was."""
    run(settings)
    new = "20.20.64.0/19"
    outcome = run_once(
        settings,
        RunOptions(source_file=str(write_feed(tmp_path / "f.json", [*PUBLISHED, new]))),
        dbt_transport=RaceTransport(store, new),
    )
    assert outcome.status == "failed" and outcome.failed_cidrs == (new,)
    assert outcome.error is None  # reported as refused CIDRs, not as an API failure
    assert_exactly(store, PUBLISHED, other_rule)


def test_a_fault_on_another_account_of_the_emulator_leaves_this_sync_alone(
    emulator_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two accounts served, faults given to the other account never reach this sync."""
    store = EmulatorStore(
        accounts=[ACCOUNT_ID, OTHER_ACCOUNT], token=TOKEN, strict=emulator_mode == "strict"
    )
    store.account(OTHER_ACCOUNT).add_fault(Fault(action="status", status=500, times=100))
    with EmulatorServer(store, quiet=True) as server:
        outcome = run(emulator_settings(server, monkeypatch))
    assert outcome.status == "applied" and outcome.exit_code() == ExitCode.OK
    owned = owned_rule(store)
    assert owned is not None and sorted(c["cidr"] for c in owned["cidrs"]) == sorted(PUBLISHED)
    assert [f.times for f in store.account(OTHER_ACCOUNT).faults] == [100]
    assert store.snapshot(OTHER_ACCOUNT) == []
    assert {r.account_id for r in store.requests} == {ACCOUNT_ID}
