"""The serve-mode HTTP endpoint: `/livez`, `/readyz`, `/status`, `/metrics`, from a daemon thread.

    GET /livez    200 while the scheduler runs and no run is stuck far past its deadline,
                  503 otherwise (the orchestrator restarts the container)
    GET /readyz   200 while serving with a valid configuration, whatever the last sync did:
                  a failed sync is not a reason to take the pod out (it has no traffic anyway)
    GET /status   200, JSON: the last run (status, exit code, error), the last success, the
                  feed's date, the next scheduled run and the next retry: sync health
    GET /metrics  the Prometheus text format

The probes ask a `Probes` object (the service) for their answer on every request, so they
always report the current state and this module knows nothing about scheduling.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol, cast

from allowlist_sync.logs import get_logger
from allowlist_sync.net.httpserver import LocalHTTPServer
from allowlist_sync.reporting.metrics import SyncMetrics

log = get_logger(__name__)

#: The classic text format: every metric name here is a legacy name, so any Prometheus reads it.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Probes(Protocol):
    """What the endpoint asks: each answer is (healthy, details for the JSON body)."""

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the process and its scheduler are alive."""
        ...

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service is serving with a valid configuration."""
        ...

    def status(self) -> dict[str, Any]:
        """How syncing goes: the last run, the last success, the feed, what comes next."""
        ...


class _Server(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], probes: Probes, metrics: SyncMetrics) -> None:
        self.probes = probes
        self.metrics = metrics
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "allowlist-sync"
    sys_version = ""

    def do_GET(self) -> None:
        """Answer the four paths; 404 for anything else."""
        server = cast(_Server, self.server)
        path = self.path.split("?", 1)[0]
        try:
            if path == "/livez":
                self._probe(*server.probes.liveness())
            elif path == "/readyz":
                self._probe(*server.probes.readiness())
            elif path == "/status":
                payload = (json.dumps(server.probes.status(), default=str) + "\n").encode()
                self._send(200, payload, "application/json")
            elif path == "/metrics":
                self._send(200, server.metrics.exposition(), METRICS_CONTENT_TYPE)
            else:
                self._send(
                    404, b"not found: try /livez, /readyz, /status or /metrics\n", "text/plain"
                )
        except Exception as exc:  # a probe bug must answer 500, not kill the thread silently
            log.error("health_request_failed", path=path, error=f"{type(exc).__name__}: {exc}")
            self._send(500, b"internal error\n", "text/plain")

    def _probe(self, healthy: bool, details: dict[str, Any]) -> None:
        body = {"status": "ok" if healthy else "unhealthy", **details}
        payload = (json.dumps(body, default=str) + "\n").encode()
        self._send(200 if healthy else 503, payload, "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes arrive every few seconds: no access log."""


class HealthServer:
    """The endpoint, listening on `host:port` from a daemon thread until `stop`."""

    def __init__(self, host: str, port: int, probes: Probes, metrics: SyncMetrics) -> None:
        self._address = (host, port)
        self._probes = probes
        self._metrics = metrics
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HealthServer:
        """Bind and serve; OSError when the address cannot be used."""
        httpd = _Server(self._address, self._probes, self._metrics)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="allowlist-sync-health",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        """The bound port (the real one when asked for port 0)."""
        if self._httpd is None:
            raise RuntimeError("the health endpoint is not running")
        return self._httpd.server_port

    def stop(self) -> None:
        """Stop serving; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
