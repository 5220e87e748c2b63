"""What to fetch: Okta's ranges of some cells, as plain values (no process-wide settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from allowlist_sync.net.retries import RetryPolicy

#: Where Okta publishes the file (Okta help center: "Okta IP addresses to allowlist").
DEFAULT_OKTA_URL = "https://s3.amazonaws.com/okta-ip-ranges/ip_ranges.json"


@dataclass(frozen=True)
class OktaQuery:
    """The cells to keep, where the file is, and how hard and how long to try.

    `file` set: read it (no cache); else download `url` with a conditional GET against the last
    good copy in `cache_dir`, which is also used (with a warning) when the download fails.
    """

    cells: tuple[str, ...]
    url: str = DEFAULT_OKTA_URL
    file: str | None = None
    cache_dir: Path | None = None
    #: The last good copy is used after a failed download only while it is younger than this
    #: (ALLOWLIST_SYNC_MAX_FEED_AGE): ranges Okta withdrew must not stay allowed for ever.
    max_age_days: float = 14.0
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
