"""Find the selected tags in a service-tags body without building the whole document.

Microsoft's Public file lists ~3,000 tags and ~93,000 prefixes; parsing all of it builds about
17 MB of Python objects to keep ~200 strings. The fast path decodes only what a run needs:
the top-level `cloud` and `changeNumber` (before `"values"`), and each selected entry, found by
its exact `{"name": "<tag>"` opening (a quote inside a JSON string is always escaped, so that
text can only be a real object start, and the closing quote keeps look-alike tags out).

It answers only for the layout Microsoft publishes: those two keys once each before `"values"`,
`name` first in each entry, and a document that closes its `values` array and itself at the very
end (a truncated download does not). Anything else returns None and the caller parses the whole
document, which then reports whatever is wrong. A selected tag whose entry appears twice (both
openings decode as entries of that tag) raises DuplicateTagError: the full parse refuses it too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_VALUES = re.compile(rb'"values"\s*:\s*\[')
_CLOUD = re.compile(rb'"cloud"\s*:\s*"([^"\\]*)"')
_CHANGE = re.compile(rb'"changeNumber"\s*:\s*(-?\d+)\s*[,}]')
_ENTRY_START = re.compile(rb'\{\s*"name"\s*:')
# The last entry's `}`, then the values array's `]`, then the document's `}`: the schema has
# no other place where an object closes right before an array does.
_CLOSED = re.compile(rb"\}\s*\]\s*\}\s*\Z")


class DuplicateTagError(ValueError):
    """A selected tag has more than one entry in the file."""

    def __init__(self, tag: str, times: int) -> None:
        self.tag = tag
        self.times = times
        super().__init__(f"service tag {tag!r} is listed {times} times")


@dataclass(frozen=True)
class Scanned:
    """The head of the document and the selected entries, as plain JSON values."""

    cloud: str
    change_number: int
    entries: dict[str, Any]


def scan(body: bytes, tags: Sequence[str]) -> Scanned | None:
    """The selected entries of a service-tags body in Microsoft's layout, else None."""
    values = _VALUES.search(body)
    if values is None or not body.lstrip().startswith(b"{") or not _CLOSED.search(body):
        return None
    head = body[: values.start()]
    clouds = _CLOUD.findall(head)
    changes = _CHANGE.findall(head)
    if len(clouds) != 1 or len(changes) != 1:
        return None
    entries: dict[str, Any] = {}
    for tag in tags:
        entry = _entry(body, values.end(), tag)
        if entry is None:
            return None
        entries[tag] = entry
    try:
        cloud = clouds[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Scanned(cloud=cloud, change_number=int(changes[0]), entries=entries)


def _entry(body: bytes, start: int, tag: str) -> Any:
    opening = re.compile(rb'\{\s*"name"\s*:\s*"' + re.escape(tag.encode("utf-8")) + rb'"')
    openings = list(opening.finditer(body, start))
    if not openings:
        return None  # missing: let the full parse report it
    entries = [_decode_at(body, found.start(), tag) for found in openings]
    if len(openings) > 1:
        if all(entry is not None for entry in entries):
            raise DuplicateTagError(tag, len(openings))
        return None  # a nested look-alike, or a layout we do not know: the full parse decides
    return entries[0]


def _decode_at(body: bytes, begin: int, tag: str) -> Any:
    """The entry of `tag` opening at `begin`, up to the next entry or the end; else None."""
    following = _ENTRY_START.search(body, begin + 1)
    end = following.start() if following else _CLOSED.search(body, begin + 1)
    if end is None:
        return None
    stop = end if isinstance(end, int) else end.start() + 1
    chunk = body[begin:stop].rstrip().rstrip(b",")
    try:
        entry = orjson.loads(chunk)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) and entry.get("name") == tag else None
