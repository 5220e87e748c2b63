"""`check-ip`'s output: text for people, one JSON object for programs.

Text: a line per failed source, then per address a line of the sources publishing it and a line
per target, and ONE summary line at the end:

    20.190.128.5  entra: AzureActiveDirectory 20.190.128.0/18
      prod-us: LET IN by rule 12 'allowlist-sync: SCIM' (20.190.128.0/18, the owned rule); enforcement on
      sandbox: BLOCKED: no active allow rule holds it (owned rule 'x' id 9 lacks it: run sync); enforcement on
    BLOCKED: 20.190.128.5 by sandbox.
"""  # noqa: E501 - the example lines are as printed

from __future__ import annotations

import argparse
from typing import Any, TextIO

import orjson

from allowlist_sync.commands.checkip import AddressReport, Answer, Report, RuleHit
from allowlist_sync.config.file_checks import one_line
from allowlist_sync.errors import AllowlistSyncError
from allowlist_sync.logs import redact


def write_report(report: Report, output: str, out: TextIO) -> None:
    """The report as text or JSON on `out`, every secret redacted."""
    if output == "json":
        out.write(redact(orjson.dumps(report_json(report)).decode()) + "\n")
    else:
        out.write(redact(render_text(report)))
    out.flush()


def write_failure(args: argparse.Namespace, kind: str, message: str, out: TextIO) -> None:
    """With `--output json`, the one JSON object of a run that ended before its report."""
    if getattr(args, "output", None) != "json" or getattr(args, "json_written", False):
        return
    error = {"kind": kind, "message": one_line(message.splitlines()[0] if message else kind)}
    document = {
        "ok": False,
        "addresses": [],
        "sources_failed": [],
        "summary": f"FAILED: {error['message']}",
        "error": error,
    }
    out.write(redact(orjson.dumps(document).decode()) + "\n")
    out.flush()
    args.json_written = True


# ------------------------------------------------------------------------------ JSON


def report_json(report: Report) -> dict[str, Any]:
    """`{ok, addresses: [{address, given, note, sources, targets}], sources_failed, summary}`."""
    return {
        "ok": int(report.exit_code()) == 0,
        "addresses": [address_json(item) for item in report.addresses],
        "sources_failed": [
            {"source": name, **error_json(exc)} for name, exc in report.failed_sources.items()
        ],
        "summary": summary(report),
    }


def address_json(item: AddressReport) -> dict[str, Any]:
    return {
        "address": item.address.text,
        "given": item.address.given,
        "note": item.address.note,
        "sources": [hit.to_json() for hit in item.hits],
        "targets": [answer_json(answer) for answer in item.answers],
    }


def answer_json(answer: Answer) -> dict[str, Any]:
    account = answer.account
    owned = account.owned
    return {
        "target": account.target.name,
        "account_id": account.target.account_id,
        "let_in": answer.let_in,
        "let_in_when_enforced": answer.let_in_when_enforced,
        "enforcement": account.enforcement,
        "owned_rule": None
        if owned is None
        else {"id": owned.id, "name": owned.name, "covering_cidr": answer.owned_cidr},
        "allowed_by": [hit.to_json() for hit in answer.allowed_by],
        "denied_by": [hit.to_json() for hit in answer.denied_by],
        "published_by": list(answer.published_by),
        "notes": list(account.notes),
        "error": None if account.error is None else error_json(account.error),
    }


def error_json(exc: AllowlistSyncError) -> dict[str, Any]:
    return {"kind": exc.kind, "message": one_line(str(exc)), "exit_code": int(exc.exit_code)}


# ------------------------------------------------------------------------------ text


def render_text(report: Report) -> str:
    """The report for people; the last line is the one summary line."""
    lines = [
        f"source {name} could not be read: {one_line(str(exc))}"
        for name, exc in report.failed_sources.items()
    ]
    for item in report.addresses:
        lines.append(address_line(item, report.sources))
        lines.extend(f"  {answer_line(answer)}" for answer in item.answers)
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def address_line(item: AddressReport, sources: list[str]) -> str:
    """`ADDR  source: label prefix; ...`, or `ADDR  in no source (names)`."""
    head = item.address.text
    if item.address.note:
        head += f" ({one_line(item.address.note)})"
    if item.hits:
        found = "; ".join(f"{h.source}: {h.label} {h.prefix}" for h in item.hits)
        return f"{head}  {found}"
    return f"{head}  in no source ({', '.join(sources) or 'none could be read'})"


def answer_line(answer: Answer) -> str:
    """`TARGET: LET IN ... / BLOCKED ... / UNKNOWN ...; enforcement on|off`."""
    account = answer.account
    name = account.target.name
    if account.error is not None:
        return (
            f"{name}: UNKNOWN: could not read the account: {one_line(str(account.error))} "
            f"(exit {int(account.error.exit_code)})"
        )
    verdict = enforced_verdict(answer)
    notes = "".join(f" ({one_line(note)})" for note in account.notes)
    if account.enforcement:
        return f"{name}: {verdict}; enforcement on{notes}"
    return (
        f"{name}: LET IN: enforcement off, nothing is enforced; with enforcement on it would "
        f"be {verdict}{notes}"
    )


def enforced_verdict(answer: Answer) -> str:
    """What the rules decide when enforced, naming the rules and the CIDRs that hold it."""
    if answer.denied_by:
        return "BLOCKED by " + " and ".join(rule_text(hit, "deny rule") for hit in answer.denied_by)
    if not answer.allowed_by:
        return f"BLOCKED: no active allow rule holds it ({missing_reason(answer)})"
    owned = answer.account.owned
    text = "LET IN by " + " and ".join(
        rule_text(hit, "rule", owned=owned is not None and hit.id == owned.id)
        for hit in answer.allowed_by
    )
    if answer.owned_cidr is None and answer.published_by:
        text += f"; {missing_reason(answer)}"
    return text


def rule_text(hit: RuleHit, kind: str, *, owned: bool = False) -> str:
    """`rule 12 'name' (20.190.128.0/18, the owned rule)`."""
    mark = ", the owned rule" if owned else ""
    return f"{kind} {hit.id} {one_line(repr(hit.name))} ({one_line(hit.cidr)}{mark})"


def missing_reason(answer: Answer) -> str:
    """Why no owned rule holds the address, and what fixes it."""
    if not answer.published_by:
        return "no source of this target publishes it"
    owned = answer.account.owned
    if owned is None:
        rule_name = one_line(repr(answer.account.target.rule_name))
        return f"no rule named {rule_name} yet: run sync to create it"
    return f"owned rule {one_line(repr(owned.name))} id {owned.id} lacks it: run sync"


def summary(report: Report) -> str:
    """The one summary line: every address let in, or what is blocked and what was not read."""
    blocked = []
    for item in report.addresses:
        names = [a.account.target.name for a in item.answers if a.blocked]
        if names:
            blocked.append(f"{item.address.text} by {', '.join(names)}")
    unread = [f"{a.target.name} ({a.error.kind})" for a in report.accounts if a.error is not None]
    if not blocked and not unread:
        count = len(report.addresses)
        if count == 1:
            return f"{report.addresses[0].address.text} is let in by every target."
        return f"All {count} addresses are let in by every target."
    parts = [*blocked]
    if unread:
        parts.append(f"not read: {', '.join(unread)}")
    return ("BLOCKED: " if blocked else "UNKNOWN: ") + "; ".join(parts) + "."
