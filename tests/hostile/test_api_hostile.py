"""An odd, slow or endless dbt API answer never hangs a run, exhausts memory or fakes rules."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from structlog.testing import capture_logs

from allowlist_sync.config import Settings, load_settings
from allowlist_sync.emulator import EmulatorStore
from allowlist_sync.emulator.faults import Fault
from allowlist_sync.errors import ExitCode, RunTimeoutError
from allowlist_sync.net.deadline import run_deadline
from allowlist_sync.net.retries import RetryPolicy, Transient, retrying
from allowlist_sync.outcome import Outcome
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import ACCOUNT_ID, RULE_NAME, TOKEN
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc
from tests.hostile.servers import hostile_server, http_response

PUBLISHED = aad_prefixes(feed_doc())
OPTIONS = RunOptions(source_file=str(PUBLIC_FEED))


def hostile_settings(url: str, **overrides: Any) -> Settings:
    """Settings for a hostile dbt host: quick retries, short timeouts."""
    options: dict[str, Any] = {"retry_backoff": 0, "retry_attempts": 2, "http_timeout": 1}
    options.update(overrides)
    return load_settings(account_id=ACCOUNT_ID, token=TOKEN, host_url=url, **options)


def run_bounded(settings: Settings, seconds: float = 20) -> Outcome:
    """run_once in a thread that must end within `seconds` (a liveness bound, not a timing)."""
    result: list[Outcome] = []
    thread = threading.Thread(target=lambda: result.append(run_once(settings, OPTIONS)))
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the run hung"
    return result[0]


def rule_json(rule_id: int, name: str = "team", cidrs: list[str] | None = None) -> dict[str, Any]:
    """One rule as the API lists it."""
    return {
        "id": rule_id,
        "name": name,
        "type": 1,
        "state": 1,
        "ip_restriction_rule_set_id": 1,
        "rule_set_enabled": False,
        "account_id": ACCOUNT_ID,
        "description": "",
        "cidrs": [
            {"id": 1000 + i, "cidr": c, "state": 1} for i, c in enumerate(cidrs or ["8.8.8.0/24"])
        ],
    }


def listing(rules: list[dict[str, Any]], total: int) -> bytes:
    """A list page with its envelope."""
    return json.dumps(
        {
            "status": {"code": 200, "is_success": True},
            "data": rules,
            "extra": {"pagination": {"count": len(rules), "total_count": total}},
        }
    ).encode()


def assert_failed_without_secret(outcome: Outcome, kind: str, words: str) -> None:
    """Failed (exit 1) with the error kind and words given; the token in no message."""
    assert outcome.status == "failed" and outcome.exit_code() == ExitCode.FAILED
    assert outcome.error is not None and outcome.error.kind == kind
    assert words in str(outcome.error)
    assert TOKEN not in str(outcome.error) and outcome.writes == 0


def test_a_dripping_server_cannot_hold_a_request_past_its_timeout() -> None:
    """An answer sent one byte every 0.05 s fails each request after HTTP_TIMEOUT, then the run."""
    body = http_response(listing([rule_json(1)], 1))
    with hostile_server(lambda _line: body, drip_seconds=0.05) as url:
        outcome = run_bounded(hostile_settings(url, http_timeout=0.5))
    assert_failed_without_secret(outcome, "api", "timed out")
    assert outcome.requests == 2  # each attempt cut at its deadline, then given up


def test_a_dripping_server_cannot_hold_a_run_past_its_deadline() -> None:
    """With long request timeouts, the run's own deadline ends it and nothing more is sent."""
    body = http_response(listing([rule_json(1)], 1))
    with hostile_server(lambda _line: body, drip_seconds=0.05) as url:
        settings = hostile_settings(url, http_timeout=30, retry_attempts=5, run_timeout=1)
        outcome = run_bounded(settings)
    assert_failed_without_secret(outcome, "run_timeout", "ALLOWLIST_SYNC_RUN_TIMEOUT=1s")
    assert outcome.requests == 1


def test_a_huge_answer_is_refused_while_it_streams() -> None:
    """A list answer over the body limit fails the run with the limit named, with or without
    Content-Length."""
    rules = [rule_json(i, f"team {i}", ["8.8.8.0/24"] * 300) for i in range(1, 101)]
    big = listing(rules, 100)
    assert len(big) > 1_000_000
    with hostile_server(lambda _line: http_response(big)) as url:
        outcome = run_bounded(hostile_settings(url, api_max_body_bytes=1_000_000))
    assert_failed_without_secret(outcome, "bad_response", "over the 1000000-byte limit")
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + big
    )
    with hostile_server(lambda _line: chunked) as url:
        outcome = run_bounded(hostile_settings(url, api_max_body_bytes=1_000_000))
    assert_failed_without_secret(outcome, "bad_response", "over the 1000000-byte limit")


def test_a_page_repeated_forever_ends_at_the_second_page() -> None:
    """The same page for every offset is an error after two requests, not 1,000 copies of a rule."""
    page = http_response(listing([rule_json(5)], 1000))
    with hostile_server(lambda _line: page) as url:
        outcome = run_bounded(hostile_settings(url))
    assert_failed_without_secret(outcome, "bad_response", "repeats rule ids already listed (5)")
    assert outcome.requests == 2


def test_more_entries_than_total_count_is_an_error() -> None:
    """A page holding more rules than the listing's own total_count is refused."""
    page = http_response(listing([rule_json(1), rule_json(2), rule_json(3)], 2))
    with hostile_server(lambda _line: page) as url:
        outcome = run_bounded(hostile_settings(url))
    assert_failed_without_secret(outcome, "bad_response", "more than its total_count 2")


def test_the_owned_rule_listed_twice_with_one_id_is_one_rule() -> None:
    """The same rule twice on a page is read once: in sync, not 'two active rules (ids 5, 5)'."""
    owned = rule_json(5, RULE_NAME, PUBLISHED)
    page = http_response(listing([owned, owned], 2))
    with hostile_server(lambda _line: page) as url:
        outcome = run_bounded(hostile_settings(url))
    assert outcome.status == "in_sync", outcome.error
    assert outcome.rule_id == 5


def test_a_429_without_retry_after_waits_the_cooldown(
    emulator_settings_factory: Any, store: EmulatorStore
) -> None:
    """A 429 storm without Retry-After waits the configured cool-down each time, then converges."""
    settings = emulator_settings_factory(rate_limit_cooldown=0.05, retry_attempts=4)
    store.add_fault(Fault(action="status", status=429, method="GET", times=3))
    with capture_logs() as events:
        outcome = run_once(settings, OPTIONS)
    assert outcome.status == "applied"
    waits = [e["wait_seconds"] for e in events if e["event"] == "http_retry"]
    assert waits == [0.05, 0.05, 0.05]


def test_retry_after_is_honoured_up_to_900_seconds() -> None:
    """Retry-After 300 is waited in full (no longer capped at 60 s); 5,000 is capped at 900."""
    policy = RetryPolicy(attempts=2, max_seconds=10_000, backoff=0)
    for asked, waited in ((300.0, 300.0), (5000.0, 900.0)):
        loop = retrying(policy, "GET /x")
        state: Any = None
        for attempt in loop:
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    state = attempt.retry_state
                    raise Transient("HTTP 429", status_code=429, retry_after=asked)
            break
        assert loop.wait(state) == waited


def test_a_wait_past_the_run_deadline_ends_the_run_at_once() -> None:
    """A Retry-After longer than what is left of the run ends it now, saying why."""
    calls: list[int] = []

    def rate_limited() -> None:
        for attempt in retrying(RetryPolicy(attempts=3, max_seconds=10_000), "GET /x"):
            with attempt:
                calls.append(1)
                raise Transient("HTTP 429", status_code=429, retry_after=300)

    with run_deadline(5), pytest.raises(RunTimeoutError, match="run's deadline"):
        rate_limited()
    assert calls == [1]


def test_a_forbidden_token_exits_77_and_is_never_retried(
    emulator_settings_factory: Any, store: EmulatorStore
) -> None:
    """A 403 (no permission) is exit 77 after one request: retrying cannot help."""
    settings = emulator_settings_factory()
    store.add_fault(Fault(action="status", status=403, times=5))
    outcome = run_once(settings, OPTIONS)
    assert outcome.exit_code() == ExitCode.AUTH and outcome.requests == 1
    assert store.write_count() == 0


def test_a_listing_over_the_limit_in_total_is_refused() -> None:
    """Pages each under the body limit but over it together fail: the listing is held at once."""

    def page(line: str) -> bytes:
        first = 101 if "offset=100" in line else 1
        rules = [rule_json(i, f"team {i}", ["8.8.8.0/24"] * 150) for i in range(first, first + 100)]
        return http_response(listing(rules, 200))

    assert 500_000 < len(page("GET /?offset=0")) < 1_000_000
    with hostile_server(page) as url:
        outcome = run_bounded(hostile_settings(url, api_max_body_bytes=1_000_000))
    assert_failed_without_secret(outcome, "bad_response", "over the 1000000-byte limit in total")
    assert outcome.requests == 2


def test_a_dripping_feed_server_cannot_hold_the_run() -> None:
    """A mirror that drips the service-tags file ends the run after the request deadline; the
    dbt API is never called."""
    body = http_response(PUBLIC_FEED.read_bytes())
    with hostile_server(lambda _line: body, drip_seconds=0.05) as url:
        settings = hostile_settings("http://127.0.0.1:9", http_timeout=0.5)
        result: list[Outcome] = []
        options = RunOptions(source_url=f"{url}/ServiceTags_Public_20251028.json")
        thread = threading.Thread(target=lambda: result.append(run_once(settings, options)))
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "the run hung"
    outcome = result[0]
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.kind == "feed" and "timed out" in str(outcome.error)
    assert outcome.requests == 0
