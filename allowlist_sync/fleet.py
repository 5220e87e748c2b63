"""A run over a config file's sources and targets: each source once, each target on its own.

    sources (each fetched and validated once) -> targets (concurrently, each the whole pipeline
    of `sync.sync_target`) -> FleetOutcome (one Outcome per target, the most severe decides)

A target never waits for or depends on another: a target whose source failed, whose token is
unreadable or refused, or whose plan a guard refused ends with that outcome while the others
run to the end. The run lock and the run deadline cover the whole fleet. Each target's requests
are exactly those of a one-target run (one client each; nothing shared but the loaded sources).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from typing import BinaryIO

import httpx
import structlog

from allowlist_sync.config import RunSettings
from allowlist_sync.config.file import FleetConfig, TargetSpec, target_settings
from allowlist_sync.dbt.models import Rule
from allowlist_sync.errors import AllowlistSyncError, UnsafePlanError
from allowlist_sync.guards import Limits
from allowlist_sync.logs import get_logger
from allowlist_sync.net.deadline import run_deadline
from allowlist_sync.outcome import FleetOutcome, Outcome
from allowlist_sync.plan import Plan
from allowlist_sync.runlock import run_lock
from allowlist_sync.sources.load import load_ranges
from allowlist_sync.sources.ranges import Ranges, RangeSet
from allowlist_sync.sync import (
    RunOptions,
    finish,
    lock_dir,
    new_outcome,
    recorded,
    sync_target,
)

__all__ = ["TargetPlan", "load_sources", "run_fleet", "select_targets"]

log = get_logger(__name__)

#: Called with each target's plan (the target's name first), from that target's thread.
TargetPlan = Callable[[str, Plan, RangeSet, Rule | None], None]
Loaded = dict[str, Ranges | AllowlistSyncError]


def run_fleet(
    config: FleetConfig,
    run: RunSettings,
    options: RunOptions | None = None,
    *,
    only: Sequence[str] = (),
    on_plan: TargetPlan | None = None,
    dbt_transport: httpx.BaseTransport | None = None,
    feed_transport: httpx.BaseTransport | None = None,
    stdin: BinaryIO | None = None,
) -> FleetOutcome:
    """Sync every target of `config` (or those named in `only`); errors land in the outcomes."""
    options = options or RunOptions()
    targets = select_targets(config, only)
    fleet = FleetOutcome(targets=[], dry_run=options.dry_run)
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            stack.enter_context(run_deadline(run.run_timeout))
            stack.enter_context(run_lock(lock_dir(run)))
            loaded = load_sources(config, targets, run, transport=feed_transport, stdin=stdin)
            fleet.targets = sync_targets(
                config, targets, run, loaded, options, on_plan, dbt_transport
            )
    except AllowlistSyncError as exc:  # the run as a whole: its lock or its deadline
        fleet.error = exc
        log.error("run_failed", kind=exc.kind, error=str(exc))
    fleet.duration_seconds = time.monotonic() - started
    log.info(
        "fleet_finished",
        status=fleet.status,
        targets=len(fleet.targets),
        **{k: v for k, v in fleet.summary().items() if v},
        duration_seconds=round(fleet.duration_seconds, 3),
    )
    return fleet


def select_targets(config: FleetConfig, only: Sequence[str]) -> tuple[TargetSpec, ...]:
    """The targets named in `only` (all when empty), in the file's order; ValueError naming any
    name the file does not define."""
    if not only:
        return config.targets
    names = {t.name for t in config.targets}
    unknown = [name for name in only if name not in names]
    if unknown:
        raise ValueError(
            f"no target {', '.join(map(repr, unknown))} in {config.path} "
            f"(targets: {', '.join(t.name for t in config.targets)})"
        )
    return tuple(t for t in config.targets if t.name in set(only))


def load_sources(
    config: FleetConfig,
    targets: Sequence[TargetSpec],
    run: RunSettings,
    *,
    transport: httpx.BaseTransport | None = None,
    stdin: BinaryIO | None = None,
) -> Loaded:
    """Each source the targets use, fetched and validated once, in the file's order; a source
    that fails is kept as its error (naming the source) for the targets that use it."""
    used = {name for target in targets for name in target.sources}
    loaded: Loaded = {}
    for name, spec in config.sources.items():
        if name not in used:
            continue
        try:
            loaded[name] = load_ranges(spec, scope_limits(run), transport=transport, stdin=stdin)
        except AllowlistSyncError as exc:
            exc.args = (f"source {name}: {exc}", *exc.args[1:])
            loaded[name] = exc
            log.error("source_failed", source=name, kind=exc.kind, error=str(exc))
    return loaded


def scope_limits(run: RunSettings) -> Limits:
    """The feed scope limits every source is held to when it is loaded."""
    return Limits(
        min_prefix_length_ipv4=run.min_prefix_length_ipv4,
        min_prefix_length_ipv6=run.min_prefix_length_ipv6,
    )


def sync_targets(
    config: FleetConfig,
    targets: Sequence[TargetSpec],
    run: RunSettings,
    loaded: Loaded,
    options: RunOptions,
    on_plan: TargetPlan | None,
    transport: httpx.BaseTransport | None,
) -> list[Outcome]:
    """Every target's Outcome, in the given order, at most `config.concurrency` at a time."""
    workers = max(1, min(config.concurrency, len(targets)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target")
    stop = threading.Event()
    try:
        # Each target runs in a copy of this context: the run deadline, and its own log fields.
        futures = [
            pool.submit(
                contextvars.copy_context().run,
                sync_one,
                config,
                target,
                run,
                loaded,
                options,
                on_plan,
                transport,
                stop,
            )
            for target in targets
        ]
        return [future.result() for future in futures]
    except BaseException:
        # Ctrl-C: the targets under way finish (a write is never left unverified); the others
        # never start.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def sync_one(
    config: FleetConfig,
    target: TargetSpec,
    run: RunSettings,
    loaded: Loaded,
    options: RunOptions,
    on_plan: TargetPlan | None,
    transport: httpx.BaseTransport | None,
    stop: threading.Event,
) -> Outcome:
    """One target's whole pipeline; every error ends in its Outcome, never in another's."""
    try:
        return _sync_one(config, target, run, loaded, options, on_plan, transport, stop)
    except BaseException:  # Ctrl-C: no other target starts
        stop.set()
        raise


def _sync_one(
    config: FleetConfig,
    target: TargetSpec,
    run: RunSettings,
    loaded: Loaded,
    options: RunOptions,
    on_plan: TargetPlan | None,
    transport: httpx.BaseTransport | None,
    stop: threading.Event,
) -> Outcome:
    structlog.contextvars.bind_contextvars(target=target.name)
    started = time.monotonic()
    outcome = new_outcome(options, target.name, target.rule_name, target.account_id)
    if stop.is_set():  # Ctrl-C while this target waited for a worker: it never starts
        raise KeyboardInterrupt
    failed = [loaded[name] for name in target.sources if not isinstance(loaded[name], Ranges)]
    if failed:
        error = failed[0]
        assert isinstance(error, AllowlistSyncError)
        outcome.status = "refused" if isinstance(error, UnsafePlanError) else "failed"
        outcome.error = error
        log.error("target_skipped", reason="source failed", error=str(error))
    else:
        ranges = RangeSet(tuple(r for n in target.sources if isinstance(r := loaded[n], Ranges)))
        own = replace(options, on_plan=_for_target(on_plan, target.name))
        try:
            with recorded(outcome):
                settings = target_settings(config, target, run)
                sync_target(settings, ranges, own, outcome, transport=transport)
        except Exception as exc:  # a bug in one target must not take the others down
            log.exception("target_crashed", error=f"{type(exc).__name__}: {exc}")
            outcome.status = "failed"
            outcome.error = AllowlistSyncError(f"unexpected error: {type(exc).__name__}: {exc}")
    finish(outcome, started)
    return outcome


def _for_target(
    on_plan: TargetPlan | None, name: str
) -> Callable[[Plan, RangeSet, Rule | None], None] | None:
    if on_plan is None:
        return None

    def show(plan: Plan, ranges: RangeSet, current: Rule | None) -> None:
        on_plan(name, plan, ranges, current)

    return show
