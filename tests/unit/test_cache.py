"""The on-disk cache of the last good file: layout, atomic writes, and distrust of what it reads."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from allowlist_sync.azure import cache as cache_module
from allowlist_sync.azure.cache import FeedCache, default_cache_dir, write_atomically
from tests.fakes.download_center import feed_body

NOW = datetime(2025, 10, 30, 9, 0, tzinfo=UTC)
URL = "https://download.microsoft.com/download/x/ServiceTags_Public_20251027.json"
BODY = feed_body()


@pytest.fixture
def cache(tmp_path: Path) -> FeedCache:
    """A cache in a folder that does not exist yet."""
    return FeedCache(tmp_path / "cache")


def store(cache: FeedCache, body: bytes = BODY, **overrides: object) -> None:
    values: dict[str, object] = {
        "cloud": "Public",
        "url": URL,
        "file_date": "20251027",
        "body": body,
        "fetched_at": NOW,
        "etag": '"v1"',
        "last_modified": "Mon, 27 Oct 2025 00:00:00 GMT",
    }
    assert cache.store(**(values | overrides)) is not None  # type: ignore[arg-type]


def ignored_reasons(logs: list[dict[str, object]]) -> list[str]:
    return [str(e["reason"]) for e in logs if e["event"] == "cache_ignored"]


def test_store_then_load_round_trip(cache: FeedCache) -> None:
    """What is stored is loaded back byte for byte with its metadata."""
    store(cache)
    entry = cache.load("Public")
    assert entry is not None
    assert entry.body == BODY and entry.sha256 == hashlib.sha256(BODY).hexdigest()
    assert (entry.url, entry.file_date, entry.fetched_at) == (URL, "20251027", NOW)
    assert (entry.etag, entry.last_modified) == ('"v1"', "Mon, 27 Oct 2025 00:00:00 GMT")


def test_layout_is_one_metadata_file_and_one_body_per_cloud(cache: FeedCache) -> None:
    """A newer file replaces the old body; no temporary files are left behind."""
    store(cache)
    newer = feed_body(prefixes=["20.190.128.0/18"])
    store(cache, newer, file_date="20251103", url=URL.replace("1027", "1103"))
    names = sorted(p.name for p in cache.directory.iterdir())
    sha = hashlib.sha256(newer).hexdigest()
    assert names == [f"ServiceTags_Public.{sha[:16]}.json", "ServiceTags_Public.meta.json"]
    meta = json.loads(cache.meta_path("Public").read_text())
    assert meta["sha256"] == sha and meta["fileDate"] == "20251103" and meta["size"] == len(newer)
    assert meta["fetchedAt"] == "2025-10-30T09:00:00+00:00"


def test_clouds_do_not_share_an_entry(cache: FeedCache) -> None:
    """Each cloud has its own entry; another cloud's is never returned."""
    store(cache)
    assert cache.load("China") is None
    store(cache, feed_body("China"), cloud="China")
    entry = cache.load("Public")
    assert entry is not None and entry.body == BODY


def test_empty_cache_is_not_a_warning(cache: FeedCache) -> None:
    """No cache yet is normal: an info event, no warning."""
    with capture_logs() as logs:
        assert cache.load("Public") is None
    assert [(e["event"], e["log_level"]) for e in logs] == [("cache_empty", "info")]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda c: c.meta_path("Public").write_text("{not json"), "not valid JSON"),
        (lambda c: c.meta_path("Public").write_text("[]"), "not a JSON object"),
        (
            lambda c: c.meta_path("Public").write_text(
                c.meta_path("Public").read_text().replace('"format": 1', '"format": 9')
            ),
            "unknown cache format 9",
        ),
        (
            lambda c: c.meta_path("Public").write_text(
                c.meta_path("Public").read_text().replace('"Public"', '"China"')
            ),
            "is for cloud 'China'",
        ),
        (
            lambda c: c.meta_path("Public").write_text(
                c.meta_path("Public").read_text().replace("+00:00", "")
            ),
            "fetchedAt has no time zone",
        ),
        (
            lambda c: c.meta_path("Public").write_text(
                c.meta_path("Public").read_text().replace("20251027", "20251399")
            ),
            "invalid fileDate",
        ),
        (lambda c: _body(c).write_bytes(BODY[:-10]), "does not match its recorded sha256"),
        (lambda c: _body(c).write_bytes(BODY.replace(b"20.", b"30.", 1)), "recorded sha256"),
        (lambda c: _body(c).unlink(), "cannot read the cached file"),
    ],
    ids=[
        "meta-garbage",
        "meta-array",
        "meta-format",
        "meta-cloud",
        "meta-naive-time",
        "meta-bad-date",
        "body-truncated",
        "body-altered",
        "body-missing",
    ],
)
def test_corrupt_entry_is_ignored_with_a_warning(
    cache: FeedCache, damage: Callable[[FeedCache], object], reason: str
) -> None:
    """A damaged entry is never returned: it is ignored with a warning naming the problem."""
    store(cache)
    damage(cache)
    with capture_logs() as logs:
        assert cache.load("Public") is None
    assert len(ignored_reasons(logs)) == 1 and reason in ignored_reasons(logs)[0]
    assert [e["log_level"] for e in logs] == ["warning"]


def _body(cache: FeedCache) -> Path:
    return next(
        p for p in cache.directory.glob("ServiceTags_Public.*.json") if "meta" not in p.name
    )


def test_write_is_atomic_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails before the rename leaves the previous file and no temporary file."""
    target = tmp_path / "file.json"
    write_atomically(target, b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, b"new and longer")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_failed_body_write_keeps_the_previous_entry(
    cache: FeedCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the new body cannot be written the old entry stays whole and usable."""
    store(cache)
    real_write = cache_module.write_atomically

    def failing(path: Path, data: bytes) -> None:
        if path.name.endswith(".json") and "meta" not in path.name:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(cache_module, "write_atomically", failing)
    with capture_logs() as logs:
        assert (
            cache.store(cloud="Public", url=URL, file_date="20251103", body=b"{}", fetched_at=NOW)
            is None
        )
    assert [e["event"] for e in logs] == ["cache_write_failed"]
    entry = cache.load("Public")
    assert entry is not None and entry.body == BODY


def test_unwritable_cache_is_only_a_warning(tmp_path: Path) -> None:
    """A cache folder that cannot be created costs a warning, not the run."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with capture_logs() as logs:
        assert (
            FeedCache(blocker / "cache").store(
                cloud="Public", url=URL, file_date=None, body=BODY, fetched_at=NOW
            )
            is None
        )
    assert logs[0]["event"] == "cache_write_failed" and logs[0]["log_level"] == "warning"


def test_age_counts_from_the_publication_date(cache: FeedCache) -> None:
    """The data's age runs from the file's date when known, else from the download."""
    store(cache, fetched_at=NOW)
    entry = cache.load("Public")
    assert entry is not None
    assert entry.age(NOW) == timedelta(days=3, hours=9)  # since 2025-10-27 00:00 UTC
    store(cache, file_date=None)
    undated = cache.load("Public")
    assert undated is not None and undated.age(NOW + timedelta(days=1)) == timedelta(days=1)


def test_conditional_headers_match_the_url(cache: FeedCache) -> None:
    """Validators are sent only when asking for the very URL that was cached."""
    store(cache)
    entry = cache.load("Public")
    assert entry is not None
    assert entry.conditional_headers(URL) == {
        "If-None-Match": '"v1"',
        "If-Modified-Since": "Mon, 27 Oct 2025 00:00:00 GMT",
    }
    assert entry.conditional_headers(URL.replace("1027", "1103")) == {}


def test_default_folder_follows_xdg_then_home(tmp_path: Path) -> None:
    """$XDG_CACHE_HOME wins, then ~/.cache; each gets an allowlist-sync folder."""
    xdg, home = tmp_path / "xdg", tmp_path / "home"
    env = {"XDG_CACHE_HOME": str(xdg), "HOME": str(home)}
    assert default_cache_dir(env) == xdg / "allowlist-sync"
    assert default_cache_dir({"HOME": str(home)}) == home / ".cache" / "allowlist-sync"
    assert default_cache_dir({"XDG_CACHE_HOME": "relative", "HOME": str(home)}) == (
        home / ".cache" / "allowlist-sync"
    )


def test_default_folder_falls_back_to_a_private_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no usable home (a read-only container) the cache goes to a private temp folder."""
    monkeypatch.setattr(cache_module.tempfile, "tempdir", str(tmp_path))
    blocker = tmp_path / "home"
    blocker.write_text("HOME is a file, so ~/.cache cannot be created")
    folder = default_cache_dir({"HOME": str(blocker)})
    assert folder.parent == tmp_path and folder.name.startswith("allowlist-sync-")
    mode = stat.S_IMODE(folder.stat().st_mode)
    assert mode & 0o077 == 0 and folder.stat().st_uid == os.getuid()


def test_shared_temp_folder_of_someone_else_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A world-writable fallback folder (planted by another user) is replaced by a fresh one."""
    monkeypatch.setattr(cache_module.tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"allowlist-sync-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    folder = default_cache_dir({})
    assert folder != planted and folder.parent == tmp_path


def test_refresh_rewrites_only_the_metadata(cache: FeedCache) -> None:
    """`refresh` records a new fetchedAt and validators; the body and its sha256 stay."""
    store(cache)
    entry = cache.load("Public")
    assert entry is not None
    later = NOW + timedelta(days=6)
    refreshed = cache.refresh(entry, fetched_at=later, etag='"v2"', last_modified=None)
    assert refreshed is not None and refreshed.fetched_at == later
    again = cache.load("Public")
    assert again is not None
    assert (again.fetched_at, again.etag, again.last_modified) == (later, '"v2"', None)
    assert (again.body, again.sha256, again.path) == (entry.body, entry.sha256, entry.path)


def test_refresh_that_cannot_write_only_warns(cache: FeedCache, tmp_path: Path) -> None:
    """A metadata refresh into a folder that is gone warns and returns None, never raises."""
    store(cache)
    entry = cache.load("Public")
    assert entry is not None
    broken = FeedCache(tmp_path / "missing" / "cache")
    with capture_logs() as logs:
        assert broken.refresh(entry, fetched_at=NOW, etag=None, last_modified=None) is None
    assert any(e["event"] == "cache_write_failed" for e in logs)
