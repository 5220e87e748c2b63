"""Renderers: a Plan and an Outcome as text for people (like `terraform plan`) or as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TextIO

import orjson

from allowlist_sync.azure.feed import Feed, SourceInfo
from allowlist_sync.cidrs import Network, network_or_none, sort_key
from allowlist_sync.dbt.models import Rule
from allowlist_sync.logs import redact
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan, Reason


def describe_source(source: SourceInfo) -> str:
    """One line: where the feed came from and what it says about itself."""
    facts = [f"cloud {source.cloud}", f"changeNumber {source.change_number}"]
    if source.file_date:
        d = source.file_date
        facts.append(f"dated {d[:4]}-{d[4:6]}-{d[6:]}")
    return f"{source.kind} {source.location} ({', '.join(facts)})"


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


def render_plan_text(plan: Plan, feed: Feed, current: Rule | None, out: TextIO) -> None:
    """Write the plan: a header, + / - lines each with its reason, and the counts.

    A long plan (over LONG_PLAN_LINES lines) shows its counts first, then its lines grouped by
    family, so the header and the totals do not scroll away.
    """
    target = "(new rule)" if plan.creates_rule else f"(id {plan.rule_id})"
    out.write(f"Rule {plan.rule_name!r} {target}\n")
    out.write(f"Source: {redact(describe_source(feed.source))}\n")
    tags = ", ".join(f"{t}: {len(p)} prefixes" for t, p in feed.prefixes.items())
    out.write(f"Desired: {len(plan.desired)} CIDRs from {tags}\n")
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
    """The closing line(s) of a run for people: what was done, what is wrong, warnings."""
    plan = outcome.plan
    if outcome.status == "refused" and outcome.error is not None:
        out.write(f"\nRefused: {redact(str(outcome.error))}\nNothing was written.\n")
    elif outcome.error is None and plan is not None and plan.has_changes:
        if outcome.dry_run:
            out.write("\nDry run: nothing was written. Run without --dry-run to apply.\n")
        else:
            what = "Created the rule" if plan.creates_rule else "Applied"
            refused = set(outcome.failed_cidrs)
            added = [n for n in plan.add if str(n) not in refused]
            out.write(
                f"\n{what}: {len(added)} added, {len(plan.remove)} removed; verified "
                f"{len(plan.keep) + len(added)} CIDRs in rule {outcome.rule_id}.\n"
            )
    if outcome.error is None and outcome.failed_cidrs:
        out.write(
            f"Not in sync: the platform cannot store {len(outcome.failed_cidrs)} published "
            f"CIDR(s): {', '.join(outcome.failed_cidrs)}\n"
        )
    for warning in outcome.warnings:
        out.write(f"Warning: {redact(warning)}\n")


def render_outcome_json(outcome: Outcome, out: TextIO) -> None:
    """The `--output json` object on one line."""
    data = orjson.dumps(outcome.to_json()).decode()
    out.write(redact(data) + "\n")
