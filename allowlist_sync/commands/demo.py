"""`allowlist-sync demo`: the whole job, with no dbt account and no network.

It starts the bundled Admin API emulator on a free loopback port, seeds an account with a rule
somebody else owns and the job's own rule as it might be a few weeks after its last run, then
runs the real pipeline three times with a real (trimmed) service-tags snapshot shipped in the
package: a dry-run, an apply, and a second run that finds nothing to do.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TextIO

from allowlist_sync import logs
from allowlist_sync.config import load_settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.render import render_outcome_text, render_plan_text
from allowlist_sync.sync import RunOptions, run_once

SNAPSHOT = "ServiceTags_Public_20251028.trimmed.json"
DEMO_TOKEN = "dbtc_demo_token_not_a_secret"  # noqa: S105 - the emulator's, not a real one
STALE_RANGES = (
    "192.0.2.0/28",
    "198.51.100.200",
)  # documentation ranges standing in for retired ones


def snapshot_path() -> str:
    """The bundled service-tags snapshot."""
    return str(resources.files("allowlist_sync") / "data" / SNAPSHOT)


def run_demo(out: TextIO) -> int:
    """Run dry-run, apply and a no-op re-run against an in-process emulator; returns 0 or 1."""
    logs.configure(level="warning", fmt="console")
    store = EmulatorStore(account_id=1, token=DEMO_TOKEN)
    store.seed_rule(
        "Office VPN",
        cidrs=["198.51.100.0/24", "203.0.113.10"],
        description="someone else's rule: the job never touches it",
    )
    # As if the job last ran weeks ago: three ranges Microsoft added since, two it retired.
    published = json.loads(Path(snapshot_path()).read_bytes())
    current = next(v for v in published["values"] if v["name"] == "AzureActiveDirectory")
    stale = [*current["properties"]["addressPrefixes"][3:], *STALE_RANGES]
    with EmulatorServer(store, quiet=True) as emulator:
        settings = load_settings(
            account_id=1, token=DEMO_TOKEN, token_file=None, host_url=emulator.url
        )
        store.seed_rule(settings.rule_name, cidrs=stale, description="managed by allowlist-sync")
        out.write(f"Emulated dbt account 1 at {emulator.url}; feed {SNAPSHOT} (bundled)\n")
        steps = [
            ("1. Dry run: what would change", True),
            ("2. Apply", False),
            ("3. Run again: nothing left to do", False),
        ]
        for title, dry_run in steps:
            out.write(f"\n=== {title} ===\n")
            options = RunOptions(
                dry_run=dry_run,
                source_file=snapshot_path(),
                on_plan=lambda plan, feed, current: render_plan_text(plan, feed, current, out),
            )
            outcome = run_once(settings, options)
            render_outcome_text(outcome, out)
            out.write(
                f"[status {outcome.status}; {outcome.requests} API requests, "
                f"{outcome.writes} writes]\n"
            )
            if not outcome.succeeded:
                return 1
        others = [r for r in store.snapshot() if r["name"] != settings.rule_name]
        out.write(
            f"\nOther rules untouched: {', '.join(r['name'] for r in others)}; "
            f"enforcement still {'on' if store.rule_set_enabled else 'off'}.\n"
        )
    return 0
