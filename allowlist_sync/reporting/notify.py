"""Webhook notifications: a JSON message for each run that changed something, was refused or failed.

Once per incident: an unsuccessful run opens an incident named by its exit code (`exit 1`,
`exit 3`, `exit 77`, ...) and is announced; the runs after it that fail the same way (`serve`
retries, a CronJob failing every day) are not; one that fails another way is; the first
success after it sends one recovery message, even when it changed nothing. `decide` is the
policy, a pure function; the caller keeps the open incident (in memory and in the run state).

The body has a `text` field, which Slack and Microsoft Teams incoming webhooks both display, and
the structured `outcome` (the object `sync --output json` prints) for anything that reads it.
An incoming-webhook URL is a credential (Slack's embeds a token in its path), so it is
registered as a secret and logged only as scheme and host. A webhook that fails is logged and
never fails the run: the run's own result is what the exit code, metrics and logs report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from allowlist_sync._version import __version__
from allowlist_sync.cidrs import sorted_networks
from allowlist_sync.errors import ExitCode
from allowlist_sync.logs import get_logger, redact, register_secret
from allowlist_sync.net.retries import RETRYABLE_STATUSES
from allowlist_sync.outcome import DEFAULT_TARGET, STATUSES, Outcome

log = get_logger(__name__)

#: `ALLOWLIST_SYNC_NOTIFY` values.
#: Statuses worth a message under the default policy: a change made or pending, or a problem.
NOTEWORTHY = frozenset(STATUSES) - {"in_sync"}
#: Statuses worth another attempt: the receiver was busy or failed, not "your message is bad".
#: How many CIDRs a message lists per direction before "and N more".
MAX_LISTED = 20


def should_notify(outcome: Outcome, policy: str) -> bool:
    """Whether a run with this outcome is announced under `policy` (changes | always | never)."""
    if policy == "never":
        return False
    return policy == "always" or outcome.status in NOTEWORTHY


def incident_of(outcome: Outcome) -> str | None:
    """The incident an unsuccessful run belongs to (`exit 1`, ...); None for a success."""
    code = outcome.exit_code()
    return None if code == ExitCode.OK else f"exit {int(code)}"


@dataclass(frozen=True)
class Notice:
    """Whether to send a message for a run, and the open incident once it is delivered."""

    send: bool
    recovery: bool
    incident: str | None
    #: Why nothing is sent (for the log), when `send` is False.
    reason: str | None = None


def decide(outcome: Outcome, policy: str, incident: str | None) -> Notice:
    """The message for this run under `policy`, given the incident still open (if any)."""
    current = incident_of(outcome)
    if policy == "never":
        return Notice(send=False, recovery=False, incident=current, reason="policy never")
    if current is None:
        if incident is not None:
            return Notice(send=True, recovery=True, incident=None)
        sent = should_notify(outcome, policy)
        return Notice(sent, False, None, None if sent else "nothing changed")
    if current == incident and policy != "always":
        return Notice(False, False, current, f"already announced ({current})")
    return Notice(send=True, recovery=False, incident=current)


def safe_url(url: str) -> str:
    """The URL without its path and query (where webhook tokens live), for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/..."


def message_text(
    outcome: Outcome, *, account_id: int | None = None, recovered_after: int | None = None
) -> str:
    """The human-readable message: what happened to which rule of which target, and why.

    `recovered_after` (the unsuccessful runs before this success) makes it a recovery message.
    """
    rule = f"rule {outcome.rule_name!r}" if outcome.rule_name else "the rule"
    if outcome.rule_id is not None:
        rule += f" (id {outcome.rule_id})"
    if account_id is None:
        account_id = outcome.account_id
    where = f" in dbt account {account_id}" if account_id is not None else ""
    if outcome.target != DEFAULT_TARGET:  # the environment-only setup has one target, unnamed
        where += f" (target {outcome.target})"
    plan = outcome.plan
    lines: list[str] = []
    if recovered_after is not None:
        runs = f" after {recovered_after} unsuccessful run(s)" if recovered_after else ""
        lines.append(f"allowlist-sync RECOVERED: {rule}{where} is synced again{runs}.")
    if outcome.status == "applied" and plan is not None:
        verb = "created" if plan.creates_rule else "updated"
        lines.append(
            f"allowlist-sync {verb} {rule}{where}: +{len(plan.add)} / -{len(plan.remove)} "
            f"CIDRs, now {len(plan.desired)}."
        )
    elif outcome.status == "changes_pending" and plan is not None:
        lines.append(
            f"allowlist-sync dry run: {rule}{where} needs +{len(plan.add)} / "
            f"-{len(plan.remove)} CIDRs. Nothing was written."
        )
    elif outcome.status == "in_sync":
        count = len(plan.desired) if plan is not None else "its"
        lines.append(f"allowlist-sync: {rule}{where} is in sync ({count} CIDRs). No changes.")
    elif outcome.status == "refused":
        reason = str(outcome.error) if outcome.error else "a safety guard refused the plan"
        lines.append(f"allowlist-sync REFUSED to change {rule}{where}. Nothing was written.")
        lines.append(f"Reason: {reason}")
    else:
        lines.append(f"allowlist-sync FAILED for {rule}{where}.")
        if outcome.error is not None:
            lines.append(f"Error ({outcome.error.kind}): {outcome.error}")
        if outcome.failed_cidrs:
            lines.append(
                f"The platform refused {len(outcome.failed_cidrs)} CIDR(s): "
                + _listing(list(outcome.failed_cidrs))
            )
    if plan is not None and outcome.status in ("applied", "changes_pending"):
        if plan.add:
            lines.append("Added: " + _listing([str(n) for n in sorted_networks(plan.add)]))
        if plan.remove:
            lines.append("Removed: " + _listing([c.cidr for c in plan.remove]))
    if outcome.source is not None:
        source = outcome.source
        lines.append(
            f"Source: {source.location} (cloud {source.cloud}, changeNumber "
            f"{source.change_number})."
        )
    return redact("\n".join(lines))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def build_message(
    outcome: Outcome, *, account_id: int | None = None, recovered_after: int | None = None
) -> dict[str, Any]:
    """The webhook body: `text` for chat tools, `outcome` for machines, `target` and its account."""
    if account_id is None:
        account_id = outcome.account_id
    return {
        "text": message_text(outcome, account_id=account_id, recovered_after=recovered_after),
        "outcome": outcome.to_json(),
        "recovered": recovered_after is not None,
        "target": outcome.target,
        "account_id": account_id,
        "sender": f"allowlist-sync/{__version__}",
    }


def send_webhook(
    url: str,
    message: dict[str, Any],
    *,
    timeout: float = 10.0,
    retry_pause: float = 1.0,
    transport: httpx.BaseTransport | None = None,
) -> bool:
    """POST the message; one retry on a transport error, 408, 429 or 5xx. True when delivered."""
    register_secret(url)
    body = redact(orjson.dumps(message).decode()).encode()
    headers = {"Content-Type": "application/json", "User-Agent": f"allowlist-sync/{__version__}"}
    where = safe_url(url)
    error = ""
    with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
        for attempt in (1, 2):
            if attempt == 2:
                time.sleep(retry_pause)
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                log.info("webhook_sent", webhook=where, status_code=response.status_code)
                return True
            error = f"HTTP {response.status_code}"
            if response.status_code not in RETRYABLE_STATUSES:
                break
    log.warning("webhook_failed", webhook=where, error=error, effect="the run is not affected")
    return False
