"""The checks of `allowlist-sync check`: everything a sync needs, asked without writing.

    config       the settings loaded (else the CLI stops with exit 78 before any check)
    api          the token can read the account's rules (one listing)
    write        unknown: the dbt API has no dry-run write, so only a write proves permission
    rules        the owned rule is unambiguous; no other allow rule should be adopted instead;
                 no deny rule holds a published range
    enforcement  whether the account enforces IP restrictions now
    caller       whether a rule other than the owned one lets this job in (the platform's
                 validate answer, the one fact the lock-out guard needs)
    feed         discovery (or the configured source) runs now, without applying anything

Each check is a dict with `ok` (True, False, or None when it was skipped or cannot be known)
and a one-line `message`; the report's verdict is that no check is False. Checks that need
the API are skipped when its read failed; the feed is checked either way, so one run names
every problem at once. Only GET requests are sent.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import httpx

from allowlist_sync.cidrs import Network
from allowlist_sync.config import Settings
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Rule, RuleType
from allowlist_sync.dbt.rules import deny_conflicts, find_owned_rule, rule_set_enabled
from allowlist_sync.errors import AllowlistSyncError, ApiResponseError, ExitCode
from allowlist_sync.guards import Overlap, adoption_candidates
from allowlist_sync.logs import display_url, get_logger
from allowlist_sync.net.deadline import run_deadline
from allowlist_sync.render import describe_source
from allowlist_sync.sources.load import load_ranges
from allowlist_sync.sources.ranges import Ranges, RangeSet
from allowlist_sync.sync import RunOptions, azure_source, desired_set, limits

log = get_logger(__name__)

#: The checks in the order they are reported.
CHECKS = ("config", "api", "write", "rules", "enforcement", "caller", "feed")
#: The checks that read the account (skipped together when it cannot be read).
ACCOUNT_CHECKS = ("api", "rules", "enforcement", "caller")
WRITE_UNKNOWN = (
    "unknown (only a write proves it: the dbt API has no dry-run write; a token without write "
    "permission fails `sync` with a 403, exit 77, nothing written)"
)


@dataclass
class Preflight:
    """The checks' results, in report order, and the exit code they add up to."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[AllowlistSyncError] = field(default_factory=list)
    #: The checks' names in report order (a config file's target has `sources` for `feed`).
    names: tuple[str, ...] = CHECKS

    @property
    def failed(self) -> list[str]:
        return [name for name in self.names if self.checks.get(name, {}).get("ok") is False]

    @property
    def exit_code(self) -> ExitCode:
        """0 when nothing failed; 77 or 78 when the first error says so; else 1."""
        if not self.failed:
            return ExitCode.OK
        for exc in self.errors:
            if exc.exit_code in (ExitCode.AUTH, ExitCode.CONFIG):
                return exc.exit_code
        return ExitCode.FAILED

    def fail(self, name: str, exc: AllowlistSyncError, **details: Any) -> None:
        """Record check `name` as failed by `exc`."""
        self.errors.append(exc)
        error = {"kind": exc.kind, "message": str(exc)}
        self.checks[name] = {
            "ok": False,
            **details,
            "message": f"{exc.kind}: {exc}",
            "error": error,
        }
        log.error("check_failed", check=name, kind=exc.kind, error=str(exc))


def skipped(reason: str) -> dict[str, Any]:
    """A check that could not run because an earlier one failed."""
    return {"ok": None, "skipped": reason, "message": f"skipped ({reason})"}


@dataclass(frozen=True)
class FeedSource:
    """Where `check` reads the feed: `--source-file` / `--source-url` as `sync` takes them."""

    file: str | None = None
    url: str | None = None


def run_preflight(settings: Settings, source: FeedSource | None = None) -> Preflight:
    """Every check against the configured account and source; never writes, never raises
    AllowlistSyncError (each becomes its check's failure)."""
    source = source or FeedSource()
    result = Preflight()
    result.checks["config"] = {"ok": True, "message": "valid"}
    result.checks["write"] = {"ok": None, "permission": "unknown", "message": WRITE_UNKNOWN}
    with run_deadline(settings.run_timeout):
        desired = check_feed(settings, source, result)
        check_account(settings, desired, result)
    log.info("check_finished", ok=not result.failed, failed=result.failed)
    return result


def check_account(
    settings: Settings,
    desired: tuple[Network, ...] | None,
    result: Preflight,
    *,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """The checks that read the account (api, rules, enforcement, caller) against `desired`
    (None: unknown, the source failed); a check that cannot run is recorded as skipped."""
    try:
        with DbtClient.connect(
            settings.dbt_connection(), owned_rule_name=settings.rule_name, transport=transport
        ) as client:
            rules = check_api(client, settings, result)
            if rules is not None:
                owned_id = check_rules(rules, desired, settings, result)
                check_caller(client, rules, owned_id, result)
    except AllowlistSyncError as exc:  # the client's own setup (a token it cannot send)
        result.fail("api", exc)
    skip_account_checks(result, "the dbt API could not be read")


def skip_account_checks(result: Preflight, reason: str) -> None:
    """Mark each account check that has no result yet as skipped for `reason`."""
    for name in ACCOUNT_CHECKS:
        result.checks.setdefault(name, skipped(reason))


def check_feed(
    settings: Settings, source: FeedSource, result: Preflight
) -> tuple[Network, ...] | None:
    """Fetch and validate the feed as `sync` would; the desired set, or None when it failed."""
    # As in sync: a flag wins over ALLOWLIST_SYNC_SOURCE_FILE.
    spec = azure_source(settings, RunOptions(source_file=source.file, source_url=source.url))
    try:
        feed = load_ranges(spec, limits(settings))
        desired = desired_set(RangeSet((feed,)), settings)
    except AllowlistSyncError as exc:
        result.fail("feed", exc, looked_in=feed_locations(settings, source))
        failed = result.checks["feed"]
        failed["message"] += f" (looked in: {failed['looked_in']})"
        return None
    result.checks["feed"] = feed_report(feed, desired)
    return desired


def feed_locations(settings: Settings, source: FeedSource) -> str:
    """Where the feed is looked for, for a person opening egress or fixing a setting."""
    if source.file is not None:
        return f"--source-file {source.file}"
    if source.url is not None:
        return f"--source-url {display_url(source.url)}"
    if settings.source_file is not None:
        return f"ALLOWLIST_SYNC_SOURCE_FILE {settings.source_file}"
    if settings.source_url is not None:
        return f"ALLOWLIST_SYNC_SOURCE_URL {display_url(settings.source_url)}"
    details = settings.azure_details_url
    base = settings.azure_download_base
    return (
        f"discovery for cloud {settings.azure_cloud}: details page "
        f"{display_url(details) if details else 'on www.microsoft.com'}, then dated files under "
        f"{display_url(base) if base else 'download.microsoft.com'}, then the cache"
    )


def feed_report(feed: Ranges, desired: tuple[Network, ...]) -> dict[str, Any]:
    """The passed feed check: where the file came from, its date and what it yields."""
    published = len(feed.all_prefixes())
    message = (
        f"{describe_source(feed.source)}: {published} published prefixes, "
        f"{len(desired)} desired CIDRs"
    )
    if feed.warnings:
        message += f" (warning: {'; '.join(feed.warnings)})"
    return {
        "ok": True,
        "source": feed.source.to_json(),
        "file_date": feed.source.file_date,
        "change_number": feed.source.change_number,
        "prefixes": published,
        "desired": len(desired),
        "warnings": list(feed.warnings),
        "message": message,
    }


def check_api(client: DbtClient, settings: Settings, result: Preflight) -> list[Rule] | None:
    """List the rules: the read check, and enforcement from the same answer."""
    try:
        rules = [r for r in client.list_rules() if r.is_active]
        enforced = rule_set_enabled(rules)
    except AllowlistSyncError as exc:
        result.fail("api", exc)
        return None
    try:
        owned = find_owned_rule(rules, settings.rule_name)
    except AllowlistSyncError:
        owned = None  # the rules check reports it
    result.checks["api"] = {
        "ok": True,
        "rules": len(rules),
        "rule_set_enabled": enforced,
        "owned_rule": (
            {"id": owned.id, "name": owned.name, "cidrs": len(owned.active_cidrs)}
            if owned is not None
            else None
        ),
        "message": f"ok, the token can read {len(rules)} IP-restriction rule(s) of account "
        f"{settings.account_id}",
    }
    result.checks["enforcement"] = {
        "ok": True,
        "enabled": enforced,
        "message": "on" if enforced else "off (the rules are stored but not enforced)",
    }
    log.info("check_api_ok", rules=len(rules), enforcement=enforced)
    return rules


def check_rules(
    rules: list[Rule], desired: tuple[Network, ...] | None, settings: Settings, result: Preflight
) -> int | None:
    """The owned rule, an adoption candidate and deny conflicts; the owned rule's id."""
    name = settings.rule_name
    listed = [rule_json(r, name) for r in rules]
    try:
        owned = find_owned_rule(rules, name)
    except AllowlistSyncError as exc:
        result.fail("rules", exc, rules=listed, adoption_candidate=None, deny_conflicts=0)
        return None
    conflicts = deny_conflicts(desired, rules) if desired is not None else {}
    wanted = tuple(n for n in desired if n not in conflicts) if desired is not None else None
    candidates = (
        adoption_candidates(wanted, rules, owned_name=name, limits=limits(settings))
        if owned is None and wanted
        else []
    )
    candidate = candidates[0] if candidates else None
    for entry in listed:
        entry["adoption_candidate"] = candidate is not None and entry["id"] == candidate.rule_id
    problems = []
    if candidate is not None:
        problems.append(adoption_message(candidate, name))
    if conflicts:
        where = ", ".join(
            f"{n} (deny rule {rule_id})" for n, rule_id in list(conflicts.items())[:5]
        )
        problems.append(
            f"{len(conflicts)} desired CIDR(s) are held by deny rules, so the platform would "
            f"refuse them and sync would end failed (exit 1): {where}"
        )
    result.checks["rules"] = {
        "ok": not problems,
        "rules": listed,
        "owned_rule_id": owned.id if owned else None,
        "adoption_candidate": (
            {
                "id": candidate.rule_id,
                "name": candidate.rule_name,
                "holds": candidate.held,
                "desired": candidate.desired,
            }
            if candidate
            else None
        ),
        "deny_conflicts": len(conflicts),
        "message": "; ".join(problems) or rules_summary(rules, owned, name, desired),
    }
    return owned.id if owned else None


_TYPES: dict[int, str] = {RuleType.ALLOW: "allow", RuleType.DENY: "deny"}


def rule_json(rule: Rule, owned_name: str) -> dict[str, Any]:
    """One rule of the account as the report lists it."""
    return {
        "id": rule.id,
        "name": rule.name,
        "type": _TYPES.get(rule.type, rule.type),
        "cidrs": len(rule.active_cidrs),
        "owned": rule.name == owned_name,
        "adoption_candidate": False,
    }


def adoption_message(candidate: Overlap, owned_name: str) -> str:
    """Why the first sync would be refused, and the two ways on."""
    return (
        f"the owned rule {owned_name!r} does not exist yet and rule {candidate.rule_name!r} "
        f"(id {candidate.rule_id}) holds {candidate.held} of the {candidate.desired} desired "
        "CIDRs: the first sync will be refused (guard overlap, exit 3). Adopt it with "
        f"ALLOWLIST_SYNC_RULE_NAME={shlex.quote(candidate.rule_name)}, or create a separate rule "
        "anyway "
        "with `allowlist-sync sync --force`"
    )


def rules_summary(
    rules: list[Rule], owned: Rule | None, name: str, desired: tuple[Network, ...] | None
) -> str:
    """The passed rules check in one line."""
    if owned is not None:
        return (
            f"{len(rules)} rule(s); the owned rule {name!r} (id {owned.id}) holds "
            f"{len(owned.active_cidrs)} CIDRs"
        )
    adoption = (
        "no other allow rule holds half of the desired set"
        if desired is not None
        else "whether another rule should be adopted is unknown (the desired set is not known: "
        "its source failed)"
    )
    return (
        f"{len(rules)} rule(s); the owned rule {name!r} does not exist yet (the first sync "
        f"creates it); {adoption}"
    )


def check_caller(
    client: DbtClient, rules: list[Rule], owned_id: int | None, result: Preflight
) -> None:
    """Ask the platform whether this job is let in without the owned rule."""
    if result.checks.get("rules", {}).get("error", {}).get("kind") == "ownership":
        result.checks["caller"] = skipped("the owned rule is ambiguous")
        return
    enforced = bool(result.checks["enforcement"]["enabled"])
    set_ids = {r.ip_restriction_rule_set_id for r in rules if r.ip_restriction_rule_set_id}
    details: dict[str, Any] = {"asked": False, "without_rule_id": owned_id, "allowed": None}
    if not set_ids:
        if enforced:
            problem = "the rules carry no ip_restriction_rule_set_id: cannot ask the platform"
            result.fail("caller", ApiResponseError(problem), **details)
            return
        result.checks["caller"] = {
            "ok": True,
            **details,
            "message": "not asked: the account has no rules yet, so nothing is enforced",
        }
        return
    try:
        allowed = client.caller_allowed(min(set_ids), without_rule_id=owned_id)
    except AllowlistSyncError as exc:
        result.fail("caller", exc, **details)
        return
    details.update(asked=True, allowed=allowed)
    result.checks["caller"] = {
        "ok": allowed or not enforced,
        **details,
        "message": caller_message(allowed, enforced, owned_id),
    }


def caller_message(allowed: bool, enforced: bool, owned_id: int | None) -> str:
    """What the platform's yes or no means for the lock-out guard."""
    if owned_id is None:
        others = "the account's rules (there is no owned rule yet)"
    else:
        others = f"a rule other than the owned one (id {owned_id})"
    if allowed:
        tail = "" if enforced else " (enforcement is off: it matters once it is turned on)"
        return f"let in by {others}{tail}"
    fix = (
        "add this job's egress address to another allow rule (the platform answers only yes or "
        "no, so the address itself is not known here)"
    )
    if not enforced:
        return (
            f"not let in by {others}: if enforcement is turned on, the lock-out guard refuses "
            f"every sync that removes a CIDR (exit 3), or the job is locked out; {fix}"
        )
    if owned_id is None:
        return (
            "the platform says this job is not let in, yet it answered the listing: its answers "
            f"disagree; {fix}"
        )
    return (
        f"let in only by the owned rule (id {owned_id}): the lock-out guard will refuse every "
        f"sync that removes a CIDR (exit 3); {fix}"
    )
