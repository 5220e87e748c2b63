"""Discovery against a fake Download Center on loopback, with the dbt emulator as the target.

Most tests run the real CLI as a process (`sync --output json`, no source flags) with the fake's
URLs in the environment; the content checks run `run_once` in-process against the same servers.
Each asserts the exit code, the message, and what the emulator received.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from allowlist_sync.azure.cache import FeedCache
from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.sync import RunOptions, run_once
from tests.cli import CliResult, cli_env, log_events, run_cli
from tests.emulated import emulator_settings
from tests.fakes.download_center import HTML_PAGE, DownloadCenter, day, feed_body, tag_prefixes

BODY = feed_body()


@pytest.fixture
def center() -> Iterator[DownloadCenter]:
    """The fake Download Center, running on a free loopback port."""
    with DownloadCenter() as fake:
        yield fake


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """The cache folder every run of a test shares."""
    return tmp_path / "cache"


def sync(
    emulator: EmulatorServer,
    center: DownloadCenter,
    cache_dir: Path,
    *args: str,
    dry_run: bool = True,
    **env: str,
) -> CliResult:
    """`allowlist-sync sync --output json [--dry-run]` with no source flags: discovery."""
    argv = ["sync", "--output", "json", *(["--dry-run"] if dry_run else []), *args]
    extra = {**center.env(), "ALLOWLIST_SYNC_CACHE_DIR": str(cache_dir), **env}
    return run_cli(*argv, env=cli_env(emulator, **extra))


def seed_cache(cache_dir: Path, center: DownloadCenter, age_days: int) -> str:
    """A cached copy of the file published `age_days` ago, downloaded that day; its date."""
    file_date = day(age_days)
    stored = FeedCache(cache_dir).store(
        cloud="Public",
        url=center.file_url(file_date),
        file_date=file_date,
        body=BODY,
        fetched_at=datetime.now(UTC) - timedelta(days=age_days),
        etag='"old"',
    )
    assert stored is not None
    return file_date


def events(result: CliResult) -> dict[str, dict[str, Any]]:
    """The process's log events by name (the last of each name)."""
    return {e["event"]: e for e in log_events(result.stderr)}


def untouched(store: EmulatorStore) -> bool:
    """The emulator received no request at all: the run stopped before the target."""
    return store.requests == [] and store.write_count() == 0


# ---------------------------------------------------------------- finding the file


def test_link_on_the_details_page_is_found(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter, cache_dir: Path
) -> None:
    """With no source flags a dry run finds the file linked from the details page."""
    newest = day(3)
    center.files = {newest: BODY}
    result = sync(emulator, center, cache_dir)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "changes_pending" and out["add"]
    assert out["source"] | {"fetchedAt": None} == {
        "kind": "details_page",
        "url": center.file_url(newest),
        "cloud": "Public",
        "changeNumber": 375,
        "fileDate": newest,
        "published": f"{newest[:4]}-{newest[4:6]}-{newest[6:]}T00:00:00+00:00",
        "fetchedAt": None,
        "notModified": False,
    }
    assert out["source"]["fetchedAt"]
    assert store.write_count() == 0
    logged = events(result)
    assert logged["details_page_link"]["url"] == center.file_url(newest)
    assert logged["cache_stored"]["file_date"] == newest
    assert FeedCache(cache_dir).load("Public") is not None


def test_text_plan_names_the_discovered_source(
    emulator: EmulatorServer, center: DownloadCenter, cache_dir: Path
) -> None:
    """The text plan of a discovery run says where the file was found."""
    center.files = {day(1): BODY}
    argv = ("sync", "--dry-run")
    env = {**center.env(), "ALLOWLIST_SYNC_CACHE_DIR": str(cache_dir)}
    result = run_cli(*argv, env=cli_env(emulator, **env))
    assert result.code == 0, result.stderr
    assert f"Source: details_page {center.file_url(day(1))} (cloud Public" in result.stdout


def test_several_links_newest_wins(
    emulator: EmulatorServer, center: DownloadCenter, cache_dir: Path
) -> None:
    """When the page links several files, the newest date is taken whatever the page order."""
    center.files = {day(17): BODY, day(10): BODY, day(3): BODY}
    center.link_dates = [day(10), day(3), day(17)]
    result = sync(emulator, center, cache_dir)
    assert result.code == 0, result.stderr
    assert result.json()["source"]["fileDate"] == day(3)
    assert [r.path.rsplit("_", 1)[1] for r in center.file_requests()] == [f"{day(3)}.json"]
    assert events(result)["details_page_link"]["links"] == 3


def test_page_blocked_unless_a_browser_user_agent_is_sent(
    emulator: EmulatorServer, center: DownloadCenter, cache_dir: Path
) -> None:
    """A site that blocks non-browser clients still serves allowlist-sync, which looks like one."""
    center.files = {day(3): BODY}
    center.require_browser_ua = True
    plain = httpx.get(center.details_url, headers={"User-Agent": "python-httpx"}, trust_env=False)
    assert plain.status_code == 403
    result = sync(emulator, center, cache_dir)
    assert result.code == 0, result.stderr
    assert result.json()["source"]["kind"] == "details_page"
    ours = center.requests[1:]  # after the plain request above
    assert [r.status for r in ours] == [200, 200]
    assert all("Mozilla/5.0" in r.headers["user-agent"] for r in ours)


@pytest.mark.parametrize("page_status", [500, 404])
def test_page_down_then_date_probe_succeeds(
    page_status: int, emulator: EmulatorServer, center: DownloadCenter, cache_dir: Path
) -> None:
    """With the details page down the direct path is probed by date and the newest file used."""
    center.files = {day(2): BODY, day(9): BODY}
    center.page_status = page_status
    result = sync(emulator, center, cache_dir)
    assert result.code == 0, result.stderr
    source = result.json()["source"]
    assert (source["kind"], source["url"], source["fileDate"]) == (
        "date_probe",
        center.file_url(day(2)),
        day(2),
    )
    logged = events(result)
    assert logged["details_page_failed"]["level"] == "warning"
    assert f"HTTP {page_status}" in logged["details_page_failed"]["error"]
    assert logged["date_probe_found"]["misses"] == 2  # today and yesterday: 404


# ---------------------------------------------------------------- Microsoft down: the cache


@pytest.mark.parametrize("outage", ["unreachable", "503"])
def test_everything_down_fresh_cache_is_used_with_a_warning(
    outage: str,
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
    cache_dir: Path,
) -> None:
    """With page and direct path down, a cached copy younger than the maximum age is used."""
    file_date = seed_cache(cache_dir, center, age_days=5)
    if outage == "unreachable":
        center.stop()
    else:
        center.outage_status = 503
    result = sync(emulator, center, cache_dir, ALLOWLIST_SYNC_RETRY_ATTEMPTS="2")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "changes_pending" and store.write_count() == 0
    assert out["source"]["kind"] == "cache" and out["source"]["fileDate"] == file_date
    assert out["source"]["url"] == center.file_url(file_date)
    assert any("cached copy" in w for w in out["warnings"])
    warning = events(result)["using_cached_feed"]
    assert warning["level"] == "warning" and 5 <= warning["age_days"] < 6


def test_everything_down_and_cache_too_old_fails_and_writes_nothing(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter, cache_dir: Path
) -> None:
    """A cached copy older than ALLOWLIST_SYNC_MAX_FEED_AGE is refused: exit 1, target untouched."""
    file_date = seed_cache(cache_dir, center, age_days=20)
    center.stop()
    result = sync(emulator, center, cache_dir, dry_run=False)
    assert result.code == 1
    error = result.json()["error"]
    assert error["kind"] == "feed"
    assert f"dated {file_date}) is 20." in error["message"]
    assert "over ALLOWLIST_SYNC_MAX_FEED_AGE (14 days)" in error["message"]
    assert untouched(store)


def test_everything_down_and_no_cache_fails(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter, cache_dir: Path
) -> None:
    """No file and no cached copy: exit 1 with a message saying both, target untouched."""
    center.page_status = 500
    result = sync(emulator, center, cache_dir, dry_run=False)
    assert result.code == 1
    assert "no usable cached copy" in result.json()["error"]["message"]
    assert untouched(store)


# ---------------------------------------------------------------- broken files fail loudly


def test_html_instead_of_json_fails_naming_the_url(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter, cache_dir: Path
) -> None:
    """An HTML page served as the linked file is an error, even with a fresh cache at hand."""
    seed_cache(cache_dir, center, age_days=7)
    center.files = {day(1): HTML_PAGE}
    result = sync(emulator, center, cache_dir, dry_run=False)
    assert result.code == 1
    message = result.json()["error"]["message"]
    assert message == (
        f"{center.file_url(day(1))}: got an HTML page where a JSON file was expected"
    )
    assert untouched(store)
    cached = FeedCache(cache_dir).load("Public")
    assert cached is not None and cached.file_date == day(7)  # the HTML was not cached


@pytest.fixture
def settings_for(
    emulator: EmulatorServer,
    center: DownloadCenter,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """In-process settings: the emulator as target, the fake as Microsoft, instant retries."""
    return emulator_settings(
        emulator,
        monkeypatch,
        retry_attempts=2,
        azure_details_url=center.details_url,
        azure_download_base=center.download_base,
        cache_dir=cache_dir,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (BODY[: len(BODY) // 2], "not valid JSON"),
        (
            feed_body("AzureGovernment"),
            "is for cloud 'AzureGovernment', but 'Public' is configured",
        ),
        (feed_body(drop_tag=True), "service tag 'AzureActiveDirectory' is not in the file"),
        (feed_body(prefixes=[]), "tag 'AzureActiveDirectory' has an empty address prefix list"),
        (
            feed_body(prefixes=["20.190.128.0/18", "20.190.300.0/24"]),
            "has an invalid address prefix '20.190.300.0/24'",
        ),
    ],
    ids=["truncated-json", "wrong-cloud", "tag-missing", "empty-tag", "invalid-prefix"],
)
def test_broken_file_fails_and_the_target_is_never_touched(
    body: bytes,
    message: str,
    center: DownloadCenter,
    store: EmulatorStore,
    settings_for: Settings,
    cache_dir: Path,
) -> None:
    """A broken newest file stops a real (non-dry) run with exit 1 before any dbt request."""
    seed_cache(cache_dir, center, age_days=7)
    center.files = {day(1): body}
    outcome = run_once(settings_for, RunOptions())
    assert outcome.status == "failed" and int(outcome.exit_code()) == 1
    assert outcome.error is not None and outcome.error.kind == "feed"
    assert str(outcome.error).startswith(f"{center.file_url(day(1))}: ")
    assert message in str(outcome.error)
    assert untouched(store)


def test_broken_file_found_by_probing_fails_too(
    center: DownloadCenter, store: EmulatorStore, settings_for: Settings
) -> None:
    """A truncated file found by the date probe is an error too, not a reason to probe older."""
    center.page_status = 404
    center.files = {day(1): BODY[:1000], day(8): BODY}
    outcome = run_once(settings_for, RunOptions())
    assert int(outcome.exit_code()) == 1 and "not valid JSON" in str(outcome.error)
    assert str(outcome.error).startswith(center.file_url(day(1)))
    assert untouched(store)


# ---------------------------------------------------------------- conditional GET and the cache


def test_not_modified_is_served_from_the_cache(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter, cache_dir: Path
) -> None:
    """The second run asks with If-None-Match, gets 304, and uses the cached copy."""
    center.files = {day(3): BODY}
    first = sync(emulator, center, cache_dir)
    assert first.code == 0, first.stderr
    second = sync(emulator, center, cache_dir)
    assert second.code == 0, second.stderr
    assert [r.status for r in center.file_requests()] == [200, 304]
    etag_request = center.file_requests()[1].headers
    assert etag_request["if-none-match"].startswith('"')
    assert etag_request["if-modified-since"].endswith("GMT")
    source = second.json()["source"]
    assert source["kind"] == "details_page" and source["notModified"] is True
    assert source["changeNumber"] == 375 and source["fileDate"] == day(3)
    assert second.json()["add"] == first.json()["add"]
    assert "feed_not_modified" in events(second)
    assert store.write_count() == 0


def test_changed_file_is_downloaded_again(
    emulator: EmulatorServer, center: DownloadCenter, cache_dir: Path
) -> None:
    """A new file under the cached URL (its ETag changed) is downloaded in full and re-cached."""
    center.files = {day(3): BODY}
    first = sync(emulator, center, cache_dir)
    assert first.code == 0, first.stderr
    center.files = {day(3): feed_body(prefixes=tag_prefixes(BODY)[:-40])}
    result = sync(emulator, center, cache_dir)
    assert result.code == 0, result.stderr
    assert [r.status for r in center.file_requests()] == [200, 200]
    assert result.json()["source"]["notModified"] is False
    assert result.json()["add"] != first.json()["add"]
    entry = FeedCache(cache_dir).load("Public")
    assert entry is not None and entry.body == center.files[day(3)]


def test_corrupt_cache_is_ignored_and_replaced(
    emulator: EmulatorServer, center: DownloadCenter, cache_dir: Path
) -> None:
    """A corrupt cached file is ignored with a warning, never sent validators, and replaced."""
    seed_cache(cache_dir, center, age_days=3)
    body_file = next(p for p in cache_dir.glob("*.json") if "meta" not in p.name)
    body_file.write_bytes(b'{"values": [')  # truncated: no longer matches its sha256
    center.files = {day(3): BODY}
    result = sync(emulator, center, cache_dir)
    assert result.code == 0, result.stderr
    ignored = events(result)["cache_ignored"]
    assert ignored["level"] == "warning" and "sha256" in ignored["reason"]
    assert "if-none-match" not in center.file_requests()[0].headers
    assert result.json()["source"]["notModified"] is False
    entry = FeedCache(cache_dir).load("Public")
    assert entry is not None and entry.body == BODY


def test_corrupt_cache_is_not_used_when_microsoft_is_down(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter, cache_dir: Path
) -> None:
    """With the site down a corrupt cache is no fallback: exit 1, target untouched."""
    seed_cache(cache_dir, center, age_days=3)
    FeedCache(cache_dir).meta_path("Public").write_text("{garbage")
    center.stop()
    result = sync(emulator, center, cache_dir, dry_run=False)
    assert result.code == 1
    assert "no usable cached copy" in result.json()["error"]["message"]
    assert "not valid JSON" in events(result)["cache_ignored"]["reason"]
    assert untouched(store)


def test_cached_body_that_is_not_a_feed_is_ignored(
    center: DownloadCenter, store: EmulatorStore, settings_for: Settings, cache_dir: Path
) -> None:
    """A cached body with a matching sha256 that does not parse is still never trusted."""
    stored = FeedCache(cache_dir).store(
        cloud="Public",
        url=center.file_url(day(2)),
        file_date=day(2),
        body=b"<html>not a feed</html>",
        fetched_at=datetime.now(UTC),
    )
    assert stored is not None
    center.stop()
    outcome = run_once(settings_for, RunOptions(dry_run=True))
    assert int(outcome.exit_code()) == 1 and "no usable cached copy" in str(outcome.error)
    assert untouched(store)
