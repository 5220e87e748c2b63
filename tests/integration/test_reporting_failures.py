"""Reporting that fails never changes a run's result: its exit code and JSON stay the sync's own.

`reporting/report.py` promises that a metrics file that cannot be written, a Pushgateway that is
down and a webhook that fails are warnings only. Each test here runs the same sync twice against
the emulator, once without reporting and once with a broken reporter, and compares the results.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from tests.cli import log_events
from tests.feeds import PUBLIC_FEED, write_feed
from tests.inprocess import Result, run_main
from tests.receiver import Receiver, closed_port_url

DRY_RUN = ("sync", "--dry-run", "--detailed-exitcode", "--output", "json")


def parsed(result: Result) -> dict[str, Any]:
    """stdout of an in-process run as the one JSON object it printed."""
    data: dict[str, Any] = json.loads(result.stdout)
    data.pop("duration_seconds", None)
    return data


def warnings_of(result: Result) -> set[str]:
    """The warning events a run logged."""
    return {e["event"] for e in log_events(result.stderr) if e["level"] == "warning"}


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A loopback URL whose server accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook/T0/s3cret"


def run_both(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    args: tuple[str, ...],
    **reporting: str,
) -> tuple[Result, Result]:
    """The same run without reporting, then with `reporting` settings on top."""
    plain = run_main(monkeypatch, capsys, emulator, *args)
    broken = run_main(monkeypatch, capsys, emulator, *args, **reporting)
    return plain, broken


@pytest.mark.parametrize(
    "where",
    ["proc", "file_as_folder", "directory_as_file"],
)
def test_unwritable_metrics_file_keeps_the_exit_code_and_json(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    tmp_path: Path,
    where: str,
) -> None:
    """A metrics file that cannot be written (read-only folder, a file or folder in the way) is a
    warning; the dry run still exits 2 with the same JSON."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    paths = {
        "proc": Path("/proc/allowlist-sync.prom"),  # unwritable even for root
        "file_as_folder": blocker / "x.prom",
        "directory_as_file": tmp_path,
    }
    args = (*DRY_RUN, "--source-file", str(PUBLIC_FEED))
    plain, broken = run_both(
        monkeypatch, capsys, emulator, args, ALLOWLIST_SYNC_METRICS_FILE=str(paths[where])
    )
    assert plain.code == broken.code == 2
    assert parsed(broken) == parsed(plain)
    assert "metrics_file_failed" in warnings_of(broken)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"not { prometheus text\n", id="text"),
        pytest.param(b"\xff\xfe not { prometheus text\n", id="not-utf8"),
    ],
)
def test_garbage_in_the_metrics_file_keeps_the_result(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    tmp_path: Path,
    garbage: bytes,
) -> None:
    """A metrics file holding garbage from before is a warning and is replaced; the result holds."""
    prom = tmp_path / "x.prom"
    prom.write_bytes(garbage * 3)
    args = (*DRY_RUN, "--source-file", str(PUBLIC_FEED))
    plain, broken = run_both(
        monkeypatch, capsys, emulator, args, ALLOWLIST_SYNC_METRICS_FILE=str(prom)
    )
    assert plain.code == broken.code == 2
    assert parsed(broken) == parsed(plain)
    assert warnings_of(broken) & {"metrics_file_unparsable", "metrics_file_unreadable"}
    assert b"allowlist_sync" in prom.read_bytes()


@pytest.mark.parametrize("gateway", ["down", "500"])
def test_failing_pushgateway_keeps_the_exit_code_and_json(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    gateway: str,
) -> None:
    """A Pushgateway that refuses connections or answers 500 is a warning; the result holds."""
    args = (*DRY_RUN, "--source-file", str(PUBLIC_FEED))
    with Receiver(status=500) as receiver:
        url = closed_port_url().removesuffix("/hook") if gateway == "down" else receiver.url
        plain, broken = run_both(
            monkeypatch, capsys, emulator, args, ALLOWLIST_SYNC_PUSHGATEWAY_URL=url
        )
    assert plain.code == broken.code == 2
    assert parsed(broken) == parsed(plain)
    assert "metrics_push_failed" in warnings_of(broken)


@pytest.mark.parametrize("status", [500, 404, 302])
def test_webhook_answering_an_error_keeps_the_exit_code_and_json(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    status: int,
) -> None:
    """A webhook answering 500, 404 or a redirect is a warning; exit code and JSON stay."""
    args = (*DRY_RUN, "--source-file", str(PUBLIC_FEED))
    with Receiver(status=status) as hook:
        plain, broken = run_both(
            monkeypatch,
            capsys,
            emulator,
            args,
            ALLOWLIST_SYNC_WEBHOOK_URL=hook.url + "/hook/T0/s3cret",
            ALLOWLIST_SYNC_NOTIFY="always",
        )
        attempts = len(hook.received)
    assert plain.code == broken.code == 2
    assert parsed(broken) == parsed(plain)
    assert "webhook_failed" in warnings_of(broken)
    assert attempts == (2 if status == 500 else 1)  # one retry, on 5xx only
    assert "s3cret" not in broken.stderr + broken.stdout


def test_hanging_webhook_is_cut_by_its_timeout_and_keeps_the_result(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    hanging_url: str,
) -> None:
    """A webhook that never answers times out (twice, at WEBHOOK_TIMEOUT) and changes nothing."""
    args = (*DRY_RUN, "--source-file", str(PUBLIC_FEED))
    plain, broken = run_both(
        monkeypatch,
        capsys,
        emulator,
        args,
        ALLOWLIST_SYNC_WEBHOOK_URL=hanging_url,
        ALLOWLIST_SYNC_WEBHOOK_TIMEOUT="0.2",
        ALLOWLIST_SYNC_NOTIFY="always",
    )
    assert plain.code == broken.code == 2
    assert parsed(broken) == parsed(plain)
    (event,) = [e for e in log_events(broken.stderr) if e["event"] == "webhook_failed"]
    assert "Timeout" in event["error"]
    assert "s3cret" not in broken.stderr + broken.stdout


def test_every_reporter_broken_at_once_keeps_a_refusal_at_exit_3(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    tmp_path: Path,
    hanging_url: str,
) -> None:
    """A guard's refusal stays exit 3 with its JSON when the metrics file, gateway and webhook all
    fail."""
    tiny = write_feed(tmp_path / "tiny.json", ["20.190.128.0/18"])
    args = ("sync", "--source-file", str(tiny), "--output", "json")
    plain, broken = run_both(
        monkeypatch,
        capsys,
        emulator,
        args,
        ALLOWLIST_SYNC_METRICS_FILE="/proc/allowlist-sync.prom",
        ALLOWLIST_SYNC_PUSHGATEWAY_URL=closed_port_url().removesuffix("/hook"),
        ALLOWLIST_SYNC_WEBHOOK_URL=hanging_url,
        ALLOWLIST_SYNC_WEBHOOK_TIMEOUT="0.2",
    )
    assert plain.code == broken.code == 3
    assert parsed(broken) == parsed(plain)
    assert parsed(broken)["status"] == "refused"
    assert {"metrics_file_failed", "metrics_push_failed", "webhook_failed"} <= warnings_of(broken)


def test_broken_reporting_keeps_a_failed_run_at_exit_1(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A run failed by the API stays exit 1 with its JSON when every reporter fails too."""
    store.add_fault(Fault(action="status", status=500, times=1000))
    args = ("sync", "--source-file", str(PUBLIC_FEED), "--output", "json")
    with Receiver(status=500) as down:
        plain, broken = run_both(
            monkeypatch,
            capsys,
            emulator,
            args,
            ALLOWLIST_SYNC_METRICS_FILE="/proc/allowlist-sync.prom",
            ALLOWLIST_SYNC_PUSHGATEWAY_URL=down.url,
            ALLOWLIST_SYNC_WEBHOOK_URL=down.url + "/hook/T0/s3cret",
        )
    assert plain.code == broken.code == 1
    assert parsed(plain)["status"] == "failed"
    assert parsed(broken) == parsed(plain)
