"""Logs are structured events on the given stream, and never carry a secret."""

from __future__ import annotations

import io
import json
from urllib.parse import quote, quote_plus

from allowlist_sync import logs

SECRET = "dbtc_logs_secret_value_1234"


def configured() -> io.StringIO:
    stream = io.StringIO()
    logs.register_secret(SECRET)
    logs.configure(level="debug", fmt="json", stream=stream)
    return stream


def test_events_are_json_with_fields() -> None:
    """An event is one JSON line with its fields, level and timestamp."""
    stream = configured()
    logs.get_logger("allowlist_sync.test").info("plan", add=3, remove=1)
    event = json.loads(stream.getvalue())
    assert event["event"] == "plan" and event["add"] == 3 and event["remove"] == 1
    assert event["level"] == "info" and "timestamp" in event and event["module"] == "test"


def test_secret_is_scrubbed_from_values_nested_values_and_exceptions() -> None:
    """A registered secret is replaced wherever it appears in an event."""
    stream = configured()
    log = logs.get_logger("t")
    log.info("x", header=f"Token {SECRET}", nested={"a": [SECRET]})
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        log.exception("failed")
    log.warning("y", error=ValueError(SECRET))
    out = stream.getvalue()
    assert SECRET not in out
    assert out.count(logs.REDACTED) >= 4


def test_sensitive_keys_are_dropped() -> None:
    """Fields named like credentials are redacted whatever their value."""
    stream = configured()
    logs.get_logger("t").info("x", token="anything", Authorization="Bearer abc")
    event = json.loads(stream.getvalue())
    assert event["token"] == logs.REDACTED and event["Authorization"] == logs.REDACTED


def test_level_filters() -> None:
    """Events below the configured level are not written."""
    stream = io.StringIO()
    logs.configure(level="warning", fmt="json", stream=stream)
    logs.get_logger("t").info("quiet")
    logs.get_logger("t").warning("loud")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_console_format_is_one_line_per_event() -> None:
    """The console renderer writes one readable line per event."""
    stream = io.StringIO()
    logs.configure(level="info", fmt="console", stream=stream)
    logs.get_logger("t").info("plan", add=2)
    assert "plan" in stream.getvalue() and "add" in stream.getvalue()
    assert len(stream.getvalue().strip().splitlines()) == 1


def test_escaped_forms_of_a_secret_are_redacted() -> None:
    """A secret is caught in its repr, JSON-escaped and URL-encoded forms, not only raw."""
    secret = "dbtc_two\nlines\x00and/é+more"
    logs.register_secret(secret)
    for shown in (
        secret,
        repr(secret),
        json.dumps(secret),
        json.dumps(secret, ensure_ascii=False),
        json.dumps(repr(secret)),
        quote(secret, safe=""),
        quote_plus(secret),
    ):
        assert "lines" not in logs.redact(f"error near {shown} here"), shown


def test_register_url_redacts_query_and_fragment() -> None:
    """A registered URL's query and fragment become `<redacted>` wherever they appear."""
    url = "https://mirror.example.com/f.json?sv=2024&sig=SIGNATUREvalue#fragSECRET"
    logs.register_url(url)
    assert logs.redact(f"GET {url} failed") == (
        "GET https://mirror.example.com/f.json?<redacted>#<redacted> failed"
    )
    assert "SIGNATUREvalue" not in logs.redact(quote(url, safe=""))
    assert "SIGNATUREvalue" not in logs.redact(json.dumps({"u": url.replace("/", "\\/")}))


def test_display_url_drops_credentials_query_and_fragment() -> None:
    """`display_url` keeps scheme, host, port and path only; marks what it hid."""
    assert (
        logs.display_url("https://u:pw@h.example:8443/a/b?x=1#y")
        == "https://h.example:8443/a/b?<redacted>#<redacted>"
    )
    assert logs.display_url("https://h.example/a") == "https://h.example/a"
    assert logs.display_url("http://[::1") == logs.REDACTED  # unparsable: shown as nothing


def test_scrub_redacts_nested_values() -> None:
    """`scrub` redacts secrets inside nested dicts and lists and drops credential keys."""
    logs.register_secret(SECRET)
    assert logs.scrub({"a": [f"x{SECRET}"], "password": "p", "n": 3}) == {
        "a": [f"x{logs.REDACTED}"],
        "password": logs.REDACTED,
        "n": 3,
    }
