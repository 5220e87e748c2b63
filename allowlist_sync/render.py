"""Renderers: a Plan and an Outcome as text for people (like `terraform plan`) or as JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import orjson

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.cidrs import Network, network_or_none, sort_key
from allowlist_sync.dbt.models import Rule
from allowlist_sync.logs import redact
from allowlist_sync.outcome import FleetOutcome, Outcome
from allowlist_sync.plan import Plan, Reason
from allowlist_sync.sources.ranges import Ranges, RangeSet


def labelled_counts(ranges: Ranges) -> str:
    """`AzureActiveDirectory: 216 prefixes` (an Okta cell, a static list: the same shape)."""
    return ", ".join(f"{label}: {len(p)} prefixes" for label, p in ranges.prefixes.items())


def describe_source(source: SourceInfo) -> str:
    """One line: where the feed came from and what it says about itself."""
    if source.kind == "config":
        return f"the configuration's {source.location}"
    facts = []
    if source.cloud is not None:
        facts += [f"cloud {source.cloud}", f"changeNumber {source.change_number}"]
    if source.published is not None and not source.file_date:
        facts.append(f"published {source.published:%Y-%m-%d}")
    if source.file_date:
        d = source.file_date
        facts.append(f"dated {d[:4]}-{d[4:6]}-{d[6:]}")
    return f"{source.kind} {source.location}" + (f" ({', '.join(facts)})" if facts else "")


def holds(plan: Plan) -> str:
    """What an unchanged rule holds, truthfully: add-only keeps entries the feed dropped."""
    desired = len(plan.desired)
    kept_extra = len(plan.keep) - (desired - len(plan.add))
    if plan.mode == "add-only" and kept_extra > 0:
        return (
            f"The rule holds the desired {desired} CIDRs plus {kept_extra} no longer desired, "
            "kept by add-only mode."
        )
    return f"The rule holds exactly the desired {desired} CIDRs."


#: A plan with more lines than this shows its counts first and groups its lines by family.
LONG_PLAN_LINES = 40
#: The order reasons are counted in; anything else follows.
_REMOVAL_CODES = ("not_published", "excluded", "duplicate", "replaced", "not_a_network")
_FAMILY_NAMES = {4: "IPv4", 6: "IPv6", 0: "Not a network"}


@dataclass(frozen=True)
class _Line:
    family: int  # 4, 6, or 0 for a stored entry that is not a network
    adds: bool
    text: str


def render_plan_text(plan: Plan, ranges: RangeSet, current: Rule | None, out: TextIO) -> None:
    """Write the plan: a header, + / - lines each with its reason, and the counts.

    A long plan (over LONG_PLAN_LINES lines) shows its counts first, then its lines grouped by
    family, so the header and the totals do not scroll away.
    """
    target = "(new rule)" if plan.creates_rule else f"(id {plan.rule_id})"
    out.write(f"Rule {plan.rule_name!r} {target}\n")
    if len(ranges.items) == 1 and ranges.items[0].type == "azure-service-tags":
        (only,) = ranges.items  # as a run configured by the environment has always said it
        out.write(f"Source: {redact(describe_source(only.source))}\n")
        out.write(f"Desired: {len(plan.desired)} CIDRs from {labelled_counts(only)}\n")
    else:
        for item in ranges.items:
            out.write(f"Source {item.name}: {redact(describe_source(item.source))}\n")
        names = ", ".join(f"{r.name} ({labelled_counts(r)})" for r in ranges.items)
        out.write(f"Desired: {len(plan.desired)} CIDRs from {names}\n")
    if current is not None:
        out.write(f"Current: {plan.current_count} CIDRs\n")
    if plan.enforcement is not None:
        out.write(f"Enforcement: {enforcement_text(plan)}\n")
    out.write("\n")
    if not plan.has_changes:
        out.write(f"No changes. {holds(plan)}\n")
        return
    lines = plan_lines(plan)
    summary = plan_summary(plan)
    rule_line = f"  + rule {plan.rule_name!r} (allow)\n" if plan.creates_rule else ""
    if len(lines) + bool(rule_line) <= LONG_PLAN_LINES:
        out.write(rule_line + "".join(line.text for line in lines))
        out.write(f"\n{summary}")
        return
    out.write(summary + "".join(_counts_first(plan, lines)) + "\n" + rule_line)
    for family in (4, 6, 0):
        group = [line for line in lines if line.family == family]
        if group:
            out.write(f"{_FAMILY_NAMES[family]} ({_counted(group)}):\n")
            out.write("".join(line.text for line in group))
    out.write(f"\n{summary}")


def enforcement_text(plan: Plan) -> str:
    """Enforcement on or off, and the lock-out check's answer when it was asked."""
    text = "on" if plan.enforcement else "off"
    allowed = plan.caller_allowed_without_rule
    if allowed is not None:
        by = "by another rule" if allowed else "only by this rule"
        text += f"; lock-out check: this job's address is let in {by}"
    return text


def plan_lines(plan: Plan) -> list[_Line]:
    """The + lines (sorted) and - lines (as stored), each with its reason when it has one."""
    adds: list[tuple[Network, Reason | None]] = list(
        zip(plan.add, plan.add_reasons or [None] * len(plan.add), strict=True)
    )
    lines = []
    for network, why in sorted(adds, key=lambda pair: sort_key(pair[0])):
        note = f"  ({why.text()})" if why is not None and why.code != "published" else ""
        lines.append(_Line(network.version, True, f"  + {network}{note}\n"))
    removes = zip(plan.remove, plan.remove_reasons or [None] * len(plan.remove), strict=True)
    for entry, reason in removes:
        stored = network_or_none(entry.cidr)
        shown = entry.cidr if stored is not None and entry.cidr.isprintable() else repr(entry.cidr)
        note = f", {reason.text()}" if reason is not None else ""
        family = stored.version if stored is not None else 0
        lines.append(_Line(family, False, f"  - {shown}  (id {entry.id}{note})\n"))
    return lines


def plan_summary(plan: Plan) -> str:
    """The one line of totals."""
    verb = "create the rule with" if plan.creates_rule else "add"
    return (
        f"Plan: {verb} {len(plan.add)}, remove {len(plan.remove)}, keep {len(plan.keep)}"
        f"{' (mode add-only)' if plan.mode == 'add-only' else ''}.\n"
    )


def _counts_first(plan: Plan, lines: list[_Line]) -> list[str]:
    """A long plan's counts: per family, then per reason."""
    out = []
    for family in (4, 6, 0):
        group = [line for line in lines if line.family == family]
        if group:
            out.append(f"  {_FAMILY_NAMES[family]}: {_counted(group)}\n")
    extra = sum(1 for r in plan.add_reasons if r.code == "extra")
    if extra:
        out.append(f"  additions: {len(plan.add) - extra} published, {extra} extra\n")
    codes = Counter(r.code for r in plan.remove_reasons)
    if codes:
        order = [*_REMOVAL_CODES, *sorted(set(codes) - set(_REMOVAL_CODES))]
        counted = ", ".join(f"{codes[c]} {c.replace('_', ' ')}" for c in order if codes[c])
        out.append(f"  removals: {counted}\n")
    return out


def _counted(lines: list[_Line]) -> str:
    adds = sum(1 for line in lines if line.adds)
    parts = [
        f"{adds} to add" if adds else "",
        f"{len(lines) - adds} to remove" if len(lines) > adds else "",
    ]
    return ", ".join(p for p in parts if p)


def render_outcome_text(outcome: Outcome, out: TextIO) -> None:
    """The closing lines of a run for people: what was done, warnings, then ONE status line.

    The status line is always last and starts with one of `In sync.`, `Changes pending:`,
    `Applied:`, `Refused:` or `FAILED: <kind>:` (README "Reading the output").
    """
    out.write("\n")
    plan = outcome.plan
    if outcome.status == "failed" and plan is not None and (outcome.added or outcome.removed):
        # Written and verified, but the platform refused some CIDRs: say what did change.
        out.write(f"Applied in part: {_change(outcome, plan)}.\n")
    for warning in outcome.warnings:
        out.write(one_line(f"Warning: {warning}") + "\n")
    out.write(status_line(outcome) + "\n")


#: How many refused CIDRs a status line names before it says "and N more".
_LISTED = 10


def status_line(outcome: Outcome) -> str:
    """The one line that ends a run's text output, on one printable line whatever it quotes."""
    plan, error = outcome.plan, outcome.error
    if error is not None:
        message = str(error)
        if outcome.status != "refused":
            return failed_line(error.kind, message)
        if outcome.writes:
            tail = f" {outcome.writes} write(s) had been sent before the refusal."
        elif "nothing was written" in message.lower():
            tail = ""
        else:
            tail = " Nothing was written."
        return one_line(f"Refused: {message.rstrip('.')}.{tail}")
    if outcome.status == "failed":
        refused = outcome.failed_cidrs
        if not refused:  # pragma: no cover - every failure carries an error or refused CIDRs
            return failed_line("error", "the run failed")
        more = f" and {len(refused) - _LISTED} more" if len(refused) > _LISTED else ""
        return failed_line(
            "cidrs_rejected",
            f"the platform cannot store {len(refused)} published CIDR(s): "
            f"{', '.join(refused[:_LISTED])}{more}",
        )
    if plan is None or outcome.status == "in_sync":
        return "In sync."
    if outcome.status == "changes_pending":
        return (
            f"Changes pending: add {len(plan.add)}, remove {len(plan.remove)}. Dry run: nothing "
            "was written. Run without --dry-run to apply."
        )
    return f"Applied: {_change(outcome, plan)}."


def _change(outcome: Outcome, plan: Plan) -> str:
    """What a verified write did, from the counts of what was written."""
    stored = len(plan.keep) + outcome.added
    if plan.creates_rule:
        return f"created rule {outcome.rule_id} with {outcome.added} CIDRs, verified"
    return (
        f"{outcome.added} added, {outcome.removed} removed; verified {stored} CIDRs "
        f"in rule {outcome.rule_id}"
    )


def failed_line(kind: str, message: str) -> str:
    """`FAILED: <kind>: <message>` on one printable line, secrets redacted."""
    return one_line(f"FAILED: {kind}: {message}")


def write_failed_line(kind: str, message: str, out: TextIO) -> None:
    """Close the text output of a run that ended before it had an Outcome (Ctrl-C, bad setting)."""
    out.write("\n" + failed_line(kind, message) + "\n")
    out.flush()


def one_line(text: str) -> str:
    """`text` redacted, its line breaks as spaces, other control characters escaped (`\\x1b`).

    Status and warning lines quote error messages, which may quote an API's answer: nothing in
    them may move the cursor, clear the screen or start a second line.
    """
    joined = " ".join(part.strip() for part in redact(text).splitlines() if part.strip())
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in joined)


def render_outcome_json(outcome: Outcome, out: TextIO) -> None:
    """The `--output json` object on one line."""
    data = orjson.dumps(outcome.to_json()).decode()
    out.write(redact(data) + "\n")


#: How a status reads in a fleet's summary line.
_STATUS_WORDS = {
    "in_sync": "in sync",
    "applied": "applied",
    "changes_pending": "with changes pending",
    "refused": "refused",
    "failed": "failed",
}


def render_fleet_text(fleet: FleetOutcome, plans: Mapping[str, str], out: TextIO) -> None:
    """A config-file run for people: a block per target (its plan, warnings and status line, as
    a one-target run prints them), then ONE summary line, always last."""
    for outcome in fleet.targets:
        out.write(
            f"=== target {outcome.target}: account {outcome.account_id}, "
            f"rule {outcome.rule_name!r} ===\n"
        )
        out.write(plans.get(outcome.target, ""))
        render_outcome_text(outcome, out)
        out.write("\n")
    out.write(fleet_status_line(fleet) + "\n")


def fleet_status_line(fleet: FleetOutcome) -> str:
    """`All 3 targets ...` when every target did its job, else `FAILED: ...` or `Refused: ...`
    naming each target that did not, with its error kind; counts of the rest follow."""
    if fleet.error is not None:
        return failed_line(fleet.error.kind, str(fleet.error))
    counts = ", ".join(f"{n} {_STATUS_WORDS[status]}" for status, n in fleet.summary().items() if n)
    total = len(fleet.targets)
    if fleet.succeeded:
        tail = " Dry run: nothing was written." if fleet.dry_run else ""
        every = f"All {total} targets" if total > 1 else "The one target"
        return one_line(f"{every} done: {counts}.{tail}")
    bad = [
        f"{o.target} ({o.error.kind if o.error else o.status})"
        for o in fleet.targets
        if not o.succeeded
    ]
    word = "FAILED" if fleet.status == "failed" else "Refused"
    return one_line(f"{word}: {len(bad)} of {total} targets: {', '.join(bad)}. All: {counts}.")


def render_fleet_json(fleet: FleetOutcome, out: TextIO) -> None:
    """The `--output json` object of a config-file run on one line."""
    out.write(redact(orjson.dumps(fleet.to_json()).decode()) + "\n")
