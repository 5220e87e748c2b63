"""After a run: record, export, announce and remember it. Used by `sync` and `serve`.

    report(outcome)   metrics.record -> textfile / Pushgateway -> webhook (once per incident)
                      -> the run state (last success, failure streak, incident) saved in the
                         cache folder, so the next process starts where this one ended

Every step here is best effort: a metrics file that cannot be written, a Pushgateway that is
down, a webhook that fails or a state that cannot be saved is logged as a warning and never
changes the run's result.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.exposition import pushadd_to_gateway, write_to_textfile

from allowlist_sync.azure.cache import default_cache_dir
from allowlist_sync.config import Settings
from allowlist_sync.logs import get_logger, register_secret
from allowlist_sync.outcome import Outcome
from allowlist_sync.reporting.metrics import SyncMetrics
from allowlist_sync.reporting.notify import build_message, decide, safe_url, send_webhook
from allowlist_sync.reporting.runstate import RunState, load_state, save_state, state_path

log = get_logger(__name__)

#: Seconds a Pushgateway push may take.
PUSH_TIMEOUT = 10.0


class Reporter:
    """Reports each Outcome to metrics (and their file or Pushgateway) and the webhook.

    `serve=True` for the long-running service (counters and process metrics on `/metrics`, the
    state loaded at once); otherwise a one-shot run, which exports gauges only.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: SyncMetrics | None = None,
        *,
        webhook_transport: httpx.BaseTransport | None = None,
        serve: bool = False,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else SyncMetrics(one_shot=not serve)
        self._webhook_transport = webhook_transport
        self._state_dir = settings.cache_dir or default_cache_dir()
        self._states: dict[bool, RunState] = {}
        if settings.webhook_url is not None:
            register_secret(settings.webhook_url.get_secret_value())
        if settings.metrics_file is not None:
            self._restore(settings.metrics_file)
        if serve:  # the last success is known before the first run of this process ends
            self.state(dry_run=False)

    def state_file(self, *, dry_run: bool) -> Path:
        """Where the run state of this target (apply or dry-run) is kept."""
        return state_path(
            self._state_dir,
            account_id=self.settings.account_id,
            rule_name=self.settings.rule_name,
            dry_run=dry_run,
        )

    def state(self, *, dry_run: bool) -> RunState:
        """The run state, read once from the cache folder and fed into the metrics."""
        state = self._states.get(dry_run)
        if state is None:
            state = load_state(self.state_file(dry_run=dry_run))
            self._states[dry_run] = state
            self.metrics.seed(
                last_success=state.last_success,
                consecutive_failures=state.consecutive_failures,
            )
        return state

    def report(self, outcome: Outcome) -> None:
        """Record, export and announce one finished run, and remember it; never raises."""
        state = self.state(dry_run=outcome.dry_run)
        failures_before = self.metrics.consecutive_failures
        try:
            self.metrics.record(outcome, finished_at=time.time())
        except Exception as exc:  # metrics must never fail a run
            log.warning("metrics_record_failed", error=f"{type(exc).__name__}: {exc}")
        state.last_success = self.metrics.last_success
        state.consecutive_failures = self.metrics.consecutive_failures
        self.export_metrics()
        self.notify(outcome, state, failures_before=failures_before)
        save_state(self.state_file(dry_run=outcome.dry_run), state)

    def export_metrics(self) -> None:
        """Write the textfile and push to the Pushgateway, when configured."""
        settings = self.settings
        if settings.metrics_file is not None:
            self._write_textfile(settings.metrics_file)
        if settings.pushgateway_url is not None:
            self._push(settings.pushgateway_url, settings.pushgateway_job)

    def notify(self, outcome: Outcome, state: RunState, *, failures_before: int = 0) -> bool:
        """Send the webhook message when the policy and the open incident say so.

        True when one was delivered; the incident in `state` moves on only then, so a message
        that could not be delivered is tried again at the next run.
        """
        settings = self.settings
        if settings.webhook_url is None:
            return False
        notice = decide(outcome, settings.notify, state.incident)
        if not notice.send:
            state.incident = notice.incident
            log.debug("notification_skipped", reason=notice.reason)
            return False
        message = build_message(
            outcome,
            account_id=settings.account_id,
            recovered_after=failures_before if notice.recovery else None,
        )
        try:
            delivered = send_webhook(
                settings.webhook_url.get_secret_value(),
                message,
                timeout=settings.webhook_timeout,
                retry_pause=min(settings.retry_backoff, 5.0),
                transport=self._webhook_transport,
            )
        except Exception as exc:  # a webhook must never fail a run
            log.warning("webhook_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        if delivered:
            state.incident = notice.incident
        return delivered

    def _restore(self, path: Path) -> None:
        # Counters and the last success time survive from one one-shot run to the next.
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("metrics_file_unreadable", path=str(path), error=exc.strerror)
            return
        except UnicodeDecodeError as exc:  # not a textfile this job wrote: start afresh
            log.warning("metrics_file_unparsable", path=str(path), error=str(exc))
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
