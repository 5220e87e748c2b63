"""Durations as people write them in settings: `30s`, `15m`, `1h`, `2h30m`, `1d`.

Whole numbers with a unit, largest unit first, each unit at most once. A bare number, a
fraction, zero, a sign, `inf` or anything past `MAX_SECONDS` is refused: a retry delay that
means something other than what was typed is worse than a start-up error.
"""

from __future__ import annotations

import re

#: The longest duration accepted (30 days): longer waits are a schedule, not a retry.
MAX_SECONDS = 30 * 86400
#: The most delays one list may hold; the last one repeats anyway.
MAX_ITEMS = 20
_DURATION = re.compile(r"(?:([0-9]{1,7})d)?(?:([0-9]{1,7})h)?(?:([0-9]{1,7})m)?(?:([0-9]{1,7})s)?")
_UNITS = (86400, 3600, 60, 1)
_EXAMPLES = "such as 30s, 15m, 1h or 2h30m"


def parse_duration(text: str) -> float:
    """Seconds of one duration; ValueError naming the problem if it is not one."""
    term = text.strip().lower()
    match = _DURATION.fullmatch(term) if term else None
    if match is None or not any(match.groups()):
        shown = term if len(term) <= 20 else term[:20] + "..."
        raise ValueError(f"{shown!r} is not a duration: use whole numbers with a unit, {_EXAMPLES}")
    seconds = sum(
        int(part) * unit for part, unit in zip(match.groups(), _UNITS, strict=True) if part
    )
    if seconds <= 0:
        raise ValueError(f"{term!r} is zero: a retry delay must be positive")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{term!r} is longer than 30 days")
    return float(seconds)


def parse_durations(text: str) -> tuple[float, ...]:
    """Seconds of a comma list of durations (`off`: none); ValueError naming the first bad item."""
    if text.strip().lower() == "off":
        return ()
    items = text.split(",")
    if len(items) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} delays (the last one repeats)")
    return tuple(parse_duration(item) for item in items)
