"""Choose where the service-tags file comes from and return the validated Feed.

Order: `--source-file` (a path, or `-` for stdin), then `--source-url` /
`ALLOWLIST_SYNC_SOURCE_URL`, else discovery of the newest file of the configured cloud
(`azure/discover.py`: details page, date probing, last good cached copy). Nothing about the
dbt side happens here.

Whatever the source, the feed's age is then checked (`feed.check_age`): over 8 days a warning,
over ALLOWLIST_SYNC_MAX_FEED_AGE an error, except for an explicit `--source-file`, which a person
chose on purpose and which only warns.
"""

from __future__ import annotations

import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import httpx

from allowlist_sync.azure.discover import discover_feed
from allowlist_sync.azure.feed import (
    MAX_FEED_BYTES,
    Feed,
    SourceInfo,
    check_age,
    parse_feed,
    parse_http_date,
    too_large,
)
from allowlist_sync.azure.fetch import fetch
from allowlist_sync.azure.query import FeedQuery
from allowlist_sync.errors import FeedError
from allowlist_sync.logs import redact
from allowlist_sync.net.deadline import http_client


def load_feed(
    query: FeedQuery,
    *,
    source_file: str | None = None,
    source_url: str | None = None,
    stdin: BinaryIO | None = None,
    transport: httpx.BaseTransport | None = None,
    now: datetime | None = None,
) -> Feed:
    """Read, parse and validate the configured source; raises FeedError on any problem.

    `now` (default: the current time) dates the discovery (which dates to probe, how old the
    cached copy is) and the feed's age.
    """
    now = now or datetime.now(UTC)
    feed = _load(query, source_file, source_url, stdin, transport, now)
    return check_age(feed, now=now, max_age_days=query.max_age_days, fail=source_file is None)


def _load(
    query: FeedQuery,
    source_file: str | None,
    source_url: str | None,
    stdin: BinaryIO | None,
    transport: httpx.BaseTransport | None,
    now: datetime,
) -> Feed:
    tags = query.tags
    cloud = query.cloud
    if source_file is not None:
        body, info = _read_file(source_file, stdin)
        return parse_feed(body, source=info, tags=tags, expected_cloud=cloud)
    url = source_url or query.source_url
    if url is None:
        return discover_feed(query, transport=transport, now=now)
    with http_client(timeout=query.timeout, transport=transport) as client:
        fetched = fetch(client, url, retry=query.retry, max_bytes=MAX_FEED_BYTES)
    info = SourceInfo(
        kind="url",
        # Shown in plans and JSON: a signed redirect target's query stays out of them.
        location=redact(fetched.url),
        published=parse_http_date(fetched.headers.get("last-modified")),
    )
    return parse_feed(fetched.body, source=info, tags=tags, expected_cloud=cloud)


def _read_file(path: str, stdin: BinaryIO | None) -> tuple[bytes, SourceInfo]:
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        body = stream.read(MAX_FEED_BYTES + 1)
        return body, SourceInfo(kind="file", location="<stdin>")
    file = Path(path)
    try:
        with file.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_FEED_BYTES:
                raise FeedError(too_large(MAX_FEED_BYTES, size=info.st_size), source=path)
            body = handle.read(MAX_FEED_BYTES + 1)
    except OSError as exc:
        raise FeedError(f"cannot read the file: {exc.strerror}", source=path) from None
    return body, SourceInfo(kind="file", location=path)
