"""`sync` over a config file of sources and targets: load it, run the fleet, print and report.

The file comes from `--config FILE`, else ALLOWLIST_SYNC_CONFIG (`cli._config_path`). The
environment then holds only how the process runs (`config.RunSettings`); a target variable set
beside the file is refused (`config.load_run_settings`), so the two never mix silently.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from allowlist_sync.config import RunSettings, load_run_settings
from allowlist_sync.config.file import FleetConfig, TargetSpec, read_config
from allowlist_sync.dbt.models import Rule
from allowlist_sync.errors import ConfigError, ExitCode
from allowlist_sync.fleet import run_fleet, select_targets
from allowlist_sync.logs import configure
from allowlist_sync.outcome import FleetOutcome
from allowlist_sync.plan import Plan
from allowlist_sync.render import render_fleet_json, render_fleet_text, render_plan_text
from allowlist_sync.sources.ranges import RangeSet
from allowlist_sync.sync import RunOptions


def load_fleet(path: str, *, quiet_terminal: bool = True) -> tuple[FleetConfig, RunSettings]:
    """The config file and the process settings, logging configured from them; ConfigError."""
    run = load_run_settings(config_file=path)
    chosen = "log_level" in run.model_fields_set or not quiet_terminal
    configure(level=run.log_level if chosen else None, fmt=run.log_format)
    return read_config(Path(path), run), run


def usage_error(command: str, message: str) -> int:
    """A flag that does not fit the command line: argparse's one-line form, exit 64."""
    print(f"allowlist-sync {command}: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def sync_fleet(args: argparse.Namespace, path: str) -> int:
    """`allowlist-sync sync` with a config file; the exit code of the most severe target."""
    if args.source_file is not None or args.source_url is not None:
        raise ConfigError(
            f"--source-file/--source-url replace the environment's one source; with the config "
            f"file {path}, set `file` or `url` in the [sources.NAME] table instead"
        )
    config, run = load_fleet(path)
    only = tuple(args.target or ())
    try:
        selected = select_targets(config, only)
    except ValueError as exc:
        return usage_error("sync", str(exc))
    plans: dict[str, str] = {}

    def keep_plan(name: str, plan: Plan, ranges: RangeSet, current: Rule | None) -> None:
        text = io.StringIO()
        render_plan_text(plan, ranges, current, text)
        plans[name] = text.getvalue()  # one key per target: no two threads share one

    options = RunOptions(
        dry_run=args.dry_run, force=args.force, allow_lockout_risk=args.allow_lockout_risk
    )
    fleet = run_fleet(
        config, run, options, only=only, on_plan=keep_plan if args.output == "text" else None
    )
    report_fleet(fleet, run, config.targets, selected)
    if args.output == "json":
        render_fleet_json(fleet, sys.stdout)
        args.json_written = True
    else:
        render_fleet_text(fleet, plans, sys.stdout)
    return int(fleet.exit_code(detailed=args.detailed_exitcode))


def report_fleet(
    fleet: FleetOutcome,
    run: RunSettings,
    configured: Sequence[TargetSpec],
    selected: Sequence[TargetSpec],
) -> None:
    """Metrics, notifications and run state of every selected target (each failed, when the
    run failed as a whole), when configured; the textfile keeps every configured target."""
    if not run.reports_anywhere:  # prometheus-client is imported only when it is used
        return
    from allowlist_sync.reporting.report import Reporter, ReportTarget

    known = [ReportTarget(t.name, t.account_id, t.rule_name) for t in configured]
    Reporter(run, targets=known).report_fleet(fleet, ran=[t.name for t in selected])


def serve_fleet(path: str) -> int:
    """`allowlist-sync serve` with a config file: every target at each scheduled run.

    The file is read once, at start: a change takes a restart (as a new Deployment rollout).
    """
    from allowlist_sync.reporting.report import ReportTarget
    from allowlist_sync.serve.scheduler import serve

    config, run = load_fleet(path, quiet_terminal=False)
    targets = [ReportTarget(t.name, t.account_id, t.rule_name) for t in config.targets]
    return serve(run, lambda: run_fleet(config, run), targets=targets)
