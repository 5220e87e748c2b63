"""Serve-mode scheduling: the trigger, misfires, coalescing, one run at a time, retries, probes.

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
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.config import RunSettings, Settings, load_settings
from allowlist_sync.errors import (
    AllowlistSyncError,
    ApiError,
    ConfigError,
    ExitCode,
    UnsafePlanError,
)
from allowlist_sync.outcome import FleetOutcome, Outcome
from allowlist_sync.reporting.report import ReportTarget
from allowlist_sync.serve.crontab import cron_trigger, job_options, translate_day_of_week
from allowlist_sync.serve.scheduler import JOB_ID, SyncService, build_trigger, retry_delay

TOKEN = "dbtc_unit_test_token_123"
MONDAY = datetime(2025, 10, 27, 12, 0, tzinfo=UTC)  # a Monday: Microsoft's usual publication day


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.delenv(name)
    # The run state lives in the cache folder: one per test, never the user's own.
    monkeypatch.setenv("ALLOWLIST_SYNC_CACHE_DIR", str(tmp_path / "cache"))


def make_settings(**overrides: Any) -> Settings:
    return load_settings(account_id=1, token=TOKEN, health_port=0, **overrides)


def one(run: Callable[[], Outcome]) -> Callable[[], FleetOutcome]:
    """The runner of a one-target fleet whose target's run is `run`."""

    def fleet() -> FleetOutcome:
        outcome = run()
        return FleetOutcome(targets=[outcome], dry_run=outcome.dry_run)

    return fleet


def service_of(settings: Settings, *, run: Callable[[], Outcome], **options: Any) -> SyncService:
    """A SyncService of the environment's one target, whose runs are `run`."""
    return SyncService(settings, run=one(run), **options)


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


def gauge(service: SyncService, name: str) -> float | None:
    """The value of an unlabelled sample on the service's /metrics, or None."""
    for family in text_string_to_metric_families(service.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def skipped(service: SyncService, reason: str) -> float:
    text = service.metrics.exposition().decode()
    line = f'allowlist_sync_runs_skipped_total{{reason="{reason}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


# ----------------------------------------------------------------- the trigger


def test_default_schedule_is_daily_0600_utc() -> None:
    """The default schedule fires every day at 06:00 UTC, so no failed day waits a week."""
    trigger = build_trigger(make_settings())
    assert trigger.get_next_fire_time(None, MONDAY) == datetime(2025, 10, 28, 6, 0, tzinfo=UTC)
    after = datetime(2025, 10, 28, 6, 0, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, after) == datetime(2025, 10, 29, 6, 0, tzinfo=UTC)


def test_weekly_is_one_setting_away() -> None:
    """`0 6 * * 2` runs on Tuesdays only, as the README shows."""
    trigger = build_trigger(make_settings(schedule="0 6 * * 2"))
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
    service = service_of(settings, run=lambda: calls.append(1) or in_sync())
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
    service = service_of(settings, run=lambda: ran.set() or in_sync())
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
    service = service_of(settings, run=lambda: calls.append(1) or in_sync())
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

    service = service_of(make_settings(schedule=far_schedule()), run=slow_run)
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
    service = service_of(
        make_settings(schedule=far_schedule(), run_on_start=False), run=lambda: results.pop(0)()
    )
    services.append(service)
    service.start()
    crashed = service.execute()
    assert crashed.status == "failed" and "RuntimeError: boom" in str(crashed.error)
    assert service.readiness()[0] is True  # ready means serving; sync health is /status
    assert service.execute().status == "refused"
    assert service.readiness()[0] is True
    assert service.status()["consecutive_failures"] == 2
    assert service.liveness()[0] is True
    text = service.metrics.exposition().decode()
    assert 'allowlist_sync_runs_total{status="failed",target="default"} 1.0' in text
    assert 'allowlist_sync_runs_total{status="refused",target="default"} 1.0' in text
    assert service.execute().status == "in_sync"
    assert service.readiness()[0] is True
    assert service.status()["consecutive_failures"] == 0


def test_stop_abandons_a_stuck_run_after_the_grace_time(services: list[SyncService]) -> None:
    """Shutdown waits `grace` seconds for a run, then abandons it instead of hanging."""
    entered = threading.Event()
    never = threading.Event()

    def stuck() -> Outcome:
        entered.set()
        never.wait(30)
        return in_sync()

    service = service_of(make_settings(schedule=far_schedule()), run=stuck)
    service.start()
    assert entered.wait(5)
    started = time.monotonic()
    service.stop(grace=0.3)
    assert time.monotonic() - started < 2
    assert service.liveness()[0] is False
    never.set()


# ----------------------------------------------------------------- retries of failed runs


def failed(error: AllowlistSyncError | None = None) -> Outcome:
    return Outcome(
        status="failed",
        dry_run=False,
        rule_name="r",
        error=error if error is not None else ApiError("HTTP 503", status_code=503),
    )


class AuthRefusedError(AllowlistSyncError):
    """Stands in for 401/403 (exit 77): not exit 1."""

    exit_code = ExitCode.AUTH
    kind = "auth"


def test_retry_delays_repeat_the_last_one() -> None:
    """The n-th retry waits the n-th delay; past the list, the last one repeats; none when off."""
    delays = (900.0, 3600.0, 14400.0)
    assert [retry_delay(delays, n) for n in range(5)] == [900, 3600, 14400, 14400, 14400]
    assert retry_delay((), 0) is None


def test_a_failed_run_is_retried_after_the_first_delay(services: list[SyncService]) -> None:
    """An exit-1 failure brings the next run forward by 15 minutes; probes and metrics show it."""
    settings = make_settings(schedule=far_schedule(), run_on_start=False)
    service = service_of(settings, run=failed)
    services.append(service)
    service.start()
    scheduled = service.next_run_time()
    before = datetime.now(UTC)
    service.execute()
    retry_at = service.next_retry_time()
    assert retry_at is not None
    assert before + timedelta(minutes=15) <= retry_at <= datetime.now(UTC) + timedelta(minutes=15)
    job = service.scheduler.get_job(JOB_ID)
    assert job is not None and job.next_run_time == retry_at
    assert service.next_run_time() == scheduled  # the schedule itself is unchanged
    status = service.status()
    assert status["next_retry"] == retry_at.isoformat()
    assert status["next_run"] == scheduled.isoformat() if scheduled else False
    assert status["last_run"]["exit_code"] == 1
    assert status["last_run"]["error"] == {"kind": "api", "message": "HTTP 503"}
    assert gauge(service, "allowlist_sync_next_retry_timestamp_seconds") == retry_at.timestamp()


def test_retries_follow_the_sequence_until_one_succeeds(services: list[SyncService]) -> None:
    """Retries wait 15m, 1h, 4h, 4h; a success clears the pending retry."""
    results = [failed, failed, failed, failed, in_sync]
    service = service_of(
        make_settings(schedule=far_schedule(), run_on_start=False), run=lambda: results.pop(0)()
    )
    services.append(service)
    service.start()
    delays = []
    for _ in range(4):
        started = datetime.now(UTC)
        service.execute()
        retry_at = service.next_retry_time()
        assert retry_at is not None
        delays.append(round((retry_at - started).total_seconds() / 60))
    assert delays == [15, 60, 240, 240]
    service.execute()
    assert service.next_retry_time() is None
    assert "next_retry_timestamp_seconds" not in service.metrics.exposition().decode()


def test_a_retry_runs_and_converges(services: list[SyncService]) -> None:
    """With a short delay the retry really runs from the scheduler, and its success ends it."""
    results = [failed, in_sync]
    done = threading.Event()

    def run() -> Outcome:
        outcome = results.pop(0)()
        if not results:
            done.set()
        return outcome

    settings = make_settings(schedule=far_schedule(), failed_run_retry=(0.2,))
    service = service_of(settings, run=run)
    services.append(service)
    service.start()  # run on start fails, the retry follows
    assert done.wait(5)
    wait_for(lambda: service.last_run is not None and service.last_run.number == 2)
    assert service.last_run is not None and service.last_run.status == "in_sync"
    assert service.next_retry_time() is None
    next_run = service.next_run_time()
    assert next_run is not None and next_run > datetime.now(UTC) + timedelta(hours=1)


def test_the_next_scheduled_run_takes_over_and_resets_the_sequence(
    services: list[SyncService],
) -> None:
    """No retry is set past the next scheduled run; that run starts the delays from the first."""
    soon = datetime.now(UTC) + timedelta(minutes=30)
    settings = make_settings(schedule=f"{soon.minute} {soon.hour} * * *", run_on_start=False)
    service = service_of(settings, run=failed)
    services.append(service)
    service.start()
    started = datetime.now(UTC)
    service.execute()  # first retry: 15 minutes, before the run in 30 minutes
    first = service.next_retry_time()
    assert first is not None and first - started < timedelta(minutes=16)
    service.execute()  # the retry: the next one (1 h) would come after the scheduled run
    assert service.next_retry_time() is None
    job = service.scheduler.get_job(JOB_ID)
    assert job is not None and job.next_run_time == service.next_run_time()
    service.execute()  # the scheduled run: the sequence starts again at 15 minutes
    again = service.next_retry_time()
    assert again is not None and again - datetime.now(UTC) < timedelta(minutes=16)


@pytest.mark.parametrize(
    "error",
    [
        UnsafePlanError("would remove 80%", guard="max_delete", details={}),
        ConfigError("ALLOWLIST_SYNC_X: bad"),
        AuthRefusedError("GET /rules: 401 token refused"),
    ],
    ids=["refused-3", "config-78", "auth"],
)
def test_failures_a_person_must_fix_are_not_retried(
    services: list[SyncService], error: AllowlistSyncError
) -> None:
    """Exit codes other than 1 (refused, configuration, token refused) wait for the schedule."""
    status = "refused" if error.exit_code == ExitCode.REFUSED else "failed"
    outcome = Outcome(status=status, dry_run=False, error=error)  # type: ignore[arg-type]
    service = service_of(
        make_settings(schedule=far_schedule(), run_on_start=False), run=lambda: outcome
    )
    services.append(service)
    service.start()
    assert service.execute().exit_code() != ExitCode.FAILED
    assert service.next_retry_time() is None
    assert service.status()["next_retry"] is None


def test_retries_can_be_turned_off(services: list[SyncService]) -> None:
    """ALLOWLIST_SYNC_FAILED_RUN_RETRY=off leaves a failed run to the schedule."""
    settings = make_settings(schedule=far_schedule(), run_on_start=False, failed_run_retry="off")
    service = service_of(settings, run=failed)
    services.append(service)
    service.start()
    service.execute()
    assert service.next_retry_time() is None


# ----------------------------------------------------------------- probes


def test_readiness_stays_ok_after_a_failed_run(services: list[SyncService]) -> None:
    """A failed sync is not a reason to take the pod out: /readyz answers ready."""
    service = service_of(make_settings(schedule=far_schedule(), run_on_start=False), run=failed)
    services.append(service)
    service.start()
    service.execute()
    ready, details = service.readiness()
    assert ready is True
    assert details["last_run"]["status"] == "failed"


def test_status_reports_the_feed_and_the_last_success(services: list[SyncService]) -> None:
    """/status carries the feed's date and kind from the last run that read one, and the success."""
    source = SourceInfo(kind="cache", location="x", change_number=9, file_date="20251027")
    results = [
        lambda: Outcome(status="in_sync", dry_run=False, source=source),
        failed,
    ]
    service = service_of(
        make_settings(schedule=far_schedule(), run_on_start=False), run=lambda: results.pop(0)()
    )
    services.append(service)
    service.start()
    assert service.status()["last_success"] is None
    service.execute()
    service.execute()
    status = service.status()
    assert status["feed"] == {
        "file_date": "20251027",
        "change_number": 9,
        "kind": "cache",
        "cache_used": True,
    }
    assert status["last_success"] is not None
    assert status["last_run"]["status"] == "failed"
    assert status["consecutive_failures"] == 1


def test_liveness_fails_when_a_run_is_stuck_past_its_deadline(
    services: list[SyncService],
) -> None:
    """A run going on longer than the run timeout plus the margin makes /livez fail."""
    entered = threading.Event()
    release = threading.Event()

    def stuck() -> Outcome:
        entered.set()
        release.wait(10)
        return in_sync()

    settings = make_settings(schedule=far_schedule(), run_timeout=0.2)
    service = service_of(settings, run=stuck, stuck_margin=0.0)
    services.append(service)
    service.start()
    assert entered.wait(5)
    wait_for(lambda: service.liveness()[0] is False)
    assert "ALLOWLIST_SYNC_RUN_TIMEOUT" in service.liveness()[1]["stuck"]
    release.set()
    wait_for(lambda: service.liveness()[0] is True)


def test_a_long_run_within_its_deadline_is_alive(services: list[SyncService]) -> None:
    """A run in progress within the run timeout plus margin keeps /livez at 200."""
    entered = threading.Event()
    release = threading.Event()

    def slow() -> Outcome:
        entered.set()
        release.wait(10)
        return in_sync()

    service = service_of(make_settings(schedule=far_schedule()), run=slow)
    services.append(service)
    service.start()
    assert entered.wait(5)
    alive, details = service.liveness()
    assert alive is True and "run_in_progress_seconds" in details
    release.set()


def test_a_missed_retry_gives_way_to_the_schedule(services: list[SyncService]) -> None:
    """A retry later than the grace time is skipped as missed and no longer shown as pending."""
    settings = make_settings(schedule=far_schedule(), run_on_start=False, misfire_grace_time=60)
    service = service_of(settings, run=failed)
    services.append(service)
    service.start()
    service.execute()
    assert service.next_retry_time() is not None
    service.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC) - timedelta(hours=2))
    wait_for(lambda: skipped(service, "missed") == 1)
    assert service.next_retry_time() is None
    next_run = service.next_run_time()
    assert next_run is not None and next_run > datetime.now(UTC) + timedelta(hours=1)


# ----------------------------------------------------------------- several targets

FLEET_TARGETS = [ReportTarget("prod-us", 1, "r"), ReportTarget("prod-eu", 2, "r")]


def fleet_of(*outcomes: Outcome) -> FleetOutcome:
    """A run of prod-us and prod-eu ending in these outcomes, in that order."""
    for outcome, target in zip(outcomes, FLEET_TARGETS, strict=True):
        outcome.target, outcome.account_id = target.name, target.account_id
    return FleetOutcome(targets=list(outcomes), dry_run=False)


def fleet_service(tmp_path: Path, run: Callable[[], FleetOutcome]) -> SyncService:
    """A SyncService over the two targets, configured as a config-file run would be."""
    settings = RunSettings(
        health_port=0, schedule=far_schedule(), run_on_start=False, cache_dir=tmp_path
    )
    return SyncService(settings, run=run, targets=FLEET_TARGETS)


@pytest.mark.parametrize(
    ("second", "retried"),
    [
        (lambda: failed(), True),
        (lambda: failed(AuthRefusedError("401")), False),
        (lambda: Outcome(status="in_sync", dry_run=False), False),
    ],
    ids=["exit-1", "exit-77", "ok"],
)
def test_the_fleet_s_exit_code_decides_the_retry(
    services: list[SyncService],
    tmp_path: Path,
    second: Callable[[], Outcome],
    retried: bool,
) -> None:
    """One target's passing failure retries the fleet; a failure a person must fix does not."""
    service = fleet_service(tmp_path, lambda: fleet_of(in_sync(), second()))
    services.append(service)
    service.start()
    service.execute()
    assert (service.next_retry_time() is not None) is retried


def test_a_passing_failure_beside_a_refused_token_still_retries(
    services: list[SyncService], tmp_path: Path
) -> None:
    """Exit 1 outranks 77 in a fleet, so a target that a retry can fix is retried."""
    service = fleet_service(tmp_path, lambda: fleet_of(failed(AuthRefusedError("401")), failed()))
    services.append(service)
    service.start()
    assert service.execute().exit_code() == ExitCode.FAILED
    assert service.next_retry_time() is not None


def test_status_lists_each_target(services: list[SyncService], tmp_path: Path) -> None:
    """/status shows the fleet's status and, per target, its status, exit code and error."""
    source = SourceInfo(kind="url", location="x", change_number=9, file_date="20251027")
    service = fleet_service(
        tmp_path,
        lambda: fleet_of(
            Outcome(status="in_sync", dry_run=False, source=source),
            failed(AuthRefusedError("GET /rules: 401 token refused")),
        ),
    )
    services.append(service)
    service.start()
    names = [t["target"] for t in service.status()["targets"]]
    assert names == ["prod-us", "prod-eu"]  # known before the first run
    service.execute()
    status = service.status()
    last = status["last_run"]
    assert (last["status"], last["exit_code"]) == ("failed", 77)
    assert last["error"] == {"kind": "auth", "message": "GET /rules: 401 token refused"}
    assert last["targets"] == [
        {
            "target": "prod-us",
            "account_id": 1,
            "status": "in_sync",
            "exit_code": 0,
            "error": None,
        },
        {
            "target": "prod-eu",
            "account_id": 2,
            "status": "failed",
            "exit_code": 77,
            "error": {"kind": "auth", "message": "GET /rules: 401 token refused"},
        },
    ]
    us, eu = status["targets"]
    assert us["last_success"] is not None and us["consecutive_failures"] == 0
    assert us["feed"]["file_date"] == "20251027"
    assert eu["last_success"] is None and eu["consecutive_failures"] == 1 and eu["feed"] is None
    # The fleet's own numbers are its worst target's: no success for prod-eu yet.
    assert status["last_success"] is None and status["consecutive_failures"] == 1
    ready, details = service.readiness()
    assert ready and details["last_run"]["targets"][1]["exit_code"] == 77


def test_a_crashed_fleet_run_fails_every_target(
    services: list[SyncService], tmp_path: Path
) -> None:
    """A runner that raises counts as a failed run of each configured target, and is retried."""

    def crash() -> FleetOutcome:
        raise RuntimeError("boom")

    service = fleet_service(tmp_path, crash)
    services.append(service)
    service.start()
    fleet = service.execute()
    assert fleet.exit_code() == ExitCode.FAILED and fleet.targets == []
    assert [t["consecutive_failures"] for t in service.status()["targets"]] == [1, 1]
    assert service.next_retry_time() is not None
