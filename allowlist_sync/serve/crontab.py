"""Standard 5-field crontab expressions as APScheduler 3 cron triggers, and serve's one job.

APScheduler 3 numbers weekdays from Monday (0 = mon), while crontab numbers them from Sunday
(0 or 7 = sun), and `CronTrigger.from_crontab` passes the numbers through unchanged: with it,
`0 6 * * 2` fires on Wednesdays. So the day-of-week field is translated here into day names,
which both agree on; the other four fields mean the same to both and pass through.

`build_trigger`, `create_scheduler` and `add_sync_job` turn the settings into the scheduler and
its one job (`scheduler.SyncService` runs them).
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from allowlist_sync.errors import ConfigError
from allowlist_sync.logs import get_logger

if TYPE_CHECKING:  # config imports this module lazily; no import cycle at run time
    from allowlist_sync.config import RunSettings

log = get_logger(__name__)

JOB_ID = "allowlist-sync"

#: Crontab's day numbers: the index is the crontab number (7 is Sunday again).
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: APScheduler's order, for a stable rendering of the translated field.
_APS_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


#: Names of UTC that work without a time-zone database (slim container images have none).
_UTC_NAMES = frozenset({"utc", "etc/utc", "z", "zulu", "etc/zulu", "gmt", "etc/gmt"})


def resolve_timezone(name: str) -> tzinfo:
    """The time zone for an IANA name; ValueError if unknown. UTC needs no tz database."""
    if name.strip().lower() in _UTC_NAMES:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Amsterdam "
            "(named zones need the system tz database or the tzdata Python package)"
        ) from None


def cron_trigger(expr: str, timezone: str | tzinfo, *, jitter: int | None = None) -> CronTrigger:
    """The trigger for a crontab expression (5 fields or an @macro); ValueError if invalid."""
    text = _MACROS.get(expr.strip().lower(), expr)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r} is not a crontab expression: expected 5 fields "
            "(minute hour day-of-month month day-of-week), got "
            f"{len(fields)}"
        )
    minute, hour, day, month, day_of_week = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=translate_day_of_week(day_of_week),
            timezone=resolve_timezone(timezone) if isinstance(timezone, str) else timezone,
            jitter=jitter or None,
        )
    except ValueError as exc:
        raise ValueError(f"{expr!r} is not a valid crontab expression: {exc}") from None


def translate_day_of_week(field: str) -> str:
    """A crontab day-of-week field (`2`, `1-5`, `0,6`, `*/2`, `mon-fri`) in APScheduler's terms."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for term in field.lower().split(","):
        days.update(_expand_term(term))
    if len(days) == len(_CRON_DAYS):
        return "*"
    names = {_CRON_DAYS[d] for d in days}
    return ",".join(name for name in _APS_ORDER if name in names)


def _expand_term(term: str) -> range | list[int]:
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise ValueError(f"day-of-week step {step_text!r} must be a positive number")
        step = int(step_text)
    if base == "*":
        first, last = 0, 6
    elif "-" in base:
        low, _, high = base.partition("-")
        # `fri-sun` means Friday to Sunday: a Sunday that ends a range is day 7, not day 0.
        first, last = _day_number(low), 7 if high == "sun" else _day_number(high)
        if first > last:
            raise ValueError(f"day-of-week range {base!r} runs backwards")
    else:
        first = _day_number(base)
        last = 6 if slash else first
    return [day % 7 for day in range(first, last + 1, step)]


def _day_number(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text in _CRON_DAYS:
        return _CRON_DAYS.index(text)
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def build_trigger(settings: RunSettings) -> CronTrigger:
    """The cron trigger of `ALLOWLIST_SYNC_SCHEDULE` in `ALLOWLIST_SYNC_TIMEZONE`, with jitter."""
    try:
        return cron_trigger(
            settings.schedule, settings.timezone, jitter=settings.schedule_jitter or None
        )
    except (ValueError, LookupError) as exc:
        raise ConfigError(f"ALLOWLIST_SYNC_SCHEDULE / ALLOWLIST_SYNC_TIMEZONE: {exc}") from None


def job_options(settings: RunSettings) -> dict[str, Any]:
    """One run at a time; missed runs collapse into one, and are skipped past the grace time."""
    return {
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": settings.misfire_grace_time,
    }


def create_scheduler(settings: RunSettings) -> BackgroundScheduler:
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
    settings: RunSettings,
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
