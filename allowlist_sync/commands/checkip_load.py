"""Where `check-ip` gets its sources and targets: a config file, or the environment alone.

With a config file (`--config` / ALLOWLIST_SYNC_CONFIG): its sources that the selected targets
use, each loaded once (`fleet.load_sources`), and the selected targets (`--target`, all by
default), read at most `concurrency` at a time. Without one: the environment's one target and
its Azure source (`--source-file` / `--source-url` replace it, as for `sync`). A source that
fails is kept as its error and the others still answer; a target that fails is read as its
error. The run deadline (ALLOWLIST_SYNC_RUN_TIMEOUT) bounds the whole command.
"""

from __future__ import annotations

import argparse
import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx

from allowlist_sync.cli import _config_path, _load_settings
from allowlist_sync.commands.checkip import Account, TargetRef, read_account
from allowlist_sync.commands.fleetrun import load_fleet, usage_error
from allowlist_sync.config import Settings, check_source_url
from allowlist_sync.config.file import target_settings
from allowlist_sync.errors import AllowlistSyncError, ConfigError
from allowlist_sync.fleet import load_sources, select_targets
from allowlist_sync.logs import get_logger
from allowlist_sync.net.deadline import run_deadline
from allowlist_sync.outcome import DEFAULT_TARGET
from allowlist_sync.sources.load import load_ranges
from allowlist_sync.sources.ranges import Ranges
from allowlist_sync.sync import ENV_SOURCE, RunOptions, azure_source, limits

log = get_logger(__name__)

Loaded = dict[str, Ranges | AllowlistSyncError]
Gathered = tuple[Loaded, list[Account]]


def gather(
    args: argparse.Namespace,
    *,
    dbt_transport: httpx.BaseTransport | None = None,
    feed_transport: httpx.BaseTransport | None = None,
) -> Gathered | int:
    """The loaded sources and the accounts read; an exit code for a flag that does not fit."""
    path = _config_path(args)
    if path is None:
        if args.target:
            return usage_error("check-ip", "--target needs a config file (--config)")
        return from_environment(args, dbt_transport, feed_transport)
    if args.source_file is not None or args.source_url is not None:
        raise ConfigError(
            f"--source-file/--source-url replace the environment's one source; with the config "
            f"file {path}, set `file` or `url` in the [sources.NAME] table instead"
        )
    config, run = load_fleet(path)
    try:
        targets = select_targets(config, tuple(args.target or ()))
    except ValueError as exc:
        return usage_error("check-ip", str(exc))
    with run_deadline(run.run_timeout):
        loaded = load_sources(config, targets, run, transport=feed_transport)
        jobs = [
            (
                TargetRef(t.name, t.account_id, t.rule_name, t.sources),
                partial(target_settings, config, t, run),
            )
            for t in targets
        ]
        return loaded, read_accounts(jobs, config.concurrency, dbt_transport)


def from_environment(
    args: argparse.Namespace,
    dbt_transport: httpx.BaseTransport | None,
    feed_transport: httpx.BaseTransport | None,
) -> Gathered:
    """The environment's one target and its Azure source (or the file / URL flag's)."""
    settings = _load_settings()
    if args.source_url is not None:
        check_source_url(args.source_url)
    spec = azure_source(
        settings, RunOptions(source_file=args.source_file, source_url=args.source_url)
    )
    with run_deadline(settings.run_timeout):
        loaded: Loaded = {}
        try:
            loaded[ENV_SOURCE] = load_ranges(spec, limits(settings), transport=feed_transport)
        except AllowlistSyncError as exc:
            exc.args = (f"source {ENV_SOURCE}: {exc}", *exc.args[1:])
            loaded[ENV_SOURCE] = exc
            log.error("source_failed", source=ENV_SOURCE, kind=exc.kind, error=str(exc))
        ref = TargetRef(DEFAULT_TARGET, settings.account_id, settings.rule_name, (ENV_SOURCE,))
        return loaded, [read_account(ref, lambda: settings, dbt_transport)]


def read_accounts(
    jobs: Sequence[tuple[TargetRef, Callable[[], Settings]]],
    concurrency: int,
    transport: httpx.BaseTransport | None,
) -> list[Account]:
    """Every target's account, in the given order, at most `concurrency` read at a time."""
    workers = max(1, min(concurrency, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target") as pool:
        # Each read runs in a copy of this context: the run deadline, and its own log fields.
        futures = [
            pool.submit(contextvars.copy_context().run, read_account, ref, settings, transport)
            for ref, settings in jobs
        ]
        return [future.result() for future in futures]
