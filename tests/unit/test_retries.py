"""Retry policy: Retry-After parsing, bounded backoff, and a log event per retry."""

from __future__ import annotations

import email.utils

import pytest
from structlog.testing import capture_logs

from allowlist_sync.net.retries import (
    RetryPolicy,
    Transient,
    backoff_seconds,
    parse_retry_after,
    retrying,
)


def always_failing(policy: RetryPolicy, calls: list[int], retry_after: float | None) -> None:
    """Run a retry loop whose every attempt fails with a 503 (or a 429 with Retry-After)."""
    status = 503 if retry_after is None else 429
    for attempt in retrying(policy, "GET /x"):
        with attempt:
            calls.append(1)
            raise Transient(f"HTTP {status}", status_code=status, retry_after=retry_after)


def test_retry_after_in_seconds() -> None:
    """Delta-seconds are taken as they are."""
    assert parse_retry_after("120") == 120.0


def test_retry_after_as_http_date() -> None:
    """An HTTP date is turned into seconds from now; a past date means now."""
    now = 1_700_000_000.0
    future = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(future, now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    """A missing or unparsable Retry-After falls back to backoff."""
    assert parse_retry_after(value) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    """Backoff grows exponentially, adds at most one base of jitter, never exceeds max_wait."""
    policy = RetryPolicy(backoff=1.0, max_wait=10.0)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        assert base <= backoff_seconds(policy, attempt) <= base + 1.0
    assert backoff_seconds(policy, 10) == 10.0
    assert backoff_seconds(RetryPolicy(backoff=0), 5) == 0.0


def test_each_retry_is_a_log_event_and_attempts_are_bounded() -> None:
    """A call failing every time is tried `attempts` times, logging each retry, then re-raised."""
    calls: list[int] = []
    with capture_logs() as events, pytest.raises(Transient, match="HTTP 503"):
        always_failing(RetryPolicy(attempts=3, backoff=0), calls, retry_after=None)
    assert len(calls) == 3
    retries = [e for e in events if e["event"] == "http_retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert retries[0]["operation"] == "GET /x" and retries[0]["status_code"] == 503


def test_retry_after_longer_than_the_budget_stops_early() -> None:
    """A Retry-After beyond the time budget ends the retries instead of sleeping past it."""
    calls: list[int] = []
    with pytest.raises(Transient):
        always_failing(RetryPolicy(attempts=5, max_seconds=1.0), calls, retry_after=3600)
    assert len(calls) == 1
