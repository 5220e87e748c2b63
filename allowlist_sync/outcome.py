"""The Outcome of one run: what happened, in a form the CLI, the scheduler and metrics share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from allowlist_sync._version import __version__
from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.cidrs import sort_key, sorted_networks
from allowlist_sync.errors import AllowlistSyncError, ExitCode
from allowlist_sync.logs import scrub
from allowlist_sync.plan import Plan, Reason

Status = Literal["in_sync", "changes_pending", "applied", "refused", "failed"]
#: Every status word, in the order reports list them.
STATUSES: tuple[Status, ...] = ("in_sync", "changes_pending", "applied", "refused", "failed")
#: Statuses of a run that did its job (a dry run with pending changes included).
SUCCESS_STATUSES: frozenset[str] = frozenset({"in_sync", "changes_pending", "applied"})
#: The target of a run configured by the environment alone (its `target` label and field).
DEFAULT_TARGET = "default"
#: Statuses from the least to the most severe: a fleet's status is its most severe target's.
STATUS_SEVERITY: tuple[Status, ...] = ("in_sync", "applied", "changes_pending", "refused", "failed")
#: Exit codes from the least to the most severe: a fleet exits with its most severe target's.
#: A failure that a retry can fix (1) comes first, so a CronJob's back-off and serve's retry
#: still try again; then what a person must fix: configuration, the token, a guard's refusal;
#: then changes pending (2, with --detailed-exitcode).
EXIT_SEVERITY: tuple[ExitCode, ...] = (
    ExitCode.OK,
    ExitCode.CHANGES_PENDING,
    ExitCode.REFUSED,
    ExitCode.AUTH,
    ExitCode.CONFIG,
    ExitCode.FAILED,
    ExitCode.INTERRUPTED,
)


@dataclass
class Outcome:
    """One run's result; `status` is the contract value of the JSON output."""

    status: Status
    dry_run: bool
    #: The configured target's name (DEFAULT_TARGET without a config file) and account.
    target: str = DEFAULT_TARGET
    account_id: int | None = None
    plan: Plan | None = None
    source: SourceInfo | None = None
    #: Every source of the target (name, type, prefixes per label, origin), as JSON.
    sources: list[dict[str, Any]] = field(default_factory=list)
    rule_id: int | None = None
    rule_name: str | None = None
    rule_set_enabled: bool | None = None
    failed_cidrs: tuple[str, ...] = ()
    already_existed: tuple[str, ...] = ()
    #: CIDRs this run wrote to the rule and read back (0 unless a write was verified); the plan's
    #: own numbers are `plan.add` / `plan.remove`.
    added: int = 0
    removed: int = 0
    requests: int = 0
    writes: int = 0
    duration_seconds: float = 0.0
    error: AllowlistSyncError | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """The run did its job: in sync, changes pending on a dry run, or applied and verified."""
        return self.status in SUCCESS_STATUSES

    @property
    def changed(self) -> bool:
        """The run wrote a change to the rule (and verified it)."""
        return self.status == "applied"

    def exit_code(self, *, detailed: bool = False) -> ExitCode:
        """The process exit code for this outcome (README "Exit codes")."""
        if self.error is not None:
            return self.error.exit_code
        if self.status == "failed":
            return ExitCode.FAILED
        if self.status == "changes_pending" and detailed:
            return ExitCode.CHANGES_PENDING
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """The `--output json` object (also /readyz and the webhook), every secret redacted."""
        plan = self.plan
        data: dict[str, Any] = {
            "status": self.status,
            "dry_run": self.dry_run,
            "target": self.target,
            "account_id": self.account_id,
            "add": [str(n) for n in sorted_networks(plan.add)] if plan else [],
            "remove": [c.cidr for c in plan.remove] if plan else [],
            # Why each line is there, in the order of `add` and `remove` (reason null: unknown).
            "add_reasons": add_reasons(plan) if plan else [],
            "remove_reasons": remove_reasons(plan) if plan else [],
            "lockout_check": (
                {"caller_allowed_without_owned_rule": plan.caller_allowed_without_rule}
                if plan and plan.caller_allowed_without_rule is not None
                else None
            ),
            "counts": {
                "desired": len(plan.desired) if plan else None,
                "current": plan.current_count if plan else None,
                "planned_add": len(plan.add) if plan else 0,
                "planned_remove": len(plan.remove) if plan else 0,
                "keep": len(plan.keep) if plan else 0,
                # What was written and verified: 0 after a dry run, a refusal or a failed write.
                "added": self.added,
                "removed": self.removed,
            },
            "rule": {
                "id": self.rule_id,
                "name": self.rule_name,
                # Created even when the run failed afterwards (e.g. refused CIDRs).
                "created": bool(
                    plan and plan.creates_rule and not self.dry_run and self.rule_id is not None
                ),
                "rule_set_enabled": self.rule_set_enabled,
            },
            "source": self.source.to_json() if self.source else None,
            "sources": self.sources,
            "failed_cidrs": list(self.failed_cidrs),
            "already_existed": list(self.already_existed),
            "mode": plan.mode if plan else None,
            "requests": self.requests,
            "writes": self.writes,
            "duration_seconds": round(self.duration_seconds, 3),
            "error": (
                {"kind": self.error.kind, "message": str(self.error)} if self.error else None
            ),
            "warnings": self.warnings,
            "version": __version__,
        }
        # A signed source URL's query, a secret in an error message: redacted at the source,
        # so no consumer of this object (JSON output, /readyz, the webhook) can print them.
        scrubbed: dict[str, Any] = scrub(data)
        return scrubbed


@dataclass
class FleetOutcome:
    """A run over the targets of a config file: one Outcome per target, in the file's order.

    `error` is a failure of the run as a whole (nothing was attempted: e.g. the run lock).
    """

    targets: list[Outcome]
    dry_run: bool
    duration_seconds: float = 0.0
    error: AllowlistSyncError | None = None

    @property
    def status(self) -> Status:
        """The most severe target status (`STATUS_SEVERITY`); `failed` for a run-level error."""
        if self.error is not None or not self.targets:
            return "failed"
        return max((o.status for o in self.targets), key=STATUS_SEVERITY.index)

    @property
    def succeeded(self) -> bool:
        """Every target did its job."""
        return self.error is None and all(o.succeeded for o in self.targets)

    def exit_code(self, *, detailed: bool = False) -> ExitCode:
        """The most severe target's exit code, in the order of `EXIT_SEVERITY`."""
        if self.error is not None:
            return self.error.exit_code
        codes = [o.exit_code(detailed=detailed) for o in self.targets] or [ExitCode.FAILED]
        return max(codes, key=_severity)

    def summary(self) -> dict[str, int]:
        """How many targets ended in each status (every status word, zeros included)."""
        return {s: sum(1 for o in self.targets if o.status == s) for s in STATUSES}

    def to_json(self) -> dict[str, Any]:
        """The `--output json` object of a config-file run: `status` and one item per target."""
        data: dict[str, Any] = {
            "status": self.status,
            "dry_run": self.dry_run,
            "targets": [o.to_json() for o in self.targets],
            "summary": self.summary(),
            "duration_seconds": round(self.duration_seconds, 3),
            "error": (
                {"kind": self.error.kind, "message": str(self.error)} if self.error else None
            ),
            "version": __version__,
        }
        scrubbed: dict[str, Any] = scrub(data)
        return scrubbed


def _severity(code: ExitCode) -> int:
    # A code outside the list (none today) counts as a failure.
    return (
        EXIT_SEVERITY.index(code) if code in EXIT_SEVERITY else EXIT_SEVERITY.index(ExitCode.FAILED)
    )


def add_reasons(plan: Plan) -> list[dict[str, Any]]:
    """`{cidr, reason, by}` for each addition, in the sorted order of the JSON `add` list."""
    reasons: list[Reason | None] = list(plan.add_reasons) or [None] * len(plan.add)
    pairs = sorted(zip(plan.add, reasons, strict=True), key=lambda pair: sort_key(pair[0]))
    return [{"cidr": str(n), **_reason_json(r)} for n, r in pairs]


def remove_reasons(plan: Plan) -> list[dict[str, Any]]:
    """`{cidr, id, reason, by}` for each removal, in the order of the JSON `remove` list."""
    reasons: list[Reason | None] = list(plan.remove_reasons) or [None] * len(plan.remove)
    return [
        {"cidr": c.cidr, "id": c.id, **_reason_json(r)}
        for c, r in zip(plan.remove, reasons, strict=True)
    ]


def _reason_json(reason: Reason | None) -> dict[str, Any]:
    return {"reason": reason.code if reason else None, "by": reason.by if reason else None}
