"""What to fetch: one Azure service-tags source, as plain values (no process-wide settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from allowlist_sync.net.retries import RetryPolicy


@dataclass(frozen=True)
class FeedQuery:
    """The tags of one cloud, where to find the file, and how hard and how long to try.

    `source_url` set: download it; else discovery (details page, date probe, cache) with
    `details_url` / `download_base` overriding the cloud's documented locations.
    """

    tags: tuple[str, ...]
    cloud: str = "Public"
    source_url: str | None = None
    details_url: str | None = None
    download_base: str | None = None
    probe_days: int = 14
    cache_dir: Path | None = None
    max_age_days: float = 14.0
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
