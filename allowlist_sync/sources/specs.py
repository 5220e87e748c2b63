"""What each configured source is: plain values, one dataclass per `type` of a `[sources.*]` table.

    azure-service-tags   Azure's weekly service-tags file (discovered, or `file` / `url`)
    okta-ip-ranges       Okta's ip_ranges.json (the published URL, or `file` / `url`)
    static               CIDRs written in the configuration

The environment-only setup is one `AzureSource` named `azure`.
"""

from __future__ import annotations

from dataclasses import dataclass

from allowlist_sync.azure.query import FeedQuery
from allowlist_sync.okta.query import OktaQuery


@dataclass(frozen=True)
class AzureSource:
    """An Azure service-tags source: its query, and a file or URL that replaces discovery."""

    name: str
    query: FeedQuery
    #: A path (or `-` for stdin): read instead of discovering; only warns when old.
    file: str | None = None
    type: str = "azure-service-tags"


@dataclass(frozen=True)
class OktaSource:
    """Okta's published ranges, restricted to the named cells."""

    name: str
    query: OktaQuery
    type: str = "okta-ip-ranges"


@dataclass(frozen=True)
class StaticSource:
    """CIDRs kept in the configuration itself (an office, a partner)."""

    name: str
    cidrs: tuple[str, ...]
    type: str = "static"


SourceSpec = AzureSource | OktaSource | StaticSource
#: The `type` values of a `[sources.*]` table.
SOURCE_TYPES = ("azure-service-tags", "okta-ip-ranges", "static")
