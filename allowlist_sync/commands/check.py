"""`allowlist-sync check`: a preflight that answers, before anything is written, whether a sync
with this configuration can succeed.

It prints the verdict first, then one line per check (`commands/preflight.py`: configuration,
reading the account, write permission, the account's rules, enforcement, whether this job is let
in without the owned rule, the feed), the account's rules, the effective settings (secrets
redacted) and the schedule's next run. Exit 0 only when no check failed, 77 when the platform
refused the token, 78 for an invalid configuration, 1 otherwise. It sends only GET requests.

With a config file (`run_fleet_check`, checks in `commands/preflight_fleet.py`): the verdict,
the file's check, a line per source, then a block per target with the same checks (`sources`
for `feed`) and rules; the exit code is the most severe target's, in `EXIT_SEVERITY` order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from pydantic import SecretStr

from allowlist_sync.commands.preflight import CHECKS, FeedSource, run_preflight
from allowlist_sync.config import RunSettings, Settings, env_name
from allowlist_sync.logs import REDACTED, display_url, get_logger, redact, register_secret
from allowlist_sync.serve.crontab import cron_trigger

log = get_logger(__name__)

#: How each check is named in the text report.
LABELS = {
    "config": "configuration",
    "api": "dbt API",
    "write": "write permission",
    "rules": "rules",
    "enforcement": "enforcement",
    "caller": "this job's address",
    "feed": "feed",
    "sources": "sources",
}
#: The text report lists this many rules; `--output json` lists every one.
SHOWN_RULES = 40


def effective_settings(settings: RunSettings) -> dict[str, Any]:
    """Every setting under the environment variable that sets it; secrets as [REDACTED]."""
    result: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = REDACTED
        elif isinstance(value, str) and name.endswith(("_url", "_base")):
            value = display_url(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list):
            value = list(value)
        result[env_name(name)] = value
    return result


def next_run(settings: RunSettings, now: datetime | None = None) -> datetime | None:
    """When `serve` would run next (without jitter)."""
    trigger = cron_trigger(settings.schedule, settings.timezone)
    when: datetime | None = trigger.get_next_fire_time(None, now or datetime.now(UTC))
    return when


def run_check(
    settings: Settings, out: TextIO, *, output: str = "text", source: FeedSource | None = None
) -> int:
    """Run every check, print the report; returns the exit code."""
    if settings.webhook_url is not None:
        register_secret(settings.webhook_url.get_secret_value())
    when = next_run(settings)
    preflight = run_preflight(settings, source)
    failed = preflight.failed
    report: dict[str, Any] = {
        "ok": not failed,
        "verdict": "failed" if failed else "passed",
        "failed": failed,
        "checks": list(CHECKS),
        **preflight.checks,
        "account_id": settings.account_id,
        "settings": effective_settings(settings),
        "schedule": schedule_json(settings, when),
    }
    if output == "json":
        out.write(redact(orjson.dumps(report).decode()) + "\n")
    else:
        out.write(redact(render_check_text(report)))
    return int(preflight.exit_code)


def schedule_json(settings: RunSettings, when: datetime | None) -> dict[str, Any]:
    """The schedule `serve` would follow, and its next run."""
    return {
        "expression": settings.schedule,
        "timezone": settings.timezone,
        "next_run": when.isoformat() if when else None,
    }


def printable(text: object) -> str:
    """`text` on one line: control characters (newlines, terminal escapes) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def render_check_text(report: dict[str, Any]) -> str:
    """The check report for people: verdict, one line per check, rules, settings, schedule."""
    if report["ok"]:
        verdict = "Preflight: PASSED: a sync with this configuration can run (whether the token "
        verdict += "may write is known only when it writes)"
    else:
        verdict = f"Preflight: FAILED ({', '.join(report['failed'])}): a sync with this "
        verdict += "configuration would not succeed"
    lines = [verdict, ""]
    lines += render_checks(report)
    lines += render_rules(report)
    lines += render_settings(report)
    return "\n".join(lines) + "\n"


MARKS = {True: "ok", False: "FAILED", None: "?"}


def check_line(label: str, check: dict[str, Any], indent: str = "  ") -> str:
    """One check on one line: its mark, its label, its message."""
    return f"{indent}{MARKS[check['ok']]:<7}{label}: {printable(check['message'])}"


def render_checks(report: dict[str, Any], indent: str = "  ") -> list[str]:
    """A line per check, in report order."""
    return [check_line(LABELS[name], report[name], indent) for name in report["checks"]]


def render_settings(report: dict[str, Any]) -> list[str]:
    """The effective settings by variable name, and the schedule's next run."""
    lines = ["", "Settings:"]
    width = max((len(k) for k in report["settings"]), default=0)
    for key, value in report["settings"].items():
        shown = ",".join(value) if isinstance(value, list) else value
        lines.append(f"  {key.ljust(width)}  {'' if shown is None else printable(shown)}")
    schedule = report["schedule"]
    lines += [
        "",
        f"Schedule: {schedule['expression']!r} ({schedule['timezone']}), next run "
        f"{schedule['next_run']}",
    ]
    return lines


def render_rules(report: dict[str, Any], indent: str = "") -> list[str]:
    """The account's rules as a table, the owned one and an adoption candidate marked."""
    listed = report["rules"].get("rules")
    if listed is None:
        return []
    lines = ["", f"{indent}Rules in account {report['account_id']} ({len(listed)}):"]
    if not listed:
        return [*lines, f"{indent}  (none)"]
    lines.append(f"{indent}  {'id':>10}  {'type':<5}  {'CIDRs':>6}  name")
    candidate = report["rules"].get("adoption_candidate")
    for rule in listed[:SHOWN_RULES]:
        mark = ""
        if rule["owned"]:
            mark = "  (owned)"
        elif rule["adoption_candidate"] and candidate is not None:
            mark = (
                f"  <- adoption candidate: holds {candidate['holds']} of the "
                f"{candidate['desired']} desired CIDRs"
            )
        lines.append(
            f"{indent}  {rule['id']:>10}  {printable(rule['type']):<5}  {rule['cidrs']:>6}  "
            f"{printable(repr(rule['name']))}{mark}"
        )
    if len(listed) > SHOWN_RULES:
        more = len(listed) - SHOWN_RULES
        lines.append(f"{indent}  ... and {more} more (--output json lists every rule)")
    return lines
