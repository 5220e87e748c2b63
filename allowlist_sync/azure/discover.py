"""Find the newest service-tags file of a cloud: the details page, date probing, the cache.

    1. details page   fetch it like a browser; take the `ServiceTags_<Cloud>_YYYYMMDD.json`
                      link (newest date when there are several); download that file
    2. date probing   `{download_base}/ServiceTags_<Cloud>_YYYYMMDD.json` for today and the days
                      before it, newest first; the first answer 200 with a JSON body wins
    3. cache          the last good file, if younger than ALLOWLIST_SYNC_MAX_FEED_AGE

Each step is a log event. A step that gets no file (an HTTP error, a network failure after
retries, a blocked request, a page without a link) hands over to the next one. A file that was
found but is broken (HTML, truncated, wrong cloud, tag missing or empty, too large) stops the run
with an error naming its URL: it is never replaced by older data, because it means something
changed that a person must look at. `discover_feed` validates a download completely before it is
used or cached; a request names the cached copy (ETag / Last-Modified) so an unchanged file is
answered 304 and read from the cache instead (and the cache's fetchedAt / ETag are refreshed).

The cache only moves forward: a download with a lower `changeNumber` than the cached file of the
same cloud (a page linking an old file, a mirror serving last month's) never replaces it. The run
then uses the cached, newer file and says so in a warning naming both changeNumbers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import httpx

from allowlist_sync.azure.cache import CacheEntry, FeedCache, default_cache_dir
from allowlist_sync.azure.clouds import Cloud, cloud_named, details_url, download_base
from allowlist_sync.azure.feed import (
    MAX_FEED_BYTES,
    Feed,
    SourceInfo,
    parse_feed,
    parse_http_date,
)
from allowlist_sync.azure.fetch import Fetched, UnavailableError, check_url_allowed, fetch
from allowlist_sync.azure.query import FeedQuery
from allowlist_sync.errors import FeedError
from allowlist_sync.logs import get_logger, redact
from allowlist_sync.net.deadline import http_client
from allowlist_sync.net.retries import RetryPolicy

log = get_logger(__name__)

#: The details page is about 200 kB; anything far larger is not that page.
MAX_PAGE_BYTES = 8 * 1024 * 1024
#: Probe answers meaning "no file of that date": Azure storage and CDNs use all three.
_MISSING = frozenset({403, 404, 410})

#: Headers for a conditional request of a URL (empty when nothing is cached for it).
ConditionalHeaders = Callable[[str], Mapping[str, str]]


def no_conditions(_url: str) -> Mapping[str, str]:
    """No cached copy: every request is unconditional."""
    return {}


@dataclass(frozen=True)
class Locations:
    """Where to look for one cloud's file: its details page and its direct-download folder."""

    cloud: Cloud
    details_url: str
    download_base: str
    probe_days: int = 14

    def probe_url(self, day: date) -> str:
        """The direct-download URL of the file published on `day`."""
        return f"{self.download_base}/{self.cloud.file_name(day)}"


@dataclass(frozen=True)
class Discovered:
    """A file found by discovery: how, the URL asked for, its date, and the HTTP answer.

    `fetched` is a 200 with the body, or a 304 when the cached copy is still current.
    """

    kind: Literal["details_page", "date_probe"]
    url: str
    file_date: str | None
    fetched: Fetched

    @property
    def not_modified(self) -> bool:
        """The server said the cached copy of `url` is still current."""
        return self.fetched.status_code == 304


def discover_feed(
    query: FeedQuery,
    *,
    transport: httpx.BaseTransport | None = None,
    now: datetime | None = None,
) -> Feed:
    """The newest valid file of the configured cloud, by discovery; raises FeedError.

    A downloaded file is parsed and validated before it is returned or cached. When neither
    the details page nor the date probe gives a file, the cached copy is used (with a warning)
    if it is younger than the maximum age, and the run fails otherwise.
    """
    now = now or datetime.now(UTC)
    cloud = cloud_named(query.cloud)
    where = Locations(
        cloud=cloud,
        details_url=details_url(cloud, query.details_url),
        download_base=download_base(cloud, query.download_base),
        probe_days=query.probe_days,
    )
    cache = FeedCache(query.cache_dir or default_cache_dir())
    cached = _load_cached(cache, query)
    conditional = cached.entry.conditional_headers if cached else no_conditions
    with http_client(timeout=query.timeout, transport=transport) as client:
        found = discover(
            client,
            where,
            today=now.astimezone(UTC).date(),
            retry=query.retry,
            conditional=conditional,
        )
    if found is None:
        return _from_cache(cached, query, cache, now)
    if found.not_modified and cached is not None:
        return _not_modified(found, cached, cache, now)
    info = SourceInfo(
        kind=found.kind,
        # Where the body came from after redirects: a signed hop's query stays out of output.
        location=redact(found.fetched.url),
        file_date=found.file_date,
        published=parse_http_date(found.fetched.headers.get("last-modified")),
        fetched_at=now.isoformat(),
    )
    # Validated in full before anything uses or caches it; a broken file is an error, not a
    # reason to fall back to the cache.
    feed = parse_feed(found.fetched.body, source=info, tags=query.tags, expected_cloud=cloud.name)
    if cached is not None and cached.feed.change_number > feed.change_number:
        return _keep_newer_cache(feed, cached)
    cache.store(
        cloud=cloud.name,
        url=found.url,
        file_date=found.file_date,
        body=found.fetched.body,
        fetched_at=now,
        etag=found.fetched.headers.get("etag"),
        last_modified=found.fetched.headers.get("last-modified"),
    )
    return feed


def _not_modified(found: Discovered, cached: _Cached, cache: FeedCache, now: datetime) -> Feed:
    """The cached copy, confirmed current by a 304; its metadata refreshed so it does not age."""
    log.info("feed_not_modified", url=found.url, cached=str(cached.entry.path))
    headers = found.fetched.headers
    cache.refresh(
        cached.entry,
        fetched_at=now,
        etag=headers.get("etag") or cached.entry.etag,
        last_modified=headers.get("last-modified") or cached.entry.last_modified,
    )
    source = replace(
        cached.feed.source, kind=found.kind, not_modified=True, fetched_at=now.isoformat()
    )
    return replace(cached.feed, source=source)


def _keep_newer_cache(downloaded: Feed, cached: _Cached) -> Feed:
    """A download older than the cached file: keep the cache, use it, and say so."""
    old, new = downloaded.source, cached.feed.source
    log.warning(
        "discovered_file_older_than_cache",
        kind=old.kind,
        url=old.location,
        change_number=old.change_number,
        cached_url=new.location,
        cached_change_number=new.change_number,
    )
    warning = (
        f"the {old.kind.replace('_', ' ')} gave {old.location} with changeNumber "
        f"{old.change_number}, older than the cached copy's changeNumber {new.change_number} "
        f"({new.location}); the cached copy is kept and used (a rollback of the feed?)"
    )
    return replace(cached.feed, warnings=(*cached.feed.warnings, warning))


def find_links(page: str, cloud: str, *, https_only: bool = False) -> list[tuple[str, str]]:
    """Every `ServiceTags_<cloud>_YYYYMMDD.json` URL in a page, as (url, date), newest first.

    Microsoft's page carries the link inside scripts and JSON as often as in an `href`, so the
    whole text is searched after undoing JSON and HTML escapes. Links that may not be fetched
    (plain http to a non-loopback host; any plain http with `https_only`) are left out; so are
    impossible dates.
    """
    text = html.unescape(re.sub(r"\\u002[fF]", "/", page.replace("\\/", "/")))
    pattern = re.compile(
        r"https?://[^\s\"'<>\\()]+?/ServiceTags_" + re.escape(cloud) + r"_(?P<date>\d{8})\.json"
    )
    links: dict[str, str] = {}
    for match in pattern.finditer(text):
        url, day = match.group(0), match.group("date")
        if url in links or not _is_date(day) or (https_only and not url.startswith("https:")):
            continue
        try:
            check_url_allowed(url)
        except FeedError:
            continue
        links[url] = day
    # sorted() is stable: among links of the same date, the page's first one wins.
    return sorted(links.items(), key=lambda link: link[1], reverse=True)


def probe_dates(today: date, days: int) -> list[date]:
    """Today and the `days - 1` days before it, newest first."""
    return [today - timedelta(days=n) for n in range(days)]


def discover(
    client: httpx.Client,
    where: Locations,
    *,
    today: date,
    retry: RetryPolicy,
    conditional: ConditionalHeaders = no_conditions,
) -> Discovered | None:
    """The newest file by the details page, else by date probing; None when neither found one.

    Raises FeedError only for a file that was found but cannot be used (too large, an unsafe
    redirect): that is not a reason to fall back to older data.
    """
    found = from_details_page(client, where, retry=retry, conditional=conditional)
    if found is None:
        found = by_date_probe(client, where, today=today, retry=retry, conditional=conditional)
    return found


def from_details_page(
    client: httpx.Client,
    where: Locations,
    *,
    retry: RetryPolicy,
    conditional: ConditionalHeaders = no_conditions,
) -> Discovered | None:
    """Step 1: the link on the details page, downloaded; None when this step found no file."""
    log.info("details_page_fetch", url=where.details_url, cloud=where.cloud.name)
    try:
        page = fetch(client, where.details_url, retry=retry, max_bytes=MAX_PAGE_BYTES)
    except FeedError as exc:
        # The page is only a pointer to the file: any failure here moves on to date probing.
        log.warning("details_page_failed", url=where.details_url, error=str(exc))
        return None
    # A real page (https) may not send us to plain http, not even on loopback.
    links = find_links(
        page.body.decode("utf-8", errors="replace"),
        where.cloud.name,
        https_only=page.url.startswith("https:"),
    )
    if not links:
        log.warning(
            "details_page_no_link",
            url=page.url,
            reason=f"no ServiceTags_{where.cloud.name}_YYYYMMDD.json link (page layout changed?)",
        )
        return None
    url, file_date = links[0]
    log.info("details_page_link", url=url, file_date=file_date, links=len(links))
    try:
        fetched = _fetch_file(client, url, retry=retry, conditional=conditional)
    except UnavailableError as exc:
        log.warning("details_page_file_unavailable", url=url, error=str(exc))
        return None
    return Discovered(kind="details_page", url=url, file_date=file_date, fetched=fetched)


def by_date_probe(
    client: httpx.Client,
    where: Locations,
    *,
    today: date,
    retry: RetryPolicy,
    conditional: ConditionalHeaders = no_conditions,
) -> Discovered | None:
    """Step 2: the direct path with the last `probe_days` dates, newest first; None if no file."""
    days = probe_dates(today, where.probe_days)
    log.info(
        "date_probe_started",
        base=where.download_base,
        newest=f"{days[0]:%Y%m%d}",
        oldest=f"{days[-1]:%Y%m%d}",
    )
    misses = 0
    for day in days:
        url = where.probe_url(day)
        try:
            fetched = _fetch_file(
                client, url, retry=retry, conditional=conditional, also_accept=_MISSING
            )
        except UnavailableError as exc:
            # Not "no file of this date" but "no answer": the host is down, stop asking it.
            log.warning("date_probe_failed", url=url, error=str(exc), misses=misses)
            return None
        file_date = f"{day:%Y%m%d}"
        if fetched.status_code in _MISSING:
            misses += 1
            log.debug("date_probe_miss", url=url, status_code=fetched.status_code)
            continue
        if fetched.status_code == 200 and not _looks_like_json(fetched.body):
            # Some mirrors and proxies answer a missing file with a 200 HTML page.
            misses += 1
            log.warning("date_probe_not_json", url=url, size=len(fetched.body))
            continue
        log.info("date_probe_found", url=url, file_date=file_date, misses=misses)
        return Discovered(kind="date_probe", url=url, file_date=file_date, fetched=fetched)
    log.warning(
        "date_probe_failed",
        base=where.download_base,
        error=f"no file dated in the last {where.probe_days} days",
        misses=misses,
    )
    return None


def _fetch_file(
    client: httpx.Client,
    url: str,
    *,
    retry: RetryPolicy,
    conditional: ConditionalHeaders,
    also_accept: frozenset[int] = frozenset(),
) -> Fetched:
    headers = dict(conditional(url))
    accept = frozenset({200}) | also_accept | (frozenset({304}) if headers else frozenset())
    return fetch(
        client,
        url,
        retry=retry,
        max_bytes=MAX_FEED_BYTES,
        headers=headers,
        accept_statuses=accept,
    )


def _looks_like_json(body: bytes) -> bool:
    return body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{"


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Cached:
    entry: CacheEntry
    feed: Feed


def _load_cached(cache: FeedCache, query: FeedQuery) -> _Cached | None:
    """The cached entry, validated like a download; None (with a warning) when unusable."""
    entry = cache.load(query.cloud)
    if entry is None:
        return None
    info = SourceInfo(
        kind="cache",
        location=str(entry.path),
        file_date=entry.file_date,
        published=parse_http_date(entry.last_modified),
        fetched_at=entry.fetched_at.isoformat(),
    )
    try:
        feed = parse_feed(
            entry.body,
            source=info,
            tags=query.tags,
            expected_cloud=query.cloud,
        )
    except FeedError as exc:
        log.warning("cache_ignored", path=str(entry.path), reason=str(exc))
        return None
    return _Cached(entry, replace(feed, source=replace(feed.source, location=entry.url)))


def _from_cache(cached: _Cached | None, query: FeedQuery, cache: FeedCache, now: datetime) -> Feed:
    """Step 3: the last good file when it is young enough; FeedError otherwise."""
    nothing = (
        f"no service-tags file for cloud {query.cloud!r}: neither the details page nor "
        f"the direct download path (last {query.probe_days} days) gave one"
    )
    if cached is None:
        raise FeedError(f"{nothing}, and there is no usable cached copy in {cache.directory}")
    age_days = cached.entry.age(now).total_seconds() / 86400
    if age_days > query.max_age_days:
        raise FeedError(
            f"{nothing}, and the cached copy ({cached.entry.url}, dated "
            f"{cached.entry.file_date or 'unknown'}) is {age_days:.1f} days old, over "
            f"ALLOWLIST_SYNC_MAX_FEED_AGE ({query.max_age_days:g} days)"
        )
    log.warning(
        "using_cached_feed",
        url=cached.entry.url,
        file_date=cached.entry.file_date,
        fetched_at=cached.entry.fetched_at.isoformat(),
        age_days=round(age_days, 2),
        max_age_days=query.max_age_days,
        reason="Microsoft's details page and direct download path gave no file",
    )
    warning = (
        f"Microsoft's download center gave no file; using the cached copy "
        f"({cached.entry.url}, dated {cached.entry.file_date or 'unknown'}, downloaded "
        f"{cached.entry.fetched_at.isoformat()}), {age_days:.1f} days old; runs fail once it is "
        f"over ALLOWLIST_SYNC_MAX_FEED_AGE ({query.max_age_days:g} days)"
    )
    return replace(cached.feed, warnings=(*cached.feed.warnings, warning))
