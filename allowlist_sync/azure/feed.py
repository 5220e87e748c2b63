"""Parse and validate an Azure service-tags file, keeping only the tags asked for.

Only the selected entries are decoded and validated with pydantic: `scan` finds them in a file
of Microsoft's layout without building the other 3,000 entries; any other layout is parsed whole
with orjson. Every problem is a
FeedError that names the source and the problem; nothing downstream runs on a bad file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from allowlist_sync.azure.scan import scan
from allowlist_sync.cidrs import parse_network
from allowlist_sync.errors import FeedError

#: Far above the real Public file (4.1 MB in 2025): a larger body is not a service-tags file.
MAX_FEED_BYTES = 64 * 1024 * 1024
_FILE_DATE = re.compile(r"ServiceTags_(?P<cloud>[A-Za-z]+)_(?P<date>\d{8})\.json")
#: The `SourceInfo.kind`s of a file found by discovery (rather than given by the user).
DISCOVERY_KINDS = frozenset({"details_page", "date_probe", "cache"})


class _TagProperties(BaseModel):
    model_config = ConfigDict(extra="ignore")

    changeNumber: int  # noqa: N815 - Azure's field name
    addressPrefixes: list[str]  # noqa: N815


class _TagValue(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    properties: _TagProperties


@dataclass(frozen=True)
class SourceInfo:
    """Where the feed came from: how it was found, its URL or file, and what the file says."""

    kind: str  # file | url | details_page | date_probe | cache
    location: str
    cloud: str | None = None
    change_number: int | None = None
    file_date: str | None = None  # YYYYMMDD, from the file name when it has one
    #: Discovery only: when the body was downloaded (ISO 8601, UTC), and whether the server
    #: answered 304 Not Modified so the body came from the cache.
    fetched_at: str | None = None
    not_modified: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `source` object of the JSON output."""
        where = "file" if self.kind == "file" else "url"
        out: dict[str, Any] = {
            "kind": self.kind,
            where: self.location,
            "cloud": self.cloud,
            "changeNumber": self.change_number,
            "fileDate": self.file_date,
        }
        if self.kind in DISCOVERY_KINDS:
            out["fetchedAt"] = self.fetched_at
            out["notModified"] = self.not_modified
        return out


@dataclass(frozen=True)
class Feed:
    """The validated part of a service-tags file: its metadata and the selected tags' prefixes."""

    source: SourceInfo
    cloud: str
    change_number: int
    prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tag_change_numbers: dict[str, int] = field(default_factory=dict)

    def all_prefixes(self) -> list[str]:
        """Every selected tag's prefixes, in tag order."""
        return [p for tag_prefixes in self.prefixes.values() for p in tag_prefixes]


def file_date_from_name(name: str) -> str | None:
    """The YYYYMMDD date in a `ServiceTags_<Cloud>_YYYYMMDD.json` name, if it is one."""
    match = _FILE_DATE.search(name)
    return match.group("date") if match else None


def parse_feed(
    body: bytes,
    *,
    source: SourceInfo,
    tags: Sequence[str],
    expected_cloud: str | None = None,
) -> Feed:
    """Validate a service-tags body and return the selected tags; raises FeedError."""
    where = source.location
    if len(body) > MAX_FEED_BYTES:
        raise FeedError(
            f"body is {len(body)} bytes, over the {MAX_FEED_BYTES}-byte limit", source=where
        )
    doc = _load_json(body, where, tags)
    if not isinstance(doc, dict) or not isinstance(doc.get("values"), list):
        raise FeedError("not a service-tags file (no 'values' list at the top level)", source=where)
    cloud = doc.get("cloud")
    change_number = doc.get("changeNumber")
    if not isinstance(cloud, str) or not isinstance(change_number, int):
        raise FeedError(
            "not a service-tags file (missing 'cloud' or integer 'changeNumber')", source=where
        )
    if expected_cloud is not None and cloud != expected_cloud:
        raise FeedError(
            f"the file is for cloud {cloud!r}, but {expected_cloud!r} is configured", source=where
        )

    wanted = set(tags)
    found: dict[str, Any] = {}
    for entry in doc["values"]:
        # Exact name match: 'AzureActiveDirectory.ServiceEndpoint' is a different tag.
        if isinstance(entry, dict) and entry.get("name") in wanted:
            found[entry["name"]] = entry

    prefixes: dict[str, tuple[str, ...]] = {}
    change_numbers: dict[str, int] = {}
    for tag in tags:
        if tag not in found:
            raise FeedError(f"service tag {tag!r} is not in the file", source=where)
        try:
            value = _TagValue.model_validate(found[tag])
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise FeedError(
                f"tag {tag!r} is malformed at {loc}: {first['msg']}", source=where
            ) from None
        if not value.properties.addressPrefixes:
            raise FeedError(f"tag {tag!r} has an empty address prefix list", source=where)
        for prefix in value.properties.addressPrefixes:
            try:
                parse_network(prefix)
            except ValueError:
                raise FeedError(
                    f"tag {tag!r} has an invalid address prefix {prefix!r}", source=where
                ) from None
        prefixes[tag] = tuple(value.properties.addressPrefixes)
        change_numbers[tag] = value.properties.changeNumber

    info = replace(
        source,
        cloud=cloud,
        change_number=change_number,
        file_date=source.file_date or file_date_from_name(source.location),
    )
    return Feed(
        source=info,
        cloud=cloud,
        change_number=change_number,
        prefixes=prefixes,
        tag_change_numbers=change_numbers,
    )


def _load_json(body: bytes, where: str, tags: Sequence[str]) -> Any:
    """The document, or only its selected entries when the fast scan recognises the layout."""
    body = body.removeprefix(b"\xef\xbb\xbf")  # Microsoft has shipped files with a BOM
    head = body[:256].lstrip().lower()
    if not head:
        raise FeedError("the body is empty", source=where)
    if head.startswith((b"<!doctype", b"<html", b"<")):
        raise FeedError("got an HTML page where a JSON file was expected", source=where)
    scanned = scan(body, tags)
    if scanned is not None:
        values = list(scanned.entries.values())
        return {"cloud": scanned.cloud, "changeNumber": scanned.change_number, "values": values}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(":", 1)[0]
        raise FeedError(f"not valid JSON ({reason}; truncated download?)", source=where) from None
