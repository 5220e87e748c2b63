"""`sync` sends its webhook to a local receiver on change, refusal and failure, not on a no-op."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from allowlist_sync.config import RunSettings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from allowlist_sync.errors import AllowlistSyncError
from allowlist_sync.outcome import FleetOutcome, Outcome
from allowlist_sync.reporting.report import Reporter, ReportTarget
from tests.cli import log_events
from tests.feeds import PUBLIC_FEED
from tests.inprocess import Result, run_main
from tests.receiver import Receiver, closed_port_url

SYNC = ("sync", "--source-file", str(PUBLIC_FEED), "--output", "json")


@pytest.fixture
def hook() -> Iterator[Receiver]:
    """A local stand-in for a Slack or Teams incoming webhook."""
    with Receiver() as receiver:
        yield receiver


def sync(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    url: str,
    **env: str,
) -> Result:
    return run_main(
        monkeypatch,
        capsys,
        emulator,
        *SYNC,
        ALLOWLIST_SYNC_WEBHOOK_URL=url + "/hook/T0/s3cret",
        **env,
    )


def test_change_then_no_op(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    hook: Receiver,
) -> None:
    """The run that creates the rule sends one message; the next, finding nothing to do, none."""
    first = sync(monkeypatch, capsys, emulator, hook.url)
    assert first.code == 0, first.stderr
    (message,) = hook.received
    assert message.method == "POST" and message.path == "/hook/T0/s3cret"
    assert message.headers["Content-Type"] == "application/json"
    body = message.json()
    assert body["text"].startswith("allowlist-sync created rule")
    assert body["outcome"]["status"] == "applied"
    assert len(body["outcome"]["add"]) == body["outcome"]["counts"]["desired"]
    second = sync(monkeypatch, capsys, emulator, hook.url)
    assert second.code == 0
    assert len(hook.received) == 1


def test_always_announces_a_no_op(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    hook: Receiver,
) -> None:
    """With ALLOWLIST_SYNC_NOTIFY=always, an in-sync run is announced too."""
    sync(monkeypatch, capsys, emulator, hook.url, ALLOWLIST_SYNC_NOTIFY="never")
    assert hook.received == []
    result = sync(monkeypatch, capsys, emulator, hook.url, ALLOWLIST_SYNC_NOTIFY="always")
    assert result.code == 0
    (message,) = hook.received
    assert message.json()["outcome"]["status"] == "in_sync"
    assert "is in sync" in message.json()["text"]


def test_guard_refusal_is_announced(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    hook: Receiver,
) -> None:
    """A plan refused by the minimum-size guard is announced with its reason."""
    result = sync(monkeypatch, capsys, emulator, hook.url, ALLOWLIST_SYNC_MIN_PREFIXES="100000")
    assert result.code == 3
    (message,) = hook.received
    body = message.json()
    assert body["outcome"]["status"] == "refused"
    assert "REFUSED" in body["text"] and "Nothing was written" in body["text"]


def test_failure_is_announced(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    hook: Receiver,
) -> None:
    """A run the API fails (500 on every request) is announced as FAILED with the error."""
    store.add_fault(Fault(action="status", status=500, times=100))
    result = sync(monkeypatch, capsys, emulator, hook.url)
    assert result.code == 1
    (message,) = hook.received
    body = message.json()
    assert body["outcome"]["status"] == "failed"
    assert body["outcome"]["error"]["kind"] == "api"
    assert "FAILED" in body["text"]


def test_a_dead_webhook_does_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """With nothing listening at the webhook, the run still applies, exits 0, and warns."""
    url = closed_port_url()
    result = run_main(monkeypatch, capsys, emulator, *SYNC, ALLOWLIST_SYNC_WEBHOOK_URL=url)
    assert result.code == 0
    assert store.snapshot()
    (warning,) = [e for e in log_events(result.stderr) if e["event"] == "webhook_failed"]
    assert warning["level"] == "warning"
    assert "/hook" not in result.stderr


def test_a_daily_failure_notifies_once_then_recovers_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    hook: Receiver,
) -> None:
    """One-shot runs remember the incident in the cache folder: one FAILED, one RECOVERED."""
    store.add_fault(Fault(action="status", status=503, times=4))  # two runs of 2 attempts
    assert sync(monkeypatch, capsys, emulator, hook.url).code == 1
    assert sync(monkeypatch, capsys, emulator, hook.url).code == 1
    assert [m.json()["outcome"]["status"] for m in hook.received] == ["failed"]
    assert sync(monkeypatch, capsys, emulator, hook.url).code == 0
    assert sync(monkeypatch, capsys, emulator, hook.url).code == 0  # in sync: nothing to say
    _, recovered = (m.json() for m in hook.received)
    assert recovered["recovered"] is True
    assert recovered["text"].startswith("allowlist-sync RECOVERED:")
    assert "after 2 unsuccessful run(s)" in recovered["text"]
    assert recovered["outcome"]["status"] == "applied"


def test_an_undelivered_failure_message_is_tried_again_next_run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """When the webhook was down for the first failure, the next failure is announced."""
    store.add_fault(Fault(action="status", status=503, times=100))
    with Receiver(statuses=[400]) as hook:  # the first message is refused (no retry on 400)
        assert sync(monkeypatch, capsys, emulator, hook.url).code == 1
        assert sync(monkeypatch, capsys, emulator, hook.url).code == 1
        assert sync(monkeypatch, capsys, emulator, hook.url).code == 1
    assert len(hook.received) == 2  # refused, then delivered; the third run is quiet


def two_targets(a: str, b: str) -> list[Outcome]:
    """One run of targets `prod-us` (account 1) and `prod-eu` (account 2) with these statuses."""
    error = AllowlistSyncError("HTTP 503") if b == "failed" else None
    return [
        Outcome(status=a, dry_run=False, target="prod-us", account_id=1, rule_name="r"),  # type: ignore[arg-type]
        Outcome(
            status=b, dry_run=False, target="prod-eu", account_id=2, rule_name="r", error=error
        ),  # type: ignore[arg-type]
    ]


def test_each_target_has_its_own_incident_and_recovery(hook: Receiver, tmp_path: Path) -> None:
    """Only the failing target notifies, once per incident, and only it sends a recovery."""
    settings = RunSettings(cache_dir=tmp_path, webhook_url=hook.url + "/hook/T0/s3cret")
    reporter = Reporter(settings)
    reporter.report_all(two_targets("in_sync", "failed"))
    reporter.report_all(two_targets("in_sync", "failed"))
    (failure,) = [m.json() for m in hook.received]
    assert failure["target"] == "prod-eu" and failure["account_id"] == 2
    assert "(target prod-eu)" in failure["text"] and "FAILED" in failure["text"]
    # A new process (a CronJob's next run) remembers each target's incident.
    Reporter(settings).report_all(two_targets("in_sync", "in_sync"))
    assert len(hook.received) == 2
    recovery = hook.received[1].json()
    assert recovery["target"] == "prod-eu" and recovery["recovered"] is True
    assert "after 2 unsuccessful run(s)" in recovery["text"]
    Reporter(settings).report_all(two_targets("in_sync", "in_sync"))
    assert len(hook.received) == 2


def test_a_fleet_that_failed_as_a_whole_fails_each_known_target(
    hook: Receiver, tmp_path: Path
) -> None:
    """A fleet run with a run-level error and no targets is reported for every known target."""
    settings = RunSettings(cache_dir=tmp_path, webhook_url=hook.url + "/hook/T0/s3cret")
    targets = [ReportTarget("prod-us", 1, "r"), ReportTarget("prod-eu", 2, "r")]
    reporter = Reporter(settings, targets=targets)
    reporter.report_fleet(
        FleetOutcome(targets=[], dry_run=False, error=AllowlistSyncError("crashed"))
    )
    assert sorted(m.json()["target"] for m in hook.received) == ["prod-eu", "prod-us"]
    assert (
        reporter.metrics.consecutive_failures("prod-us"),
        reporter.metrics.consecutive_failures("prod-eu"),
    ) == (1, 1)
