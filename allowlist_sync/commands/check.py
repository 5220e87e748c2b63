"""`allowlist-sync check`: is the configuration valid, and can the token read the account's rules?

It prints the effective settings (secrets redacted), the schedule's next run, and the result of
one read of the account's IP restrictions. Exit 0 when both pass, 78 when the configuration is
invalid, 1 when the API read fails. It never writes anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from pydantic import SecretStr

from allowlist_sync.config import Settings, env_name
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.rules import find_owned_rule, rule_set_enabled
from allowlist_sync.errors import AllowlistSyncError, ExitCode
from allowlist_sync.logs import REDACTED, display_url, get_logger, redact, register_secret
from allowlist_sync.serve.crontab import cron_trigger

log = get_logger(__name__)


def effective_settings(settings: Settings) -> dict[str, Any]:
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


def next_run(settings: Settings, now: datetime | None = None) -> datetime | None:
    """When `serve` would run next (without jitter)."""
    trigger = cron_trigger(settings.schedule, settings.timezone)
    when: datetime | None = trigger.get_next_fire_time(None, now or datetime.now(UTC))
    return when


def check_api(settings: Settings) -> dict[str, Any]:
    """One read of the account's rules with the configured token; raises AllowlistSyncError."""
    with DbtClient.connect(settings.dbt_connection(), owned_rule_name=settings.rule_name) as client:
        rules = client.list_rules()
    owned = find_owned_rule(rules, settings.rule_name)
    return {
        "ok": True,
        "rules": len(rules),
        "rule_set_enabled": rule_set_enabled(rules),
        "owned_rule": (
            {"id": owned.id, "name": owned.name, "cidrs": len(owned.active_cidrs)}
            if owned is not None
            else None
        ),
    }


def run_check(settings: Settings, out: TextIO, *, output: str = "text") -> int:
    """Print the effective settings and the API check; returns the exit code."""
    if settings.webhook_url is not None:
        register_secret(settings.webhook_url.get_secret_value())
    when = next_run(settings)
    report: dict[str, Any] = {
        "ok": False,
        "config": {"ok": True},
        "settings": effective_settings(settings),
        "schedule": {
            "expression": settings.schedule,
            "timezone": settings.timezone,
            "next_run": when.isoformat() if when else None,
        },
    }
    code = ExitCode.OK
    try:
        report["api"] = check_api(settings)
        log.info("check_api_ok", rules=report["api"]["rules"])
    except AllowlistSyncError as exc:
        report["api"] = {"ok": False, "error": {"kind": exc.kind, "message": str(exc)}}
        log.error("check_api_failed", kind=exc.kind, error=str(exc))
        code = (
            exc.exit_code if exc.exit_code in (ExitCode.CONFIG, ExitCode.AUTH) else ExitCode.FAILED
        )
    report["ok"] = code == ExitCode.OK
    if output == "json":
        out.write(redact(orjson.dumps(report).decode()) + "\n")
    else:
        out.write(redact(render_check_text(report)))
    return int(code)


def render_check_text(report: dict[str, Any]) -> str:
    """The check report for people."""
    lines = ["Configuration: valid", ""]
    width = max(len(k) for k in report["settings"])
    for key, value in report["settings"].items():
        shown = ",".join(value) if isinstance(value, list) else value
        lines.append(f"  {key.ljust(width)}  {'' if shown is None else shown}")
    schedule = report["schedule"]
    lines += [
        "",
        f"Schedule: {schedule['expression']!r} ({schedule['timezone']}), next run "
        f"{schedule['next_run']}",
    ]
    api = report["api"]
    if api["ok"]:
        owned = api["owned_rule"]
        rule = (
            f"owned rule id {owned['id']} holds {owned['cidrs']} CIDRs"
            if owned
            else "the owned rule does not exist yet (the first sync creates it)"
        )
        enforced = "on" if api["rule_set_enabled"] else "off"
        lines.append(
            f"dbt API: ok, the token can read {api['rules']} IP-restriction rule(s); {rule}; "
            f"enforcement {enforced}."
        )
    else:
        lines.append(f"dbt API: FAILED ({api['error']['kind']}): {api['error']['message']}")
    return "\n".join(lines) + "\n"
