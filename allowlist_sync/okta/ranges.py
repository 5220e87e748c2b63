"""Parse and validate Okta's `ip_ranges.json`, keeping only the cells asked for.

The file is one JSON object, cell name -> `{"ip_ranges": [CIDR, ...]}`, with no version or date.
Every problem is a FeedError naming the source and the problem; nothing downstream runs on a bad
file. The selected cells are checked in full:

- the body is JSON (orjson, which also refuses bad UTF-8, NaN and absurd nesting) and an object;
- no key is listed twice where it matters (a selected cell, or `ip_ranges` inside one): which of
  the two would be right? The stdlib parser's `object_pairs_hook` sees them, orjson cannot;
- each selected cell is present (else the message lists the cells there are, with a "did you
  mean"), an object with an `ip_ranges` list that is not empty;
- each entry is a string in plain CIDR form (or a bare address), without host bits set: unlike
  Azure's parser, which clears host bits, `3.33.136.245/24` is refused, because guessing between
  the /32 that was meant and the /24 that was written could widen the allowlist 256-fold.

A CIDR listed twice in a cell is kept once. Cells not selected are not judged beyond being JSON.
Whether a prefix may be allowlisted at all (global unicast, not too broad) is the common scope
guard's job (`guards.check_feed_scope`), run on every source.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from allowlist_sync.azure.feed import SourceInfo, too_large
from allowlist_sync.errors import FeedError

#: Far above the real file (74 KB in 2022): a larger body is not Okta's ranges file.
MAX_OKTA_BYTES = 8 * 1024 * 1024
#: An address, optionally `/` and a prefix length: no netmask form, no zone id, no spaces.
_CIDR_FORM = re.compile(r"[0-9A-Fa-f:.]+(/(0|[1-9][0-9]{0,2}))?")
# JSON's whitespace, and only it.
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")
#: How much of a name or entry from the file a message quotes (the file is anyone's text).
_QUOTED = 60
#: How many cell names a "not in the file" message lists.
_LISTED = 30


@dataclass(frozen=True)
class OktaFeed:
    """The validated part of Okta's file: where it came from and the selected cells' CIDRs."""

    source: SourceInfo
    #: cell -> its CIDRs (normalised, each once), in the order the cells were asked for.
    prefixes: dict[str, tuple[str, ...]]
    #: What the run should report about this feed (a cached fallback, ...).
    warnings: tuple[str, ...] = ()

    def all_prefixes(self) -> list[str]:
        """Every selected cell's CIDRs, in cell order, each once (cells share many addresses)."""
        return list(dict.fromkeys(p for cell in self.prefixes.values() for p in cell))


def parse_okta(body: bytes, *, cells: Sequence[str], source: SourceInfo) -> OktaFeed:
    """Validate an `ip_ranges.json` body and return the selected cells; raises FeedError."""
    where = source.location
    wanted = tuple(dict.fromkeys(cells))
    if not wanted:
        raise FeedError("no Okta cell is selected", source=where)
    doc = _load_json(body, where)
    if not isinstance(doc, _Object):
        raise FeedError(
            f"not Okta's ip_ranges.json (the top level is {_json_type(doc)}, not an object of "
            "cells)",
            source=where,
        )
    prefixes = {cell: _cell_prefixes(doc, cell, where) for cell in wanted}
    return OktaFeed(source=source, prefixes=prefixes)


class _Object(dict[str, Any]):
    """A JSON object that remembers which of its keys were listed more than once."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.listed: dict[str, int] = {}
        for key, _ in pairs:
            self.listed[key] = self.listed.get(key, 0) + 1

    def times(self, key: str) -> int:
        """How often `key` was listed in the document."""
        return self.listed.get(key, 0)


def _load_json(body: bytes, where: str) -> Any:
    if len(body) > MAX_OKTA_BYTES:
        # Readers stop at the limit + 1 byte: the length here is not the real size.
        raise FeedError(too_large(MAX_OKTA_BYTES), source=where)
    body = body.removeprefix(b"\xef\xbb\xbf")
    start = _LEADING_SPACE.match(body)
    head = body[start.end() if start else 0 :][:64].lower()
    if not head:
        raise FeedError("the body is empty, not JSON", source=where)
    if head.startswith(b"<?xml"):
        raise FeedError("not JSON, looks like XML (an S3 error document?)", source=where)
    if head.startswith(b"<"):
        raise FeedError("not JSON, looks like HTML (an error page?)", source=where)
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(":", 1)[0]
        raise FeedError(f"not JSON ({reason}; truncated download?)", source=where) from None
    try:
        # orjson accepted it, so this sees valid UTF-8 JSON; it is run for the duplicate keys.
        return json.loads(body.decode("utf-8"), object_pairs_hook=_Object)
    except RecursionError:  # orjson takes 1,024 levels, the stdlib parser about 1,000
        raise FeedError("not JSON this program reads (nested too deeply)", source=where) from None
    except ValueError:  # pragma: no cover - orjson refuses every number the stdlib would
        reason = "not JSON this program reads (a number out of range)"
        raise FeedError(reason, source=where) from None


def _cell_prefixes(doc: _Object, cell: str, where: str) -> tuple[str, ...]:
    name = _quote(cell)
    if cell not in doc:
        raise FeedError(_missing_cell(cell, list(doc)), source=where)
    if doc.times(cell) > 1:
        raise FeedError(
            f"cell {name} is listed {doc.times(cell)} times in the file (which one is right?)",
            source=where,
        )
    value = doc[cell]
    if (
        not isinstance(value, _Object)
        or "ip_ranges" not in value
        or not isinstance(value["ip_ranges"], list)
    ):
        raise FeedError(
            f'cell {name} is not of the form {{"ip_ranges": [...]}} ({_shape(value)})',
            source=where,
        )
    if value.times("ip_ranges") > 1:
        raise FeedError(
            f"cell {name} lists 'ip_ranges' {value.times('ip_ranges')} times (which one is right?)",
            source=where,
        )
    entries: list[Any] = value["ip_ranges"]
    if not entries:
        raise FeedError(f"cell {name} has an empty ip_ranges list", source=where)
    networks: dict[str, None] = {}
    for index, entry in enumerate(entries):
        networks.setdefault(_network(entry, f"cell {name} entry {index}", where), None)
    return tuple(networks)


def _network(entry: Any, what: str, where: str) -> str:
    """The normalised CIDR of one entry; FeedError when it is not a network in CIDR form."""
    if not isinstance(entry, str):
        raise FeedError(f"{what} is {_json_type(entry)}, not a CIDR string", source=where)
    shown = _quote(entry)
    try:
        if not _CIDR_FORM.fullmatch(entry):
            raise ValueError(entry)
        loose = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise FeedError(f"{what} is not an IP network: {shown}", source=where) from None
    if str(loose.network_address) != str(ipaddress.ip_address(entry.partition("/")[0])):
        raise FeedError(
            f"{what} {shown} has host bits set (the network is {loose}; was "
            f"{entry.partition('/')[0]}/{loose.max_prefixlen} meant?): refused rather than "
            "guessed",
            source=where,
        )
    return str(loose)


def _missing_cell(cell: str, present: list[str]) -> str:
    by_lower = {name.lower(): name for name in present}
    close = difflib.get_close_matches(cell.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f" (did you mean {_quote(by_lower[close[0]])}?)" if close else ""
    if not present:
        return f"cell {_quote(cell)} is not in the file{hint}: the file has no cells"
    listed = ", ".join(_quote(name, repr_=False) for name in sorted(present)[:_LISTED])
    more = f" and {len(present) - _LISTED} more" if len(present) > _LISTED else ""
    return f"cell {_quote(cell)} is not in the file{hint}; its cells are: {listed}{more}"


def _shape(value: Any) -> str:
    if isinstance(value, _Object):
        if "ip_ranges" not in value:
            keys = ", ".join(_quote(k) for k in list(value)[:5]) or "none"
            return f"no 'ip_ranges' key; keys: {keys}"
        return f"'ip_ranges' is {_json_type(value['ip_ranges'])}"
    return f"it is {_json_type(value)}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _quote(text: str, *, repr_: bool = True) -> str:
    """`text` from the file, safe for a one-line message: escaped, and cut when long."""
    cut = text if len(text) <= _QUOTED else text[:_QUOTED] + "..."
    shown = repr(cut)
    return shown if repr_ else shown[1:-1]
