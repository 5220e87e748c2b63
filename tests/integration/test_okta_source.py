"""load_okta against a fake of Okta's S3 host on loopback: conditional GET, cache, fallbacks.

Every test gives its own cache folder and the fake's URL: Okta's real URL is never fetched.
Counts of requests are pinned instead of timings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from allowlist_sync.azure.fetch import UnavailableError
from allowlist_sync.errors import ConfigError, ExitCode, FeedError
from allowlist_sync.net.retries import RetryPolicy
from allowlist_sync.okta import MAX_OKTA_BYTES, OktaQuery, load_okta
from allowlist_sync.okta.cache import OktaCache
from tests.fakes.okta import (
    SNAPSHOT_LAST_MODIFIED,
    XML_ERROR,
    OktaS3,
    okta_body,
    snapshot_doc,
)

RETRY = RetryPolicy(attempts=2, max_seconds=5, backoff=0)
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def okta() -> Iterator[OktaS3]:
    """The fake Okta host, running on a free loopback port."""
    with OktaS3() as fake:
        yield fake


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """The cache folder every run of a test shares."""
    return tmp_path / "cache"


def query(okta: OktaS3, cache_dir: Path, *cells: str, url: str | None = None) -> OktaQuery:
    """A query of `cells` (default us_cell_1) from the fake, with instant retries."""
    return OktaQuery(
        cells=cells or ("us_cell_1",),
        url=url or okta.url,
        cache_dir=cache_dir,
        timeout=5,
        retry=RETRY,
    )


def cached_files(cache_dir: Path) -> list[str]:
    """The names in the cache folder."""
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def seed(okta: OktaS3, cache_dir: Path, *, at: datetime = NOW) -> None:
    """A first good run at `at`, which stores the fake's current body in the cache."""
    load_okta(query(okta, cache_dir), now=at)


def test_first_fetch_validates_and_stores_the_cache(okta: OktaS3, cache_dir: Path) -> None:
    """A first run downloads once, unconditionally, and keeps the body as the last good copy."""
    feed = load_okta(query(okta, cache_dir), now=NOW)
    assert len(feed.prefixes["us_cell_1"]) == 535
    assert feed.source.kind == "url"
    assert feed.source.location == okta.url
    assert feed.source.published == datetime(2022, 3, 7, 16, 14, 12, tzinfo=UTC)
    assert feed.warnings == ()
    [request] = okta.file_requests()
    assert "if-none-match" not in request.headers
    entry = OktaCache(cache_dir).load(okta.url)
    assert entry is not None
    assert entry.body == okta.body
    assert entry.etag == okta.etag
    assert entry.last_modified == SNAPSHOT_LAST_MODIFIED
    names = cached_files(cache_dir)
    assert len(names) == 2
    assert all(n.startswith("okta_ip_ranges.") for n in names)


def test_second_run_sends_if_none_match_and_uses_the_cache_on_304(
    okta: OktaS3, cache_dir: Path
) -> None:
    """The second run names the cached copy, gets 304 (no body) and returns the cached ranges."""
    first = load_okta(query(okta, cache_dir), now=NOW)
    later = NOW + timedelta(days=1)
    with capture_logs() as logs:
        second = load_okta(query(okta, cache_dir), now=later)
    requests = okta.file_requests()
    assert [r.status for r in requests] == [200, 304]
    assert requests[1].headers["if-none-match"] == okta.etag
    assert requests[1].headers["if-modified-since"] == SNAPSHOT_LAST_MODIFIED
    assert second.prefixes == first.prefixes
    assert second.source.kind == "url"
    assert second.source.not_modified is True
    assert second.warnings == ()
    assert "okta_not_modified" in [e["event"] for e in logs]
    entry = OktaCache(cache_dir).load(okta.url)
    assert entry is not None and entry.fetched_at == later


def test_changed_file_replaces_the_cache(okta: OktaS3, cache_dir: Path) -> None:
    """When Okta publishes a new file, the 200 is used and becomes the last good copy."""
    seed(okta, cache_dir)
    doc = snapshot_doc()
    doc["us_cell_1"]["ip_ranges"] = ["3.33.136.245/32", "52.0.0.0/26"]
    okta.body = okta_body(doc)
    feed = load_okta(query(okta, cache_dir), now=NOW + timedelta(days=1))
    assert feed.prefixes["us_cell_1"] == ("3.33.136.245/32", "52.0.0.0/26")
    assert [r.status for r in okta.file_requests()] == [200, 200]
    entry = OktaCache(cache_dir).load(okta.url)
    assert entry is not None and entry.body == okta.body
    assert len(cached_files(cache_dir)) == 2  # the old body is gone


def test_outage_with_a_cache_uses_it_with_a_warning(okta: OktaS3, cache_dir: Path) -> None:
    """An outage (500 after retries) falls back to the cached copy and says why and how old."""
    seed(okta, cache_dir)
    okta.outage_status = 500
    with capture_logs() as logs:
        feed = load_okta(query(okta, cache_dir), now=NOW + timedelta(days=3))
    assert len(feed.prefixes["us_cell_1"]) == 535
    assert feed.source.kind == "cache"
    [warning] = feed.warnings
    assert "HTTP 500 (gave up after retries)" in warning
    assert "using the cached copy last downloaded or confirmed 2026-11-28 12:00 UTC" in warning
    assert "3.0 days ago" in warning
    assert f"Last-Modified {SNAPSHOT_LAST_MODIFIED}" in warning
    assert [r.status for r in okta.file_requests()] == [200, 500, 500]
    used = [e for e in logs if e["event"] == "okta_cache_used"]
    assert used and used[0]["log_level"] == "warning"


def test_a_cached_copy_past_the_feed_age_limit_is_not_used(okta: OktaS3, cache_dir: Path) -> None:
    """After 15 days of outage (limit 14) the last good copy is refused: the download's error
    stands, naming the copy's age and the setting, so withdrawn ranges never stay allowed."""
    seed(okta, cache_dir)
    okta.outage_status = 500
    with pytest.raises(
        FeedError, match=r"15\.0 days ago, past ALLOWLIST_SYNC_MAX_FEED_AGE \(14 days\)"
    ):
        load_okta(query(okta, cache_dir), now=NOW + timedelta(days=15))


def test_unreachable_host_with_a_cache_uses_it(okta: OktaS3, cache_dir: Path) -> None:
    """A host that refuses connections is an outage too: cached copy, with a warning."""
    seed(okta, cache_dir)
    okta.stop()
    feed = load_okta(query(okta, cache_dir), now=NOW + timedelta(minutes=30))
    assert feed.source.kind == "cache"
    assert "30 min ago" in feed.warnings[0]


def test_outage_without_a_cache_raises(okta: OktaS3, cache_dir: Path) -> None:
    """An outage with nothing cached is a FeedError naming the URL and the status."""
    okta.outage_status = 503
    with pytest.raises(UnavailableError) as info:
        load_okta(query(okta, cache_dir), now=NOW)
    assert str(info.value) == f"{okta.url}: HTTP 503 (gave up after retries)"
    assert len(okta.file_requests()) == 2
    assert cached_files(cache_dir) == []


def test_not_found_without_a_cache_raises(okta: OktaS3, cache_dir: Path) -> None:
    """A 404 (the file moved) is not retried and, with nothing cached, is a FeedError."""
    with pytest.raises(FeedError, match="HTTP 404"):
        load_okta(query(okta, cache_dir, url=okta.base + "/moved.json"), now=NOW)
    assert len(okta.file_requests()) == 1


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("html", "not JSON, looks like HTML"),
        ("truncated", "not JSON (unexpected end of data"),
        ("empty_cell", "cell 'us_cell_1' has an empty ip_ranges list"),
        ("missing_cell", "cell 'us_cell_1' is not in the file"),
    ],
)
def test_invalid_new_body_keeps_and_uses_the_cache(
    okta: OktaS3, cache_dir: Path, breakage: str, expected: str
) -> None:
    """A broken download with a good cache: the cache is used, warned about, and NOT replaced."""
    seed(okta, cache_dir)
    good = okta.body
    before = sorted((p.name, p.read_bytes()) for p in cache_dir.iterdir())
    doc = snapshot_doc()
    if breakage == "html":
        okta.serve_html()
    elif breakage == "truncated":
        okta.body = good[:30_000]
    elif breakage == "empty_cell":
        doc["us_cell_1"]["ip_ranges"] = []
        okta.body = okta_body(doc)
    else:
        del doc["us_cell_1"]
        okta.body = okta_body(doc)
    feed = load_okta(query(okta, cache_dir), now=NOW + timedelta(hours=5))
    assert feed.source.kind == "cache"
    assert len(feed.prefixes["us_cell_1"]) == 535
    assert expected in feed.warnings[0]
    assert "5.0 h ago" in feed.warnings[0]
    assert sorted((p.name, p.read_bytes()) for p in cache_dir.iterdir()) == before
    # The next run still names the good copy: once Okta is fixed, the 304 brings it back.
    okta.body = good
    okta.content_type = "application/json"
    again = load_okta(query(okta, cache_dir), now=NOW + timedelta(hours=6))
    assert okta.file_requests()[-1].status == 304
    assert again.warnings == ()


def test_invalid_body_without_a_cache_raises_and_stores_nothing(
    okta: OktaS3, cache_dir: Path
) -> None:
    """A broken first download is the FeedError, and nothing is cached."""
    okta.serve_html()
    with pytest.raises(FeedError, match="not JSON, looks like HTML"):
        load_okta(query(okta, cache_dir), now=NOW)
    assert cached_files(cache_dir) == []


def test_oversize_body_is_refused_by_content_length(okta: OktaS3, cache_dir: Path) -> None:
    """A body declared over MAX_OKTA_BYTES is refused before it is read, and not cached."""
    okta.body = b'{"us_cell_1": {"ip_ranges": ["3.3.3.3/32"]}, "pad": "' + b"x" * MAX_OKTA_BYTES
    okta.body += b'"}'
    with pytest.raises(FeedError, match=r"is \d+ bytes \(8.0 MiB\), over the 8 MiB limit"):
        load_okta(query(okta, cache_dir), now=NOW)
    assert cached_files(cache_dir) == []


def test_oversize_streamed_body_is_cut_off(okta: OktaS3, cache_dir: Path) -> None:
    """A body without Content-Length is read only up to the limit, then refused."""
    okta.content_length = False
    okta.body = b'{"pad": "' + b"x" * (MAX_OKTA_BYTES + 10) + b'"}'
    with pytest.raises(FeedError, match="the body is over the 8 MiB limit"):
        load_okta(query(okta, cache_dir), now=NOW)


def test_oversize_body_with_a_cache_falls_back(okta: OktaS3, cache_dir: Path) -> None:
    """A body over the limit after a good run: refused, the cache used with a warning."""
    seed(okta, cache_dir)
    okta.body = b" " * (MAX_OKTA_BYTES + 1)
    feed = load_okta(query(okta, cache_dir), now=NOW)
    assert feed.source.kind == "cache"
    assert "over the 8 MiB limit" in feed.warnings[0]


def test_redirect_to_a_url_with_user_info_is_refused(okta: OktaS3, cache_dir: Path) -> None:
    """A redirect to a URL carrying user:password is refused, and the password is not shown."""
    okta.redirect_to = f"http://user:hunter2@127.0.0.1:{okta.url.rsplit(':', 1)[1]}"
    with pytest.raises(FeedError, match="refusing the URL") as info:
        load_okta(query(okta, cache_dir), now=NOW)
    assert "hunter2" not in str(info.value)
    assert len(okta.file_requests()) == 1


def test_file_is_read_without_network_or_cache(tmp_path: Path, cache_dir: Path) -> None:
    """`file` set: the file is parsed, nothing is fetched and nothing cached."""
    path = tmp_path / "ip_ranges.json"
    path.write_bytes(okta_body())
    q = OktaQuery(
        cells=("emea_cell_1",), file=str(path), url="http://127.0.0.1:9/x", cache_dir=cache_dir
    )
    feed = load_okta(q, now=NOW)
    assert feed.source.kind == "file"
    assert feed.source.location == str(path)
    assert len(feed.prefixes["emea_cell_1"]) == 214
    assert cached_files(cache_dir) == []


def test_oversize_file_is_refused_by_its_size(tmp_path: Path) -> None:
    """A file over the limit is refused by its size, naming the file."""
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_OKTA_BYTES + 1)
    with pytest.raises(FeedError, match=rf"{path}: the body is \d+ bytes"):
        load_okta(OktaQuery(cells=("us_cell_1",), file=str(path)), now=NOW)


def test_missing_file_is_a_feed_error(tmp_path: Path) -> None:
    """A file that does not exist is a one-line FeedError naming it."""
    path = tmp_path / "nope.json"
    with pytest.raises(FeedError, match="cannot read the file: No such file or directory"):
        load_okta(OktaQuery(cells=("us_cell_1",), file=str(path)), now=NOW)


def test_cache_for_other_cells_is_not_named_in_the_request(okta: OktaS3, cache_dir: Path) -> None:
    """A cached copy without a newly selected cell is not used: the request is unconditional."""
    doc = snapshot_doc()
    del doc["emea_cell_2"]
    okta.body = okta_body(doc)
    seed(okta, cache_dir)
    okta.body = okta_body()
    feed = load_okta(query(okta, cache_dir, "emea_cell_2"), now=NOW)
    assert len(feed.prefixes["emea_cell_2"]) == 52
    assert "if-none-match" not in okta.file_requests()[-1].headers


def test_cache_without_the_selected_cell_is_no_fallback(okta: OktaS3, cache_dir: Path) -> None:
    """An outage when the cached copy lacks the selected cell: the download's FeedError."""
    doc = snapshot_doc()
    del doc["emea_cell_2"]
    okta.body = okta_body(doc)
    seed(okta, cache_dir)
    okta.outage_status = 500
    with pytest.raises(UnavailableError, match="HTTP 500"):
        load_okta(query(okta, cache_dir, "emea_cell_2"), now=NOW)


def test_corrupt_cache_is_ignored_with_a_warning(okta: OktaS3, cache_dir: Path) -> None:
    """A cached body that no longer matches its sha256 is ignored (warned), never used."""
    seed(okta, cache_dir)
    [body] = [p for p in cache_dir.iterdir() if not p.name.endswith(".meta.json")]
    body.write_bytes(body.read_bytes().replace(b"3.33.136.245", b"9.99.136.245"))
    okta.outage_status = 500
    with capture_logs() as logs, pytest.raises(UnavailableError):
        load_okta(query(okta, cache_dir), now=NOW)
    ignored = [e for e in logs if e["event"] == "okta_cache_ignored"]
    assert ignored and "sha256" in ignored[0]["reason"]


@pytest.mark.parametrize(
    "change",
    [
        {"etag": '"abc"\r\nX-Evil: 1'},
        {"format": 2},
        {"source": "azure"},
        {"sha256": "0" * 63},
        {"fetchedAt": "2026-11-28T12:00:00"},
        {"lastModified": 7},
    ],
    ids=["etag-crlf", "format", "source", "sha256", "naive-date", "lm-type"],
)
def test_tampered_metadata_is_ignored(
    okta: OktaS3, cache_dir: Path, change: dict[str, object]
) -> None:
    """Metadata that is not what this program writes is ignored; the run downloads afresh."""
    seed(okta, cache_dir)
    [meta] = [p for p in cache_dir.iterdir() if p.name.endswith(".meta.json")]
    doc = json.loads(meta.read_bytes())
    doc.update(change)
    meta.write_text(json.dumps(doc))
    with capture_logs() as logs:
        feed = load_okta(query(okta, cache_dir), now=NOW)
    assert feed.source.kind == "url"
    assert "if-none-match" not in okta.file_requests()[-1].headers
    assert "okta_cache_ignored" in [e["event"] for e in logs]


def test_unwritable_cache_costs_only_a_warning(okta: OktaS3, tmp_path: Path) -> None:
    """A cache folder that cannot be created: the download is used, a warning logged."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with capture_logs() as logs:
        feed = load_okta(query(okta, blocker / "cache"), now=NOW)
    assert len(feed.prefixes["us_cell_1"]) == 535
    assert "okta_cache_write_failed" in [e["event"] for e in logs]


def test_mirror_and_official_url_have_separate_entries(okta: OktaS3, cache_dir: Path) -> None:
    """Two URLs never share a cache entry: a fallback only uses the copy of its own URL."""
    seed(okta, cache_dir)
    okta.outage_status = 500
    other = okta.url + "?mirror=1"
    with pytest.raises(UnavailableError):
        load_okta(query(okta, cache_dir, url=other), now=NOW)


def test_signed_url_secret_stays_out_of_cache_and_output(okta: OktaS3, cache_dir: Path) -> None:
    """A signed URL's query is neither written to the cache nor shown in the source."""
    url = okta.url + "?X-Amz-Signature=s3cr3tsig"
    feed = load_okta(query(okta, cache_dir, url=url), now=NOW)
    assert "s3cr3tsig" not in feed.source.location
    for path in cache_dir.iterdir():
        assert b"s3cr3tsig" not in path.read_bytes()
        assert "s3cr3tsig" not in path.name


def test_cache_names_never_collide_with_azure(okta: OktaS3, cache_dir: Path) -> None:
    """The Okta entry sits beside Azure's ServiceTags_* files without touching them."""
    cache_dir.mkdir()
    azure = cache_dir / "ServiceTags_Public.meta.json"
    azure.write_text("{}")
    seed(okta, cache_dir)
    assert azure.read_text() == "{}"
    assert sum(not n.startswith("okta_ip_ranges.") for n in cached_files(cache_dir)) == 1


def test_mock_transport_works_too(cache_dir: Path) -> None:
    """An injected httpx transport is used for the download (no socket at all)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=okta_body())

    url = "https://okta-mirror.example/okta-ip-ranges/ip_ranges.json"
    q = OktaQuery(cells=("us_cell_1",), url=url, cache_dir=cache_dir, retry=RETRY)
    feed = load_okta(q, transport=httpx.MockTransport(handler), now=NOW)
    assert seen == [url]
    assert len(feed.prefixes["us_cell_1"]) == 535


def test_fallback_warning_does_not_show_a_signed_url_secret(okta: OktaS3, cache_dir: Path) -> None:
    """The cached-fallback warning names the download's failure without the URL's signature."""
    url = okta.url + "?X-Amz-Signature=s3cr3tsig"
    load_okta(query(okta, cache_dir, url=url), now=NOW)
    okta.outage_status = 500
    feed = load_okta(query(okta, cache_dir, url=url), now=NOW)
    assert feed.source.kind == "cache"
    assert "HTTP 500" in feed.warnings[0]
    assert "s3cr3tsig" not in feed.warnings[0]
    assert "s3cr3tsig" not in feed.source.location


def test_unsendable_etag_is_not_kept_and_last_modified_still_works(
    okta: OktaS3, cache_dir: Path
) -> None:
    """A non-ASCII ETag is dropped at store time, so the cache stays usable (If-Modified-Since)."""
    okta.etag_value = '"caf\xe9"'
    seed(okta, cache_dir)
    entry = OktaCache(cache_dir).load(okta.url)
    assert entry is not None and entry.etag is None
    feed = load_okta(query(okta, cache_dir), now=NOW)
    last = okta.file_requests()[-1]
    assert "if-none-match" not in last.headers
    assert last.headers["if-modified-since"] == SNAPSHOT_LAST_MODIFIED
    assert last.status == 304
    assert feed.source.not_modified is True


def test_fallback_to_a_copy_from_the_future_says_so(okta: OktaS3, cache_dir: Path) -> None:
    """A cached copy stamped later than the clock (skew) is still used, and the warning says so."""
    seed(okta, cache_dir, at=NOW + timedelta(days=1))
    okta.outage_status = 500
    feed = load_okta(query(okta, cache_dir), now=NOW)
    assert "a time in the future (clock skew?)" in feed.warnings[0]


def test_no_cell_is_a_configuration_error(okta: OktaS3, cache_dir: Path) -> None:
    """A query without cells is refused as bad configuration (exit 78) before any request."""
    with pytest.raises(ConfigError, match="at least one cell") as info:
        load_okta(OktaQuery(cells=(), url=okta.url, cache_dir=cache_dir), now=NOW)
    assert info.value.exit_code == ExitCode.CONFIG
    assert okta.file_requests() == []


def test_s3_error_document_with_200_is_not_json(okta: OktaS3, cache_dir: Path) -> None:
    """An XML error document served as 200 is refused as XML, and nothing is cached."""
    okta.body = XML_ERROR
    with pytest.raises(FeedError, match="not JSON, looks like XML"):
        load_okta(query(okta, cache_dir), now=NOW)
    assert cached_files(cache_dir) == []
