"""`allowlist-sync sync --source-url URL` as a real process: the fake download center as the source,
the emulator as the target, both on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import ExitCode
from tests.cli import CliResult, cli_env, log_events, run_cli
from tests.emulated import owned_rule, stored_networks
from tests.fakes.download_center import HTML_PAGE, DownloadCenter, day, feed_body, tag_prefixes

BODY = feed_body()
PUBLISHED = set(tag_prefixes(BODY))


@pytest.fixture
def center() -> Iterator[DownloadCenter]:
    """The fake download center serving yesterday's real (trimmed) Public file."""
    with DownloadCenter() as fake:
        fake.files = {day(1): BODY}
        yield fake


def sync(emulator: EmulatorServer, url: str, *args: str) -> CliResult:
    """`allowlist-sync sync --source-url URL ARGS` against the emulator."""
    return run_cli("sync", "--source-url", url, *args, env=cli_env(emulator))


def test_dry_run_from_a_url_prints_the_plan_and_writes_nothing(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter
) -> None:
    """`sync --dry-run --source-url` fetches that one file, prints the plan, writes nothing."""
    url = center.file_url(day(1))
    result = sync(emulator, url, "--dry-run")
    assert result.code == 0, result.stderr
    assert f"Plan: create the rule with {len(PUBLISHED)}, remove 0, keep 0." in result.stdout
    assert "Dry run: nothing was written." in result.stdout
    assert store.write_count() == 0
    assert [r.path for r in center.requests] == [url.removeprefix(center.url)]


def test_dry_run_json_names_the_url_as_the_source(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter
) -> None:
    """The JSON output of a --source-url dry run carries kind url, the URL and its changeNumber."""
    url = center.file_url(day(1))
    result = sync(emulator, url, "--dry-run", "--detailed-exitcode", "--output", "json")
    assert result.code == ExitCode.CHANGES_PENDING, result.stderr
    out = result.json()
    assert out["status"] == "changes_pending" and out["dry_run"] is True
    assert set(out["add"]) == PUBLISHED and out["remove"] == []
    assert out["source"]["kind"] == "url" and out["source"]["url"] == url
    assert out["source"]["cloud"] == "Public" and out["source"]["fileDate"] == day(1)
    assert store.write_count() == 0
    (loaded,) = [e for e in log_events(result.stderr) if e["event"] == "source_loaded"]
    assert loaded["location"] == url


def test_apply_from_a_url_then_in_sync(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter
) -> None:
    """Applying from --source-url stores exactly the file's ranges; a second dry run is in sync."""
    url = center.file_url(day(1))
    assert sync(emulator, url, "--output", "json").json()["status"] == "applied"
    rule = owned_rule(store)
    assert rule is not None and stored_networks(rule) == PUBLISHED
    again = sync(emulator, url, "--dry-run", "--detailed-exitcode", "--output", "json")
    assert again.code == ExitCode.OK and again.json()["status"] == "in_sync"


def test_mirror_url_without_a_dated_name_is_used(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter
) -> None:
    """A mirror's file with no date in its name is fetched and planned like a dated one."""
    center.mirror = {"aad.json": (BODY, None)}
    result = sync(emulator, center.mirror_url("aad.json"), "--dry-run", "--output", "json")
    assert result.code == ExitCode.OK, result.stderr
    assert set(result.json()["add"]) == PUBLISHED
    assert store.write_count() == 0


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        pytest.param(404, b"", "HTTP 404", id="missing"),
        pytest.param(503, b"", "HTTP 503", id="down"),
        pytest.param(None, HTML_PAGE, "HTML page", id="html"),
        pytest.param(None, BODY[: len(BODY) // 2], "not valid JSON", id="truncated"),
        pytest.param(None, feed_body(drop_tag=True), "AzureActiveDirectory", id="no-tag"),
    ],
)
def test_a_bad_url_fails_before_the_target_is_read(
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
    status: int | None,
    body: bytes,
    words: str,
) -> None:
    """A URL answering an error, HTML, a cut-off file or no tag exits 1 on one line; the API is
    never called."""
    if status is not None:
        center.file_status = {day(1): status}
    else:
        center.files = {day(1): body}
    result = sync(emulator, center.file_url(day(1)), "--dry-run", "--output", "json")
    assert result.code == ExitCode.FAILED, result.stderr
    error = result.json()["error"]
    assert error["kind"] == "feed" and "\n" not in error["message"]
    assert words in error["message"], error["message"]
    assert store.requests == []


def test_a_url_is_never_replaced_by_discovery_or_the_cache(
    emulator: EmulatorServer, store: EmulatorStore, center: DownloadCenter
) -> None:
    """When the given URL fails, the run fails: the details page and dated files are not tried."""
    center.file_status = {day(1): 404}
    result = run_cli(
        "sync",
        "--dry-run",
        "--source-url",
        center.file_url(day(1)),
        env=cli_env(emulator, **center.env()),
    )
    assert result.code == ExitCode.FAILED
    assert len(center.requests) == 1
