"""`allowlist-sync demo`: the whole job over two dbt accounts, with no account and no network.

It starts the bundled Admin API emulator on a free loopback port, serving two accounts as they
might be a few weeks after the job last ran: "prod" (fed by Microsoft Entra ID and Okta, beside
a rule somebody else owns) and "sandbox" (Okta alone). In a temporary folder it writes a config
file of two sources and two targets, with the real snapshots shipped in the package (Microsoft's
service tags, trimmed, and Okta's ip_ranges.json) and a token file per account beside it, then
runs the fleet three times: a dry run, an apply, and a second run that finds nothing to do.
Each step prints what `allowlist-sync sync --config` prints: a block per target, one summary.

The environment is not read at all (the reader may still have the walk-through's exports set):
the demo runs the same wherever it runs, and writes nothing outside its temporary folder.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TextIO

from allowlist_sync import logs
from allowlist_sync.config import RunSettings
from allowlist_sync.config.file import FleetConfig, read_config
from allowlist_sync.dbt.models import Rule
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.fleet import run_fleet
from allowlist_sync.outcome import FleetOutcome
from allowlist_sync.plan import Plan
from allowlist_sync.render import render_fleet_text, render_plan_text
from allowlist_sync.sources.ranges import RangeSet
from allowlist_sync.sync import RunOptions

SNAPSHOT = "ServiceTags_Public_20251028.trimmed.json"
OKTA_SNAPSHOT = "okta_ip_ranges_20220307.json"
OKTA_CELL = "us_cell_12"
PROD_ACCOUNT = 12345
SANDBOX_ACCOUNT = 67890
DEMO_TOKEN = "dbtc_demo_token_not_a_secret"  # noqa: S105 - the emulator's, not a real one
SANDBOX_TOKEN = "dbtc_demo_sandbox_token_not_a_secret"  # noqa: S105 - likewise
RULE_NAME = "allowlist-sync: SCIM"
CONFIG_NAME = "fleet.toml"
# Documentation ranges standing in for ranges the providers retired since the last run.
RETIRED_PROD = ("192.0.2.0/28", "198.51.100.200")
RETIRED_SANDBOX = ("192.0.2.64/28",)
STEPS = (
    ("Dry run: what would change", True),
    ("Apply", False),
    ("Run again: nothing left to do", False),
)
CONFIG = """\
# Two sources, each read and checked once per run: the bundled snapshots, copied here.
[sources.entra]
type = "azure-service-tags"
file = "{azure}"
tags = ["AzureActiveDirectory"]

[sources.okta]
type = "okta-ip-ranges"
file = "{okta}"
cells = ["{cell}"]

# Two dbt accounts, each owning one rule fed by the union of its sources.
[[targets]]
name = "prod"
account_id = {prod}
host_url = "{url}"
token_file = "prod.token"
rule_name = "{rule}"
sources = ["entra", "okta"]

[[targets]]
name = "sandbox"
account_id = {sandbox}
host_url = "{url}"
token_file = "sandbox.token"
rule_name = "{rule}"
sources = ["okta"]
"""


def snapshot_path() -> str:
    """The bundled service-tags snapshot."""
    return str(resources.files("allowlist_sync") / "data" / SNAPSHOT)


def okta_snapshot_path() -> str:
    """The bundled snapshot of Okta's ip_ranges.json."""
    return str(resources.files("allowlist_sync") / "data" / OKTA_SNAPSHOT)


def published_ranges() -> tuple[list[str], list[str]]:
    """The snapshots' AzureActiveDirectory prefixes and the demo's Okta cell, as published."""
    azure = json.loads(Path(snapshot_path()).read_bytes())
    entra = next(v for v in azure["values"] if v["name"] == "AzureActiveDirectory")
    okta = json.loads(Path(okta_snapshot_path()).read_bytes())
    return list(entra["properties"]["addressPrefixes"]), list(okta[OKTA_CELL]["ip_ranges"])


def seeded_store() -> EmulatorStore:
    """The two accounts as the job finds them, weeks after its last run."""
    entra, okta = published_ranges()
    store = EmulatorStore(
        accounts={PROD_ACCOUNT: None, SANDBOX_ACCOUNT: SANDBOX_TOKEN}, token=DEMO_TOKEN
    )
    prod = store.account(PROD_ACCOUNT)
    prod.seed_rule(
        "Office VPN",
        cidrs=["198.51.100.0/24", "203.0.113.10"],
        description="someone else's rule: the job never touches it",
    )
    # Since then Microsoft added three ranges and retired two, and Okta added two.
    prod.seed_rule(
        RULE_NAME,
        cidrs=[*entra[3:], *okta[2:], *RETIRED_PROD],
        description="managed by allowlist-sync",
    )
    # Okta alone: one range added since, one dropped.
    store.account(SANDBOX_ACCOUNT).seed_rule(
        RULE_NAME, cidrs=[*okta[:-1], *RETIRED_SANDBOX], description="managed by allowlist-sync"
    )
    return store


def write_config(folder: Path, host_url: str) -> Path:
    """The demo's config file in `folder`, with the snapshots and token files it names."""
    shutil.copyfile(snapshot_path(), folder / SNAPSHOT)
    shutil.copyfile(okta_snapshot_path(), folder / OKTA_SNAPSHOT)
    for name, token in (("prod.token", DEMO_TOKEN), ("sandbox.token", SANDBOX_TOKEN)):
        token_file = folder / name
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
    path = folder / CONFIG_NAME
    path.write_text(config_text(host_url))
    return path


def config_text(host_url: str) -> str:
    """The demo's config file: two sources, two targets on one host."""
    return CONFIG.format(
        azure=SNAPSHOT,
        okta=OKTA_SNAPSHOT,
        cell=OKTA_CELL,
        prod=PROD_ACCOUNT,
        sandbox=SANDBOX_ACCOUNT,
        url=host_url,
        rule=RULE_NAME,
    )


def run_demo(out: TextIO, *, store: EmulatorStore | None = None) -> int:
    """Dry run, apply and re-run two targets against an in-process emulator; returns 0 or 1.

    `store` (default `seeded_store()`) lets a test break one account on purpose.
    """
    logs.configure(level="warning", fmt="console")
    store = store if store is not None else seeded_store()
    with (
        tempfile.TemporaryDirectory(prefix="allowlist-sync-demo-") as folder,
        EmulatorServer(store, quiet=True) as emulator,
    ):
        path = write_config(Path(folder), emulator.url)
        # Built, not read from the environment; the run lock and any state stay in `folder`.
        run = RunSettings.model_construct(cache_dir=Path(folder))
        config = read_config(path, run)
        out.write(
            f"Emulated dbt accounts {PROD_ACCOUNT} (prod) and {SANDBOX_ACCOUNT} (sandbox) at "
            f"{emulator.url}; no network needed.\nThe config file it runs ({CONFIG_NAME}, "
            f"beside the bundled snapshots it names and a token file per account):\n\n"
        )
        out.writelines(f"    {line}\n" if line else "\n" for line in path.read_text().splitlines())
        for number, (title, dry_run) in enumerate(STEPS, 1):
            flag = " --dry-run" if dry_run else ""
            out.write(f"\n--- {number}. {title} ---\n")
            out.write(f"$ allowlist-sync sync --config {CONFIG_NAME}{flag}\n")
            fleet = run_step(config, run, dry_run, out)
            if not fleet.succeeded:
                return 1
        out.write(f"\n{untouched(store)}\n")
    return 0


def run_step(config: FleetConfig, run: RunSettings, dry_run: bool, out: TextIO) -> FleetOutcome:
    """One `sync --config` run, printed as the command prints it, then its requests per target."""
    plans: dict[str, str] = {}

    def keep_plan(name: str, plan: Plan, ranges: RangeSet, current: Rule | None) -> None:
        text = io.StringIO()
        render_plan_text(plan, ranges, current, text)
        plans[name] = text.getvalue()  # one key per target: no two threads share one

    fleet = run_fleet(config, run, RunOptions(dry_run=dry_run), on_plan=keep_plan)
    render_fleet_text(fleet, plans, out)
    counts = "; ".join(
        f"{o.target}: {_count(o.requests, 'API request')}, {_count(o.writes, 'write')}"
        for o in fleet.targets
    )
    out.write(f"[{counts}]\n")
    return fleet


def untouched(store: EmulatorStore) -> str:
    """The closing line: the rules the job does not own, and enforcement, as they were."""
    names = {PROD_ACCOUNT: "prod", SANDBOX_ACCOUNT: "sandbox"}
    others = [
        f"{rule['name']} ({names[account]})"
        for account in names
        for rule in store.snapshot(account)
        if rule["name"] != RULE_NAME
    ]
    enforced = {store.account(account).rule_set_enabled for account in names}
    if len(enforced) == 1:
        enforcement = f"{'on' if enforced.pop() else 'off'} in both accounts"
    else:
        enforcement = ", ".join(
            f"{'on' if store.account(a).rule_set_enabled else 'off'} in {name}"
            for a, name in names.items()
        )
    return f"Other rules untouched: {', '.join(others) or 'none'}; enforcement still {enforcement}."


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
