"""What the probes say about runs: the last run, of the fleet and of each target; their health.

LastRun         the fleet's status and exit code (its most severe target's), the error
                that decided them, and a TargetRun per target: `last_run` in /status, /readyz
target_health   each target's last success, failure streak and feed (from the metrics and
                the last runs), and the fleet's: the oldest success, the longest streak
single_target   the runner of the environment-only setup: its one target as a fleet of one
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.config import Settings
from allowlist_sync.logs import redact
from allowlist_sync.outcome import FleetOutcome, Outcome
from allowlist_sync.reporting.metrics import SyncMetrics
from allowlist_sync.sync import RunOptions, run_once


def single_target(settings: Settings) -> Callable[[], FleetOutcome]:
    """The runner of the environment-only setup: its one target as a FleetOutcome of one."""

    def run() -> FleetOutcome:
        outcome = run_once(settings, RunOptions())
        return FleetOutcome(
            targets=[outcome], dry_run=outcome.dry_run, duration_seconds=outcome.duration_seconds
        )

    return run


def _error_json(kind: str | None, message: str | None) -> dict[str, Any] | None:
    return {"kind": kind, "message": message} if message is not None else None


@dataclass(frozen=True)
class TargetRun:
    """What the probes say about one target of the most recent finished run."""

    target: str
    account_id: int | None
    status: str
    exit_code: int
    error_kind: str | None
    error: str | None  # redacted

    @classmethod
    def of(cls, outcome: Outcome) -> TargetRun:
        """The probes' view of one target's Outcome."""
        error = outcome.error
        return cls(
            target=outcome.target,
            account_id=outcome.account_id,
            status=outcome.status,
            exit_code=int(outcome.exit_code()),
            error_kind=error.kind if error is not None else None,
            error=redact(str(error)) if error is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        """One item of `last_run.targets`."""
        return {
            "target": self.target,
            "account_id": self.account_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "error": _error_json(self.error_kind, self.error),
        }


@dataclass(frozen=True)
class LastRun:
    """What the probes say about the most recent finished run: the fleet and each target.

    `status` and `exit_code` are the fleet's (its most severe target's); `error` is the
    run-level error, else the error of the target that decided the exit code.
    """

    number: int
    status: str
    exit_code: int
    finished_at: datetime
    duration_seconds: float
    error_kind: str | None
    error: str | None  # redacted
    targets: tuple[TargetRun, ...] = ()

    @classmethod
    def of(cls, fleet: FleetOutcome, *, number: int, finished_at: datetime) -> LastRun:
        """The probes' view of a finished run."""
        code = fleet.exit_code()
        error = fleet.error
        if error is None:
            error = next(
                (o.error for o in fleet.targets if o.exit_code() == code and o.error), None
            )
        return cls(
            number=number,
            status=fleet.status,
            exit_code=int(code),
            finished_at=finished_at,
            duration_seconds=fleet.duration_seconds,
            error_kind=error.kind if error is not None else None,
            error=redact(str(error)) if error is not None else None,
            targets=tuple(TargetRun.of(o) for o in fleet.targets),
        )

    def to_json(self) -> dict[str, Any]:
        """The `last_run` object of the probe bodies."""
        return {
            "number": self.number,
            "status": self.status,
            "exit_code": self.exit_code,
            "finished_at": self.finished_at.isoformat(),
            "duration_seconds": round(self.duration_seconds, 3),
            "error": _error_json(self.error_kind, self.error),
            "targets": [t.to_json() for t in self.targets],
        }


def feed_json(source: SourceInfo | None) -> dict[str, Any] | None:
    """The `feed` object of `/status`: the service-tags file a run read; None before one."""
    if source is None:
        return None
    return {
        "file_date": source.file_date,
        "change_number": source.change_number,
        "kind": source.kind,
        "cache_used": source.kind == "cache",
    }


def target_health(metrics: SyncMetrics, sources: dict[str, SourceInfo]) -> dict[str, Any]:
    """The `/status` fields of sync health: per target, and the fleet's worst.

    `targets` has each target's last success, failure streak and feed; `last_success` is the
    oldest of them (None while a target has none), `consecutive_failures` the longest streak
    and `feed` the first target's.
    """
    names = metrics.targets
    successes = [metrics.last_success(name) for name in names]
    streaks = [metrics.consecutive_failures(name) for name in names]
    targets = [
        {
            "target": name,
            "last_success": _iso_time(success),
            "consecutive_failures": streak,
            "feed": feed_json(sources.get(name)),
        }
        for name, success, streak in zip(names, successes, streaks, strict=True)
    ]
    known = [s for s in successes if s is not None]
    oldest = min(known) if known and len(known) == len(successes) else None
    return {
        "last_success": _iso_time(oldest),
        "consecutive_failures": max(streaks, default=0),
        "feed": next((t["feed"] for t in targets if t["feed"] is not None), None),
        "targets": targets,
    }


def _iso_time(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None
