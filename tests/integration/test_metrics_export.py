"""One-shot metrics: the node-exporter textfile and the Pushgateway, checked at a local receiver.

One-shot exports carry gauges only; the last success and the failure streak come from the run
state in the cache folder (each test has its own).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync.config import RunSettings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from allowlist_sync.outcome import FleetOutcome, Outcome
from allowlist_sync.reporting.report import Reporter, ReportTarget
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
    assert push.path == "/metrics/job/aad-sync/target/default"
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


def by_target(text: str) -> dict[tuple[str, str], float]:
    """Samples of an exposition as (name, target) -> value."""
    return {
        (s.name, s.labels.get("target", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_fleet_run_exports_every_target_once(tmp_path: Path) -> None:
    """Two targets' runs make one textfile write and one push per target, each in its own
    group and under its label."""
    path = tmp_path / "allowlist_sync.prom"
    targets = [ReportTarget("prod-us", 1, "r"), ReportTarget("prod-eu", 2, "r")]
    with Receiver() as gateway:
        settings = RunSettings(cache_dir=tmp_path, metrics_file=path, pushgateway_url=gateway.url)
        Reporter(settings, targets=targets).report_fleet(
            FleetOutcome(
                targets=[
                    Outcome(status="applied", dry_run=False, target="prod-us", account_id=1),
                    Outcome(status="failed", dry_run=False, target="prod-eu", account_id=2),
                ],
                dry_run=False,
            )
        )
        pushes = {push.path: push.body.decode() for push in gateway.received}
    assert set(pushes) == {
        "/metrics/job/allowlist-sync/target/prod-us",
        "/metrics/job/allowlist-sync/target/prod-eu",
    }
    assert not any(
        "prod-eu" in line
        for line in pushes["/metrics/job/allowlist-sync/target/prod-us"].splitlines()
        if not line.startswith("#")
    )
    for text in (path.read_text(), "".join(pushes.values())):
        samples = by_target(text)
        assert samples[("allowlist_sync_last_run_success", "prod-us")] == 1
        assert samples[("allowlist_sync_last_run_success", "prod-eu")] == 0
        assert samples[("allowlist_sync_consecutive_failures", "prod-eu")] == 1
        assert ("allowlist_sync_last_success_timestamp_seconds", "prod-eu") not in samples
        assert not any(target == "default" for _, target in samples)


def test_a_textfile_keeps_the_targets_a_subset_run_left_out(tmp_path: Path) -> None:
    """A run of one target keeps the last success the textfile holds for the other targets."""
    path = tmp_path / "allowlist_sync.prom"
    targets = [ReportTarget("prod-us", 1, "r"), ReportTarget("prod-eu", 2, "r")]
    settings = RunSettings(cache_dir=tmp_path / "first", metrics_file=path)
    Reporter(settings, targets=targets).report_all(
        [Outcome(status="in_sync", dry_run=False, target=t.name) for t in targets]
    )
    before = by_target(path.read_text())
    settings = RunSettings(cache_dir=tmp_path / "second", metrics_file=path)
    Reporter(settings, targets=targets).report_all(
        [Outcome(status="failed", dry_run=False, target="prod-us")]
    )
    after = by_target(path.read_text())
    name = "allowlist_sync_last_success_timestamp_seconds"
    assert after[(name, "prod-eu")] == before[(name, "prod-eu")]
    assert after[(name, "prod-us")] == before[(name, "prod-us")]
    assert after[("allowlist_sync_last_run_success", "prod-us")] == 0
    # What prod-eu did not do this time is not exported as if it had (a streak of 0).
    assert ("allowlist_sync_last_run_success", "prod-eu") not in after
    assert ("allowlist_sync_consecutive_failures", "prod-eu") not in after
