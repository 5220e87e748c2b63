"""The run state file: per target, written atomically, and never trusted when it looks wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from allowlist_sync.reporting.runstate import RunState, load_state, save_state, state_path


def test_round_trip(tmp_path: Path) -> None:
    """What is saved is loaded back, and no temporary file is left beside it."""
    path = tmp_path / "state" / "run-state.json"
    state = RunState(last_success=1_700_000_000.5, consecutive_failures=3, incident="exit 1")
    assert save_state(path, state) is True
    assert load_state(path) == state
    assert [p.name for p in path.parent.iterdir()] == ["run-state.json"]


def test_a_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    """No file yet: no last success, no failures, no incident, and no warning."""
    with capture_logs() as events:
        assert load_state(tmp_path / "none.json") == RunState()
    assert events == []


def test_targets_and_dry_runs_keep_states_of_their_own(tmp_path: Path) -> None:
    """Another account, another rule, or a dry run: another file."""
    base = state_path(tmp_path, account_id=1, rule_name="r", dry_run=False)
    others = {
        state_path(tmp_path, account_id=2, rule_name="r", dry_run=False),
        state_path(tmp_path, account_id=1, rule_name="s", dry_run=False),
        state_path(tmp_path, account_id=1, rule_name="r", dry_run=True),
    }
    assert base not in others and len(others) == 3
    assert base == state_path(tmp_path, account_id=1, rule_name="r", dry_run=False)
    assert base.parent == tmp_path and base.name.startswith("run-state.1.")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"format": 2}',
        b'{"format": 1, "last_success": "yesterday"}',
        b'{"format": 1, "last_success": -5}',
        b'{"format": 1, "last_success": 1e400}',
        b'{"format": 1, "last_success": true}',
        b'{"format": 1, "last_success": 1e20}',
        b'{"format": 1, "consecutive_failures": -1}',
        b'{"format": 1, "consecutive_failures": 1.5}',
        b'{"format": 1, "consecutive_failures": 100000000000000000000000000000}',
        b'{"format": 1, "incident": 7}',
        b'{"format": 1, "incident": "' + b"x" * 100 + b'"}',
        b'{"format": 1, "pad": "' + b"x" * 70_000 + b'"}',
        b"[" * 60_000,
    ],
)
def test_a_broken_file_is_ignored_with_a_warning(tmp_path: Path, content: bytes) -> None:
    """Garbage, a wrong format, impossible values or a huge file: a warning and a fresh start."""
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with capture_logs() as events:
        assert load_state(path) == RunState()
    assert [e["event"] for e in events] == ["run_state_ignored"]


def test_an_unwritable_folder_only_warns(tmp_path: Path) -> None:
    """A state that cannot be saved is a warning, never an exception."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with capture_logs() as events:
        assert save_state(blocker / "state.json", RunState(consecutive_failures=1)) is False
    assert [e["event"] for e in events] == ["run_state_not_saved"]


def test_the_file_is_plain_json(tmp_path: Path) -> None:
    """The file says what it holds, for a person looking into the volume."""
    path = tmp_path / "s.json"
    save_state(path, RunState(last_success=1.0e9, consecutive_failures=0, incident=None))
    assert json.loads(path.read_text()) == {
        "format": 1,
        "last_success": 1.0e9,
        "consecutive_failures": 0,
        "incident": None,
    }
