"""The serve-mode endpoint over loopback: probes, /status, metrics and unknown paths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from allowlist_sync.outcome import Outcome
from allowlist_sync.reporting.metrics import SyncMetrics
from allowlist_sync.serve.health import HealthServer


class FakeProbes:
    def __init__(self) -> None:
        self.alive = True
        self.ready = True

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        return self.alive, {"scheduler": "running" if self.alive else "stopped"}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready, {"last_run": None}

    def status(self) -> dict[str, Any]:
        return {"last_run": {"status": "failed", "exit_code": 1}, "next_retry": "soon"}


@pytest.fixture
def probes() -> FakeProbes:
    return FakeProbes()


@pytest.fixture
def metrics() -> SyncMetrics:
    return SyncMetrics()


@pytest.fixture
def client(probes: FakeProbes, metrics: SyncMetrics) -> Iterator[httpx.Client]:
    server = HealthServer("127.0.0.1", 0, probes, metrics).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", trust_env=False) as c:
            yield c
    finally:
        server.stop()


def test_probes_answer_200_then_503(probes: FakeProbes, client: httpx.Client) -> None:
    """Each probe answers 200 with status ok while healthy and 503 with status unhealthy after."""
    assert client.get("/livez").json() == {"status": "ok", "scheduler": "running"}
    assert client.get("/readyz").status_code == 200
    probes.alive = probes.ready = False
    live, ready = client.get("/livez"), client.get("/readyz")
    assert (live.status_code, ready.status_code) == (503, 503)
    assert ready.json()["status"] == "unhealthy"


def test_metrics_in_prometheus_text_format(metrics: SyncMetrics, client: httpx.Client) -> None:
    """/metrics serves the registry in the Prometheus text format."""
    metrics.record(Outcome(status="in_sync", dry_run=False), finished_at=1.0)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'allowlist_sync_runs_total{status="in_sync",target="default"} 1.0' in response.text


def test_unknown_path_is_404(client: httpx.Client) -> None:
    """Anything but the three paths is 404."""
    assert client.get("/").status_code == 404


def test_status_is_json_and_always_200(probes: FakeProbes, client: httpx.Client) -> None:
    """/status answers 200 with the service's status object, whatever the probes say."""
    probes.alive = probes.ready = False
    response = client.get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "last_run": {"status": "failed", "exit_code": 1},
        "next_retry": "soon",
    }


def test_a_probe_that_raises_answers_500(probes: FakeProbes, client: httpx.Client) -> None:
    """A bug behind /status is a 500 and a log event, and the endpoint keeps serving."""

    def broken() -> dict[str, Any]:
        raise RuntimeError("bug")

    probes.status = broken  # type: ignore[method-assign]
    assert client.get("/status").status_code == 500
    assert client.get("/livez").status_code == 200
