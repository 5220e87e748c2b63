"""The request log: what the emulator keeps of each `/api/` request, never a header or token.

One log for the whole emulator, in arrival order; each record names the account its path
names, so a test can count one account's requests or writes among several.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})


@dataclass(frozen=True)
class RequestRecord:
    """One request seen on a non-control path; never holds headers, so never the token."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None  # None when the connection was dropped before processing
    body: Any  # parsed JSON for writes (raw text if not JSON), None for reads
    caller_ip: str
    fault: str | None  # the injected fault action that applied, if any
    processed: bool  # False when a fault answered or dropped it before processing
    account_id: int | None = None  # the account the path names; None when it names none

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-compatible data."""
        return asdict(self)

    @property
    def is_write(self) -> bool:
        """A POST, PUT or DELETE on an /api/ path that was processed (not stopped by a fault)."""
        return self.processed and self.method in WRITE_METHODS and self.path.startswith("/api/")


def record_body(method: str, body: bytes | None) -> Any:
    """What the log keeps of a body: parsed JSON for writes (raw text if not JSON), else None."""
    if method not in WRITE_METHODS or not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")


class RequestLog:
    """The records in arrival order; the store's lock guards every use."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        """Keep one more record."""
        self._records.append(record)

    def clear(self) -> None:
        """Forget every record."""
        self._records.clear()

    def records(self, account_id: int | None = None) -> list[RequestRecord]:
        """Every record, or those whose path names `account_id`."""
        if account_id is None:
            return list(self._records)
        return [r for r in self._records if r.account_id == account_id]

    def write_count(self, account_id: int | None = None) -> int:
        """Processed writes, of every account or of `account_id`."""
        return sum(1 for r in self.records(account_id) if r.is_write)
