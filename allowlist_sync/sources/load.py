"""Load one configured source: fetch it, validate it, and hold it to the feed scope.

Every source passes the same gate whatever its kind: a prefix that is not globally routable
unicast, or broader than the configured minimum prefix lengths, refuses the whole source
(`guards.check_feed_scope`, exit 3), before any target is read. Freshness is checked where the
source has dates (Azure's files); Okta's file has none, and a static list is the configuration.
"""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO

import httpx

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.azure.source import load_feed
from allowlist_sync.guards import Limits, check_feed_scope
from allowlist_sync.logs import get_logger
from allowlist_sync.record import FeedRecord
from allowlist_sync.sources.ranges import STATIC_LABEL, Ranges
from allowlist_sync.sources.specs import AzureSource, OktaSource, SourceSpec, StaticSource

log = get_logger(__name__)


def load_ranges(
    spec: SourceSpec,
    limits: Limits,
    *,
    transport: httpx.BaseTransport | None = None,
    stdin: BinaryIO | None = None,
    now: datetime | None = None,
) -> Ranges:
    """The validated, in-scope ranges of `spec`; FeedError, UnsafePlanError (scope) otherwise."""
    ranges = _load(spec, transport=transport, stdin=stdin, now=now)
    check_feed_scope(ranges.all_prefixes(), limits)
    log.info(
        "source_loaded",
        source=ranges.name,
        type=ranges.type,
        kind=ranges.source.kind,
        location=ranges.source.location,
        cloud=ranges.source.cloud,
        change_number=ranges.source.change_number,
        tags={label: len(p) for label, p in ranges.prefixes.items()},
    )
    return ranges


def _load(
    spec: SourceSpec,
    *,
    transport: httpx.BaseTransport | None,
    stdin: BinaryIO | None,
    now: datetime | None,
) -> Ranges:
    if isinstance(spec, AzureSource):
        feed = load_feed(
            spec.query, source_file=spec.file, stdin=stdin, transport=transport, now=now
        )
        return Ranges(
            name=spec.name,
            type=spec.type,
            prefixes=dict(feed.prefixes),
            source=feed.source,
            record=FeedRecord(feed.cloud, feed.change_number, feed.source.file_date),
            warnings=feed.warnings,
        )
    if isinstance(spec, OktaSource):
        from allowlist_sync.okta.source import load_okta  # only runs with an Okta source pay

        okta = load_okta(spec.query, transport=transport, now=now)
        return Ranges(
            name=spec.name,
            type=spec.type,
            prefixes=dict(okta.prefixes),
            source=okta.source,
            warnings=okta.warnings,
        )
    assert isinstance(spec, StaticSource)
    return Ranges(
        name=spec.name,
        type=spec.type,
        prefixes={STATIC_LABEL: spec.cidrs},
        source=SourceInfo(kind="config", location=f"sources.{spec.name}"),
    )
