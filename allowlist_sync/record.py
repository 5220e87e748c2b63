"""What a write applied, recorded in the owned rule's description on the platform.

A CronJob pod starts with no local state, so the one place that survives every run is the rule
itself (as external-dns keeps its ownership records in TXT records). Each write appends one
marker to the description, replacing an older one and keeping any text a person wrote:

    Managed by allowlist-sync ... [allowlist-sync applied: Public changeNumber=375 file=20251028]

A later run reads it back to refuse a feed that is older than what was applied (the rollback
guard). A description without a marker (a rule made by hand, or by an older version) records
nothing, and no rollback can be detected against it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_MARKER = re.compile(
    r"\s*\[allowlist-sync applied: (?P<cloud>[A-Za-z]+) changeNumber=(?P<change>\d{1,18})"
    r"(?: file=(?P<date>\d{8}))?\]"
)


@dataclass(frozen=True)
class FeedRecord:
    """The feed a write applied: its cloud, its changeNumber and, when known, its file date."""

    cloud: str
    change_number: int
    file_date: str | None = None

    def marker(self) -> str:
        """The marker text, as stored in the description."""
        date = f" file={self.file_date}" if self.file_date else ""
        return f"[allowlist-sync applied: {self.cloud} changeNumber={self.change_number}{date}]"


def read_record(description: str | None) -> FeedRecord | None:
    """The last marker in a description, or None when it holds none."""
    found = list(_MARKER.finditer(description or ""))
    if not found:
        return None
    last = found[-1]
    return FeedRecord(last["cloud"], int(last["change"]), last["date"])


def read_records(description: str | None) -> dict[str, FeedRecord]:
    """Every cloud's last marker in a description (a target may sync several clouds' files)."""
    return {
        m["cloud"]: FeedRecord(m["cloud"], int(m["change"]), m["date"])
        for m in _MARKER.finditer(description or "")
    }


def with_record(description: str | None, applied: FeedRecord) -> str:
    """`description` with its marker(s) replaced by one for `applied`; a person's text is kept."""
    return with_records(description, (applied,))


def with_records(description: str | None, applied: Sequence[FeedRecord]) -> str:
    """`description` with its markers replaced by one per record of `applied`; a person's text
    is kept. Nothing to record (Okta's file and static CIDRs carry no version): unchanged."""
    if not applied:
        return description or ""
    text = _MARKER.sub("", description or "").strip()
    markers = " ".join(record.marker() for record in applied)
    return f"{text} {markers}" if text else markers
