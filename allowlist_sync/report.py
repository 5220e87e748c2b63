"""After a run: record its metrics, export them, and send the webhook. Used by `sync` and `serve`.

Every step here is best effort: a metrics file that cannot be written, a Pushgateway that is
down or a webhook that fails is logged as a warning and never changes the run's result.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.exposition import pushadd_to_gateway, write_to_textfile

from allowlist_sync.config import Settings
from allowlist_sync.logs import get_logger, register_secret
from allowlist_sync.metrics import SyncMetrics
from allowlist_sync.notify import build_message, safe_url, send_webhook, should_notify
from allowlist_sync.outcome import Outcome

log = get_logger(__name__)

#: Seconds a Pushgateway push may take.
PUSH_TIMEOUT = 10.0


class Reporter:
    """Reports each Outcome to metrics (and their file or Pushgateway) and the webhook."""

    def __init__(
        self,
        settings: Settings,
        metrics: SyncMetrics | None = None,
        *,
        webhook_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else SyncMetrics()
        self._webhook_transport = webhook_transport
        if settings.webhook_url is not None:
            register_secret(settings.webhook_url.get_secret_value())
        if settings.metrics_file is not None:
            self._restore(settings.metrics_file)

    def report(self, outcome: Outcome) -> None:
        """Record, export and announce one finished run; never raises."""
        try:
            self.metrics.record(outcome, finished_at=time.time())
        except Exception as exc:  # metrics must never fail a run
            log.warning("metrics_record_failed", error=f"{type(exc).__name__}: {exc}")
        self.export_metrics()
        self.notify(outcome)

    def export_metrics(self) -> None:
        """Write the textfile and push to the Pushgateway, when configured."""
        settings = self.settings
        if settings.metrics_file is not None:
            self._write_textfile(settings.metrics_file)
        if settings.pushgateway_url is not None:
            self._push(settings.pushgateway_url, settings.pushgateway_job)

    def notify(self, outcome: Outcome) -> bool:
        """Send the webhook message when the policy says so; True when one was delivered."""
        settings = self.settings
        if settings.webhook_url is None or not should_notify(outcome, settings.notify):
            return False
        try:
            return send_webhook(
                settings.webhook_url.get_secret_value(),
                build_message(outcome, account_id=settings.account_id),
                timeout=settings.webhook_timeout,
                retry_pause=min(settings.retry_backoff, 5.0),
                transport=self._webhook_transport,
            )
        except Exception as exc:  # a webhook must never fail a run
            log.warning("webhook_failed", error=f"{type(exc).__name__}: {exc}")
            return False

    def _restore(self, path: Path) -> None:
        # Counters and the last success time survive from one one-shot run to the next.
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("metrics_file_unreadable", path=str(path), error=exc.strerror)
            return
        try:
            self.metrics.restore(text)
        except ValueError as exc:
            log.warning("metrics_file_unparsable", path=str(path), error=str(exc))

    def _write_textfile(self, path: Path) -> None:
        # write_to_textfile writes a temporary file beside `path` and renames it over `path`,
        # so the node exporter never reads a half-written file.
        try:
            write_to_textfile(str(path), self.metrics.registry)
        except Exception as exc:
            log.warning("metrics_file_failed", path=str(path), error=f"{type(exc).__name__}: {exc}")
            return
        log.debug("metrics_file_written", path=str(path))

    def _push(self, url: str, job: str) -> None:
        # POST (pushadd), not PUT: a metric this run does not have (the last success time,
        # after a failure) keeps the value an earlier run pushed.
        try:
            pushadd_to_gateway(url, job=job, registry=self.metrics.registry, timeout=PUSH_TIMEOUT)
        except Exception as exc:
            log.warning(
                "metrics_push_failed",
                pushgateway=safe_url(url),
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        log.info("metrics_pushed", pushgateway=safe_url(url), job=job)
