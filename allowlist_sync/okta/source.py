"""Load Okta's ranges: a file a person chose, or the download with its last good copy behind it.

    query.file set      read it (size-limited), validate, done: no cache
    else                GET query.url, naming the cached copy (If-None-Match / If-Modified-Since)
        200             validate, then keep it as the new last good copy
        304             the cached copy, its metadata refreshed (it was confirmed current)
        any failure     (no answer, an HTTP error, an unsafe redirect, a body too large or
                        invalid): the cached copy if it is valid for the selected cells, with a
                        warning saying why and how old it is; else the FeedError

Okta's file carries no date, so there is no freshness check; a cached fallback is never silent.
An invalid download never replaces the cached copy.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from allowlist_sync.azure.cache import default_cache_dir
from allowlist_sync.azure.feed import SourceInfo, parse_http_date, too_large
from allowlist_sync.azure.fetch import fetch, register_url_secrets
from allowlist_sync.errors import ConfigError, FeedError
from allowlist_sync.logs import display_url, get_logger, redact
from allowlist_sync.net.deadline import http_client
from allowlist_sync.okta.cache import OktaCache, OktaCacheEntry
from allowlist_sync.okta.query import OktaQuery
from allowlist_sync.okta.ranges import MAX_OKTA_BYTES, OktaFeed, parse_okta

log = get_logger(__name__)


def load_okta(
    query: OktaQuery,
    *,
    transport: httpx.BaseTransport | None = None,
    now: datetime | None = None,
) -> OktaFeed:
    """Read, validate and return the selected cells' ranges; raises FeedError on any problem.

    `now` (default: the current time) stamps the cache and dates a cached fallback.
    """
    if not query.cells:
        raise ConfigError("an Okta source needs at least one cell (e.g. us_cell_1)")
    now = now or datetime.now(UTC)
    if query.file is not None:
        body = read_file(query.file)
        info = SourceInfo(kind="file", location=query.file)
        return parse_okta(body, cells=query.cells, source=info)
    url = query.url
    register_url_secrets(url)  # before anything below can log or raise with it
    cache = OktaCache(query.cache_dir or default_cache_dir())
    cached = _usable_cache(cache, url, query)
    try:
        return _download(query, url, cache, cached, transport, now)
    except FeedError as exc:
        if cached is None:
            log.warning("okta_download_failed", url=display_url(url), error=str(exc), cache=False)
            raise
        return _from_cache(cached, exc, now, max_age_days=query.max_age_days)


def read_file(path: str) -> bytes:
    """The body of a file, refused past MAX_OKTA_BYTES without reading it all."""
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_OKTA_BYTES:
                raise FeedError(too_large(MAX_OKTA_BYTES, size=info.st_size), source=path)
            body = handle.read(MAX_OKTA_BYTES + 1)
    except OSError as exc:
        raise FeedError(f"cannot read the file: {exc.strerror}", source=path) from None
    if len(body) > MAX_OKTA_BYTES:  # a pipe or device: its size was not known up front
        raise FeedError(too_large(MAX_OKTA_BYTES), source=path)
    return body


class _Cached:
    """A cached copy and the feed it gives for the selected cells."""

    def __init__(self, entry: OktaCacheEntry, feed: OktaFeed) -> None:
        self.entry = entry
        self.feed = feed


def _usable_cache(cache: OktaCache, url: str, query: OktaQuery) -> _Cached | None:
    """The cached copy of `url` when it is valid for the selected cells, else None (warned).

    Only such a copy is named in a conditional request: a 304 must lead to usable data.
    """
    entry = cache.load(url)
    if entry is None:
        return None
    info = SourceInfo(
        kind="cache",
        location=entry.url,
        published=parse_http_date(entry.last_modified),
        fetched_at=entry.fetched_at.astimezone(UTC).isoformat(),
    )
    try:
        feed = parse_okta(entry.body, cells=query.cells, source=info)
    except FeedError as exc:
        log.warning("okta_cache_unusable", path=str(entry.path), error=str(exc))
        return None
    return _Cached(entry, feed)


def _download(
    query: OktaQuery,
    url: str,
    cache: OktaCache,
    cached: _Cached | None,
    transport: httpx.BaseTransport | None,
    now: datetime,
) -> OktaFeed:
    headers = cached.entry.conditional_headers() if cached else {}
    accept = frozenset({200, 304}) if headers else frozenset({200})
    log.info("okta_fetch", url=display_url(url), conditional=bool(headers))
    with http_client(timeout=query.timeout, transport=transport) as client:
        fetched = fetch(
            client,
            url,
            retry=query.retry,
            max_bytes=MAX_OKTA_BYTES,
            headers=headers,
            accept_statuses=accept,
        )
    etag = fetched.headers.get("etag")
    last_modified = fetched.headers.get("last-modified")
    if fetched.status_code == 304 and cached is not None:
        log.info("okta_not_modified", url=display_url(url), cached=str(cached.entry.path))
        entry = cached.entry
        cache.refresh(
            url,
            entry,
            fetched_at=now,
            etag=etag or entry.etag,
            last_modified=last_modified or entry.last_modified,
        )
        source = replace(
            cached.feed.source,
            kind="url",
            location=redact(fetched.url),
            published=parse_http_date(last_modified) or cached.feed.source.published,
            fetched_at=now.isoformat(),
            not_modified=True,
        )
        return replace(cached.feed, source=source)
    info = SourceInfo(
        kind="url",
        # Shown in plans and JSON: a signed redirect target's query stays out of them.
        location=redact(fetched.url),
        published=parse_http_date(last_modified),
        fetched_at=now.isoformat(),
    )
    # Validated before it is used or cached: an invalid body never replaces the last good copy.
    feed = parse_okta(fetched.body, cells=query.cells, source=info)
    log.info(
        "okta_downloaded",
        url=info.location,
        size=len(fetched.body),
        cells=len(feed.prefixes),
        prefixes=len(feed.all_prefixes()),
    )
    cache.store(url, body=fetched.body, fetched_at=now, etag=etag, last_modified=last_modified)
    return feed


def _from_cache(
    cached: _Cached, error: FeedError, now: datetime, *, max_age_days: float
) -> OktaFeed:
    """The cached copy after a failed download, with a warning saying why and how old it is;
    past `max_age_days` the FeedError stands (a copy that old may allow withdrawn ranges)."""
    entry = cached.entry
    age = _age(now - entry.fetched_at)
    if now - entry.fetched_at > timedelta(days=max_age_days):
        log.error(
            "okta_cache_too_old",
            url=entry.url,
            age_seconds=int((now - entry.fetched_at).total_seconds()),
        )
        raise FeedError(
            f"{redact(str(error))}; the last good copy was downloaded or confirmed {age}, past "
            f"ALLOWLIST_SYNC_MAX_FEED_AGE ({max_age_days:g} days), so it is not used"
        ) from None
    checked = f"{entry.fetched_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    modified = f", Last-Modified {entry.last_modified}" if entry.last_modified else ""
    log.warning(
        "okta_cache_used",
        url=entry.url,
        error=redact(str(error)),
        cached=str(entry.path),
        fetched_at=entry.fetched_at.astimezone(UTC).isoformat(),
        age_seconds=int((now - entry.fetched_at).total_seconds()),
    )
    warning = (
        f"Okta's ranges could not be downloaded ({redact(str(error))}); using the cached copy last "
        f"downloaded or confirmed {checked}, {age}{modified}"
    )
    return replace(cached.feed, warnings=(*cached.feed.warnings, warning))


def _age(delta: timedelta) -> str:
    """How long ago, in words fit for a warning."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "a time in the future (clock skew?)"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"
