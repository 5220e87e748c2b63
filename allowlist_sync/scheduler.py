"""`allowlist-sync serve`: the pipeline on a cron schedule, one run at a time, for months.

    serve(settings)                 signals, main-thread wait, shutdown
      └── SyncService               scheduler + health endpoint + the state the probes report
            ├── BackgroundScheduler one job, cron trigger (weekly by default), max_instances=1,
            │                       coalesce, misfire grace time; optionally a run at start-up
            └── execute()           run_once -> Reporter (metrics, textfile/Pushgateway, webhook)

A run that fails, is refused or raises is logged, counted and turns `/readyz` unhealthy; it
never stops the scheduler. On SIGTERM or SIGINT no new run starts; a run in progress gets
`ALLOWLIST_SYNC_SHUTDOWN_GRACE` seconds to finish and is then abandoned. Abandoning is safe by
design: a write cut off mid-flight is ambiguous, and the next run re-reads the rule and plans
again instead of replaying anything. SIGUSR1 asks for a run now.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from allowlist_sync.config import Settings
from allowlist_sync.crontab import cron_trigger, resolve_timezone
from allowlist_sync.errors import AllowlistSyncError, ConfigError
from allowlist_sync.health import HealthServer
from allowlist_sync.logs import get_logger, redact
from allowlist_sync.outcome import Outcome
from allowlist_sync.report import Reporter
from allowlist_sync.sync import RunOptions, run_once

log = get_logger(__name__)

JOB_ID = "allowlist-sync"
#: Statuses that make `/readyz` unhealthy until a later run succeeds.
UNHEALTHY_STATUSES = frozenset({"failed", "refused"})
_WAIT_STEP = 0.2  # seconds between checks while waiting: bounds shutdown latency


def build_trigger(settings: Settings) -> CronTrigger:
    """The cron trigger of `ALLOWLIST_SYNC_SCHEDULE` in `ALLOWLIST_SYNC_TIMEZONE`, with jitter."""
    try:
        return cron_trigger(
            settings.schedule, settings.timezone, jitter=settings.schedule_jitter or None
        )
    except (ValueError, LookupError) as exc:
        raise ConfigError(f"ALLOWLIST_SYNC_SCHEDULE / ALLOWLIST_SYNC_TIMEZONE: {exc}") from None


def job_options(settings: Settings) -> dict[str, Any]:
    """One run at a time; missed runs collapse into one, and are skipped past the grace time."""
    return {
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": settings.misfire_grace_time,
    }


def create_scheduler(settings: Settings) -> BackgroundScheduler:
    """A scheduler in the configured time zone with one worker thread; not started."""
    _route_apscheduler_logs()
    return BackgroundScheduler(
        timezone=resolve_timezone(settings.timezone),
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults=job_options(settings),
    )


def add_sync_job(
    scheduler: BaseScheduler,
    func: Callable[[], object],
    settings: Settings,
    *,
    run_now: bool,
) -> Job:
    """Schedule `func` on the configured trigger; with `run_now`, its first run is immediate."""
    extra: dict[str, Any] = {}
    if run_now:
        extra["next_run_time"] = datetime.now(UTC)
    return scheduler.add_job(
        func,
        trigger=build_trigger(settings),
        id=JOB_ID,
        name="sync",
        replace_existing=True,
        **job_options(settings),
        **extra,
    )


@dataclass(frozen=True)
class LastRun:
    """What the probes say about the most recent finished run."""

    number: int
    status: str
    finished_at: datetime
    duration_seconds: float
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """The `last_run` object of the probe bodies."""
        return {
            "number": self.number,
            "status": self.status,
            "finished_at": self.finished_at.isoformat(),
            "duration_seconds": round(self.duration_seconds, 3),
            "error": self.error,
        }


class SyncService:
    """The scheduler, its one job, the health endpoint and the state behind the probes."""

    def __init__(
        self,
        settings: Settings,
        *,
        run: Callable[[], Outcome] | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.settings = settings
        self.reporter = reporter if reporter is not None else Reporter(settings)
        self.metrics = self.reporter.metrics
        self.metrics.next_run_source = self.next_run_time
        self._run = run if run is not None else (lambda: run_once(settings, RunOptions()))
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
        self._abandon = threading.Event()

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

    def execute(self) -> Outcome:
        """One run: the pipeline, then its report; never raises."""
        with self._lock:
            self._runs_started += 1
            number = self._runs_started
            self._running_since = time.monotonic()
        structlog.contextvars.bind_contextvars(run=number)
        started = time.monotonic()
        try:
            log.info("run_started")
            try:
                outcome = self._run()
            except Exception as exc:  # a bug must not stop the schedule: count it as a failure
                log.exception("run_crashed", error=f"{type(exc).__name__}: {exc}")
                outcome = Outcome(
                    status="failed",
                    dry_run=False,
                    rule_name=self.settings.rule_name,
                    error=AllowlistSyncError(f"unexpected error: {type(exc).__name__}: {exc}"),
                    duration_seconds=time.monotonic() - started,
                )
            with self._lock:
                self._last = LastRun(
                    number=number,
                    status=outcome.status,
                    finished_at=datetime.now(UTC),
                    duration_seconds=outcome.duration_seconds,
                    error=redact(str(outcome.error)) if outcome.error else None,
                )
            self.reporter.report(outcome)
            log.info("next_run", at=_iso(self.next_run_time()))
            return outcome
        finally:
            with self._lock:
                self._running_since = None
            structlog.contextvars.unbind_contextvars("run")

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            self.metrics.record_skipped("missed")
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
        """When the job runs next; None when the scheduler is not running or has no job."""
        if not self.scheduler.running:
            return None
        job = self.scheduler.get_job(JOB_ID)
        return job.next_run_time if job is not None else None

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Alive while the scheduler runs and holds the job."""
        alive = self.scheduler.running and self.scheduler.get_job(JOB_ID) is not None
        return alive, {"scheduler": "running" if alive else "stopped"}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready unless the last finished run failed or was refused (config is valid to be here)."""
        with self._lock:
            last = self._last
            running_for = (
                time.monotonic() - self._running_since if self._running_since is not None else None
            )
        ready = last is None or last.status not in UNHEALTHY_STATUSES
        return ready, {
            "config": "valid",
            "last_run": last.to_json() if last is not None else None,
            "run_in_progress": running_for is not None,
            "next_run": _iso(self.next_run_time()),
        }


def serve(settings: Settings) -> int:
    """Run the service until SIGTERM or SIGINT; returns the exit code (0 after a clean stop)."""
    service = SyncService(settings)
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


class _ToStructlog(logging.Handler):
    """APScheduler logs through `logging`: forward its errors as events, drop the chatter."""

    def emit(self, record: logging.LogRecord) -> None:
        log.error("apscheduler", message=record.getMessage())


def _route_apscheduler_logs() -> None:
    # Its warnings (missed runs, overlaps) are reported by SyncService._on_event as events.
    logger = logging.getLogger("apscheduler")
    if not any(isinstance(h, _ToStructlog) for h in logger.handlers):
        logger.addHandler(_ToStructlog(level=logging.ERROR))
    logger.propagate = False
