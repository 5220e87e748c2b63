"""Parsing and validating service-tags files: exact tags, and a clear error for every bad body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from allowlist_sync.azure.feed import (
    MAX_FEED_BYTES,
    Feed,
    SourceInfo,
    check_age,
    file_date_from_name,
    parse_feed,
    parse_http_date,
    too_large,
)
from allowlist_sync.errors import FeedError
from tests.feeds import DATA, PUBLIC_FEED, aad_prefixes, feed_doc

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
        (b'{"cloud": "Public", "changeNumber": true, "values": []}', "changeNumber"),
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


# ---------------------------------------------------------------- a tag listed twice


def _twice(*, fast_layout: bool) -> bytes:
    """The real file with the AzureActiveDirectory entry listed a second time, ranges changed."""
    doc = feed_doc()
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    second = json.loads(json.dumps(entry))
    second["properties"]["addressPrefixes"] = ["192.0.2.0/24"]
    doc["values"].append(second)
    if not fast_layout:  # keys after `values`: the scan steps aside, the full parse reads it
        doc = {"values": doc["values"], "cloud": doc["cloud"], "changeNumber": doc["changeNumber"]}
    return json.dumps(doc).encode()


@pytest.mark.parametrize("fast_layout", [True, False], ids=["scan", "full-parse"])
def test_selected_tag_listed_twice_is_an_error(fast_layout: bool) -> None:
    """A selected tag listed twice is a FeedError whichever path reads the file."""
    with pytest.raises(FeedError, match="'AzureActiveDirectory' is listed 2 times") as info:
        parse(_twice(fast_layout=fast_layout))
    assert str(info.value).startswith("feed.json: ")


def test_unselected_tag_listed_twice_is_not_our_business() -> None:
    """A duplicate of a tag nobody selected does not stop the run."""
    doc = feed_doc()
    other = next(v for v in doc["values"] if v["name"] != "AzureActiveDirectory")
    doc["values"].append(other)
    assert parse(json.dumps(doc).encode()).prefixes["AzureActiveDirectory"]


# ---------------------------------------------------------------- whitespace and size


def test_leading_whitespace_beyond_256_bytes_is_still_json() -> None:
    """Valid JSON after 4 KiB of leading whitespace parses; it is not reported as empty."""
    feed = parse(b" \r\n\t" * 1024 + PUBLIC_FEED.read_bytes())
    assert feed.cloud == "Public" and len(feed.all_prefixes()) == 216


def test_whitespace_only_body_is_empty() -> None:
    """A body of nothing but whitespace is reported as empty, however long."""
    with pytest.raises(FeedError, match="the body is empty"):
        parse(b"\n " * 5000)


def test_html_after_long_whitespace_is_named_html() -> None:
    """An HTML page after long leading whitespace is still named an HTML page."""
    with pytest.raises(FeedError, match="HTML page"):
        parse(b"\n" * 1000 + b"<!DOCTYPE html><html></html>")


def test_oversized_body_message_claims_no_size_it_does_not_know() -> None:
    """A body cut off at the limit + 1 is 'over the 64 MiB limit', not '67108865 bytes'."""
    with pytest.raises(FeedError, match="the body is over the 64 MiB limit") as info:
        parse(b" " * (MAX_FEED_BYTES + 1))
    assert str(MAX_FEED_BYTES + 1) not in str(info.value)


def test_size_limit_wording() -> None:
    """Limits read as MiB when whole, bytes otherwise; a known size is given with its MiB."""
    assert too_large(64 * 1024 * 1024) == "the body is over the 64 MiB limit"
    assert too_large(1000, size=166_723_584) == (
        "the body is 166723584 bytes (159.0 MiB), over the 1000-byte limit"
    )


# ---------------------------------------------------------------- publication date and age

NOW = datetime(2025, 11, 10, 12, 0, tzinfo=UTC)


def dated(file_date: str | None, *, kind: str = "url", modified: datetime | None = None) -> Feed:
    name = f"ServiceTags_Public_{file_date}.json" if file_date else "mirror/latest.json"
    source = SourceInfo(kind=kind, location=f"https://mirror.example/{name}", published=modified)
    return parse_feed(PUBLIC_FEED.read_bytes(), source=source, tags=["AzureActiveDirectory"])


def test_publication_comes_from_the_file_name_first() -> None:
    """`published` is the file name's date (midnight UTC), even when Last-Modified says more."""
    feed = dated("20251027", modified=datetime(2025, 10, 28, 7, tzinfo=UTC))
    assert feed.source.file_date == "20251027"
    assert feed.source.published == datetime(2025, 10, 27, tzinfo=UTC)
    assert feed.source.to_json()["published"] == "2025-10-27T00:00:00+00:00"


def test_publication_falls_back_to_last_modified() -> None:
    """Without a date in the name, `published` is the download's Last-Modified."""
    modified = datetime(2025, 10, 28, 7, tzinfo=UTC)
    feed = dated(None, modified=modified)
    assert feed.source.file_date is None and feed.source.published == modified


def test_impossible_date_in_the_name_is_no_date() -> None:
    """A name with an impossible date (month 13) gives no publication date."""
    feed = dated("20251327")
    assert feed.source.file_date is None and feed.source.published is None


def test_http_date_parsing() -> None:
    """Last-Modified is read as an aware UTC datetime; garbage gives None."""
    assert parse_http_date("Mon, 27 Oct 2025 00:00:00 GMT") == datetime(2025, 10, 27, tzinfo=UTC)
    for bad in (
        None,
        "",
        "yesterday",
        "Mon, 99 Oct 2025 00:00:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 -1200",  # past datetime.max once in UTC
        "Mon, 27 Oct 2025 00:00:00 +9999",
    ):
        assert parse_http_date(bad) is None


def test_young_feed_passes_without_a_warning() -> None:
    """A feed 7 days old passes with no warning."""
    assert check_age(dated("20251103"), now=NOW, max_age_days=14).warnings == ()


def test_feed_older_than_eight_days_warns() -> None:
    """A feed 9 days old passes with a warning that says its age and the limit."""
    with capture_logs() as logs:
        feed = check_age(dated("20251101"), now=NOW, max_age_days=14)
    assert len(feed.warnings) == 1
    assert "published 2025-11-01, 9.5 days ago" in feed.warnings[0]
    assert "ALLOWLIST_SYNC_MAX_FEED_AGE (14 days)" in feed.warnings[0]
    event = next(e for e in logs if e["event"] == "feed_stale")
    assert event["log_level"] == "warning" and event["age_days"] == 9.5
    assert event["max_age_days"] == 14 and event["kind"] == "url"


def test_feed_older_than_the_maximum_age_fails() -> None:
    """A feed over ALLOWLIST_SYNC_MAX_FEED_AGE is a FeedError naming its age and the setting."""
    with pytest.raises(FeedError, match=r"published 2025-10-27, 14\.5 days ago") as info:
        check_age(dated("20251027"), now=NOW, max_age_days=14)
    assert "over ALLOWLIST_SYNC_MAX_FEED_AGE (14 days)" in str(info.value)
    assert str(info.value).startswith("https://mirror.example/")


def test_explicit_file_only_warns_for_age() -> None:
    """With `fail=False` (a --source-file) an old feed warns and is used."""
    feed = check_age(dated("20240101", kind="file"), now=NOW, max_age_days=14, fail=False)
    assert feed.prefixes and "days ago" in feed.warnings[0]


def test_unknown_date_is_not_judged() -> None:
    """A feed with no known date passes unchanged (nothing to compare)."""
    feed = dated(None)
    assert check_age(feed, now=NOW, max_age_days=14) == feed


def test_date_in_the_future_warns() -> None:
    """A date more than a day ahead cannot be trusted for age: a warning says so."""
    feed = check_age(dated("29991231"), now=NOW, max_age_days=14)
    assert len(feed.warnings) == 1 and "in the future" in feed.warnings[0]


def test_huge_maximum_age_does_not_overflow() -> None:
    """A maximum age of a billion days is compared without overflowing: the feed passes."""
    feed = check_age(dated("20000101"), now=NOW, max_age_days=1e12)
    assert len(feed.warnings) == 1 and "days ago" in feed.warnings[0]
