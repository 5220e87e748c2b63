"""Fault injection for the emulator: what to break, on which requests, how many times."""

from __future__ import annotations

import http
import re
from dataclasses import asdict, dataclass
from typing import Any

# "status": answer `status` (error envelope, optional Retry-After) without processing.
# "drop_before": close the connection without an answer; the request is not processed.
# "drop_after": process the request (state changes), then close without an answer.
# "delay_before": sleep `seconds`, then process and answer normally.
# "delay_after": process, sleep `seconds`, then answer.
# "store_other": answer a rule write (create or update) as usual, but store something other
#   than what was sent: the write's last added CIDR is dropped (or, for a write that only
#   removes, its first removal is undone). Taken only by a write that changed the rule, so
#   reads and refused writes leave it pending. For tests of the verify step.
STORE_OTHER = "store_other"
ACTIONS: frozenset[str] = frozenset(
    {"status", "drop_before", "drop_after", "delay_before", "delay_after", STORE_OTHER}
)

_FIELDS = ("method", "path_regex", "times", "action", "status", "retry_after", "seconds")


@dataclass(kw_only=True)
class Fault:
    """One injected fault; consumed once per matching /api request until `times` reaches 0."""

    method: str | None = None
    path_regex: str | None = None
    times: int = 1
    action: str
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        # Validate eagerly so a typo in a test fails at setup, not as a silently unused fault.
        if self.action not in ACTIONS:
            raise ValueError(
                f"unknown fault action {self.action!r}; expected one of {sorted(ACTIONS)}"
            )
        if isinstance(self.times, bool) or not isinstance(self.times, int) or self.times < 1:
            raise ValueError("fault times must be an integer >= 1")
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise ValueError("fault status must be an integer")
        try:
            http.HTTPStatus(self.status)
        except ValueError:
            raise ValueError(f"fault status {self.status} is not an HTTP status code") from None
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float):
            raise ValueError("fault seconds must be a number")
        if self.seconds < 0:
            raise ValueError("fault seconds must be >= 0")
        if self.method is not None and not isinstance(self.method, str):
            raise ValueError("fault method must be a string or null")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, str)
            or not all(" " <= ch <= "~" for ch in self.retry_after)
        ):
            # Sent as a header value: a CR or LF would split the answer's headers.
            raise ValueError("fault retry_after must be a string of printable ASCII or null")
        if self.path_regex is not None:
            if not isinstance(self.path_regex, str):
                raise ValueError("fault path_regex must be a string or null")
            try:
                re.compile(self.path_regex)
            except re.error as exc:
                raise ValueError(f"fault path_regex does not compile: {exc}") from None

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request (method case-insensitive, regex searched)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None

    def to_dict(self) -> dict[str, Any]:
        """The fault as JSON-compatible data (the control API's shape)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Fault:
        """Build a fault from control-API JSON; ValueError on unknown keys or bad values."""
        if not isinstance(data, dict):
            raise ValueError("a fault must be a JSON object")
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
        if "action" not in data:
            raise ValueError("a fault needs an 'action'")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


def take_fault(
    faults: list[Fault], method: str, path: str, *, after_write: bool = False
) -> Fault | None:
    """Consume one use of the first matching fault (caller holds the lock); None if none match.

    Before processing (`after_write` False) every action but `store_other` is considered;
    after a write that changed a rule (`after_write` True) only `store_other` is.
    """
    for index, fault in enumerate(faults):
        if (fault.action == STORE_OTHER) == after_write and fault.matches(method, path):
            fault.times -= 1
            if fault.times <= 0:
                del faults[index]
            return fault
    return None
