"""One-shot metrics: the node-exporter textfile and the Pushgateway, checked at a local receiver.

One-shot exports carry gauges only; the last success and the failure streak come from the run
state in the cache folder (each test has its own).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from tests.cli import log_events
from tests.feeds import PUBLIC_FEED
from tests.inprocess import run_main
from tests.receiver import Receiver, closed_port_url

SYNC = ("sync", "--source-file", str(PUBLIC_FEED), "--output", "json")


def values(text: str) -> dict[str, float]:
    """Samples of an exposition as `name` or `name{status}` -> value."""
    result = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            label = s.labels.get("status")
            result[f"{s.name}{{{label}}}" if label else s.name] = s.value
    return result


def counters(text: str) -> list[str]:
    """The names of the counter samples in an exposition."""
    return [
        s.name
        for family in text_string_to_metric_families(text)
        if family.type == "counter"
        for s in family.samples
    ]


def test_textfile_is_written_atomically_and_keeps_the_last_success(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
) -> None:
    """Each run replaces the .prom file whole with gauges; a failure keeps the last success."""
    path = tmp_path / "allowlist_sync.prom"
    env = {"ALLOWLIST_SYNC_METRICS_FILE": str(path)}
    assert run_main(monkeypatch, capsys, emulator, *SYNC, **env).code == 0
    first = values(path.read_text())
    assert first["allowlist_sync_last_run_success"] == 1
    assert first["allowlist_sync_desired_cidrs"] == first["allowlist_sync_last_run_added_cidrs"] > 0
    assert first["allowlist_sync_last_run_removed_cidrs"] == 0
    assert first["allowlist_sync_consecutive_failures"] == 0
    assert first["allowlist_sync_source_cache_used"] == 0
    success = first["allowlist_sync_last_success_timestamp_seconds"]
    assert "allowlist_sync_next_run_timestamp_seconds" not in first
    assert counters(path.read_text()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["allowlist_sync.prom"]  # no temp left

    store.add_fault(Fault(action="status", status=500, times=100))
    assert run_main(monkeypatch, capsys, emulator, *SYNC, **env).code == 1
    second = values(path.read_text())
    assert second["allowlist_sync_last_run_success"] == 0
    assert second["allowlist_sync_consecutive_failures"] == 1
    assert second["allowlist_sync_last_success_timestamp_seconds"] == success
    assert second["allowlist_sync_last_run_added_cidrs"] == 0
    assert counters(path.read_text()) == []


def test_pushgateway_receives_gauges_only(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
) -> None:
    """The run pushes gauges to the job's group as a POST; no counter that each push would reset."""
    with Receiver() as gateway:
        result = run_main(
            monkeypatch,
            capsys,
            emulator,
            *SYNC,
            ALLOWLIST_SYNC_PUSHGATEWAY_URL=gateway.url,
            ALLOWLIST_SYNC_PUSHGATEWAY_JOB="aad-sync",
        )
    assert result.code == 0, result.stderr
    (push,) = gateway.received
    assert push.method == "POST"
    assert push.path == "/metrics/job/aad-sync"
    pushed = values(push.body.decode())
    assert pushed["allowlist_sync_last_run_success"] == 1
    assert pushed["allowlist_sync_last_run_added_cidrs"] > 0
    assert "allowlist_sync_last_success_timestamp_seconds" in pushed
    assert counters(push.body.decode()) == []
    assert not any(name.startswith("process_") for name in pushed)


def test_last_success_is_remembered_across_one_shot_runs(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """Before any success it is absent; after one, every later push carries it, failures too."""
    store.add_fault(Fault(action="status", status=500, times=2))  # the first run's 2 attempts
    with Receiver() as gateway:
        env = {"ALLOWLIST_SYNC_PUSHGATEWAY_URL": gateway.url}
        assert run_main(monkeypatch, capsys, emulator, *SYNC, **env).code == 1
        assert run_main(monkeypatch, capsys, emulator, *SYNC, **env).code == 0
        store.add_fault(Fault(action="status", status=500, times=100))
        assert run_main(monkeypatch, capsys, emulator, *SYNC, **env).code == 1
    never, first, failed = (values(push.body.decode()) for push in gateway.received)
    assert "allowlist_sync_last_success_timestamp_seconds" not in never
    assert never["allowlist_sync_consecutive_failures"] == 1
    success = first["allowlist_sync_last_success_timestamp_seconds"]
    assert first["allowlist_sync_consecutive_failures"] == 0
    assert failed["allowlist_sync_last_success_timestamp_seconds"] == success
    assert failed["allowlist_sync_consecutive_failures"] == 1


def test_unreachable_pushgateway_or_unwritable_file_do_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Metric export failures are warnings: the run still applies and exits 0."""
    result = run_main(
        monkeypatch,
        capsys,
        emulator,
        *SYNC,
        ALLOWLIST_SYNC_PUSHGATEWAY_URL=closed_port_url().removesuffix("/hook"),
        ALLOWLIST_SYNC_METRICS_FILE=str(tmp_path / "missing-dir" / "x.prom"),
    )
    assert result.code == 0
    warnings = {e["event"] for e in log_events(result.stderr) if e["level"] == "warning"}
    assert {"metrics_push_failed", "metrics_file_failed"} <= warnings
