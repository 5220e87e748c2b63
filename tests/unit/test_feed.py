"""Parsing and validating service-tags files: exact tags, and a clear error for every bad body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allowlist_sync.azure.feed import (
    MAX_FEED_BYTES,
    SourceInfo,
    file_date_from_name,
    parse_feed,
)
from allowlist_sync.errors import FeedError
from tests.conftest import DATA, PUBLIC_FEED, aad_prefixes, feed_doc

SOURCE = SourceInfo(kind="file", location="feed.json")


def parse(body: bytes, tags: list[str] | None = None, cloud: str | None = "Public") -> Any:
    return parse_feed(
        body, source=SOURCE, tags=tags or ["AzureActiveDirectory"], expected_cloud=cloud
    )


def test_real_file_gives_the_exact_tag_only() -> None:
    """Only AzureActiveDirectory is taken; its look-alike tags do not leak in."""
    doc = feed_doc()
    feed = parse(PUBLIC_FEED.read_bytes())
    assert feed.prefixes["AzureActiveDirectory"] == tuple(aad_prefixes(doc))
    assert len(feed.all_prefixes()) == 216
    lookalikes = {
        p
        for v in doc["values"]
        if v["name"].startswith("AzureActiveDirectory") and v["name"] != "AzureActiveDirectory"
        for p in v["properties"]["addressPrefixes"]
    } - set(aad_prefixes(doc))
    assert lookalikes, "the trimmed file must keep prefixes only the look-alikes have"
    assert not lookalikes & set(feed.all_prefixes())
    assert (feed.cloud, feed.change_number) == ("Public", 375)
    assert feed.tag_change_numbers == {"AzureActiveDirectory": 26}


def test_several_tags_are_taken_in_order() -> None:
    """A comma list of tags yields each tag's prefixes, exact names only."""
    feed = parse(
        PUBLIC_FEED.read_bytes(),
        tags=["AzureActiveDirectory", "AzureActiveDirectoryDomainServices"],
    )
    assert list(feed.prefixes) == ["AzureActiveDirectory", "AzureActiveDirectoryDomainServices"]
    assert len(feed.prefixes["AzureActiveDirectoryDomainServices"]) == 101


@pytest.mark.parametrize(
    ("name", "cloud", "count"),
    [
        ("ServiceTags_AzureGovernment_20260720.trimmed.json", "AzureGovernment", 37),
        ("ServiceTags_China_20260720.trimmed.json", "China", 44),
    ],
)
def test_other_clouds(name: str, cloud: str, count: int) -> None:
    """Government and China files parse with their own cloud name."""
    feed = parse((DATA / name).read_bytes(), cloud=cloud)
    assert len(feed.all_prefixes()) == count


def test_byte_order_mark_is_tolerated() -> None:
    """A UTF-8 BOM before the JSON does not break parsing."""
    assert parse(b"\xef\xbb\xbf" + PUBLIC_FEED.read_bytes()).cloud == "Public"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is empty"),
        (b"<!DOCTYPE html><html><body>Blocked</body></html>", "HTML page"),
        (PUBLIC_FEED.read_bytes()[:5000], "not valid JSON"),
        (b"[1, 2]", "no 'values' list"),
        (b'{"values": []}', "missing 'cloud'"),
        (b'{"cloud": "Public", "changeNumber": "7", "values": []}', "changeNumber"),
    ],
)
def test_bad_bodies_name_the_problem(body: bytes, message: str) -> None:
    """Each malformed body raises FeedError naming the source and the problem."""
    with pytest.raises(FeedError, match=message) as info:
        parse(body)
    assert str(info.value).startswith("feed.json: ")
    assert "\n" not in str(info.value)


def _with_aad(mutate: Any) -> bytes:
    doc = feed_doc()
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    mutate(doc, entry)
    return json.dumps(doc).encode()


def test_wrong_cloud_is_refused() -> None:
    """A Government file is refused when Public is configured."""
    body = (DATA / "ServiceTags_AzureGovernment_20260720.trimmed.json").read_bytes()
    with pytest.raises(FeedError, match="for cloud 'AzureGovernment', but 'Public'"):
        parse(body)


def test_missing_tag_is_refused() -> None:
    """A file without the tag is an error, even when look-alike tags are present."""
    body = _with_aad(lambda doc, e: doc["values"].remove(e))
    with pytest.raises(FeedError, match="'AzureActiveDirectory' is not in the file"):
        parse(body)


def test_empty_tag_is_refused() -> None:
    """An empty prefix list is an error, never an empty desired set."""
    body = _with_aad(lambda doc, e: e["properties"].__setitem__("addressPrefixes", []))
    with pytest.raises(FeedError, match="empty address prefix list"):
        parse(body)


def test_invalid_prefix_is_named() -> None:
    """An invalid prefix is named in the error."""
    body = _with_aad(lambda doc, e: e["properties"]["addressPrefixes"].append("20.190.300.0/24"))
    with pytest.raises(FeedError, match=r"invalid address prefix '20\.190\.300\.0/24'"):
        parse(body)


def test_malformed_entry_is_named() -> None:
    """A tag entry of the wrong shape names the field."""
    body = _with_aad(lambda doc, e: e["properties"].__setitem__("addressPrefixes", "10.0.0.0/8"))
    with pytest.raises(FeedError, match=r"malformed at properties\.addressPrefixes"):
        parse(body)


def test_oversized_body_is_refused() -> None:
    """A body over the size limit is refused before parsing."""
    with pytest.raises(FeedError, match="over the"):
        parse(b" " * (MAX_FEED_BYTES + 1))


def test_file_date_comes_from_the_name() -> None:
    """The file date is read from Microsoft's file name pattern."""
    assert file_date_from_name("x/ServiceTags_Public_20251027.json") == "20251027"
    assert file_date_from_name(str(Path("feed.json"))) is None
