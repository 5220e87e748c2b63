"""Feed freshness through the fake Download Center: old files warn, too old files stop the run.

Dates are relative to today, as discovery sees them. A feed over 8 days old is a warning in the
run's `warnings` and a `feed_stale` event; over ALLOWLIST_SYNC_MAX_FEED_AGE (14 days) the run
fails with exit 1 before the dbt API is called, whichever way the file was found. Only an
explicit --source-file is used whatever its age.
"""

from __future__ import annotations

import email.utils
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from allowlist_sync.azure.cache import FeedCache
from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.outcome import Outcome
from allowlist_sync.sync import RunOptions, run_once
from tests.cli import cli_env, log_events, run_cli
from tests.emulated import emulator_settings
from tests.fakes.download_center import DownloadCenter, day, feed_body

BODY = feed_body()


@pytest.fixture
def center() -> Iterator[DownloadCenter]:
    """The fake Download Center on a free loopback port."""
    with DownloadCenter() as fake:
        yield fake


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """The cache folder of the test's runs."""
    return tmp_path / "cache"


@pytest.fixture
def settings_for(
    emulator: EmulatorServer,
    center: DownloadCenter,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """In-process settings: the emulator as target, the fake as Microsoft, one attempt."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "retry_attempts": 1,
            "azure_details_url": center.details_url,
            "azure_download_base": center.download_base,
            "cache_dir": cache_dir,
        }
        return emulator_settings(emulator, monkeypatch, **(values | overrides))

    return make


def run(settings: Settings, **options: Any) -> tuple[Outcome, list[dict[str, Any]]]:
    """A real (non-dry) run in-process, with its log events."""
    with capture_logs() as logs:
        outcome = run_once(settings, RunOptions(**options))
    return outcome, logs


def untouched(store: EmulatorStore) -> bool:
    """The emulator received no request at all."""
    return store.requests == [] and store.write_count() == 0


def http_date(days_ago: float) -> str:
    """An HTTP date `days_ago` days before now."""
    return email.utils.format_datetime(datetime.now(UTC) - timedelta(days=days_ago), usegmt=True)


def assert_too_old(outcome: Outcome, store: EmulatorStore, age: int) -> None:
    """The run failed for age (exit 1, feed error naming the setting), target untouched."""
    assert outcome.status == "failed" and int(outcome.exit_code()) == 1
    assert outcome.error is not None and outcome.error.kind == "feed"
    assert f", {age}." in str(outcome.error) or f", {age} days" in str(outcome.error)
    assert "over ALLOWLIST_SYNC_MAX_FEED_AGE (14 days)" in str(outcome.error)
    assert untouched(store)


# ---------------------------------------------------------------- the details page


def test_fresh_file_from_the_details_page_has_no_warning(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """A file of three days ago is applied with no warning and its publication time exposed."""
    center.files = {day(3): BODY}
    outcome, _ = run(settings_for())
    assert outcome.status == "applied" and outcome.warnings == []
    assert outcome.source is not None and outcome.source.file_date == day(3)
    published = datetime.strptime(day(3), "%Y%m%d").replace(tzinfo=UTC)
    assert outcome.source.published == published
    assert outcome.to_json()["source"]["published"] == published.isoformat()


def test_stale_file_from_the_details_page_warns_in_json_and_logs(
    emulator: EmulatorServer, center: DownloadCenter, cache_dir: Path
) -> None:
    """A file 10 days old is used, with a warning in the JSON output and a feed_stale event."""
    center.files = {day(10): BODY}
    env = {**center.env(), "ALLOWLIST_SYNC_CACHE_DIR": str(cache_dir)}
    result = run_cli("sync", "--dry-run", "--output", "json", env=cli_env(emulator, **env))
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "changes_pending"
    assert [w for w in out["warnings"] if "days ago, more than 8 days" in w]
    event = next(e for e in log_events(result.stderr) if e["event"] == "feed_stale")
    assert event["level"] == "warning" and event["kind"] == "details_page"
    assert 10 <= event["age_days"] < 11 and event["max_age_days"] == 14


def test_too_old_file_from_the_details_page_fails_before_the_target(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """A details page linking a file 20 days old fails the run: exit 1, nothing written."""
    center.files = {day(20): BODY}
    outcome, _ = run(settings_for())
    assert_too_old(outcome, store, 20)
    assert str(outcome.error).startswith(center.file_url(day(20)))


def test_four_month_old_link_fails_even_with_a_newer_cache(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any, cache_dir: Path
) -> None:
    """A page linking a file four months old never replaces the cache and never applies."""
    stored = FeedCache(cache_dir).store(
        cloud="Public",
        url=center.file_url(day(20)),
        file_date=day(20),
        body=feed_body(change_number=400),
        fetched_at=datetime.now(UTC) - timedelta(days=19),
    )
    assert stored is not None
    center.files = {day(120): feed_body(change_number=300)}
    outcome, _ = run(settings_for())
    assert_too_old(outcome, store, 20)  # the cached copy (newer, but 20 days old) is judged
    entry = FeedCache(cache_dir).load("Public")
    assert entry is not None and entry.file_date == day(20)


# ---------------------------------------------------------------- the date probe


def test_stale_file_from_the_date_probe_warns(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """With the page down, a probed file 9 days old is applied with a warning."""
    center.page_status = 500
    center.files = {day(9): BODY}
    outcome, logs = run(settings_for())
    assert outcome.status == "applied" and store.write_count() == 1
    assert outcome.source is not None and outcome.source.kind == "date_probe"
    assert len(outcome.warnings) == 1 and "days ago" in outcome.warnings[0]
    assert any(e["event"] == "feed_stale" for e in logs)


def test_too_old_file_from_the_date_probe_fails(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """A probe window of 30 days finding only a file 20 days old fails the run."""
    center.page_status = 404
    center.files = {day(20): BODY}
    outcome, _ = run(settings_for(probe_days=30))
    assert_too_old(outcome, store, 20)


def test_maximum_age_setting_is_honoured(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """With ALLOWLIST_SYNC_MAX_FEED_AGE=30 a file 20 days old is applied, with a warning."""
    center.files = {day(20): BODY}
    outcome, _ = run(settings_for(max_feed_age_days=30))
    assert outcome.status == "applied" and store.write_count() == 1
    assert any("(30 days)" in w for w in outcome.warnings)


# ---------------------------------------------------------------- a source URL


@pytest.mark.parametrize(("age", "warned"), [(2, False), (10, True)])
def test_source_url_dated_by_last_modified_passes(
    age: int, warned: bool, center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """A mirror URL without a date in its name is dated by Last-Modified; 10 days warns."""
    center.mirror = {"latest.json": (BODY, http_date(age))}
    outcome, _ = run(settings_for(source_url=center.mirror_url("latest.json")))
    assert outcome.status == "applied"
    assert outcome.source is not None and outcome.source.file_date is None
    assert outcome.source.published is not None
    assert (datetime.now(UTC) - outcome.source.published).days == age
    assert bool(outcome.warnings) is warned


def test_source_url_too_old_by_last_modified_fails(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """A source URL whose Last-Modified is 20 days ago fails the run: exit 1, nothing written."""
    center.mirror = {"latest.json": (BODY, http_date(20))}
    outcome, _ = run(settings_for(source_url=center.mirror_url("latest.json")))
    assert_too_old(outcome, store, 20)


def test_source_url_flag_too_old_by_its_name_fails(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """--source-url naming a file dated 30 days ago fails, whatever its Last-Modified says."""
    center.files = {day(30): BODY}
    center.conditional = False  # no Last-Modified at all: the name alone dates it
    outcome, _ = run(settings_for(), source_url=center.file_url(day(30)))
    assert_too_old(outcome, store, 30)


def test_source_url_without_any_date_is_not_judged(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any
) -> None:
    """A source URL with neither a dated name nor Last-Modified is used (age unknown, logged)."""
    center.mirror = {"latest.json": (BODY, None)}
    outcome, logs = run(settings_for(source_url=center.mirror_url("latest.json")))
    assert outcome.status == "applied" and outcome.warnings == []
    assert outcome.source is not None and outcome.source.published is None
    assert any(e["event"] == "feed_age_unknown" for e in logs)


# ---------------------------------------------------------------- the cached fallback


def seed_cache(cache_dir: Path, center: DownloadCenter, age_days: int) -> None:
    """A cached copy of the file published `age_days` ago, downloaded that day."""
    stored = FeedCache(cache_dir).store(
        cloud="Public",
        url=center.file_url(day(age_days)),
        file_date=day(age_days),
        body=BODY,
        fetched_at=datetime.now(UTC) - timedelta(days=age_days),
    )
    assert stored is not None


def test_young_cached_fallback_is_never_a_plain_success(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any, cache_dir: Path
) -> None:
    """Microsoft down and a cache 3 days old: applied, kind cache, a warning with its age."""
    seed_cache(cache_dir, center, 3)
    center.outage_status = 503
    outcome, _ = run(settings_for())
    assert outcome.status == "applied"
    assert outcome.source is not None and outcome.source.kind == "cache"
    assert len(outcome.warnings) == 1
    assert "cached copy" in outcome.warnings[0] and " 3." in outcome.warnings[0]
    assert "days old" in outcome.warnings[0]


def test_too_old_cached_fallback_fails(
    center: DownloadCenter, store: EmulatorStore, settings_for: Any, cache_dir: Path
) -> None:
    """Microsoft down and a cache 15 days old: exit 1, nothing written."""
    seed_cache(cache_dir, center, 15)
    center.stop()
    outcome, _ = run(settings_for())
    assert outcome.status == "failed" and int(outcome.exit_code()) == 1
    assert "over ALLOWLIST_SYNC_MAX_FEED_AGE (14 days)" in str(outcome.error)
    assert untouched(store)


def test_not_modified_keeps_the_cache_young(
    center: DownloadCenter, settings_for: Any, cache_dir: Path
) -> None:
    """A 304 on the unchanged file refreshes the cache's fetchedAt and ETag."""
    center.files = {day(3): BODY}
    stale = datetime.now(UTC) - timedelta(days=2)
    stored = FeedCache(cache_dir).store(
        cloud="Public",
        url=center.file_url(day(3)),
        file_date=day(3),
        body=BODY,
        fetched_at=stale,
        etag=f'"{hashlib.sha256(BODY).hexdigest()[:16]}"',
    )
    assert stored is not None
    outcome, _ = run(settings_for(), dry_run=True)
    assert outcome.source is not None and outcome.source.not_modified
    assert [r.status for r in center.file_requests()] == [304]
    entry = FeedCache(cache_dir).load("Public")
    assert entry is not None and entry.fetched_at > stale + timedelta(days=1)
    assert entry.last_modified is not None and entry.last_modified.endswith("GMT")


# ---------------------------------------------------------------- an explicit file


def test_explicit_source_file_only_warns_for_age(
    tmp_path: Path, store: EmulatorStore, settings_for: Any
) -> None:
    """--source-file dated 60 days ago is applied with a warning, never failed for age."""
    path = tmp_path / f"ServiceTags_Public_{day(60)}.json"
    path.write_bytes(BODY)
    outcome, logs = run(settings_for(), source_file=str(path))
    assert outcome.status == "applied" and store.write_count() == 1
    assert (
        len(outcome.warnings) == 1
        and "--source-file is used whatever its age" in (outcome.warnings[0])
    )
    assert any(e["event"] == "feed_stale" for e in logs)
