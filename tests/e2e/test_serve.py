"""`allowlist-sync serve` as a real process against the emulator: runs, probes, metrics, signals,
retries of failed runs, notifications once per incident, and the last success across restarts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from allowlist_sync.errors import ExitCode
from tests.cli import cli_env, run_cli
from tests.emulated import owned_rule
from tests.emulated import stored_networks as stored
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc
from tests.receiver import Receiver, free_port

PUBLISHED = set(aad_prefixes(feed_doc()))


def far_schedule() -> str:
    """A daily schedule about 12 hours away, so only start-up runs, retries and SIGUSR1 run."""
    now = datetime.now(UTC)
    return f"{(now.minute + 30) % 60} {(now.hour + 12) % 24} * * *"


class Serve:
    """A running `allowlist-sync serve` process and a client for its endpoint."""

    def __init__(self, emulator: EmulatorServer, **env: str) -> None:
        self.port = free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.env = cli_env(
            emulator,
            ALLOWLIST_SYNC_SOURCE_FILE=str(PUBLIC_FEED),
            ALLOWLIST_SYNC_HEALTH_HOST="127.0.0.1",
            ALLOWLIST_SYNC_HEALTH_PORT=str(self.port),
            ALLOWLIST_SYNC_RETRY_ATTEMPTS="2",
            **env,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "allowlist_sync", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,  # a file, not a pipe: a full pipe would block the process
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=2, trust_env=False
        )

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def metrics(self) -> dict[str, float]:
        """The /metrics samples as `name` or `name{label}` -> value."""
        result = {}
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for s in family.samples:
                label = s.labels.get("status") or s.labels.get("reason")
                result[f"{s.name}{{{label}}}" if label else s.name] = s.value
        return result

    def runs(self, status: str) -> float:
        return self.metrics().get(f"allowlist_sync_runs_total{{{status}}}", 0.0)

    def status(self) -> dict[str, Any]:
        """The /status body."""
        response = self.get("/status")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll until `condition` holds (connection errors count as not yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr()
            try:
                if condition():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out; stderr:\n{self.stderr()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def run_now(self, condition: Callable[[], bool]) -> None:
        """SIGUSR1 until `condition` holds: a request while a run still reports is skipped."""
        for _ in range(5):
            self.wait_for(lambda: self.status()["run_in_progress"] is False)
            if condition():
                return
            self.signal(signal.SIGUSR1)
            try:
                self.wait_for(condition, timeout=3.0)
                return
            except AssertionError:
                continue
        raise AssertionError(f"SIGUSR1 did not lead there; stderr:\n{self.stderr()}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code (killed and failed if it takes longer than `timeout`)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"serve did not stop within {timeout} s") from None

    def stderr(self) -> str:
        """What the process logged so far."""
        self._log.seek(0)
        return self._log.read().decode()

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


@pytest.fixture
def start(emulator: EmulatorServer) -> Iterator[Callable[..., Serve]]:
    """Start serve processes against the emulator; each is killed at the end if still running."""
    started: list[Serve] = []

    def _start(**env: str) -> Serve:
        serve = Serve(emulator, **env)
        started.append(serve)
        return serve

    yield _start
    for serve in started:
        serve.close()


def test_run_on_start_syncs_and_the_endpoint_reports_it(
    start: Callable[..., Serve], store: EmulatorStore
) -> None:
    """The start-up run syncs the rule, the endpoint shows it; SIGUSR1 reruns; SIGTERM exits 0."""
    serve = start()
    serve.wait_for(lambda: serve.runs("applied") == 1)
    rule = owned_rule(store)
    assert rule is not None and stored(rule) == PUBLISHED

    live = serve.get("/livez")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = serve.get("/readyz")
    body: dict[str, Any] = ready.json()
    assert ready.status_code == 200
    assert body["last_run"]["status"] == "applied"
    assert body["next_run"].endswith("T06:00:00+00:00")  # daily, by default

    metrics = serve.metrics()
    assert metrics["allowlist_sync_desired_cidrs"] == len(PUBLISHED)
    assert metrics["allowlist_sync_current_cidrs"] == len(PUBLISHED)
    assert metrics["allowlist_sync_cidrs_added_total"] == len(PUBLISHED)
    assert metrics["allowlist_sync_source_change_number"] == feed_doc()["changeNumber"]
    assert metrics["allowlist_sync_last_success_timestamp_seconds"] > time.time() - 60
    assert metrics["allowlist_sync_next_run_timestamp_seconds"] > time.time()

    serve.run_now(lambda: serve.runs("in_sync") == 1)
    assert store.write_count() == 1

    started = time.monotonic()
    assert serve.stop() == 0
    assert time.monotonic() - started < 10


def test_a_failed_first_run_is_retried_and_converges(
    start: Callable[..., Serve], store: EmulatorStore
) -> None:
    """API 503s fail the first run; it is retried after 1 s, long before the schedule, and applies.

    Throughout, /readyz stays 200 and /livez 200; /status shows the failure and the pending
    retry, then the success.
    """
    store.add_fault(Fault(action="status", status=503, times=2))  # the first run's 2 attempts
    serve = start(ALLOWLIST_SYNC_SCHEDULE=far_schedule(), ALLOWLIST_SYNC_FAILED_RUN_RETRY="1s")
    serve.wait_for(lambda: serve.runs("failed") == 1)
    failed = serve.status()
    assert serve.get("/readyz").status_code == 200
    assert serve.get("/livez").status_code == 200
    if failed["last_run"]["status"] == "failed":  # not yet replaced by the retry's result
        assert failed["last_run"]["exit_code"] == 1
        assert failed["last_run"]["error"]["kind"] == "api"
        assert failed["last_success"] is None
    assert failed["next_retry"] is not None or serve.runs("applied") == 1

    serve.wait_for(lambda: serve.runs("applied") == 1)
    rule = owned_rule(store)
    assert rule is not None and stored(rule) == PUBLISHED
    applied = serve.status()
    assert applied["last_run"]["status"] == "applied"
    assert applied["last_run"]["error"] is None
    assert applied["last_success"] is not None
    assert applied["consecutive_failures"] == 0
    assert applied["next_retry"] is None
    assert applied["next_run"] > datetime.now(UTC).isoformat()
    metrics = serve.metrics()
    assert metrics["allowlist_sync_consecutive_failures"] == 0
    assert "allowlist_sync_next_retry_timestamp_seconds" not in metrics
    assert "process_resident_memory_bytes" in metrics
    assert serve.get("/readyz").status_code == 200
    assert serve.stop() == 0


def test_failing_runs_keep_the_process_alive_and_ready(
    start: Callable[..., Serve], store: EmulatorStore
) -> None:
    """API 500s on every run: the process lives, /readyz stays 200, failures count, retry shown."""
    store.add_fault(Fault(action="status", status=500, times=10_000))
    serve = start(ALLOWLIST_SYNC_SCHEDULE=far_schedule())
    serve.wait_for(lambda: serve.runs("failed") == 1)
    ready = serve.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["last_run"]["status"] == "failed"
    assert serve.get("/livez").status_code == 200
    metrics = serve.metrics()
    assert metrics["allowlist_sync_last_run_success"] == 0
    assert metrics["allowlist_sync_consecutive_failures"] == 1
    status = serve.status()
    assert status["next_retry"] is not None  # 15 minutes away by default
    retry_at = datetime.fromisoformat(status["next_retry"]).timestamp()
    assert metrics["allowlist_sync_next_retry_timestamp_seconds"] == retry_at
    assert "retry_scheduled" in serve.stderr()

    serve.run_now(lambda: serve.runs("failed") == 2)
    assert serve.proc.poll() is None
    assert serve.metrics()["allowlist_sync_consecutive_failures"] == 2

    store.clear_faults()
    serve.run_now(lambda: serve.runs("applied") == 1)
    assert serve.status()["next_retry"] is None
    assert serve.stop() == 0


def test_a_refused_token_notifies_once(start: Callable[..., Serve]) -> None:
    """A 401 fails each run; the webhook hears of it once, not on every run."""
    with Receiver() as hook:
        serve = start(
            DBT_CLOUD_TOKEN="dbtc_wrong_token_0000",
            ALLOWLIST_SYNC_SCHEDULE=far_schedule(),
            ALLOWLIST_SYNC_WEBHOOK_URL=hook.url + "/hook",
        )
        serve.wait_for(lambda: serve.runs("failed") == 1)
        serve.run_now(lambda: serve.runs("failed") == 2)
        assert serve.stop() == 0
    (message,) = hook.received
    body = message.json()
    assert body["outcome"]["error"]["kind"] == "auth"
    assert "FAILED" in body["text"]


def test_a_refused_token_is_not_retried(start: Callable[..., Serve]) -> None:
    """A 401 needs a person: no retry is set, the run waits for the schedule (or SIGUSR1)."""
    serve = start(
        DBT_CLOUD_TOKEN="dbtc_wrong_token_0000",
        ALLOWLIST_SYNC_SCHEDULE=far_schedule(),
        ALLOWLIST_SYNC_FAILED_RUN_RETRY="1s",
    )
    serve.wait_for(lambda: serve.runs("failed") == 1)
    status = serve.status()
    assert status["last_run"]["exit_code"] == ExitCode.AUTH
    assert status["next_retry"] is None
    assert "allowlist_sync_next_retry_timestamp_seconds" not in serve.metrics()
    assert "retry_skipped" in serve.stderr()
    assert serve.stop() == 0
    assert serve.stderr().count('"event": "run_started"') == 1


def test_the_last_success_survives_a_restart(
    start: Callable[..., Serve], store: EmulatorStore
) -> None:
    """After a restart the last success time is on /metrics and /status before any new run."""
    first = start(ALLOWLIST_SYNC_SCHEDULE=far_schedule())
    first.wait_for(lambda: first.runs("applied") == 1)
    success = first.metrics()["allowlist_sync_last_success_timestamp_seconds"]
    assert first.stop() == 0

    store.add_fault(Fault(action="status", status=503, times=10_000))
    second = start(ALLOWLIST_SYNC_SCHEDULE=far_schedule(), ALLOWLIST_SYNC_RUN_ON_START="false")
    second.wait_for(lambda: second.get("/livez").status_code == 200)
    assert second.metrics()["allowlist_sync_last_success_timestamp_seconds"] == success
    assert second.status()["last_success"] == datetime.fromtimestamp(success, UTC).isoformat()
    second.run_now(lambda: second.runs("failed") == 1)
    assert second.metrics()["allowlist_sync_last_success_timestamp_seconds"] == success
    assert second.stop() == 0


def test_sigterm_during_a_hanging_run_exits_0_within_seconds(
    start: Callable[..., Serve], store: EmulatorStore
) -> None:
    """A run stuck on a slow API call is given the grace time, then abandoned; exit 0."""
    store.add_fault(Fault(action="delay_before", seconds=30, times=10))
    serve = start(ALLOWLIST_SYNC_SHUTDOWN_GRACE="1")
    serve.wait_for(lambda: serve.get("/readyz").json()["run_in_progress"] is True)
    started = time.monotonic()
    assert serve.stop() == 0
    assert time.monotonic() - started < 10
    assert "run_abandoned" in serve.stderr()
    assert store.write_count() == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("ALLOWLIST_SYNC_SCHEDULE", "0 6 * * 2 extra"), ("ALLOWLIST_SYNC_TIMEZONE", "Nowhere/Land")],
)
def test_invalid_schedule_exits_78(emulator: EmulatorServer, name: str, value: str) -> None:
    """A bad schedule or time zone stops serve at start-up with exit 78, naming the variable."""
    result = run_cli("serve", env=cli_env(emulator, **{name: value}), timeout=20)
    assert result.code == 78
    assert name in result.stderr
