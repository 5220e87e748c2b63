"""What a loaded source holds, and the union of a target's sources.

`Ranges` is one source after it was fetched and validated (scope included): its prefixes by
label (an Azure tag, an Okta cell, `cidrs` for a static source), where it came from, and what a
write of it records in the owned rule's description (Azure's changeNumber; Okta's file and static
CIDRs carry no version). `RangeSet` is what one target asks for: the union of its sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.record import FeedRecord

#: The label of a static source's CIDRs.
STATIC_LABEL = "cidrs"


@dataclass(frozen=True)
class Ranges:
    """One validated source: its prefixes by label, its origin and its version record."""

    name: str
    type: str
    prefixes: dict[str, tuple[str, ...]]
    source: SourceInfo
    #: What a write of these ranges records (the rollback guard compares it); None: unversioned.
    record: FeedRecord | None = None
    warnings: tuple[str, ...] = ()

    def all_prefixes(self) -> list[str]:
        """Every label's prefixes, in label order."""
        return [p for prefixes in self.prefixes.values() for p in prefixes]

    def to_json(self) -> dict[str, Any]:
        """The item of the JSON `sources` list: name, type, counts per label, origin."""
        return {
            "name": self.name,
            "type": self.type,
            "prefixes": {label: len(p) for label, p in self.prefixes.items()},
            **self.source.to_json(),
        }


@dataclass(frozen=True)
class RangeSet:
    """A target's sources, loaded: the desired set is the union of their prefixes."""

    items: tuple[Ranges, ...]

    def all_prefixes(self) -> list[str]:
        """Every source's prefixes, in source order (duplicates are merged later)."""
        return [p for ranges in self.items for p in ranges.all_prefixes()]

    def records(self) -> tuple[FeedRecord, ...]:
        """The version records a write of this set leaves in the rule's description."""
        return tuple(r.record for r in self.items if r.record is not None)

    @property
    def source(self) -> SourceInfo | None:
        """The first source's origin: the `source` of a one-source run's JSON output."""
        return self.items[0].source if self.items else None

    def all_warnings(self) -> list[str]:
        """What every source reports about itself (age, a cached fallback...)."""
        return [w for ranges in self.items for w in ranges.warnings]
