"""Okta's published IP ranges (`ip_ranges.json`): cells of CIDRs, fetched and validated."""

from allowlist_sync.okta.query import DEFAULT_OKTA_URL, OktaQuery
from allowlist_sync.okta.ranges import MAX_OKTA_BYTES, OktaFeed, parse_okta
from allowlist_sync.okta.source import load_okta

__all__ = ["DEFAULT_OKTA_URL", "MAX_OKTA_BYTES", "OktaFeed", "OktaQuery", "load_okta", "parse_okta"]
