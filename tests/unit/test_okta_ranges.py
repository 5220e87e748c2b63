"""parse_okta: Okta's ip_ranges.json validated cell by cell, every bad file a one-line FeedError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.cidrs import parse_network, scope_problem
from allowlist_sync.errors import ExitCode, FeedError, UnsafePlanError
from allowlist_sync.guards import Limits, check_feed_scope
from allowlist_sync.okta import MAX_OKTA_BYTES, OktaFeed, parse_okta
from tests.fakes.okta import HTML_PAGE, SNAPSHOT, XML_ERROR, okta_body, snapshot_doc

SOURCE = SourceInfo(kind="url", location="https://s3.amazonaws.com/okta-ip-ranges/ip_ranges.json")
CELLS = (
    "us_cell_1", "us_cell_2", "us_cell_3", "us_cell_4", "us_cell_5", "us_cell_6", "us_cell_7",
    "apac_cell_1", "us_cell_10", "us_cell_11", "us_cell_12", "us_cell_14", "apac_cell_2",
    "emea_cell_1", "emea_cell_2", "preview_cell_1", "preview_cell_2", "preview_cell_3",
)  # fmt: skip


def parse(body: bytes, *cells: str) -> OktaFeed:
    """parse_okta of `body` for `cells` (default us_cell_1) from the real URL."""
    return parse_okta(body, cells=cells or ("us_cell_1",), source=SOURCE)


def body_with(cell: str, value: Any) -> bytes:
    """The real snapshot with `cell` set to `value`."""
    doc = snapshot_doc()
    doc[cell] = value
    return okta_body(doc)


def refused(body: bytes, *cells: str) -> str:
    """The message of the FeedError parsing `body` raises; fails when it parses."""
    with pytest.raises(FeedError) as info:
        parse(body, *cells)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(SOURCE.location + ": ")
    assert info.value.exit_code == ExitCode.FAILED
    return message


# ---------------------------------------------------------------------- the real file


def test_real_snapshot_has_18_cells_and_3917_entries() -> None:
    """Every cell of the real 2022-03-07 file parses; the counts match the file."""
    feed = parse(SNAPSHOT.read_bytes(), *CELLS)
    assert list(feed.prefixes) == list(CELLS)
    assert sum(len(p) for p in feed.prefixes.values()) == 3917
    assert len(feed.prefixes["us_cell_1"]) == 535
    assert len(feed.prefixes["emea_cell_1"]) == 214
    assert feed.prefixes["us_cell_1"][0] == "3.33.136.245/32"
    assert feed.warnings == ()
    assert feed.source == SOURCE


def test_cells_come_back_in_the_order_asked() -> None:
    """The selected cells keep the query's order, not the file's."""
    feed = parse(SNAPSHOT.read_bytes(), "emea_cell_1", "us_cell_1")
    assert list(feed.prefixes) == ["emea_cell_1", "us_cell_1"]


def test_all_prefixes_lists_shared_addresses_once() -> None:
    """us_cell_1..4 hold the same 535 entries: together they give 535 prefixes, not 2,140."""
    feed = parse(SNAPSHOT.read_bytes(), "us_cell_1", "us_cell_2", "us_cell_3", "us_cell_4")
    assert len(feed.all_prefixes()) == 535
    assert feed.all_prefixes() == list(feed.prefixes["us_cell_1"])


def test_every_real_prefix_is_in_scope_with_the_default_limits() -> None:
    """Each of the real file's 3,917 entries passes the scope check at /16 and /32."""
    feed = parse(SNAPSHOT.read_bytes(), *CELLS)
    problems = {
        p: scope_problem(parse_network(p), min_prefix_v4=16, min_prefix_v6=32)
        for p in feed.all_prefixes()
    }
    assert {p: why for p, why in problems.items() if why is not None} == {}
    check_feed_scope(feed.all_prefixes(), Limits())


def test_scope_guard_refuses_an_okta_feed_with_a_private_range() -> None:
    """An Okta cell holding 10.0.0.0/8 parses, and the common scope guard refuses it (exit 3)."""
    doc = snapshot_doc()
    doc["us_cell_1"]["ip_ranges"].append("10.0.0.0/8")
    feed = parse(okta_body(doc))
    with pytest.raises(UnsafePlanError) as info:
        check_feed_scope(feed.all_prefixes(), Limits())
    assert info.value.exit_code == ExitCode.REFUSED
    assert "10.0.0.0/8 is not globally routable unicast" in str(info.value)


def test_bom_and_whitespace_are_fine() -> None:
    """A UTF-8 BOM and JSON whitespace around the object do not matter."""
    feed = parse(b"\xef\xbb\xbf \r\n\t" + okta_body() + b"\n\n")
    assert len(feed.prefixes["us_cell_1"]) == 535


def test_duplicate_cidr_in_a_cell_is_kept_once_in_order() -> None:
    """A CIDR listed twice in a cell (or once bare, once as /32) is one prefix, first place kept."""
    body = body_with("us_cell_1", {"ip_ranges": ["3.3.3.3/32", "4.4.4.0/24", "3.3.3.3", "3.3.3.3"]})
    assert parse(body).prefixes["us_cell_1"] == ("3.3.3.3/32", "4.4.4.0/24")


def test_ipv6_entries_are_accepted_and_normalised() -> None:
    """An IPv6 CIDR parses and is given in its compressed form."""
    body = body_with("us_cell_1", {"ip_ranges": ["2600:1F18:0000::/48"]})
    assert parse(body).prefixes["us_cell_1"] == ("2600:1f18::/48",)


def test_unselected_cells_are_not_judged() -> None:
    """A broken cell nobody selected does not stop the selected ones."""
    body = body_with("preview_cell_3", {"ip_ranges": ["not a network", 7]})
    assert len(parse(body, "us_cell_1").prefixes["us_cell_1"]) == 535


def test_extra_keys_in_a_cell_are_ignored() -> None:
    """A field Okta might add beside ip_ranges does not break the parser."""
    body = body_with("us_cell_1", {"ip_ranges": ["3.3.3.3/32"], "updated": "2026-01-01"})
    assert parse(body).prefixes["us_cell_1"] == ("3.3.3.3/32",)


def test_duplicate_cells_asked_for_are_one() -> None:
    """Asking for a cell twice gives it once."""
    assert list(parse(okta_body(), "us_cell_1", "us_cell_1").prefixes) == ["us_cell_1"]


# ---------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "the body is empty, not JSON"),
        (b" \n\t ", "the body is empty, not JSON"),
        (HTML_PAGE, "not JSON, looks like HTML"),
        (b"\n  <html><body>Sign in</body></html>", "not JSON, looks like HTML"),
        (XML_ERROR, "not JSON, looks like XML (an S3 error document?)"),
        (okta_body()[:40_000], "not JSON (unexpected end of data; truncated download?)"),
        (b"{'us_cell_1': {}}", "not JSON ("),
        (b'{"us_cell_1": {"ip_ranges": [NaN]}}', "not JSON ("),
        (b'{"us_cell_1": "\xff\xfe"}', "not JSON ("),
        (b"[" * 5000 + b"]" * 5000, "not JSON ("),
    ],
    ids=[
        "empty",
        "blank",
        "html",
        "html-late",
        "s3-xml",
        "truncated",
        "quotes",
        "nan",
        "utf8",
        "deep",
    ],
)
def test_not_json_is_refused(body: bytes, expected: str) -> None:
    """A body that is not JSON is refused with a message saying what it looks like."""
    assert expected in refused(body)


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"[]", "an array"), (b'"ranges"', "a string"), (b"null", "null"), (b"42", "a number")],
)
def test_top_level_must_be_an_object(body: bytes, kind: str) -> None:
    """JSON whose top level is not an object of cells is refused, naming what it is."""
    assert f"the top level is {kind}, not an object of cells" in refused(body)


def test_oversize_body_is_refused_before_parsing() -> None:
    """A body over MAX_OKTA_BYTES is refused as too large, whatever it holds."""
    assert "over the 8 MiB limit" in refused(b" " * (MAX_OKTA_BYTES + 1))


def test_missing_cell_is_named_with_the_cells_there_are() -> None:
    """A selected cell not in the file: the message names it, suggests one and lists the rest."""
    message = refused(okta_body(), "us_cel_1")
    assert "cell 'us_cel_1' is not in the file (did you mean 'us_cell_1'?)" in message
    assert "apac_cell_1, apac_cell_2, emea_cell_1" in message
    assert "us_cell_7" in message


def test_missing_cell_suggestion_ignores_case() -> None:
    """`US_CELL_1` is told about `us_cell_1`."""
    assert "(did you mean 'us_cell_1'?)" in refused(okta_body(), "US_CELL_1")


def test_missing_cell_without_a_near_name_has_no_suggestion() -> None:
    """A name like no cell gives the list without a guess."""
    message = refused(okta_body(), "zzz")
    assert "did you mean" not in message
    assert "its cells are:" in message


def test_missing_cell_in_an_empty_object() -> None:
    """`{}` has no cells at all, and says so."""
    assert "cell 'us_cell_1' is not in the file: the file has no cells" in refused(b"{}")


def test_missing_cell_message_stays_short_with_many_hostile_names() -> None:
    """Thousands of long cell names are cut to a bounded, escaped list."""
    doc = {f"cell_{i}_{'x' * 500}\n": {"ip_ranges": ["3.3.3.3/32"]} for i in range(2000)}
    message = refused(okta_body(doc), "us_cell_1")
    assert len(message) < 4000
    assert "and 1970 more" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["3.3.3.3/32"], "it is an array"),
        ("3.3.3.3/32", "it is a string"),
        (None, "it is null"),
        ({}, "no 'ip_ranges' key; keys: none"),
        ({"ranges": ["3.3.3.3/32"]}, "no 'ip_ranges' key; keys: 'ranges'"),
        ({"ip_ranges": "3.3.3.3/32"}, "'ip_ranges' is a string"),
        ({"ip_ranges": {"a": "3.3.3.3/32"}}, "'ip_ranges' is an object"),
        ({"ip_ranges": None}, "'ip_ranges' is null"),
    ],
)
def test_cell_of_the_wrong_shape_is_refused(value: Any, expected: str) -> None:
    """A selected cell that is not {"ip_ranges": [...]} is refused, saying what it is instead."""
    message = refused(body_with("us_cell_1", value))
    assert f"cell 'us_cell_1' is not of the form {{\"ip_ranges\": [...]}} ({expected})" in message


def test_empty_cell_is_refused() -> None:
    """A selected cell with no ranges would empty the allowlist: refused."""
    message = refused(body_with("us_cell_1", {"ip_ranges": []}))
    assert "cell 'us_cell_1' has an empty ip_ranges list" in message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (7, "cell 'us_cell_1' entry 1 is a number, not a CIDR string"),
        (None, "cell 'us_cell_1' entry 1 is null, not a CIDR string"),
        (["3.3.3.3/32"], "cell 'us_cell_1' entry 1 is an array, not a CIDR string"),
        ({"cidr": "3.3.3.3/32"}, "cell 'us_cell_1' entry 1 is an object, not a CIDR string"),
        (True, "cell 'us_cell_1' entry 1 is a boolean, not a CIDR string"),
        ("", "cell 'us_cell_1' entry 1 is not an IP network: ''"),
        ("okta.com", "cell 'us_cell_1' entry 1 is not an IP network: 'okta.com'"),
        ("3.3.3.3/33", "entry 1 is not an IP network: '3.3.3.3/33'"),
        ("3.3.3.256/32", "entry 1 is not an IP network"),
        (" 3.3.3.3/32", "entry 1 is not an IP network: ' 3.3.3.3/32'"),
        ("3.3.3.0/255.255.255.0", "entry 1 is not an IP network"),
        ("fe80::1%eth0/128", "entry 1 is not an IP network"),
        ("03.3.3.3/32", "entry 1 is not an IP network"),
        ("3.3.3.3/032", "entry 1 is not an IP network"),
        ("3.3.3.3/-1", "entry 1 is not an IP network"),
        ("3.3.3.3\n/32", "entry 1 is not an IP network: '3.3.3.3\\n/32'"),
        ("9" * 10_000, "entry 1 is not an IP network: '999999"),
    ],
)
def test_bad_entry_is_refused_naming_cell_and_index(entry: Any, expected: str) -> None:
    """An entry that is not a CIDR string is refused, naming the cell and the entry's index."""
    body = body_with("us_cell_1", {"ip_ranges": ["3.3.3.3/32", entry]})
    message = refused(body)
    assert expected in message
    assert len(message) < 300


@pytest.mark.parametrize("entry", ["10.0.0.1/24", "3.33.136.245/26", "2600:1f18::1/48"])
def test_host_bits_set_is_refused_not_guessed(entry: str) -> None:
    """`3.33.136.245/26` could mean the /32 or the /26: refused rather than widened."""
    message = refused(body_with("us_cell_1", {"ip_ranges": [entry]}))
    assert f"cell 'us_cell_1' entry 0 {entry!r} has host bits set" in message
    assert "refused rather than guessed" in message


def test_duplicate_selected_cell_key_is_refused() -> None:
    """A selected cell listed twice in the object: which one is right? Refused."""
    body = b'{"us_cell_1": {"ip_ranges": ["3.3.3.3/32"]}, "us_cell_1": {"ip_ranges": ["4.4.4.4"]}}'
    message = refused(body)
    assert "cell 'us_cell_1' is listed 2 times in the file (which one is right?)" in message


def test_duplicate_ip_ranges_key_in_a_selected_cell_is_refused() -> None:
    """`{"ip_ranges": [...], "ip_ranges": [...]}` in a selected cell is refused."""
    body = b'{"us_cell_1": {"ip_ranges": ["3.3.3.3/32"], "ip_ranges": ["4.4.4.4/32"]}}'
    assert "cell 'us_cell_1' lists 'ip_ranges' 2 times" in refused(body)


def test_duplicate_unselected_cell_key_is_not_judged() -> None:
    """A cell nobody selected listed twice does not stop the selected ones."""
    body = (
        b'{"us_cell_1": {"ip_ranges": ["3.3.3.3/32"]}, "emea_cell_1": {"ip_ranges": []},'
        b' "emea_cell_1": {"ip_ranges": []}}'
    )
    assert parse(body).prefixes == {"us_cell_1": ("3.3.3.3/32",)}


def test_huge_number_elsewhere_is_a_clear_error() -> None:
    """A 5,000-digit number (orjson reads it, the stdlib refuses) gives a one-line FeedError."""
    body = b'{"us_cell_1": {"ip_ranges": ["3.3.3.3/32"]}, "n": ' + b"9" * 5000 + b"}"
    message = refused(body)
    assert "not JSON" in message


def test_json_nested_too_deeply_for_the_stdlib_is_a_clear_error() -> None:
    """1,000 levels (orjson's limit is 1,024, the stdlib's lower) gives a one-line FeedError."""
    body = b'{"n": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert "not JSON this program reads (nested too deeply)" in refused(body)


def test_no_cell_selected_is_refused() -> None:
    """Selecting no cell would mean an empty allowlist: refused."""
    with pytest.raises(FeedError, match="no Okta cell is selected"):
        parse_okta(okta_body(), cells=(), source=SOURCE)


def test_snapshot_is_the_shared_reference_copy() -> None:
    """The test data and the package's demo data are the reference snapshot, byte for byte."""
    package_copy = SNAPSHOT.parents[2] / "allowlist_sync" / "data" / SNAPSHOT.name
    assert package_copy.read_bytes() == SNAPSHOT.read_bytes()
    assert len(json.loads(SNAPSHOT.read_bytes())) == 18
