"""Serve-mode scheduling: the trigger, misfires, coalescing and one run at a time.

No test waits for a schedule: fire times are computed from fixed datetimes, and runs are made
due by moving the job's next run time into the past (or to now), which APScheduler processes
at once.
"""

from __future__ import annotations

import os
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allowlist_sync.config import Settings, load_settings
from allowlist_sync.crontab import cron_trigger, translate_day_of_week
from allowlist_sync.errors import ConfigError, ExitCode
from allowlist_sync.outcome import Outcome
from allowlist_sync.scheduler import JOB_ID, SyncService, build_trigger, job_options

TOKEN = "dbtc_unit_test_token_123"
MONDAY = datetime(2025, 10, 27, 12, 0, tzinfo=UTC)  # a Monday: Microsoft's usual publication day


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.delenv(name)


def make_settings(**overrides: Any) -> Settings:
    return load_settings(account_id=1, token=TOKEN, health_port=0, **overrides)


def far_schedule() -> str:
    """A daily schedule about 12 hours away from now, so it never fires during a test."""
    now = datetime.now(UTC)
    return f"{(now.minute + 30) % 60} {(now.hour + 12) % 24} * * *"


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def services() -> Iterator[list[SyncService]]:
    """Services a test started; stopped (abandoning any stuck run) at the end."""
    started: list[SyncService] = []
    yield started
    for service in started:
        service.stop(grace=0)


def in_sync() -> Outcome:
    return Outcome(status="in_sync", dry_run=False, rule_name="r")


def skipped(service: SyncService, reason: str) -> float:
    text = service.metrics.exposition().decode()
    line = f'allowlist_sync_runs_skipped_total{{reason="{reason}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


# ----------------------------------------------------------------- the trigger


def test_default_schedule_is_tuesday_0600_utc() -> None:
    """The default schedule fires next on Tuesday 06:00 UTC, the day after Monday's publication."""
    trigger = build_trigger(make_settings())
    assert trigger.get_next_fire_time(None, MONDAY) == datetime(2025, 10, 28, 6, 0, tzinfo=UTC)
    after = datetime(2025, 10, 28, 6, 0, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, after) == datetime(2025, 11, 4, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "expected_day"),
    [
        ("0 6 * * 2", 28),  # Tuesday, not APScheduler's Wednesday
        ("0 6 * * 0", 2),  # Sunday
        ("0 6 * * 7", 2),  # Sunday again
        ("0 6 * * 1-5", 28),  # Monday 06:00 has passed at noon: Tuesday
        ("0 6 * * 5-7", 31),  # Friday to Sunday
        ("0 6 * * sat,sun", 1),
        ("0 6 * * */2", 28),  # 0,2,4,6: Sunday, Tuesday, Thursday, Saturday
        ("@weekly", 2),  # Sunday 00:00
    ],
)
def test_crontab_weekdays_mean_what_cron_means(expr: str, expected_day: int) -> None:
    """Day-of-week numbers and names follow crontab (0 and 7 are Sunday), not APScheduler 3."""
    when = cron_trigger(expr, "UTC").get_next_fire_time(None, MONDAY)
    assert when is not None and when.day == expected_day


def test_day_of_week_translation() -> None:
    """Crontab day-of-week fields become APScheduler day names."""
    assert translate_day_of_week("2") == "tue"
    assert translate_day_of_week("0,6") == "sat,sun"
    assert translate_day_of_week("1-5") == "mon,tue,wed,thu,fri"
    assert translate_day_of_week("1-7") == "*"
    assert translate_day_of_week("*") == "*"


def test_timezone_applies_to_the_schedule() -> None:
    """In Europe/Amsterdam (UTC+1 in late October), 06:00 is 05:00 UTC."""
    trigger = build_trigger(make_settings(timezone="Europe/Amsterdam"))
    when = trigger.get_next_fire_time(None, MONDAY)
    assert when is not None
    assert when.astimezone(UTC) == datetime(2025, 10, 28, 5, 0, tzinfo=UTC)


def test_zones_resolve_without_a_system_tz_database() -> None:
    """With no system tz database (slim images) UTC and named zones still resolve (tzdata)."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        assert build_trigger(make_settings()).get_next_fire_time(None, MONDAY).day == 28
        amsterdam = build_trigger(make_settings(timezone="Europe/Amsterdam"))
        assert amsterdam.get_next_fire_time(None, MONDAY).utcoffset() == timedelta(hours=1)
        with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
            make_settings(timezone="Mars/Olympus")
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


def test_jitter_stays_within_its_window() -> None:
    """With 600 s of jitter, every fire time falls in 06:00-06:10."""
    trigger = build_trigger(make_settings(schedule_jitter=600))
    base = datetime(2025, 10, 28, 6, 0, tzinfo=UTC)
    for _ in range(20):
        when = trigger.get_next_fire_time(None, MONDAY)
        assert base <= when <= base + timedelta(seconds=600)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"schedule": "0 6 * *"}, "ALLOWLIST_SYNC_SCHEDULE"),
        ({"schedule": "61 6 * * 2"}, "ALLOWLIST_SYNC_SCHEDULE"),
        ({"schedule": "0 6 * * 8"}, "ALLOWLIST_SYNC_SCHEDULE"),
        ({"schedule": "0 6 * * 5-1"}, "ALLOWLIST_SYNC_SCHEDULE"),
        ({"schedule": "every tuesday"}, "ALLOWLIST_SYNC_SCHEDULE"),
        ({"timezone": "Mars/Olympus_Mons"}, "ALLOWLIST_SYNC_TIMEZONE"),
    ],
)
def test_invalid_schedule_is_a_configuration_error(
    overrides: dict[str, str], variable: str
) -> None:
    """A bad schedule or time zone is a ConfigError (exit 78) naming the variable."""
    with pytest.raises(ConfigError, match=variable) as info:
        make_settings(**overrides)
    assert info.value.exit_code == ExitCode.CONFIG


def test_job_options_allow_one_run_at_a_time() -> None:
    """The job runs one instance at a time, coalesces missed runs, and has a grace time."""
    assert job_options(make_settings(misfire_grace_time=90)) == {
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": 90,
    }


# ----------------------------------------------------------------- the scheduler


def test_run_later_than_the_grace_time_is_missed(services: list[SyncService]) -> None:
    """A run due two hours ago, with a 60 s grace time, is skipped and counted, not run."""
    calls: list[int] = []
    settings = make_settings(schedule=far_schedule(), run_on_start=False, misfire_grace_time=60)
    service = SyncService(settings, run=lambda: calls.append(1) or in_sync())
    services.append(service)
    service.start()
    service.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC) - timedelta(hours=2))
    wait_for(lambda: skipped(service, "missed") == 1)
    assert calls == []
    next_run = service.next_run_time()
    assert next_run is not None and next_run > datetime.now(UTC)


def test_run_late_within_the_grace_time_still_runs(services: list[SyncService]) -> None:
    """A run due ten seconds ago, within the grace time, runs."""
    ran = threading.Event()
    settings = make_settings(schedule=far_schedule(), run_on_start=False, misfire_grace_time=60)
    service = SyncService(settings, run=lambda: ran.set() or in_sync())
    services.append(service)
    service.start()
    service.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC) - timedelta(seconds=10))
    assert ran.wait(5)
    assert skipped(service, "missed") == 0


def test_many_missed_runs_coalesce_into_one(services: list[SyncService]) -> None:
    """Sixty missed minute-by-minute runs within the grace time become a single run."""
    calls: list[int] = []
    hour = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    settings = make_settings(
        schedule=f"* {hour.hour} * * *", run_on_start=False, misfire_grace_time=4 * 3600
    )
    service = SyncService(settings, run=lambda: calls.append(1) or in_sync())
    services.append(service)
    service.start()
    service.scheduler.modify_job(JOB_ID, next_run_time=hour)
    wait_for(lambda: service.last_run is not None)
    time.sleep(0.3)  # room for any further (wrong) run to start
    assert calls == [1]


def test_no_overlapping_runs(services: list[SyncService]) -> None:
    """While a run is going, another trigger is skipped and counted, not started beside it."""
    entered = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def slow_run() -> Outcome:
        calls.append(1)
        entered.set()
        release.wait(10)
        return in_sync()

    service = SyncService(make_settings(schedule=far_schedule()), run=slow_run)
    services.append(service)
    service.start()  # run on start
    assert entered.wait(5)
    ready, details = service.readiness()
    assert ready and details["run_in_progress"] is True and details["last_run"] is None
    service.request_run()
    wait_for(lambda: skipped(service, "overlap") == 1)
    release.set()
    wait_for(lambda: service.last_run is not None)
    assert calls == [1]


def test_failures_are_counted_and_never_stop_the_scheduler(services: list[SyncService]) -> None:
    """A crashing run and a failed run are failures; the scheduler lives on and recovers."""
    results: list[Callable[[], Outcome]] = [
        lambda: (_ for _ in ()).throw(RuntimeError("boom")),
        lambda: Outcome(status="refused", dry_run=False),
        in_sync,
    ]
    service = SyncService(
        make_settings(schedule=far_schedule(), run_on_start=False), run=lambda: results.pop(0)()
    )
    services.append(service)
    service.start()
    crashed = service.execute()
    assert crashed.status == "failed" and "RuntimeError: boom" in str(crashed.error)
    assert service.readiness()[0] is False
    assert service.execute().status == "refused"
    assert service.readiness()[0] is False
    assert service.liveness()[0] is True
    text = service.metrics.exposition().decode()
    assert 'allowlist_sync_runs_total{status="failed"} 1.0' in text
    assert 'allowlist_sync_runs_total{status="refused"} 1.0' in text
    assert service.execute().status == "in_sync"
    assert service.readiness()[0] is True


def test_stop_abandons_a_stuck_run_after_the_grace_time(services: list[SyncService]) -> None:
    """Shutdown waits `grace` seconds for a run, then abandons it instead of hanging."""
    entered = threading.Event()
    never = threading.Event()

    def stuck() -> Outcome:
        entered.set()
        never.wait(30)
        return in_sync()

    service = SyncService(make_settings(schedule=far_schedule()), run=stuck)
    service.start()
    assert entered.wait(5)
    started = time.monotonic()
    service.stop(grace=0.3)
    assert time.monotonic() - started < 2
    assert service.liveness()[0] is False
    never.set()
