"""Okta's published IP ranges (`ip_ranges.json`): cells of CIDRs, fetched and validated."""
