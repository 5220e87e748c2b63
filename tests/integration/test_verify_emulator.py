"""The verify step against an emulator that stores something other than it was sent.

Under the `store_other` fault a write is answered as if applied in full, but one CIDR is not
stored: only reading the rule back can tell, so these tests prove that verify does.
"""

from __future__ import annotations

from pathlib import Path

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorStore, Fault
from allowlist_sync.errors import ExitCode
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import BOTH_MODES, owned_rule, stored_networks
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc, write_feed

pytestmark = BOTH_MODES
PUBLISHED = aad_prefixes(feed_doc())


def test_verify_catches_a_create_stored_short(settings: Settings, store: EmulatorStore) -> None:
    """A create answered in full but stored one CIDR short fails the run as a verify error."""
    store.add_fault(Fault(method="POST", action="store_other"))
    outcome = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.kind == "verify"
    assert outcome.exit_code() == ExitCode.FAILED
    assert "1 missing" in str(outcome.error)
    assert outcome.to_json()["error"]["kind"] == "verify"
    rule = owned_rule(store)
    assert rule is not None and len(stored_networks(rule)) == len(PUBLISHED) - 1
    assert [r.fault for r in store.requests if r.method == "POST"] == ["store_other"]
    again = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert again.status == "applied"  # the next run adds what is missing, and verifies it
    assert stored_networks(owned_rule(store) or {"cidrs": []}) == set(PUBLISHED)


def test_verify_catches_an_update_stored_otherwise(
    settings: Settings, store: EmulatorStore, tmp_path: Path
) -> None:
    """A PUT answered as applied but stored without one addition fails the run as verify."""
    assert run_once(settings, RunOptions(source_file=str(PUBLIC_FEED))).status == "applied"
    changed = [*PUBLISHED[1:], "20.20.64.0/19"]
    store.add_fault(Fault(method="PUT", action="store_other"))
    outcome = run_once(settings, RunOptions(source_file=str(write_feed(tmp_path / "f", changed))))
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.kind == "verify"
    assert outcome.writes == 1
    rule = owned_rule(store)
    assert rule is not None and "20.20.64.0/19" not in stored_networks(rule)


def test_verify_catches_a_removal_that_was_not_stored(
    settings: Settings, store: EmulatorStore, tmp_path: Path
) -> None:
    """A PUT that only removes, answered as applied but with the CIDR still stored, fails."""
    assert run_once(settings, RunOptions(source_file=str(PUBLIC_FEED))).status == "applied"
    store.add_fault(Fault(method="PUT", action="store_other"))
    shrunk = write_feed(tmp_path / "f", PUBLISHED[1:])
    outcome = run_once(settings, RunOptions(source_file=str(shrunk)))
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.kind == "verify"
    assert "1 unexpected" in str(outcome.error)


def test_without_the_fault_the_same_runs_verify(settings: Settings, store: EmulatorStore) -> None:
    """The control case: the same create without store_other is applied and verified."""
    outcome = run_once(settings, RunOptions(source_file=str(PUBLIC_FEED)))
    assert outcome.status == "applied" and outcome.error is None
    rule = owned_rule(store)
    assert rule is not None and stored_networks(rule) == set(PUBLISHED)
