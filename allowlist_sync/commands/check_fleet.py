"""`allowlist-sync check --config FILE`: the preflight of a config file, printed.

    Preflight: PASSED | FAILED (TARGET: CHECK, ...)      the verdict first
      ok     configuration: config file F: valid, ...    the file (refused: this line, exit 78)
    Sources:                                             a line per source, loaded once
    Target NAME (account, host, rule): PASSED | FAILED   a block per target: its checks, its rules
    Settings: / Schedule:                                the process settings, secrets redacted

The JSON form is one object: `{ok, verdict, failed, config, sources: {NAME: ...},
targets: [{target, ...the checks of a one-target check...}], settings, schedule}`; a refused
file still prints that object, with `sources` and `targets` empty. The exit code is the most
severe target's in `outcome.EXIT_SEVERITY` order (78 for a refused file); only GETs are sent.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TextIO

import httpx
import orjson

from allowlist_sync.commands.check import (
    LABELS,
    check_line,
    effective_settings,
    next_run,
    printable,
    render_checks,
    render_rules,
    render_settings,
    schedule_json,
)
from allowlist_sync.commands.fleetrun import load_fleet, usage_error
from allowlist_sync.commands.preflight import FeedSource
from allowlist_sync.commands.preflight_fleet import (
    FleetPreflight,
    config_failed,
    config_passed,
    run_fleet_preflight,
)
from allowlist_sync.config import RunSettings
from allowlist_sync.errors import ConfigError
from allowlist_sync.fleet import select_targets
from allowlist_sync.logs import get_logger, redact

log = get_logger(__name__)


def check_config_file(args: argparse.Namespace, out: TextIO) -> int:
    """`allowlist-sync check` with `--config` / ALLOWLIST_SYNC_CONFIG (`args.config_path`);
    `--target` without a config file is a usage error (64)."""
    if args.config_path is None:
        return usage_error("check", "--target needs a config file (--config)")
    code = run_fleet_check(
        args.config_path,
        out,
        output=args.output,
        only=tuple(args.target or ()),
        source=FeedSource(file=args.source_file, url=args.source_url),
    )
    args.json_written = True  # the report is printed whatever the exit code
    return code


def run_fleet_check(
    path: str,
    out: TextIO,
    *,
    output: str = "text",
    only: Sequence[str] = (),
    source: FeedSource | None = None,
    dbt_transport: httpx.BaseTransport | None = None,
    feed_transport: httpx.BaseTransport | None = None,
) -> int:
    """Check every (selected) target of the config file at `path`, print the report; returns
    the exit code."""
    run: RunSettings | None = None
    try:
        if source is not None and (source.file is not None or source.url is not None):
            raise ConfigError(
                f"--source-file/--source-url replace the environment's one source; with the "
                f"config file {path}, set `file` or `url` in the [sources.NAME] table instead"
            )
        config, run = load_fleet(path)
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        preflight = FleetPreflight(config=config_failed(path, exc))
        write(fleet_report(preflight, run), out, output)
        return int(preflight.exit_code)
    try:
        select_targets(config, only)
    except ValueError as exc:
        code = usage_error("check", str(exc))
        report = fleet_report(FleetPreflight(config=config_passed(config)), run)
        report.update(ok=False, verdict="failed", error={"kind": "usage", "message": str(exc)})
        if output == "json":  # text: the one line on stderr is the answer
            write(report, out, output)
        return code
    preflight = run_fleet_preflight(
        config, run, only, dbt_transport=dbt_transport, feed_transport=feed_transport
    )
    write(fleet_report(preflight, run), out, output)
    return int(preflight.exit_code)


def fleet_report(preflight: FleetPreflight, run: RunSettings | None) -> dict[str, Any]:
    """The report's object: verdict, config, sources, targets, settings and schedule."""
    failed = preflight.failed
    return {
        "ok": not failed,
        "verdict": "failed" if failed else "passed",
        "failed": failed,
        "config": preflight.config,
        "sources": preflight.sources,
        "targets": [t.to_json() for t in preflight.targets],
        "settings": effective_settings(run) if run is not None else {},
        "schedule": schedule_json(run, next_run(run)) if run is not None else None,
    }


def write(report: dict[str, Any], out: TextIO, output: str) -> None:
    """The report as one JSON line or as text, secrets redacted."""
    if output == "json":
        out.write(redact(orjson.dumps(report).decode()) + "\n")
    else:
        out.write(redact(render_fleet_text(report)))


def render_fleet_text(report: dict[str, Any]) -> str:
    """The report for people: verdict, the file, a line per source, a block per target."""
    if report["ok"]:
        verdict = "Preflight: PASSED: a sync with this config file can run for every target "
        verdict += "(whether a token may write is known only when it writes)"
    else:
        verdict = f"Preflight: FAILED ({', '.join(report['failed'])}): a sync with this "
        verdict += "config file would not succeed"
    lines = [verdict, "", check_line(LABELS["config"], report["config"])]
    if report["config"]["ok"] is False:  # nothing else was checked
        return "\n".join(lines) + "\n"
    lines += ["", "Sources:"]
    for name, source in report["sources"].items():
        lines.append(check_line(f"{printable(name)} ({source['type']})", source))
    for item in report["targets"]:
        lines += ["", *render_target(item)]
    lines += render_settings(report)
    return "\n".join(lines) + "\n"


def render_target(item: dict[str, Any]) -> list[str]:
    """One target's block: a heading with its verdict, its checks, its rules."""
    verdict = "PASSED" if item["ok"] else f"FAILED ({', '.join(item['failed'])})"
    heading = (
        f"Target {printable(item['target'])} (account {item['account_id']} on "
        f"{printable(item['host_url'])}, rule {printable(repr(item['rule_name']))}): {verdict}"
    )
    return [heading, *render_checks(item), *render_rules(item, indent="  ")]


__all__ = ["check_config_file", "fleet_report", "render_fleet_text", "run_fleet_check"]
