"""The Azure side: find, download and validate a service-tags file, keeping the selected tags.

Takes a `FeedQuery` (plain values), never the process-wide settings, so one run can fetch
several sources.
"""

from allowlist_sync.azure.feed import Feed, SourceInfo, parse_feed
from allowlist_sync.azure.query import FeedQuery
from allowlist_sync.azure.source import load_feed

__all__ = ["Feed", "FeedQuery", "SourceInfo", "load_feed", "parse_feed"]
