"""The fast scan finds exactly what a full parse finds, or steps aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from allowlist_sync.azure.feed import SourceInfo, parse_feed
from allowlist_sync.azure.scan import DuplicateTagError, scan
from tests.feeds import DATA, PUBLIC_FEED

TAGS = ["AzureActiveDirectory", "AzureActiveDirectoryDomainServices"]
FILES = sorted(DATA.glob("ServiceTags_*.trimmed.json"))


def full(body: bytes, tags: list[str]) -> dict[str, Any]:
    doc = orjson.loads(body)
    return {v["name"]: v for v in doc["values"] if v["name"] in tags}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_scan_equals_a_full_parse_on_real_files(path: Path) -> None:
    """On each real file, pretty or minified, the scan returns what a full parse selects."""
    doc = orjson.loads(path.read_bytes())
    for body in (path.read_bytes(), json.dumps(doc, separators=(",", ":")).encode()):
        scanned = scan(body, TAGS)
        assert scanned is not None
        assert scanned.entries == full(body, TAGS)
        assert (scanned.cloud, scanned.change_number) == (doc["cloud"], doc["changeNumber"])


def test_no_truncation_is_accepted() -> None:
    """Every proper prefix of a real file is refused by the scan (the full parse then errors)."""
    body = PUBLIC_FEED.read_bytes().rstrip()
    accepted = [cut for cut in range(1, len(body)) if scan(body[:cut], TAGS) is not None]
    assert accepted == []


def test_lookalike_tags_are_not_taken() -> None:
    """The exact-name match never takes AzureActiveDirectory.ServiceEndpoint for the tag."""
    scanned = scan(PUBLIC_FEED.read_bytes(), ["AzureActiveDirectory"])
    assert scanned is not None and list(scanned.entries) == ["AzureActiveDirectory"]


def doc_with(values: list[dict[str, Any]]) -> dict[str, Any]:
    return {"changeNumber": 9, "cloud": "Public", "values": values}


def entry(name: str, *prefixes: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": name,
        "properties": {"changeNumber": 1, "addressPrefixes": list(prefixes)},
    }


def test_other_layouts_fall_back_to_the_full_parse() -> None:
    """Name not first, or keys after values: the scan steps aside."""
    reordered = doc_with([{"id": "x", "name": "AzureActiveDirectory", "properties": {}}])
    keys_last = {
        "values": [entry("AzureActiveDirectory", "10.0.0.0/8")],
        "cloud": "Public",
        "changeNumber": 9,
    }
    for doc in (reordered, keys_last):
        assert scan(json.dumps(doc).encode(), ["AzureActiveDirectory"]) is None


def test_tag_listed_twice_is_refused_not_skipped() -> None:
    """Two entries of a selected tag raise DuplicateTagError, wherever the second one sits."""
    first = entry("AzureActiveDirectory", "10.0.0.0/8")
    second = entry("AzureActiveDirectory", "192.0.2.0/24")
    middle = entry("Other", "198.51.100.0/24")
    for values in ([first, second], [first, middle, second], [second, middle, first]):
        with pytest.raises(DuplicateTagError) as info:
            scan(json.dumps(doc_with(values)).encode(), ["AzureActiveDirectory"])
        assert (info.value.tag, info.value.times) == ("AzureActiveDirectory", 2)


def test_nested_lookalike_opening_is_left_to_the_full_parse() -> None:
    """An object named like the tag nested inside another entry is no duplicate entry."""
    nested = entry("Other", "198.51.100.0/24")
    nested["properties"]["extra"] = {"name": "AzureActiveDirectory"}
    body = json.dumps(doc_with([entry("AzureActiveDirectory", "10.0.0.0/8"), nested])).encode()
    assert scan(body, ["AzureActiveDirectory"]) is None
    feed = parse_feed(body, source=SourceInfo(kind="file", location="f"), tags=TAGS[:1])
    assert feed.prefixes["AzureActiveDirectory"] == ("10.0.0.0/8",)


def test_quoted_text_inside_strings_cannot_fool_it() -> None:
    """An entry whose string value contains the opening text is not mistaken for the tag."""
    decoy = entry('{"name": "AzureActiveDirectory", "fake": 1}', "192.0.2.0/24")
    real = entry("AzureActiveDirectory", "10.0.0.0/8")
    body = json.dumps(doc_with([decoy, real])).encode()
    scanned = scan(body, ["AzureActiveDirectory"])
    assert scanned is not None
    assert scanned.entries["AzureActiveDirectory"]["properties"]["addressPrefixes"] == [
        "10.0.0.0/8"
    ]


def test_parse_feed_gives_the_same_feed_either_way() -> None:
    """parse_feed's result does not depend on which path read the file."""
    body = PUBLIC_FEED.read_bytes()
    doc = orjson.loads(body)
    reordered = json.dumps(
        {"values": doc["values"], "cloud": doc["cloud"], "changeNumber": doc["changeNumber"]}
    ).encode()
    assert scan(reordered, TAGS) is None
    source = SourceInfo(kind="file", location="f.json")
    fast = parse_feed(body, source=source, tags=TAGS)
    slow = parse_feed(reordered, source=source, tags=TAGS)
    assert fast == slow
