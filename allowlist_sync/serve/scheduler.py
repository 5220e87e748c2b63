"""`allowlist-sync serve`: the pipeline on a cron schedule, one run at a time, for months.

    serve(run, runner, targets)     signals, main-thread wait, shutdown
      └── SyncService               scheduler + health endpoint + the state the probes report
            ├── BackgroundScheduler one job, cron trigger (daily by default), max_instances=1,
            │                       coalesce, misfire grace time; optionally a run at start-up
            ├── execute()           runner() -> FleetOutcome -> Reporter (metrics, textfile/
            │                       Pushgateway, webhook, run state; per target) -> retry plan
            └── /livez /readyz /status /metrics

A run is one call of the runner: every target of a config file (`run_fleet`), or the one
target of the environment-only setup (`single_target`), as a FleetOutcome. Its exit code, the
most severe of its targets', decides what comes next. A run that fails with exit code 1 (an
API 5xx, Microsoft unreachable, a crash) is tried again after `ALLOWLIST_SYNC_FAILED_RUN_RETRY`
(15m, 1h, 4h, then every 4h) by moving the one job's next run time forward; when the next
scheduled run comes first, the schedule takes over and the sequence starts again from it. Any
other exit code (3 refused, 77 token refused, 78 bad configuration) needs a person, so it waits
for the schedule. No failure stops the scheduler or
makes the pod unready: `/readyz` means "serving with a valid configuration"; sync health is in
`/status` and the metrics. `/livez` fails only when a run has gone on well past its deadline.

On SIGTERM or SIGINT no new run starts; a run in progress gets `ALLOWLIST_SYNC_SHUTDOWN_GRACE`
seconds to finish and is then abandoned. Abandoning is safe by design: a write cut off
mid-flight is ambiguous, and the next run re-reads the rule and plans again instead of
replaying anything. SIGUSR1 asks for a run now.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.config import RunSettings, Settings
from allowlist_sync.errors import AllowlistSyncError, ConfigError, ExitCode
from allowlist_sync.logs import get_logger
from allowlist_sync.outcome import FleetOutcome
from allowlist_sync.reporting.report import Reporter, ReportTarget
from allowlist_sync.serve.crontab import JOB_ID, add_sync_job, build_trigger, create_scheduler
from allowlist_sync.serve.health import HealthServer
from allowlist_sync.serve.runs import LastRun, single_target, target_health

log = get_logger(__name__)

#: Seconds past `ALLOWLIST_SYNC_RUN_TIMEOUT` before a run in progress makes `/livez` fail: room
#: for the report after the run (webhook attempts, a Pushgateway push).
STUCK_MARGIN = 120.0
_WAIT_STEP = 0.2  # seconds between checks while waiting: bounds shutdown latency


def retry_delay(delays: tuple[float, ...], retries_done: int) -> float | None:
    """Seconds before the next retry after `retries_done` retries; the last delay repeats."""
    if not delays:
        return None
    return delays[min(retries_done, len(delays) - 1)]


class SyncService:
    """The scheduler, its one job, the health endpoint and the state behind the probes.

    `run` is called for each run and returns a FleetOutcome; without it, `settings` must be
    the environment's `Settings` and its one target runs (`single_target`). `targets` are the
    configured targets for reporting (see `Reporter`); by default the environment's one.
    """

    def __init__(
        self,
        settings: RunSettings,
        *,
        run: Callable[[], FleetOutcome] | None = None,
        targets: Sequence[ReportTarget] | None = None,
        reporter: Reporter | None = None,
        stuck_margin: float = STUCK_MARGIN,
    ) -> None:
        self.settings = settings
        self.reporter = (
            reporter if reporter is not None else Reporter(settings, targets=targets, serve=True)
        )
        self.metrics = self.reporter.metrics
        self.metrics.next_run_source = self.next_run_time
        self.metrics.next_retry_source = self.next_retry_time
        self._stuck_after = settings.run_timeout + stuck_margin
        if run is None:
            if not isinstance(settings, Settings):
                raise TypeError("SyncService needs a runner when its settings name no target")
            run = single_target(settings)
        self._run = run
        build_trigger(settings)  # a ConfigError now, not at the first run
        self.scheduler = create_scheduler(settings)
        self.scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        self.health: HealthServer | None = None
        self._lock = threading.Lock()
        self._runs_started = 0
        self._running_since: float | None = None
        self._last: LastRun | None = None
        self._last_sources: dict[str, SourceInfo] = {}
        self._abandon = threading.Event()
        # The pending retry of a failed run, the scheduled run it stands in front of, and how
        # many retries the current sequence has made.
        self._retry_at: datetime | None = None
        self._scheduled_next: datetime | None = None
        self._retries_done = 0

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Open the health endpoint (when a port is set), schedule the job, start the scheduler."""
        settings = self.settings
        if settings.health_port:
            self.health = HealthServer(
                settings.health_host, settings.health_port, self, self.metrics
            )
            try:
                self.health.start()
            except OSError as exc:
                self.health = None
                raise ConfigError(
                    f"ALLOWLIST_SYNC_HEALTH_HOST / ALLOWLIST_SYNC_HEALTH_PORT: cannot listen on "
                    f"{settings.health_host}:{settings.health_port}: {exc.strerror or exc}"
                ) from None
        add_sync_job(self.scheduler, self.run_job, settings, run_now=settings.run_on_start)
        self.scheduler.start(paused=True)  # paused: log the start before the first run does
        log.info(
            "serve_started",
            schedule=settings.schedule,
            timezone=settings.timezone,
            run_on_start=settings.run_on_start,
            jitter_seconds=settings.schedule_jitter,
            misfire_grace_seconds=settings.misfire_grace_time,
            failed_run_retry_seconds=list(settings.failed_run_retry),
            next_run=_iso(self.next_run_time()),
            health=(f"http://{settings.health_host}:{self.health.port}" if self.health else None),
        )
        self.scheduler.resume()

    def request_run(self) -> None:
        """Run now (SIGUSR1); skipped, like any trigger, while a run is still going."""
        log.info("run_requested")
        self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def stop(self, grace: float) -> None:
        """No new runs; give a running one `grace` seconds, then abandon it; close the endpoint."""
        running = self.running
        log.info("shutdown_started", run_in_progress=running, grace_seconds=grace)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running:
            # The job wrapper returns and the worker (a daemon thread) ends with the process.
            self._abandon.set()
            log.warning(
                "run_abandoned",
                reason="shutdown",
                effect="the next run re-reads the rule and plans again; nothing is replayed",
            )
        if self.health is not None:
            self.health.stop()
        log.info("shutdown_finished")

    # ----------------------------------------------------------------- runs

    def run_job(self) -> None:
        """The scheduled job: one run in a daemon worker, so shutdown never waits on it forever."""
        worker = threading.Thread(target=self.execute, name="allowlist-sync-run", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(_WAIT_STEP)
            if self._abandon.is_set():
                return

    def execute(self) -> FleetOutcome:
        """One run: the pipeline of every target, then its report; never raises."""
        with self._lock:
            self._runs_started += 1
            number = self._runs_started
            self._running_since = time.monotonic()
            # A run while a retry is pending is that retry (or SIGUSR1 in its place); any
            # other run is a scheduled one, which starts the retry sequence again.
            if self._retry_at is None:
                self._retries_done = 0
            # The scheduled run a pending retry stood in front of is still the next one.
            consumed = (self._retry_at, self._scheduled_next)
            self._retry_at = self._scheduled_next = None
        structlog.contextvars.bind_contextvars(run=number)
        started = time.monotonic()
        try:
            log.info("run_started")
            try:
                fleet = self._run()
            except Exception as exc:  # a bug must not stop the schedule: count it as a failure
                log.exception("run_crashed", error=f"{type(exc).__name__}: {exc}")
                fleet = FleetOutcome(
                    targets=[],
                    dry_run=False,
                    error=AllowlistSyncError(f"unexpected error: {type(exc).__name__}: {exc}"),
                    duration_seconds=time.monotonic() - started,
                )
            with self._lock:
                self._last = LastRun.of(fleet, number=number, finished_at=datetime.now(UTC))
                for outcome in fleet.targets:
                    if outcome.source is not None:
                        self._last_sources[outcome.target] = outcome.source
            self.reporter.report_fleet(fleet)
            try:
                self._plan_retry(fleet, *consumed)
            except Exception as exc:  # e.g. the scheduler shut down meanwhile: never raise
                log.warning("retry_not_planned", error=f"{type(exc).__name__}: {exc}")
            log.info(
                "next_run", at=_iso(self.next_run_time()), retry_at=_iso(self.next_retry_time())
            )
            return fleet
        finally:
            with self._lock:
                self._running_since = None
            structlog.contextvars.unbind_contextvars("run")

    def _plan_retry(
        self, fleet: FleetOutcome, retry_at: datetime | None, scheduled_next: datetime | None
    ) -> None:
        """After an exit-1 failure of the fleet, bring the next run forward to the retry time.

        The fleet's exit code is its most severe target's, a passing failure (1) first: when
        any target failed in a way a retry can fix, the whole run is tried again.

        `retry_at` and `scheduled_next`: the retry this run consumed, if one was pending, and
        the scheduled run it stood in front of.
        """
        if not self.scheduler.running:
            return
        job = self.scheduler.get_job(JOB_ID)
        scheduled = job.next_run_time if job is not None else None
        if retry_at is not None and scheduled == retry_at and scheduled_next is not None:
            # Run outside the scheduler, the job still points at the retry: back to the
            # schedule. (From the scheduler, APScheduler has moved the job on already.)
            scheduled = scheduled_next
            self.scheduler.modify_job(JOB_ID, next_run_time=scheduled)
        now = datetime.now(UTC)
        code = fleet.exit_code()
        if code == ExitCode.OK:
            return
        if code != ExitCode.FAILED:
            log.info(
                "retry_skipped",
                exit_code=int(code),
                reason="not a passing failure: a person must act; the schedule runs it again",
            )
            return
        with self._lock:
            delay = retry_delay(self.settings.failed_run_retry, self._retries_done)
        if delay is None:
            return
        retry_at = now + timedelta(seconds=delay)
        if scheduled is None or retry_at >= scheduled:
            log.info(
                "retry_skipped",
                exit_code=int(code),
                reason="the next scheduled run comes first",
                next_run=_iso(scheduled),
            )
            return
        with self._lock:
            self._retries_done += 1
            attempt = self._retries_done
            self._retry_at = retry_at
            self._scheduled_next = scheduled
        self.scheduler.modify_job(JOB_ID, next_run_time=retry_at)
        log.warning(
            "retry_scheduled",
            at=retry_at.isoformat(),
            delay_seconds=delay,
            attempt=attempt,
            next_run=scheduled.isoformat(),
        )

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            self.metrics.record_skipped("missed")
            with self._lock:  # a missed retry is gone: the schedule has taken over
                self._retry_at = self._scheduled_next = None
            log.warning(
                "run_missed",
                scheduled_for=_iso(getattr(event, "scheduled_run_time", None)),
                misfire_grace_seconds=self.settings.misfire_grace_time,
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.metrics.record_skipped("overlap")
            log.warning("run_skipped", reason="the previous run is still going")
        elif event.code == EVENT_JOB_ERROR:  # pragma: no cover - execute() never raises
            log.error("job_error", error=repr(getattr(event, "exception", None)))

    # ----------------------------------------------------------------- state for the probes

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        with self._lock:
            return self._running_since is not None

    @property
    def last_run(self) -> LastRun | None:
        """The most recent finished run."""
        with self._lock:
            return self._last

    def next_run_time(self) -> datetime | None:
        """When the schedule runs the job next (not a retry); None when not scheduling."""
        if not self.scheduler.running:
            return None
        with self._lock:
            if self._retry_at is not None:
                return self._scheduled_next
        job = self.scheduler.get_job(JOB_ID)
        return job.next_run_time if job is not None else None

    def next_retry_time(self) -> datetime | None:
        """When a failed run is tried again; None when no retry is pending."""
        if not self.scheduler.running:
            return None
        with self._lock:
            return self._retry_at

    def _running_for(self) -> float | None:
        with self._lock:
            since = self._running_since
        return time.monotonic() - since if since is not None else None

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Alive while the scheduler runs, holds the job, and no run is far past its deadline."""
        scheduling = self.scheduler.running and self.scheduler.get_job(JOB_ID) is not None
        running_for = self._running_for()
        stuck = running_for is not None and running_for > self._stuck_after
        details: dict[str, Any] = {"scheduler": "running" if scheduling else "stopped"}
        if running_for is not None:
            details["run_in_progress_seconds"] = round(running_for, 1)
        if stuck:
            details["stuck"] = (
                f"a run has gone on for {running_for:.0f} s, more than "
                f"ALLOWLIST_SYNC_RUN_TIMEOUT ({self.settings.run_timeout:g} s) plus "
                f"{self._stuck_after - self.settings.run_timeout:g} s"
            )
        return scheduling and not stuck, details

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready while serving (a valid configuration got it here), whatever the last run did."""
        serving = self.scheduler.running
        with self._lock:
            last = self._last
        return serving, {
            "config": "valid",
            "scheduler": "running" if serving else "stopped",
            "last_run": last.to_json() if last is not None else None,
            "run_in_progress": self._running_for() is not None,
            "next_run": _iso(self.next_run_time()),
        }

    def status(self) -> dict[str, Any]:
        """Sync health for people and scripts: the last run, last success, feed, what comes next.

        `targets` has each target's last success, failure streak and feed; the top-level
        `last_success` is the oldest of them (None while a target has none),
        `consecutive_failures` the longest streak and `feed` the first target's.
        """
        with self._lock:
            last = self._last
            sources = dict(self._last_sources)
        health = target_health(self.metrics, sources)
        return {
            "last_run": last.to_json() if last is not None else None,
            **health,
            "run_in_progress": self._running_for() is not None,
            "next_run": _iso(self.next_run_time()),
            "next_retry": _iso(self.next_retry_time()),
            "schedule": self.settings.schedule,
            "timezone": self.settings.timezone,
        }


def serve(
    settings: RunSettings,
    runner: Callable[[], FleetOutcome] | None = None,
    *,
    targets: Sequence[ReportTarget] | None = None,
) -> int:
    """Run the service until SIGTERM or SIGINT; returns the exit code (0 after a clean stop).

    `runner` returns each run's FleetOutcome (e.g. `lambda: run_fleet(...)`); `targets` are
    the configured targets for reporting. Both may be left out when `settings` is the
    environment's `Settings`: its one target is then run and reported.
    """
    service = SyncService(settings, run=runner, targets=targets)
    stop = threading.Event()
    run_now = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    def on_run_now(_signum: int, _frame: FrameType | None) -> None:
        run_now.set()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
        signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
        signal.SIGUSR1: signal.signal(signal.SIGUSR1, on_run_now),
    }
    try:
        service.start()
        try:
            # A timed wait keeps the main thread responsive to signals.
            while not stop.wait(0.5):
                if run_now.is_set():
                    run_now.clear()
                    service.request_run()
                if not service.scheduler.running:  # pragma: no cover - only if APScheduler dies
                    log.error("scheduler_stopped", effect="exiting so that the container restarts")
                    return 1
        finally:
            service.stop(settings.shutdown_grace)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
