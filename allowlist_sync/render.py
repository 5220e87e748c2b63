"""Renderers: a Plan and an Outcome as text for people (like `terraform plan`) or as JSON."""

from __future__ import annotations

from typing import TextIO

import orjson

from allowlist_sync.azure.feed import Feed, SourceInfo
from allowlist_sync.cidrs import sorted_networks
from allowlist_sync.dbt.models import Rule
from allowlist_sync.logs import redact
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan


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


def render_plan_text(plan: Plan, feed: Feed, current: Rule | None, out: TextIO) -> None:
    """Write the plan as + / - lines and a summary line."""
    target = "(new rule)" if plan.creates_rule else f"(id {plan.rule_id})"
    out.write(f"Rule {plan.rule_name!r} {target}\n")
    out.write(f"Source: {redact(describe_source(feed.source))}\n")
    tags = ", ".join(f"{t}: {len(p)} prefixes" for t, p in feed.prefixes.items())
    out.write(f"Desired: {len(plan.desired)} CIDRs from {tags}\n")
    if current is not None:
        out.write(f"Current: {plan.current_count} CIDRs\n")
    out.write("\n")
    if not plan.has_changes:
        out.write(f"No changes. {holds(plan)}\n")
        return
    if plan.creates_rule:
        out.write(f"  + rule {plan.rule_name!r} (allow)\n")
    for network in sorted_networks(plan.add):
        out.write(f"  + {network}\n")
    for entry in plan.remove:
        out.write(f"  - {entry.cidr}  (id {entry.id})\n")
    out.write("\n")
    verb = "create the rule with" if plan.creates_rule else "add"
    out.write(
        f"Plan: {verb} {len(plan.add)}, remove {len(plan.remove)}, keep {len(plan.keep)}"
        f"{' (mode add-only)' if plan.mode == 'add-only' else ''}.\n"
    )


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
