"""Discovery of the newest service-tags file: links, dates, fallbacks, and the settings behind it.

The HTTP side runs on `httpx.MockTransport`; `tests/integration/test_download_center.py` runs the
same paths against a real loopback server and the CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from allowlist_sync.azure import discover as discover_module
from allowlist_sync.azure.cache import FeedCache
from allowlist_sync.azure.clouds import CLOUDS, cloud_named, details_url, download_base
from allowlist_sync.azure.discover import (
    Locations,
    by_date_probe,
    discover,
    discover_feed,
    find_links,
    from_details_page,
    probe_dates,
)
from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.config import Settings, load_settings
from allowlist_sync.errors import ConfigError, FeedError
from allowlist_sync.net.retries import RetryPolicy
from tests.fakes.download_center import HTML_PAGE, feed_body

TODAY = date(2025, 10, 30)  # a Thursday; Microsoft's file of that week is dated Monday 20251027
NOW = datetime(2025, 10, 30, 9, 0, tzinfo=UTC)
PAGE = "https://www.microsoft.com/en-us/download/details.aspx?id=56519"
BASE = "https://download.microsoft.com/download/7/1/D/71D86715-5596-4529-9B13-DA13A5DE5B63"
RETRY = RetryPolicy(attempts=2, max_seconds=5, backoff=0)
PUBLIC = cloud_named("Public")
WHERE = Locations(cloud=PUBLIC, details_url=PAGE, download_base=BASE, probe_days=14)

Handler = Callable[[httpx.Request], httpx.Response]


def file_url(file_date: str, base: str = BASE, cloud: str = "Public") -> str:
    return f"{base}/ServiceTags_{cloud}_{file_date}.json"


def page_with(*urls: str) -> str:
    """A details page like Microsoft's: links inside a script, JSON-escaped."""
    files = ",".join(
        json.dumps({"name": u.rsplit("/", 1)[1], "url": u}).replace("/", "\\/") for u in urls
    )
    return (
        "<html><body><p>ServiceTags_Public_YYYYMMDD.json</p><script>"
        f'window.__DLCDetails__={{"dlcDetailsView":{{"downloadFile":[{files}]}}}};'
        "</script></body></html>"
    )


class Site:
    """A MockTransport handler over a dict of URL -> response, recording requests."""

    def __init__(self, routes: dict[str, httpx.Response | Exception]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get(str(request.url), httpx.Response(404, content=HTML_PAGE))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


def ok(body: bytes | str, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers=headers)


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings for discovery with a private cache folder and instant retries."""
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.delenv(name)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "account_id": 1,
            "token": "dbtc_discover_test",
            "retry_backoff": 0,
            "retry_attempts": 2,
            "cache_dir": tmp_path / "cache",
        }
        return load_settings(**(values | overrides))

    return make


# ---------------------------------------------------------------- links in the details page


def test_link_inside_script_json_is_found() -> None:
    """A JSON-escaped link inside a page script is found, with its date."""
    url = file_url("20251027")
    assert find_links(page_with(url), "Public") == [(url, "20251027")]


def test_several_links_newest_first() -> None:
    """Several links are returned newest date first, whatever their order on the page."""
    urls = [file_url(d) for d in ("20251020", "20251027", "20251013")]
    assert [d for _, d in find_links(page_with(*urls), "Public")] == [
        "20251027",
        "20251020",
        "20251013",
    ]


def test_links_of_other_clouds_and_plain_names_are_ignored() -> None:
    """Only the configured cloud's absolute links count; a bare file name in text is no link."""
    page = page_with(file_url("20251027", cloud="China")) + "ServiceTags_Public_20251027.json"
    assert find_links(page, "Public") == []


def test_unsafe_and_impossible_links_are_ignored() -> None:
    """Plain-http links to a real host and impossible dates are left out."""
    page = page_with(file_url("20251027").replace("https://", "http://"), file_url("20251399"))
    assert find_links(page, "Public") == []


def test_https_page_may_not_point_to_plain_http() -> None:
    """A real (https) page linking to plain http, even on loopback, is ignored."""
    page = page_with("http://127.0.0.1:8080/ServiceTags_Public_20251027.json")
    assert find_links(page, "Public") != []  # a loopback test page may
    assert find_links(page, "Public", https_only=True) == []


@pytest.mark.parametrize(
    "encoded",
    [
        "https:\\u002F\\u002Fdownload.microsoft.com\\u002Fd\\u002FServiceTags_Public_20251027.json",
        "https:&#x2F;&#x2F;download.microsoft.com&#x2F;d&#x2F;ServiceTags_Public_20251027.json",
        '<a href="https://download.microsoft.com/d/ServiceTags_Public_20251027.json">x</a>',
    ],
)
def test_escaped_and_plain_links_are_found(encoded: str) -> None:
    """Unicode-escaped, entity-escaped and plain href links all count."""
    assert find_links(encoded, "Public") == [
        ("https://download.microsoft.com/d/ServiceTags_Public_20251027.json", "20251027")
    ]


# ---------------------------------------------------------------- clouds and dates


def test_probe_dates_are_the_last_days_newest_first() -> None:
    """Probing covers today and the 13 days before it, newest first."""
    days = probe_dates(TODAY, 14)
    assert days[0] == TODAY and days[-1] == TODAY - timedelta(days=13) and len(days) == 14


def test_each_cloud_has_its_documented_page_and_folder() -> None:
    """Download Center ids and direct folders match Microsoft's documentation."""
    assert {name: c.download_id for name, c in CLOUDS.items()} == {
        "Public": 56519,
        "AzureGovernment": 57063,
        "China": 57062,
    }
    assert details_url(PUBLIC) == PAGE
    assert download_base(PUBLIC) == BASE
    assert PUBLIC.file_name(TODAY) == "ServiceTags_Public_20251030.json"


def test_url_settings_may_use_an_id_placeholder_or_be_whole() -> None:
    """A details URL setting gets `{id}` filled in; a download base loses its trailing slash."""
    gov = cloud_named("AzureGovernment")
    assert (
        details_url(gov, "https://mirror.example/d?id={id}") == "https://mirror.example/d?id=57063"
    )
    assert details_url(gov, "https://mirror.example/gov.html") == "https://mirror.example/gov.html"
    assert download_base(gov, "https://mirror.example/files/") == "https://mirror.example/files"


# ---------------------------------------------------------------- settings


def test_discovery_defaults(make_settings: Callable[..., Settings]) -> None:
    """By default discovery uses Microsoft's URLs, 14 probe days and a 14-day maximum age."""
    s = make_settings(cache_dir=None)
    assert s.azure_details_url is None and s.azure_download_base is None
    assert s.cache_dir is None
    assert s.probe_days == 14 and s.max_feed_age_days == 14


@pytest.mark.parametrize(("value", "days"), [("14", 14), ("7d", 7), ("36h", 1.5), (" 3 D ", 3)])
def test_max_feed_age_accepts_days_and_hours(
    value: str, days: float, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ALLOWLIST_SYNC_MAX_FEED_AGE takes plain days, `<n>d` or `<n>h`."""
    monkeypatch.setenv("ALLOWLIST_SYNC_MAX_FEED_AGE", value)
    assert make_settings().max_feed_age_days == days


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALLOWLIST_SYNC_MAX_FEED_AGE", "soon", "ALLOWLIST_SYNC_MAX_FEED_AGE: Input should be"),
        (
            "ALLOWLIST_SYNC_MAX_FEED_AGE",
            "0",
            "ALLOWLIST_SYNC_MAX_FEED_AGE: Input should be greater",
        ),
        (
            "ALLOWLIST_SYNC_AZURE_DETAILS_URL",
            "http://mirror.example/d",
            "ALLOWLIST_SYNC_AZURE_DETAILS_URL: must use https",
        ),
        (
            "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE",
            "ftp://mirror.example/",
            "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE: 'ftp://mirror.example/' is not an http",
        ),
        ("ALLOWLIST_SYNC_PROBE_DAYS", "0", "ALLOWLIST_SYNC_PROBE_DAYS: Input should be greater"),
    ],
)
def test_bad_discovery_settings_are_named(
    name: str,
    value: str,
    message: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each bad discovery setting is a ConfigError naming its environment variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        make_settings()


def test_loopback_mirror_may_use_plain_http(make_settings: Callable[..., Settings]) -> None:
    """A test server or local mirror on loopback may be plain http."""
    s = make_settings(azure_details_url="http://127.0.0.1:9/d?id={id}", cache_dir="")
    assert s.azure_details_url == "http://127.0.0.1:9/d?id={id}" and s.cache_dir is None


# ---------------------------------------------------------------- the steps


def test_details_page_link_is_downloaded_with_browser_headers() -> None:
    """Step 1 fetches the page and the linked file like a browser would."""
    url = file_url("20251027")
    site = Site({PAGE: ok(page_with(url)), url: ok(feed_body())})
    with capture_logs() as logs, site.client() as client:
        found = discover(client, WHERE, today=TODAY, retry=RETRY)
    assert found is not None and found.kind == "details_page"
    assert (found.url, found.file_date, found.fetched.status_code) == (url, "20251027", 200)
    assert site.urls() == [PAGE, url]
    assert all("Mozilla/5.0" in r.headers["user-agent"] for r in site.requests)
    assert "text/html" in site.requests[0].headers["accept"]
    events = [e["event"] for e in logs]
    assert events == ["details_page_fetch", "details_page_link"]


@pytest.mark.parametrize(
    "page",
    [
        httpx.Response(403, content=b"Access Denied"),
        httpx.Response(404, content=HTML_PAGE),
        httpx.Response(503),
        httpx.ConnectError("connection refused"),
        ok("<html><body>a new layout without the link</body></html>"),
    ],
    ids=["blocked", "gone", "down", "unreachable", "no-link"],
)
def test_details_page_failures_hand_over_to_the_date_probe(
    page: httpx.Response | Exception,
) -> None:
    """Any failure of the page (blocked, gone, down, no link) moves on to date probing."""
    newest = file_url("20251027")
    site = Site({PAGE: page, newest: ok(feed_body())})
    with site.client() as client:
        found = discover(client, WHERE, today=TODAY, retry=RETRY)
    assert found is not None and found.kind == "date_probe" and found.url == newest
    assert site.urls()[-4:] == [file_url(d) for d in ("20251030", "20251029", "20251028")] + [
        newest
    ]


def test_linked_file_that_is_gone_hands_over_to_the_date_probe() -> None:
    """A link to a file that answers 404 is stale: the date probe looks for the real newest."""
    stale, newest = file_url("20251020"), file_url("20251027")
    site = Site({PAGE: ok(page_with(stale)), newest: ok(feed_body())})
    with capture_logs() as logs, site.client() as client:
        found = discover(client, WHERE, today=TODAY, retry=RETRY)
    assert found is not None and found.kind == "date_probe" and found.file_date == "20251027"
    assert "details_page_file_unavailable" in [e["event"] for e in logs]


def test_probe_takes_the_newest_date_and_stops() -> None:
    """The probe asks newest first and stops at the first file."""
    site = Site({file_url("20251027"): ok(feed_body()), file_url("20251020"): ok(feed_body())})
    with site.client() as client:
        found = by_date_probe(client, WHERE, today=TODAY, retry=RETRY)
    assert found is not None and found.file_date == "20251027"
    assert site.urls() == [file_url(d) for d in ("20251030", "20251029", "20251028", "20251027")]


def test_probe_skips_a_200_html_page() -> None:
    """A 200 HTML page where a file should be (a soft 404) is no file: probing goes on."""
    site = Site({file_url("20251030"): ok(HTML_PAGE), file_url("20251027"): ok(feed_body())})
    with capture_logs() as logs, site.client() as client:
        found = by_date_probe(client, WHERE, today=TODAY, retry=RETRY)
    assert found is not None and found.file_date == "20251027"
    assert "date_probe_not_json" in [e["event"] for e in logs]


def test_probe_gives_up_at_once_when_the_host_does_not_answer() -> None:
    """An unreachable host is not asked for 14 dates: one date, its retries, then None."""
    site = Site({file_url("20251030"): httpx.ConnectError("connection refused")})
    with site.client() as client:
        assert by_date_probe(client, WHERE, today=TODAY, retry=RETRY) is None
    assert site.urls() == [file_url("20251030")] * RETRY.attempts


def test_probe_window_is_bounded() -> None:
    """No file in the window: exactly `probe_days` dates are asked, then None."""
    site = Site({file_url("20251016"): ok(feed_body())})  # 14 days before TODAY: outside
    with capture_logs() as logs, site.client() as client:
        assert by_date_probe(client, WHERE, today=TODAY, retry=RETRY) is None
    assert len(site.requests) == 14 and site.urls()[-1] == file_url("20251017")
    failed = [e for e in logs if e["event"] == "date_probe_failed"]
    assert failed and failed[0]["log_level"] == "warning" and failed[0]["misses"] == 14


def test_conditional_headers_only_for_the_cached_url() -> None:
    """If-None-Match / If-Modified-Since go with the cached file's URL only, and 304 is taken."""
    url = file_url("20251027")
    site = Site({PAGE: ok(page_with(url)), url: httpx.Response(304)})

    def conditional(asked: str) -> dict[str, str]:
        return {"If-None-Match": '"abc"'} if asked == url else {}

    with site.client() as client:
        found = from_details_page(client, WHERE, retry=RETRY, conditional=conditional)
    assert found is not None and found.not_modified
    assert "if-none-match" not in site.requests[0].headers
    assert site.requests[1].headers["if-none-match"] == '"abc"'


# ---------------------------------------------------------------- the whole of discovery


def run_discovery(settings: Settings, site: Site, now: datetime = NOW) -> Any:
    return discover_feed(settings.feed_query(), transport=httpx.MockTransport(site), now=now)


def mirror(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    return make_settings(azure_details_url=PAGE, azure_download_base=BASE, **overrides)


def test_valid_download_is_cached(make_settings: Callable[..., Settings]) -> None:
    """A validated download is returned with its source facts and kept in the cache."""
    settings = mirror(make_settings)
    url = file_url("20251027")
    site = Site({PAGE: ok(page_with(url)), url: ok(feed_body(), ETag='"v1"')})
    feed = run_discovery(settings, site)
    assert feed.source == SourceInfo(
        kind="details_page",
        location=url,
        cloud="Public",
        change_number=375,
        file_date="20251027",
        published=datetime(2025, 10, 27, tzinfo=UTC),
        fetched_at=NOW.isoformat(),
    )
    entry = FeedCache(settings.cache_dir).load("Public")  # type: ignore[arg-type]
    assert entry is not None and entry.url == url and entry.etag == '"v1"'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (feed_body(prefixes=["20.190.128.0/18", "not-a-network"]), "invalid address prefix"),
        (feed_body(prefixes=[]), "empty address prefix list"),
        (feed_body()[:-200], "not valid JSON"),
        (HTML_PAGE, "got an HTML page where a JSON file was expected"),
    ],
    ids=["invalid-prefix", "empty-tag", "truncated", "html"],
)
def test_broken_newest_file_fails_even_with_a_fresh_cache(
    body: bytes, message: str, make_settings: Callable[..., Settings]
) -> None:
    """A broken file that was found is an error naming its URL, never replaced by the cache."""
    settings = mirror(make_settings)
    cache = FeedCache(settings.cache_dir)  # type: ignore[arg-type]
    cache.store(
        cloud="Public",
        url=file_url("20251020"),
        file_date="20251020",
        body=feed_body(),
        fetched_at=NOW - timedelta(days=7),
    )
    url = file_url("20251027")
    site = Site({PAGE: ok(page_with(url)), url: ok(body)})
    with pytest.raises(FeedError, match=message) as info:
        run_discovery(settings, site)
    assert str(info.value).startswith(f"{url}: ")
    entry = cache.load("Public")
    assert entry is not None and entry.file_date == "20251020"  # the broken file was not cached


def test_body_over_the_limit_is_an_error_not_a_fallback(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file over the size limit stops the run; it does not fall back to probing or cache."""
    monkeypatch.setattr(discover_module, "MAX_FEED_BYTES", 1000)
    settings = mirror(make_settings)
    url = file_url("20251027")
    site = Site({PAGE: ok(page_with(url)), url: ok(feed_body())})
    with pytest.raises(FeedError, match=r"is 16321 bytes .*, over the 1000-byte limit"):
        run_discovery(settings, site)
    assert site.urls() == [PAGE, url]


@pytest.mark.parametrize(
    ("age", "used"), [(timedelta(days=13, hours=23), True), (timedelta(days=14, hours=1), False)]
)
def test_cache_is_used_only_while_younger_than_the_maximum_age(
    age: timedelta, used: bool, make_settings: Callable[..., Settings]
) -> None:
    """With Microsoft unreachable the cached copy serves until it is MAX_FEED_AGE old."""
    settings = mirror(make_settings)
    published = NOW - age
    FeedCache(settings.cache_dir).store(  # type: ignore[arg-type]
        cloud="Public",
        url=file_url(f"{published:%Y%m%d}"),
        file_date=f"{published:%Y%m%d}",
        body=feed_body(),
        fetched_at=published,
    )
    site = Site(
        {PAGE: httpx.ConnectError("down"), file_url("20251030"): httpx.ConnectError("down")}
    )
    # file_date has day precision: pin "now" to the start of the published day plus `age`.
    now = datetime.strptime(f"{published:%Y%m%d}", "%Y%m%d").replace(tzinfo=UTC) + age
    if used:
        with capture_logs() as logs:
            feed = run_discovery(settings, site, now=now)
        assert feed.source.kind == "cache" and feed.source.location.endswith(
            f"{published:%Y%m%d}.json"
        )
        warning = next(e for e in logs if e["event"] == "using_cached_feed")
        assert warning["log_level"] == "warning"
    else:
        with pytest.raises(FeedError, match="over ALLOWLIST_SYNC_MAX_FEED_AGE"):
            run_discovery(settings, site, now=now)


@pytest.mark.parametrize("cloud", ["AzureGovernment", "China"])
def test_other_clouds_use_their_own_file_names(
    cloud: str, make_settings: Callable[..., Settings]
) -> None:
    """Gov and China files are probed under their own names and checked for their cloud."""
    target = cloud_named(cloud)
    settings = make_settings(azure_cloud=cloud, azure_details_url=PAGE)
    url = f"{target.download_base}/ServiceTags_{cloud}_20251027.json"
    site = Site({PAGE: httpx.Response(500), url: ok(feed_body(cloud))})
    feed = run_discovery(settings, site)
    assert (feed.cloud, feed.source.kind, feed.source.location) == (cloud, "date_probe", url)


def test_file_of_the_wrong_cloud_is_refused(make_settings: Callable[..., Settings]) -> None:
    """A Government file where the Public one was expected is an error naming the URL."""
    settings = mirror(make_settings)
    url = file_url("20251027")
    site = Site({PAGE: ok(page_with(url)), url: ok(feed_body("AzureGovernment"))})
    with pytest.raises(FeedError, match="'AzureGovernment', but 'Public' is configured"):
        run_discovery(settings, site)


# ---------------------------------------------------------------- the cache only moves forward


def seed(settings: Settings, file_date: str, change_number: int, **extra: Any) -> FeedCache:
    """A cached copy of `file_date` with `change_number`, downloaded a day after its date."""
    cache = FeedCache(settings.cache_dir)  # type: ignore[arg-type]
    published = datetime.strptime(file_date, "%Y%m%d").replace(tzinfo=UTC)
    stored = cache.store(
        cloud="Public",
        url=file_url(file_date),
        file_date=file_date,
        body=feed_body(change_number=change_number),
        fetched_at=published + timedelta(days=1),
        **extra,
    )
    assert stored is not None
    return cache


@pytest.mark.parametrize("page_down", [False, True], ids=["details-page", "date-probe"])
def test_older_download_never_replaces_a_newer_cached_file(
    page_down: bool, make_settings: Callable[..., Settings]
) -> None:
    """A found file with a lower changeNumber than the cache's is not cached nor used."""
    settings = mirror(make_settings)
    cache = seed(settings, "20251027", change_number=400)
    old = file_url("20250630")
    routes: dict[str, httpx.Response | Exception] = {old: ok(feed_body(change_number=310))}
    if page_down:
        routes[PAGE] = httpx.Response(500)
        routes[file_url("20251030")] = ok(feed_body(change_number=310))
    else:
        routes[PAGE] = ok(page_with(old))
    with capture_logs() as logs:
        feed = run_discovery(settings, Site(routes))
    assert (feed.change_number, feed.source.kind) == (400, "cache")
    assert feed.source.location == file_url("20251027")
    assert len(feed.warnings) == 1
    assert "changeNumber 310" in feed.warnings[0] and "changeNumber 400" in feed.warnings[0]
    event = next(e for e in logs if e["event"] == "discovered_file_older_than_cache")
    assert (event["change_number"], event["cached_change_number"]) == (310, 400)
    entry = cache.load("Public")
    assert entry is not None and entry.file_date == "20251027"
    assert entry.body == feed_body(change_number=400)


@pytest.mark.parametrize("change_number", [400, 401])
def test_same_or_newer_download_replaces_the_cache(
    change_number: int, make_settings: Callable[..., Settings]
) -> None:
    """A download with an equal or higher changeNumber is used and cached as usual."""
    settings = mirror(make_settings)
    cache = seed(settings, "20251020", change_number=400)
    url = file_url("20251027")
    body = feed_body(change_number=change_number, prefixes=["20.190.128.0/18"])
    feed = run_discovery(settings, Site({PAGE: ok(page_with(url)), url: ok(body)}))
    assert (feed.change_number, feed.source.kind, feed.warnings) == (
        change_number,
        "details_page",
        (),
    )
    entry = cache.load("Public")
    assert entry is not None and entry.body == body


def test_not_modified_refreshes_the_cache_metadata(make_settings: Callable[..., Settings]) -> None:
    """After a 304 the cache records the new fetchedAt and validators, so it does not age."""
    settings = mirror(make_settings)
    cache = seed(settings, "20251027", change_number=400, etag='"v1"')
    url = file_url("20251027")
    site = Site({PAGE: ok(page_with(url)), url: httpx.Response(304, headers={"ETag": '"v2"'})})
    feed = run_discovery(settings, site)
    assert feed.source.not_modified and feed.source.fetched_at == NOW.isoformat()
    assert site.requests[1].headers["if-none-match"] == '"v1"'
    entry = cache.load("Public")
    assert entry is not None and entry.fetched_at == NOW and entry.etag == '"v2"'
    assert entry.body == feed_body(change_number=400)


def test_cached_fallback_warns_with_its_age(make_settings: Callable[..., Settings]) -> None:
    """A run on the cached copy carries a warning saying how old the file is."""
    settings = mirror(make_settings)
    seed(settings, "20251024", change_number=400)
    site = Site({PAGE: httpx.ConnectError("down"), file_url("20251030"): httpx.ConnectError("x")})
    feed = run_discovery(settings, site)
    assert feed.source.kind == "cache" and len(feed.warnings) == 1
    assert "6.4 days old" in feed.warnings[0] and "dated 20251024" in feed.warnings[0]
    assert "ALLOWLIST_SYNC_MAX_FEED_AGE (14 days)" in feed.warnings[0]


def test_signed_redirect_of_a_discovered_file_stays_out_of_the_source(
    make_settings: Callable[..., Settings],
) -> None:
    """A link redirecting to a signed CDN URL: the source names the CDN URL without its query."""
    settings = mirror(make_settings)
    url = file_url("20251027")
    cdn = "https://cdn.example/blob/ServiceTags_Public_20251027.json?sv=1&sig=cdnSIGNATURE42"
    site = Site(
        {
            PAGE: ok(page_with(url)),
            url: httpx.Response(302, headers={"Location": cdn}),
            cdn: ok(feed_body()),
        }
    )
    feed = run_discovery(settings, site)
    assert (
        feed.source.location
        == "https://cdn.example/blob/ServiceTags_Public_20251027.json?<redacted>"
    )
    assert feed.source.file_date == "20251027"
    entry = FeedCache(settings.cache_dir).load("Public")  # type: ignore[arg-type]
    assert entry is not None and entry.url == url  # the link, for the next conditional request
