"""Retries around single HTTP calls: bounded attempts and time, Retry-After honoured, logged.

Callers raise `Transient` inside a `retrying(...)` attempt for anything worth another try
(connect errors, timeouts of reads, 408/429/5xx); everything else propagates at once. When the
attempts or the time budget run out, the last `Transient` is re-raised for the caller to map to
its own error type.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from datetime import UTC

import tenacity

from allowlist_sync.errors import RunTimeoutError
from allowlist_sync.logs import get_logger
from allowlist_sync.net.deadline import check_run_deadline, run_remaining

log = get_logger(__name__)

#: Statuses worth another try: the server said "not now" or failed without an answer.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Transient(Exception):  # noqa: N818 - a signal between a call and its retry loop
    """A failure another attempt may fix; carries the server's Retry-After when it sent one."""

    def __init__(
        self, reason: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        self.reason = reason
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(reason)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts and total seconds per call, backoff, and what 429 costs.

    `max_wait` caps our own exponential backoff; a server's Retry-After is honoured up to
    `max_retry_after`. `rate_limit_cooldown` is the wait after a 429 that names none (dbt documents
    a five-minute cool-down and sends Retry-After only on SCIM endpoints); None means backoff.
    Every wait also ends the retries when it would pass the call's budget or the run's deadline.
    """

    attempts: int = 4
    max_seconds: float = 120.0
    backoff: float = 1.0
    max_wait: float = 60.0
    max_retry_after: float = 900.0
    rate_limit_cooldown: float | None = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def backoff_seconds(policy: RetryPolicy, attempt: int) -> float:
    """Exponential backoff with full jitter on top, capped at `max_wait`."""
    if policy.backoff <= 0:
        return 0.0
    base: float = policy.backoff * 2.0 ** (attempt - 1)
    return min(policy.max_wait, base + random.uniform(0, policy.backoff))  # noqa: S311


class _Wait(tenacity.wait.wait_base):
    """Wait what the server asked for (Retry-After), else back off exponentially."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, Transient):
            if exc.retry_after is not None:
                return min(exc.retry_after, self.policy.max_retry_after)
            if exc.status_code == 429 and self.policy.rate_limit_cooldown is not None:
                return self.policy.rate_limit_cooldown
        return backoff_seconds(self.policy, retry_state.attempt_number)


def _past_run_deadline(retry_state: tenacity.RetryCallState) -> bool:
    """Stop when the coming wait would end after the run's deadline."""
    remaining = run_remaining()
    return remaining is not None and retry_state.upcoming_sleep >= remaining


class _StopAtRunDeadline(tenacity.stop.stop_base):
    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return _past_run_deadline(retry_state)


def _give_up(retry_state: tenacity.RetryCallState) -> None:
    """After the last attempt: the run's deadline if that is why, else the last failure."""
    if _past_run_deadline(retry_state):
        check_run_deadline()  # raises when it has passed already
        remaining = run_remaining() or 0.0
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        reason = getattr(exc, "reason", str(exc))
        raise RunTimeoutError(
            f"{reason}; waiting {retry_state.upcoming_sleep:g}s before the next attempt would pass "
            f"the run's deadline ({remaining:.0f}s left, ALLOWLIST_SYNC_RUN_TIMEOUT); "
            "nothing further was sent, the next run starts over"
        )
    if retry_state.outcome is not None:
        retry_state.outcome.result()  # re-raises the last failure


def retrying(policy: RetryPolicy, operation: str) -> tenacity.Retrying:
    """A tenacity loop for one HTTP call: retries only `Transient`, re-raises the last one."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "http_retry",
            operation=operation,
            attempt=state.attempt_number,
            max_attempts=policy.attempts,
            wait_seconds=round(state.upcoming_sleep, 3),
            reason=getattr(exc, "reason", str(exc)),
            status_code=getattr(exc, "status_code", None),
        )

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Transient),
        stop=tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_before_delay(policy.max_seconds)
        | _StopAtRunDeadline(),
        wait=_Wait(policy),
        before_sleep=before_sleep,
        retry_error_callback=_give_up,
        reraise=True,
    )
