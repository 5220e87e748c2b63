"""Logs are structured events on the given stream, and never carry a secret."""

from __future__ import annotations

import io
import json

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
