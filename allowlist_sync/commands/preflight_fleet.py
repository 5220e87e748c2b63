"""The preflight of a config file (`check --config FILE`): its sources once, then every target.

    config     the file read whole (`read_config`); a refused file ends the check here (78)
    sources    each source a selected target uses, fetched and validated once
               (`fleet.load_sources`): its origin, date and prefixes per label, or its error
    targets    per target the checks of a one-target preflight (`preflight.py`), with
               `sources` for `feed`: its token read (config), the account read (api, rules,
               enforcement, caller) against the desired set made from its own sources

A target never depends on another: a failed source fails the `sources` check of the targets
using it (their accounts are still read, so one run names every problem), an unreadable or
refused token fails that target alone. Targets are checked concurrently, up to the file's
`concurrency`; each sends only the GET requests of a one-target check.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from allowlist_sync.cidrs import Network
from allowlist_sync.commands.preflight import (
    ACCOUNT_CHECKS,
    CHECKS,
    WRITE_UNKNOWN,
    Preflight,
    check_account,
    skip_account_checks,
    skipped,
)
from allowlist_sync.config import RunSettings, Settings
from allowlist_sync.config.file import FleetConfig, TargetSpec, target_settings
from allowlist_sync.errors import AllowlistSyncError, ExitCode
from allowlist_sync.fleet import load_sources, select_targets
from allowlist_sync.logs import display_url, get_logger
from allowlist_sync.net.deadline import run_deadline
from allowlist_sync.outcome import EXIT_SEVERITY
from allowlist_sync.render import describe_source
from allowlist_sync.sources.ranges import Ranges, RangeSet
from allowlist_sync.sync import desired_set

log = get_logger(__name__)

#: A config file's target: today's checks, `sources` (its own sources) in place of `feed`.
TARGET_CHECKS = (*CHECKS[:-1], "sources")
Loaded = dict[str, Ranges | AllowlistSyncError]


@dataclass
class TargetCheck:
    """One target's preflight: which target, and its checks."""

    target: TargetSpec
    preflight: Preflight

    def to_json(self) -> dict[str, Any]:
        """The item of the report's `targets` list: the target, its verdict and its checks."""
        failed = self.preflight.failed
        return {
            "target": self.target.name,
            "ok": not failed,
            "verdict": "failed" if failed else "passed",
            "failed": failed,
            "account_id": self.target.account_id,
            "host_url": display_url(self.target.host_url),
            "rule_name": self.target.rule_name,
            "checks": list(self.preflight.names),
            **self.preflight.checks,
        }


@dataclass
class FleetPreflight:
    """The config check, each source's report (file order) and each selected target's checks."""

    config: dict[str, Any]
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets: list[TargetCheck] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        """`config`, or `TARGET: CHECK` for each failed check of each target."""
        if self.config["ok"] is False:
            return ["config"]
        return [f"{t.target.name}: {name}" for t in self.targets for name in t.preflight.failed]

    @property
    def exit_code(self) -> ExitCode:
        """78 for a refused file, else the most severe target's code (`EXIT_SEVERITY` order)."""
        if self.config["ok"] is False:
            return ExitCode.CONFIG
        codes = [t.preflight.exit_code for t in self.targets] or [ExitCode.OK]
        return max(codes, key=_severity)


def _severity(code: ExitCode) -> int:
    return EXIT_SEVERITY.index(code if code in EXIT_SEVERITY else ExitCode.FAILED)


def config_passed(config: FleetConfig) -> dict[str, Any]:
    """The passed config check: the file and what it describes."""
    return {
        "ok": True,
        "path": str(config.path),
        "targets": len(config.targets),
        "sources": len(config.sources),
        "message": f"config file {config.path}: valid, {counted(len(config.targets), 'target')}, "
        f"{counted(len(config.sources), 'source')}",
    }


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 target`, `2 targets` (`plural`: when it is not `noun` + s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def config_failed(path: str, exc: AllowlistSyncError) -> dict[str, Any]:
    """The failed config check: the one line that says what is wrong with the file."""
    line = str(exc).splitlines()[0] if str(exc) else exc.kind
    return {
        "ok": False,
        "path": path,
        "message": f"{exc.kind}: {line}",
        "error": {"kind": exc.kind, "message": line},
    }


def run_fleet_preflight(
    config: FleetConfig,
    run: RunSettings,
    only: Sequence[str] = (),
    *,
    dbt_transport: httpx.BaseTransport | None = None,
    feed_transport: httpx.BaseTransport | None = None,
) -> FleetPreflight:
    """Every source once, then every selected target's checks; never writes, never raises
    AllowlistSyncError (each lands in its source's or its target's report)."""
    targets = select_targets(config, only)
    result = FleetPreflight(config=config_passed(config))
    with run_deadline(run.run_timeout):
        loaded = load_sources(config, targets, run, transport=feed_transport)
        result.sources = {
            name: source_report(name, spec.type, loaded.get(name), targets)
            for name, spec in config.sources.items()
        }
        workers = max(1, min(config.concurrency, len(targets)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
            # A copy of this context per target: the run deadline, and its own log fields.
            futures = [
                pool.submit(
                    contextvars.copy_context().run,
                    check_target_apart,
                    config,
                    target,
                    run,
                    loaded,
                    dbt_transport,
                )
                for target in targets
            ]
            result.targets = [future.result() for future in futures]
    log.info("check_finished", ok=not result.failed, failed=result.failed)
    return result


def source_report(
    name: str, type_: str, loaded: Ranges | AllowlistSyncError | None, targets: Sequence[TargetSpec]
) -> dict[str, Any]:
    """One source as the report lists it: loaded, failed, or skipped (no selected target)."""
    used_by = [t.name for t in targets if name in t.sources]
    if loaded is None:
        reason = "no selected target uses it"
        return {"ok": None, "type": type_, "used_by": used_by, **skipped(reason)}
    if isinstance(loaded, AllowlistSyncError):
        error = {"kind": loaded.kind, "message": str(loaded)}
        return {
            "ok": False,
            "type": type_,
            "used_by": used_by,
            "message": f"{loaded.kind}: {loaded}",
            "error": error,
        }
    published = len(loaded.all_prefixes())
    labels = ", ".join(f"{label} {len(p)}" for label, p in loaded.prefixes.items())
    prefixes = counted(published, "published prefix", "published prefixes")
    message = f"{describe_source(loaded.source)}: {prefixes} ({labels})"
    if loaded.warnings:
        message += f" (warning: {'; '.join(loaded.warnings)})"
    return {
        "ok": True,
        "type": type_,
        "used_by": used_by,
        "source": loaded.source.to_json(),
        "file_date": loaded.source.file_date,
        "change_number": loaded.source.change_number,
        "prefixes": {label: len(p) for label, p in loaded.prefixes.items()},
        "published": published,
        "warnings": list(loaded.warnings),
        "message": message,
    }


#: The order a target's checks run in: an unexpected error is blamed on the first not done.
RUN_ORDER = ("config", "sources", "api", "rules", "enforcement", "caller")


def check_target_apart(
    config: FleetConfig,
    target: TargetSpec,
    run: RunSettings,
    loaded: Loaded,
    transport: httpx.BaseTransport | None,
) -> TargetCheck:
    """`check_target`, with a bug (any other exception) failing this target alone: the check
    it stopped fails as `internal`, the ones after it are skipped."""
    result = Preflight(names=TARGET_CHECKS)
    try:
        return check_target(config, target, run, loaded, transport, result)
    except Exception as exc:
        log.exception("internal_error", target=target.name)
        error = AllowlistSyncError(f"internal error: {type(exc).__name__}: {exc}")
        error.kind = "internal"
        stopped = next((n for n in RUN_ORDER if n not in result.checks), RUN_ORDER[-1])
        result.fail(stopped, error)
        for name in RUN_ORDER:
            result.checks.setdefault(name, skipped("an internal error stopped this target"))
        return TargetCheck(target, result)


def check_target(
    config: FleetConfig,
    target: TargetSpec,
    run: RunSettings,
    loaded: Loaded,
    transport: httpx.BaseTransport | None,
    result: Preflight,
) -> TargetCheck:
    """One target's checks into `result`: its token read, its sources' desired set, its
    account read."""
    structlog.contextvars.bind_contextvars(target=target.name)
    result.checks["write"] = {"ok": None, "permission": "unknown", "message": WRITE_UNKNOWN}
    settings: Settings | None = None
    try:
        settings = target_settings(config, target, run)
    except AllowlistSyncError as exc:
        result.fail("config", exc)
    else:
        origin = settings.token_source
        result.checks["config"] = {"ok": True, "message": f"valid (token from {origin})"}
    desired = check_sources(target, loaded, settings, result)
    if settings is None:
        skip_account_checks(result, "the target's configuration failed")
    else:
        check_account(settings, desired, result, transport=transport)
    assert all(name in result.checks for name in ACCOUNT_CHECKS)
    log.info("check_target_finished", ok=not result.failed, failed=result.failed)
    return TargetCheck(target, result)


def check_sources(
    target: TargetSpec, loaded: Loaded, settings: Settings | None, result: Preflight
) -> tuple[Network, ...] | None:
    """The target's sources all loaded, and the desired set made of them; None when unknown."""
    details: dict[str, Any] = {"sources": list(target.sources)}
    failed = [n for n in target.sources if not isinstance(loaded.get(n), Ranges)]
    if failed:
        error = loaded.get(failed[0])
        assert isinstance(error, AllowlistSyncError)
        result.fail("sources", error, **details, failed_sources=failed)
        return None
    ranges = RangeSet(tuple(r for n in target.sources if isinstance(r := loaded[n], Ranges)))
    published = len(ranges.all_prefixes())
    names = ", ".join(target.sources)
    if settings is None:
        result.checks["sources"] = {
            "ok": True,
            **details,
            "published": published,
            "desired": None,
            "message": f"{names}: {counted(published, 'published prefix', 'published prefixes')}"
            " (the desired set is not computed: the target's configuration failed)",
        }
        return None
    desired = desired_set(ranges, settings)
    result.checks["sources"] = {
        "ok": True,
        **details,
        "published": published,
        "desired": len(desired),
        "message": f"{names}: {counted(published, 'published prefix', 'published prefixes')}, "
        f"{counted(len(desired), 'desired CIDR')}",
    }
    return desired
