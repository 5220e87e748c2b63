"""Command line: arguments, wiring and exit codes; no business logic.

Heavy modules (httpx, pydantic, the pipeline) are imported inside the commands, so
`allowlist-sync --version` and `--help` start in a few milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from allowlist_sync._version import __version__
from allowlist_sync.commands import checkip_args  # light: argparse only
from allowlist_sync.commands.emulatorcmd import add_emulator_parser, run_emulator
from allowlist_sync.errors import ExitCode  # light: the exception tree only

if TYPE_CHECKING:
    from allowlist_sync.config import Settings
    from allowlist_sync.dbt.models import Rule
    from allowlist_sync.plan import Plan
    from allowlist_sync.sources.ranges import RangeSet


def _add_config_arguments(command: argparse.ArgumentParser, *, targets: bool = True) -> None:
    command.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML file of sources and targets (default: ALLOWLIST_SYNC_CONFIG; "
        "without one, the environment configures one target)",
    )
    if targets:
        command.add_argument(
            "--target",
            metavar="NAME",
            action="append",
            help="only this target of the config file (repeatable)",
        )


def _config_path(args: argparse.Namespace) -> str | None:
    """`--config`, else ALLOWLIST_SYNC_CONFIG; None: the environment configures one target."""
    given: str | None = getattr(args, "config", None)
    path = given or os.environ.get("ALLOWLIST_SYNC_CONFIG") or None
    args.config_path = path
    return path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `allowlist-sync`."""
    parser = _Parser(
        prog="allowlist-sync",
        description="Keep a dbt platform IP allowlist rule equal to Azure's AzureActiveDirectory "
        "service-tag ranges (Entra ID SCIM provisioning).",
        epilog="Exit codes: 0 ok, 1 failed, 2 changes pending (--detailed-exitcode), "
        "3 refused by a guard, 64 bad usage, 77 token refused, 78 bad configuration.",
    )
    parser.add_argument("--version", action="version", version=f"allowlist-sync {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sync = commands.add_parser("sync", help="plan, and unless --dry-run, apply the change once")
    sync.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    sync.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when changes are pending (with --dry-run)",
    )
    sync.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text plan on stdout (default) or one JSON object",
    )
    source = sync.add_mutually_exclusive_group()
    source.add_argument(
        "--source-file", metavar="PATH", help="read the service-tags JSON from PATH ('-' for stdin)"
    )
    source.add_argument("--source-url", metavar="URL", help="download the service-tags JSON")
    sync.add_argument(
        "--force",
        action="store_true",
        help="override the size guards (minimum prefixes, maximum removal)",
    )
    sync.add_argument(
        "--allow-lockout-risk",
        action="store_true",
        help="allow removals even if this job's own address depends on the rule",
    )
    _add_config_arguments(sync)

    add_emulator_parser(commands)

    commands.add_parser(
        "demo", help="the whole job against a built-in emulator and a bundled real feed"
    )

    serve = commands.add_parser(
        "serve",
        help="run on a schedule (ALLOWLIST_SYNC_SCHEDULE) with /livez, /readyz, /status, /metrics",
        description="Run the sync on a cron schedule until SIGTERM or SIGINT (SIGUSR1: run now). "
        "Scheduled by the environment: ALLOWLIST_SYNC_SCHEDULE (default '0 6 * * *', daily), "
        "ALLOWLIST_SYNC_TIMEZONE, ALLOWLIST_SYNC_RUN_ON_START, ALLOWLIST_SYNC_HEALTH_PORT; every "
        "target of --config at each run; see docs/running.md.",
    )
    _add_config_arguments(serve, targets=False)
    check = commands.add_parser(
        "check",
        help="preflight: configuration, token, rules, enforcement, lock-out, feed; writes nothing",
        description="Answer, before anything is written, whether a sync can succeed: the "
        "configuration, the token reading the account (write permission is known only when it "
        "writes), its rules (owned, to adopt), enforcement, whether another rule lets this job "
        "in, the feed; with --config, each source once, then these checks per target. Exit 0 "
        "only when no check fails; 77 token refused, 78 bad configuration, 1 otherwise.",
    )
    check.add_argument(
        "--output", choices=("text", "json"), default="text", help="text (default) or JSON"
    )
    check_source = check.add_mutually_exclusive_group()
    check_source.add_argument(
        "--source-file", metavar="PATH", help="check this service-tags file ('-' for stdin)"
    )
    check_source.add_argument("--source-url", metavar="URL", help="check this download")
    _add_config_arguments(check)
    _add_config_arguments(checkip_args.add_parser(commands))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `allowlist-sync` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    from allowlist_sync.errors import ConfigError, exit_code_for

    if args.command is None:
        build_parser().print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        if args.command == "sync":
            return _sync(args)
        if args.command == "emulator":
            return run_emulator(args)
        if args.command == "demo":
            from allowlist_sync.commands.demo import run_demo

            return run_demo(sys.stdout)
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args)
        if args.command == "check-ip":
            return checkip_args.run(args)
    except KeyboardInterrupt:
        _json_failure(args, "interrupted", "interrupted")
        return ExitCode.INTERRUPTED
    except ConfigError as exc:
        from allowlist_sync import logs

        logs.get_logger(__name__).error("config_invalid", error=str(exc))
        _json_failure(args, exc.kind, str(exc))
        return int(exc.exit_code)
    except Exception as exc:  # a bug: one redacted log event with the traceback, never a dump
        from allowlist_sync import logs

        logs.get_logger(__name__).exception("internal_error", command=args.command)
        _json_failure(args, "internal", f"internal error: {type(exc).__name__}: {exc}")
        return exit_code_for(exc)
    raise AssertionError(args.command)  # pragma: no cover


def _json_failure(args: argparse.Namespace, kind: str, message: str) -> None:
    """`--output json` promises one JSON object on stdout for every exit: print it if not yet."""
    if getattr(args, "output", None) != "json" or getattr(args, "json_written", False):
        return
    from allowlist_sync.logs import redact

    error = {"kind": kind, "message": message.splitlines()[0] if message else kind}
    report: dict[str, object] = {"ok": False, "error": error}
    if args.command == "check":
        if kind == "config":
            report["config"] = {"ok": False, "error": error}
    elif getattr(args, "config_path", None):
        from allowlist_sync.outcome import FleetOutcome

        dry_run = bool(getattr(args, "dry_run", False))
        report = FleetOutcome(targets=[], dry_run=dry_run).to_json()
        report["error"] = error
    else:
        from allowlist_sync.outcome import Outcome

        report = Outcome(status="failed", dry_run=bool(getattr(args, "dry_run", False))).to_json()
        report["error"] = error
    sys.stdout.write(redact(json.dumps(report)) + "\n")
    sys.stdout.flush()
    args.json_written = True


def _configure_logs_from_env() -> None:
    # Before Settings exist (they may be what is broken), log with what the environment says;
    # no level set: warnings on a terminal, info elsewhere (logs.default_level).
    from allowlist_sync import logs

    level = os.environ.get("ALLOWLIST_SYNC_LOG_LEVEL", "").lower()
    fmt = os.environ.get("ALLOWLIST_SYNC_LOG_FORMAT", "auto").lower()
    logs.configure(
        level=level if level in ("debug", "info", "warning", "error") else None,
        fmt=fmt if fmt in ("auto", "json", "console") else "auto",
    )


def _load_settings(*, quiet_terminal: bool = True) -> Settings:
    """Settings from the environment, with logging configured from them; raises ConfigError.

    `quiet_terminal`: unless ALLOWLIST_SYNC_LOG_LEVEL is set, a terminal gets warnings only,
    because the command's own output is the result (`serve`, whose logs are its output, says no).
    """
    _configure_logs_from_env()
    from allowlist_sync import logs
    from allowlist_sync.config import load_settings

    settings = load_settings()
    chosen = "log_level" in settings.model_fields_set or not quiet_terminal
    logs.configure(level=settings.log_level if chosen else None, fmt=settings.log_format)
    return settings


def _sync(args: argparse.Namespace) -> int:
    """`sync`; in text output stdout ends with one status line, whatever ends the run."""
    if args.output != "text":
        return _run_sync(args)
    from allowlist_sync.errors import AllowlistSyncError
    from allowlist_sync.render import write_failed_line

    try:
        return _run_sync(args)
    except KeyboardInterrupt:
        write_failed_line("interrupted", "interrupted", sys.stdout)
        raise
    except AllowlistSyncError as exc:  # a bad setting or flag, before the pipeline ran
        write_failed_line(exc.kind, str(exc), sys.stdout)
        raise
    except Exception as exc:  # a bug: main logs it with its traceback
        write_failed_line("internal", f"internal error: {type(exc).__name__}: {exc}", sys.stdout)
        raise


def _run_sync(args: argparse.Namespace) -> int:
    path = _config_path(args)
    if path is not None:
        from allowlist_sync.commands.fleetrun import sync_fleet

        _configure_logs_from_env()
        return sync_fleet(args, path)
    if args.target:
        print(
            "allowlist-sync sync: error: --target needs a config file (--config)", file=sys.stderr
        )
        return ExitCode.USAGE
    from allowlist_sync.config import check_source_url
    from allowlist_sync.render import (
        render_outcome_json,
        render_outcome_text,
        render_plan_text,
    )
    from allowlist_sync.sync import RunOptions, run_once

    settings = _load_settings()
    if args.source_url is not None:
        check_source_url(args.source_url)

    def show_plan(plan: Plan, ranges: RangeSet, current: Rule | None) -> None:
        render_plan_text(plan, ranges, current, sys.stdout)
        sys.stdout.flush()

    options = RunOptions(
        dry_run=args.dry_run,
        force=args.force,
        allow_lockout_risk=args.allow_lockout_risk,
        source_file=args.source_file,
        source_url=args.source_url,
        on_plan=show_plan if args.output == "text" else None,
    )
    outcome = run_once(settings, options)
    if settings.reports_anywhere:  # prometheus-client is imported only when it is used
        from allowlist_sync.reporting.report import Reporter

        Reporter(settings).report(outcome)
    code = int(outcome.exit_code(detailed=args.detailed_exitcode))
    if args.output == "json":
        render_outcome_json(outcome, sys.stdout)
        args.json_written = True
    else:
        render_outcome_text(outcome, sys.stdout)
    return code


def _serve(args: argparse.Namespace) -> int:
    from allowlist_sync.serve.scheduler import serve

    path = _config_path(args)
    if path is None:
        return serve(_load_settings(quiet_terminal=False))
    from allowlist_sync.commands.fleetrun import serve_fleet

    _configure_logs_from_env()
    return serve_fleet(path)


def _check(args: argparse.Namespace) -> int:
    if _config_path(args) is not None or args.target:  # a config file (--target needs one)
        from allowlist_sync.commands.check_fleet import check_config_file

        _configure_logs_from_env()
        return check_config_file(args, sys.stdout)
    from allowlist_sync.commands.check import run_check
    from allowlist_sync.commands.preflight import FeedSource
    from allowlist_sync.config import check_source_url

    settings = _load_settings()
    if args.source_url is not None:
        check_source_url(args.source_url)
    source = FeedSource(file=args.source_file, url=args.source_url)
    code = run_check(settings, sys.stdout, output=args.output, source=source)
    args.json_written = True
    return code
