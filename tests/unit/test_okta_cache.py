"""OktaCache: the last good copy of a URL, trusted only when its metadata and sha256 check out."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from allowlist_sync.errors import FeedError
from allowlist_sync.okta.cache import OktaCache, url_key
from allowlist_sync.okta.source import read_file

URL = "https://okta-mirror.example/okta-ip-ranges/ip_ranges.json"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BODY = b'{"us_cell_1": {"ip_ranges": ["3.33.136.245/32"]}}'


def stored(tmp_path: Path) -> OktaCache:
    """A cache folder holding BODY for URL."""
    cache = OktaCache(tmp_path)
    assert cache.store(URL, body=BODY, fetched_at=NOW, etag='"e1"', last_modified=None)
    return cache


def test_store_then_load_round_trips(tmp_path: Path) -> None:
    """What was stored comes back, with its validators; no temporary file is left behind."""
    entry = stored(tmp_path).load(URL)
    assert entry is not None
    assert (entry.body, entry.etag, entry.last_modified, entry.fetched_at) == (
        BODY,
        '"e1"',
        None,
        NOW,
    )
    assert entry.conditional_headers() == {"If-None-Match": '"e1"'}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_entry_without_validators_names_nothing(tmp_path: Path) -> None:
    """A copy stored without ETag or Last-Modified makes no conditional request."""
    cache = OktaCache(tmp_path)
    entry = cache.store(URL, body=BODY, fetched_at=NOW, etag=None, last_modified=None)
    assert entry is not None and entry.conditional_headers() == {}


def test_nothing_cached_is_none(tmp_path: Path) -> None:
    """An empty folder (or one that does not exist) has no entry, and that is no warning."""
    with capture_logs() as logs:
        assert OktaCache(tmp_path / "missing").load(URL) is None
    assert [e["log_level"] for e in logs] == ["info"]


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ([], "the metadata is not a JSON object"),
        ({"url": ""}, "the metadata has no url"),
        ({"fetchedAt": None}, "the metadata has no fetchedAt"),
        ({"fetchedAt": "yesterday"}, "the metadata has an invalid fetchedAt"),
        ({"sha256": "Z" * 64}, "the metadata has no valid sha256"),
        ({"etag": '"a"\n'}, "the metadata has an invalid etag"),
    ],
)
def test_bad_metadata_is_ignored_with_a_warning(tmp_path: Path, meta: object, reason: str) -> None:
    """Metadata this program did not write is not trusted: the entry is ignored, warned."""
    cache = stored(tmp_path)
    path = cache.meta_path(URL)
    doc = json.loads(path.read_bytes())
    path.write_text(json.dumps(meta if isinstance(meta, list) else {**doc, **meta}))
    with capture_logs() as logs:
        assert cache.load(URL) is None
    [warning] = [e for e in logs if e["event"] == "okta_cache_ignored"]
    assert warning["reason"] == reason


def test_metadata_that_is_not_json_is_ignored(tmp_path: Path) -> None:
    """A torn or overwritten metadata file is ignored, warned."""
    cache = stored(tmp_path)
    cache.meta_path(URL).write_bytes(b"{not json")
    with capture_logs() as logs:
        assert cache.load(URL) is None
    assert logs[-1]["reason"] == "the metadata is not valid JSON"


def test_missing_body_is_ignored(tmp_path: Path) -> None:
    """Metadata whose body was deleted is ignored, warned."""
    cache = stored(tmp_path)
    entry = cache.load(URL)
    assert entry is not None
    entry.path.unlink()
    with capture_logs() as logs:
        assert cache.load(URL) is None
    assert logs[-1]["reason"].startswith("cannot read the cached file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_metadata_is_ignored(tmp_path: Path) -> None:
    """Metadata that cannot be read is ignored, warned."""
    cache = stored(tmp_path)
    cache.meta_path(URL).chmod(0)
    with capture_logs() as logs:
        assert cache.load(URL) is None
    assert logs[-1]["reason"].startswith("cannot read the metadata")


def test_refresh_that_cannot_write_only_warns(tmp_path: Path) -> None:
    """Confirming a copy current in a folder that is gone costs a warning, not the run."""
    cache = stored(tmp_path)
    entry = cache.load(URL)
    assert entry is not None
    gone = OktaCache(tmp_path / "gone")
    with capture_logs() as logs:
        assert gone.refresh(URL, entry, fetched_at=NOW, etag=None, last_modified=None) is None
    assert logs[-1]["event"] == "okta_cache_write_failed"


def test_refresh_moves_fetched_at_and_keeps_the_body(tmp_path: Path) -> None:
    """A 304 rewrites only the metadata: a later fetchedAt, the same body."""
    cache = stored(tmp_path)
    entry = cache.load(URL)
    assert entry is not None
    later = NOW + timedelta(days=2)
    cache.refresh(URL, entry, fetched_at=later, etag='"e2"', last_modified=None)
    again = cache.load(URL)
    assert again is not None
    assert (again.fetched_at, again.etag, again.body) == (later, '"e2"', BODY)


def test_url_key_hides_the_url() -> None:
    """The key is a fixed-length hash: nothing of a signed URL shows in a file name."""
    key = url_key(URL + "?sig=secret")
    assert len(key) == 16 and "secret" not in key
    assert key != url_key(URL)


def test_a_stream_over_the_limit_is_refused() -> None:
    """A file of unknown size (a device, a pipe) is read only up to the limit, then refused."""
    with pytest.raises(FeedError, match="/dev/zero: the body is over the 8 MiB limit"):
        read_file("/dev/zero")
