"""Webhook notifications: when to send, what the message says, retries, and secrecy of the URL."""

from __future__ import annotations

import ipaddress
import json

import httpx
import pytest
from structlog.testing import capture_logs

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.dbt.models import Cidr
from allowlist_sync.errors import ApiError, UnsafePlanError
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan
from allowlist_sync.reporting.notify import (
    build_message,
    decide,
    message_text,
    send_webhook,
    should_notify,
)

HOOK = "https://hooks.slack.example/services/T000/B000/XXXXsecretXXXX"
NETS = tuple(ipaddress.ip_network(f"10.0.{i}.0/24") for i in range(3))


def outcome(status: str, **extra: object) -> Outcome:
    plan = Plan(
        rule_name="aad",
        rule_id=7,
        desired=NETS,
        current_count=2,
        add=NETS[2:],
        remove=(Cidr(id=1, cidr="192.0.2.0/24"),),
        keep=(Cidr(id=2, cidr=str(NETS[0])), Cidr(id=3, cidr=str(NETS[1]))),
    )
    source = SourceInfo(kind="file", location="ServiceTags_Public_20251028.json", change_number=9)
    return Outcome(
        status=status,  # type: ignore[arg-type]
        dry_run=status == "changes_pending",
        plan=plan,
        source=source,
        rule_id=7,
        rule_name="aad",
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("status", "changes", "always"),
    [
        ("applied", True, True),
        ("refused", True, True),
        ("failed", True, True),
        ("changes_pending", True, True),
        ("in_sync", False, True),
    ],
)
def test_when_to_notify(status: str, changes: bool, always: bool) -> None:
    """`changes` announces changes and problems, `always` every run, `never` nothing."""
    o = outcome(status)
    assert should_notify(o, "changes") is changes
    assert should_notify(o, "always") is always
    assert should_notify(o, "never") is False


def test_applied_message_lists_the_change() -> None:
    """An applied run's text says what was added and removed, and from which feed."""
    text = message_text(outcome("applied"), account_id=42)
    assert text.startswith("allowlist-sync updated rule 'aad' (id 7) in dbt account 42: +1 / -1")
    assert "Added: 10.0.2.0/24" in text and "Removed: 192.0.2.0/24" in text
    assert "changeNumber 9" in text


def test_refused_and_failed_messages_say_why() -> None:
    """A refusal carries the guard's reason; a failure carries the error kind and message."""
    refusal = UnsafePlanError("would remove 80% of the rule", guard="max_delete", details={})
    refused = message_text(outcome("refused", error=refusal))
    assert "REFUSED" in refused and "would remove 80% of the rule" in refused
    failed = message_text(outcome("failed", error=ApiError("HTTP 500", status_code=500)))
    assert "FAILED" in failed and "Error (api): HTTP 500" in failed


def test_message_has_text_and_structured_outcome() -> None:
    """The body is Slack/Teams-compatible `text` plus the `sync --output json` object."""
    message = build_message(outcome("applied"), account_id=42)
    assert isinstance(message["text"], str)
    assert message["outcome"]["status"] == "applied"
    assert message["outcome"]["add"] == ["10.0.2.0/24"]


def test_a_server_error_is_retried_once() -> None:
    """A 500 gets one more attempt; a 200 then counts as delivered."""
    statuses = [500, 200]
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(statuses.pop(0))

    message = {"text": "hello"}
    ok = send_webhook(HOOK, message, retry_pause=0, transport=httpx.MockTransport(handler))
    assert ok is True and bodies == [message, message]


def test_a_client_error_is_not_retried() -> None:
    """A 400 means the message is wrong: no second attempt, not delivered."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400)

    assert send_webhook(HOOK, {"text": "x"}, transport=httpx.MockTransport(handler)) is False
    assert calls == [1]


def test_failures_are_logged_without_the_url_path() -> None:
    """A webhook that cannot be reached is logged as a warning naming only scheme and host."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    with capture_logs() as events:
        ok = send_webhook(
            HOOK, {"text": "x"}, retry_pause=0, transport=httpx.MockTransport(handler)
        )
    assert ok is False and calls == [1, 1]
    (event,) = [e for e in events if e["event"] == "webhook_failed"]
    assert event["log_level"] == "warning"
    assert event["webhook"] == "https://hooks.slack.example/..."
    assert "secret" not in json.dumps(events)


def test_a_failure_is_announced_once_per_incident() -> None:
    """The first failure opens an incident and is sent; the same failure again is not."""
    failure = outcome("failed", error=ApiError("HTTP 503", status_code=503))
    first = decide(failure, "changes", None)
    assert (first.send, first.recovery, first.incident) == (True, False, "exit 1")
    again = decide(failure, "changes", first.incident)
    assert (again.send, again.incident) == (False, "exit 1")
    assert again.reason == "already announced (exit 1)"


def test_a_different_failure_is_a_new_message() -> None:
    """A failure with another exit code (a refusal after API errors) is announced too."""
    refusal = UnsafePlanError("would remove 80%", guard="max_delete", details={})
    notice = decide(outcome("refused", error=refusal), "changes", "exit 1")
    assert (notice.send, notice.incident) == (True, "exit 3")


def test_a_success_after_failures_sends_one_recovery() -> None:
    """The first success after an incident is announced as a recovery, even when in sync."""
    recovered = decide(outcome("in_sync"), "changes", "exit 1")
    assert (recovered.send, recovered.recovery, recovered.incident) == (True, True, None)
    quiet = decide(outcome("in_sync"), "changes", None)
    assert (quiet.send, quiet.reason) == (False, "nothing changed")


def test_policies_always_and_never() -> None:
    """`always` repeats every failure; `never` sends nothing, recoveries included."""
    failure = outcome("failed", error=ApiError("HTTP 503", status_code=503))
    assert decide(failure, "always", "exit 1").send is True
    assert decide(failure, "never", None).send is False
    assert decide(outcome("applied"), "never", "exit 1").send is False


def test_recovery_message_says_so() -> None:
    """A recovery message starts with RECOVERED and counts the unsuccessful runs before it."""
    message = build_message(outcome("in_sync"), account_id=42, recovered_after=3)
    assert message["recovered"] is True
    assert message["text"].startswith(
        "allowlist-sync RECOVERED: rule 'aad' (id 7) in dbt account 42 is synced again after 3"
    )
    assert build_message(outcome("in_sync"))["recovered"] is False


def test_a_named_target_s_message_names_it_and_its_account() -> None:
    """A config-file target's text and JSON name the target and its dbt account."""
    message = build_message(outcome("failed", target="prod-us", account_id=12345))
    assert message["text"].startswith(
        "allowlist-sync FAILED for rule 'aad' (id 7) in dbt account 12345 (target prod-us)."
    )
    assert (message["target"], message["account_id"]) == ("prod-us", 12345)
    assert message["outcome"]["target"] == "prod-us"


def test_the_environment_target_keeps_today_s_text() -> None:
    """The environment-only target is named `default` in JSON and not in the text."""
    message = build_message(outcome("applied"), account_id=42)
    assert message["target"] == "default"
    assert "target" not in message["text"]
