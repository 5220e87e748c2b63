"""Parse and validate an Azure service-tags file, keeping only the tags asked for.

Only the selected entries are decoded and validated with pydantic: `scan` finds them in a file
of Microsoft's layout without building the other 3,000 entries; any other layout is parsed whole
with orjson. Every problem is a FeedError that names the source and the problem (a selected tag
listed twice included: which of the two would be right?); nothing downstream runs on a bad file.

`check_age` judges a parsed feed by its publication date (the date in the file name, else the
download's Last-Modified): over 8 days old is a warning, over ALLOWLIST_SYNC_MAX_FEED_AGE an
error, because Microsoft publishes weekly and an old file means discovery is stuck somewhere.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from allowlist_sync.azure.scan import DuplicateTagError, scan
from allowlist_sync.cidrs import parse_network
from allowlist_sync.errors import FeedError
from allowlist_sync.logs import get_logger

log = get_logger(__name__)

#: Far above the real Public file (4.1 MB in 2025): a larger body is not a service-tags file.
MAX_FEED_BYTES = 64 * 1024 * 1024
_FILE_DATE = re.compile(r"ServiceTags_(?P<cloud>[A-Za-z]+)_(?P<date>\d{8})\.json")
#: The `SourceInfo.kind`s of a file found by discovery (rather than given by the user).
DISCOVERY_KINDS = frozenset({"details_page", "date_probe", "cache"})
#: A feed older than this is worth a warning: Microsoft publishes a new file every week.
STALE_AFTER_DAYS = 8
#: A date this far ahead of the clock is not believed (a day covers time zones and skew).
_FUTURE_SLACK = timedelta(days=1)
_MIB = 1024 * 1024
# JSON's whitespace, and only it (bytes.lstrip would also take \x0b and \x0c).
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")


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

    kind: str  # file | url | details_page | date_probe | cache | config (a static source)
    location: str
    cloud: str | None = None
    change_number: int | None = None
    file_date: str | None = None  # YYYYMMDD, from the file name when it has one
    #: When Microsoft published the file: the file date (midnight UTC), else Last-Modified.
    published: datetime | None = None
    #: Discovery only: when the body was downloaded (ISO 8601, UTC), and whether the server
    #: answered 304 Not Modified so the body came from the cache.
    fetched_at: str | None = None
    not_modified: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `source` object of the JSON output."""
        where = self.kind if self.kind in ("file", "config") else "url"
        out: dict[str, Any] = {
            "kind": self.kind,
            where: self.location,
            "cloud": self.cloud,
            "changeNumber": self.change_number,
            "fileDate": self.file_date,
            "published": self.published.isoformat() if self.published else None,
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
    #: What the run should report about this feed (its age, a cached fallback...).
    warnings: tuple[str, ...] = ()

    def all_prefixes(self) -> list[str]:
        """Every selected tag's prefixes, in tag order."""
        return [p for tag_prefixes in self.prefixes.values() for p in tag_prefixes]


def file_date_from_name(name: str) -> str | None:
    """The YYYYMMDD date in a `ServiceTags_<Cloud>_YYYYMMDD.json` name, if it is a real date."""
    match = _FILE_DATE.search(name)
    if match is None or file_day(match.group("date")) is None:
        return None
    return match.group("date")


def file_day(file_date: str) -> datetime | None:
    """Midnight UTC of a YYYYMMDD date, or None when it is no date."""
    try:
        return datetime.strptime(file_date, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (Last-Modified) as an aware UTC datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # year 9999 at UTC-12, ...
        return None


def too_large(limit: int, *, size: int | None = None) -> str:
    """The message for a body over `limit`; `size` only when it is really known."""
    bound = f"{limit // _MIB} MiB" if limit % _MIB == 0 else f"{limit}-byte"
    if size is None:
        return f"the body is over the {bound} limit"
    return f"the body is {size} bytes ({size / _MIB:.1f} MiB), over the {bound} limit"


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
        # Readers stop at the limit + 1 byte: the length here is not the real size.
        raise FeedError(too_large(MAX_FEED_BYTES), source=where)
    doc = _load_json(body, where, tags)
    if not isinstance(doc, dict) or not isinstance(doc.get("values"), list):
        raise FeedError("not a service-tags file (no 'values' list at the top level)", source=where)
    cloud = doc.get("cloud")
    change_number = doc.get("changeNumber")
    # bool is an int to Python; `"changeNumber": true` is no change number.
    if (
        not isinstance(cloud, str)
        or not isinstance(change_number, int)
        or isinstance(change_number, bool)
    ):
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
            if entry["name"] in found:
                times = sum(
                    1
                    for v in doc["values"]
                    if isinstance(v, dict) and v.get("name") == entry["name"]
                )
                raise FeedError(_listed_twice(entry["name"], times), source=where)
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

    file_date = source.file_date or file_date_from_name(source.location)
    published = file_day(file_date) if file_date else None
    info = replace(
        source,
        cloud=cloud,
        change_number=change_number,
        file_date=file_date if published else None,
        published=published or source.published,
    )
    return Feed(
        source=info,
        cloud=cloud,
        change_number=change_number,
        prefixes=prefixes,
        tag_change_numbers=change_numbers,
    )


def check_age(feed: Feed, *, now: datetime, max_age_days: float, fail: bool = True) -> Feed:
    """`feed` with a warning when over 8 days old; FeedError over `max_age_days` if `fail`.

    A feed without a known date passes unjudged; one dated in the future passes with a warning
    (its age cannot be known).
    """
    published = feed.source.published
    if published is None:
        if fail:  # a file a person picked often has no date in its name: that is no news
            log.info("feed_age_unknown", kind=feed.source.kind, location=feed.source.location)
        return feed
    exact_days = (now - published).total_seconds() / 86400
    days = round(exact_days, 1)
    when = f"{published:%Y-%m-%d}"
    if published > now + _FUTURE_SLACK:
        message = f"the feed is dated {when}, in the future: its age cannot be checked"
        log.warning("feed_dated_in_future", kind=feed.source.kind, published=published.isoformat())
        return replace(feed, warnings=(*feed.warnings, message))
    limit = f"ALLOWLIST_SYNC_MAX_FEED_AGE ({max_age_days:g} days)"
    # Compared in days, not as timedeltas: a huge setting must not overflow.
    if fail and exact_days > max_age_days:
        raise FeedError(
            f"the feed was published {when}, {days:g} days ago, over {limit}: Microsoft "
            "publishes weekly, so discovery or the source is stuck on an old file",
            source=feed.source.location,
        )
    if exact_days <= STALE_AFTER_DAYS:
        return feed
    log.warning(
        "feed_stale",
        kind=feed.source.kind,
        location=feed.source.location,
        published=published.isoformat(),
        age_days=days,
        stale_after_days=STALE_AFTER_DAYS,
        max_age_days=max_age_days,
    )
    consequence = (
        f"runs fail once it is over {limit}"
        if fail
        else f"an explicit --source-file is used whatever its age ({limit} does not apply)"
    )
    message = (
        f"the feed ({feed.source.location}) was published {when}, {days:g} days ago, more than "
        f"{STALE_AFTER_DAYS} days; {consequence}"
    )
    return replace(feed, warnings=(*feed.warnings, message))


def _listed_twice(tag: str, times: int) -> str:
    return f"service tag {tag!r} is listed {times} times in the file (which one is right?)"


def _load_json(body: bytes, where: str, tags: Sequence[str]) -> Any:
    """The document, or only its selected entries when the fast scan recognises the layout."""
    body = body.removeprefix(b"\xef\xbb\xbf")  # Microsoft has shipped files with a BOM
    start = _LEADING_SPACE.match(body)
    begin = start.end() if start else 0
    head = body[begin : begin + 256].lower()  # no copy of a 64 MiB body
    if not head:
        raise FeedError("the body is empty", source=where)
    if head.startswith((b"<!doctype", b"<html", b"<")):
        raise FeedError("got an HTML page where a JSON file was expected", source=where)
    try:
        scanned = scan(body, tags)
    except DuplicateTagError as exc:
        raise FeedError(_listed_twice(exc.tag, exc.times), source=where) from None
    if scanned is not None:
        values = list(scanned.entries.values())
        return {"cloud": scanned.cloud, "changeNumber": scanned.change_number, "values": values}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(":", 1)[0]
        raise FeedError(f"not valid JSON ({reason}; truncated download?)", source=where) from None
