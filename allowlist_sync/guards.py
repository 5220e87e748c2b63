"""Guards: checks a plan must pass before anything is written. Each refusal carries its numbers.

Size guards (`min_prefixes`, `max_delete`) yield to `--force`. An empty desired set never does:
this job must not empty the allowlist. The lock-out guard lives in `sync` because it asks the
platform; it yields only to `--allow-lockout-risk`.
"""

from __future__ import annotations

from dataclasses import dataclass

from allowlist_sync.errors import UnsafePlanError
from allowlist_sync.logs import get_logger
from allowlist_sync.plan import Plan

log = get_logger(__name__)

#: Below this many current entries, any removal fraction is allowed (octoDNS's floor too).
DELETE_GUARD_FLOOR = 10


@dataclass(frozen=True)
class Limits:
    """The thresholds of the size guards."""

    min_prefixes: int = 10
    max_delete_fraction: float = 0.3


def check_plan(plan: Plan, limits: Limits, *, force: bool = False) -> None:
    """Raise UnsafePlanError when the plan is unsafe; `force` lifts the size guards only."""
    desired = len(plan.desired)
    if desired == 0:
        raise UnsafePlanError(
            "refusing to empty the rule: the desired set has 0 CIDRs (is the feed broken?)",
            guard="empty_desired",
            details={"desired": 0, "current": plan.current_count},
        )
    if desired < limits.min_prefixes:
        _refuse_or_force(
            f"the desired set has {desired} CIDRs, fewer than ALLOWLIST_SYNC_MIN_PREFIXES="
            f"{limits.min_prefixes} (a truncated feed?)",
            guard="min_prefixes",
            details={"desired": desired, "min": limits.min_prefixes},
            force=force,
        )
    removing = len(plan.remove)
    current = plan.current_count
    if current >= DELETE_GUARD_FLOOR and removing / current > limits.max_delete_fraction:
        _refuse_or_force(
            f"the plan removes {removing} of {current} CIDRs ({removing / current:.0%}), over "
            f"ALLOWLIST_SYNC_MAX_DELETE_FRACTION={limits.max_delete_fraction:g}",
            guard="max_delete",
            details={
                "remove": removing,
                "current": current,
                "max_fraction": limits.max_delete_fraction,
            },
            force=force,
        )


def _refuse_or_force(message: str, *, guard: str, details: dict[str, object], force: bool) -> None:
    if not force:
        raise UnsafePlanError(
            f"{message}; re-run with --force if this is intended",
            guard=guard,
            details=details,
        )
    log.warning("guard_overridden", guard=guard, reason=message, flag="--force", **details)
