"""`allowlist-sync demo` in this process: two targets from a config file, one emulator, offline.

The demo's one input is the environment it happens to run in (the reader may still have the
walk-through's exports set): it must ignore all of it. Its output is what `sync --config` prints.
"""

from __future__ import annotations

import io
import re
import tempfile
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from allowlist_sync.commands.demo import (
    PROD_ACCOUNT,
    RULE_NAME,
    SANDBOX_ACCOUNT,
    run_demo,
    seeded_store,
)
from allowlist_sync.emulator import EmulatorStore, Fault


def demo_output(store: EmulatorStore | None = None) -> tuple[int, str]:
    """The demo's exit code and everything it printed."""
    out = io.StringIO()
    try:
        code = run_demo(out, store=store)
    finally:
        structlog.reset_defaults()
    return code, out.getvalue()


@dataclass(frozen=True)
class Shown:
    """One run of the demo as shipped: its accounts afterwards, exit code and output."""

    store: EmulatorStore
    office: list[dict[str, Any]]
    code: int
    text: str


@pytest.fixture(scope="module")
def shown() -> Shown:
    """The demo, run once for the tests that only read what it did (it reads no environment)."""
    store = seeded_store()
    office = [r for r in store.snapshot(PROD_ACCOUNT) if r["name"] == "Office VPN"]
    return Shown(store, office, *demo_output(store))


def steps(text: str) -> list[str]:
    """The demo's output cut at each step's title line (the intro first)."""
    return re.split(r"^--- \d\. .*$", text, flags=re.MULTILINE)


def test_the_demo_plans_applies_and_reruns_two_targets(shown: Shown) -> None:
    """Each step shows a block per target and the summary line; the two accounts converge."""
    store, code, text = shown.store, shown.code, shown.text
    assert code == 0, text
    _intro, dry_run, apply, rerun = steps(text)
    for step in (dry_run, apply, rerun):
        assert f"=== target prod: account {PROD_ACCOUNT}, rule '{RULE_NAME}' ===" in step
        assert f"=== target sandbox: account {SANDBOX_ACCOUNT}, rule '{RULE_NAME}' ===" in step
    assert "Plan: add 5, remove 2, keep 240." in dry_run  # prod: Entra and Okta
    assert "Plan: add 1, remove 1, keep 28." in dry_run  # sandbox: Okta alone
    assert "All 2 targets done: 2 with changes pending. Dry run: nothing was written." in dry_run
    assert "Applied: 5 added, 2 removed; verified 245 CIDRs" in apply
    assert "Applied: 1 added, 1 removed; verified 29 CIDRs" in apply
    assert "All 2 targets done: 2 applied." in apply
    assert "No changes. The rule holds exactly the desired 245 CIDRs." in rerun
    assert "No changes. The rule holds exactly the desired 29 CIDRs." in rerun
    assert "All 2 targets done: 2 in sync." in rerun
    desired = {  # what each account's owned rule holds at the end
        account: next(r for r in store.snapshot(account) if r["name"] == RULE_NAME)
        for account in (PROD_ACCOUNT, SANDBOX_ACCOUNT)
    }
    assert len(desired[PROD_ACCOUNT]["cidrs"]) == 245
    assert len(desired[SANDBOX_ACCOUNT]["cidrs"]) == 29


def test_the_demo_pins_each_targets_requests(shown: Shown) -> None:
    """A dry run lists once, an apply lists, writes once and verifies, a re-run only lists."""
    footers = re.findall(r"^\[prod: (.*); sandbox: (.*)\]$", shown.text, flags=re.MULTILINE)
    one_list, change = "1 API request, 0 writes", "3 API requests, 1 write"
    assert footers == [(one_list, one_list), (change, change), (one_list, one_list)]


def test_the_demo_prints_the_config_file_it_runs(shown: Shown) -> None:
    """The intro holds the two-target config file, a valid one naming both sources and tokens
    by file, never a token."""
    intro = steps(shown.text)[0]
    block = [line for line in intro.splitlines() if line.startswith("    ") or not line]
    config = tomllib.loads(textwrap.dedent("\n".join(block)))
    assert sorted(config["sources"]) == ["entra", "okta"]
    assert config["sources"]["okta"]["cells"] == ["us_cell_12"]
    targets = {t["name"]: t for t in config["targets"]}
    assert targets["prod"]["sources"] == ["entra", "okta"]
    assert targets["sandbox"]["sources"] == ["okta"]
    assert {t["account_id"] for t in targets.values()} == {PROD_ACCOUNT, SANDBOX_ACCOUNT}
    assert all("token_file" in t for t in targets.values())
    assert "dbtc_" not in intro


def test_the_demo_leaves_other_rules_and_enforcement_alone(shown: Shown) -> None:
    """Someone else's rule in prod is as it was; neither account's enforcement changed."""
    store, text = shown.store, shown.text
    assert [r for r in store.snapshot(PROD_ACCOUNT) if r["name"] == "Office VPN"] == shown.office
    assert store.enforcement_flips == 0
    assert store.account(SANDBOX_ACCOUNT).enforcement_flips == 0
    assert "Other rules untouched: Office VPN (prod); enforcement still off in both accounts." in (
        text
    )


def test_the_demo_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The walk-through's exports, a config file, a bad or unknown setting, a cache folder: the
    demo runs as ever and writes nothing outside its own temporary folder."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for name, value in {
        "DBT_CLOUD_HOST_URL": "http://127.0.0.1:9",
        "DBT_CLOUD_ACCOUNT_ID": "4242",
        "DBT_CLOUD_TOKEN": "dbtc_walkthrough_token",
        "ALLOWLIST_SYNC_RULE_NAME": "Entra SCIM (by hand)",
        "ALLOWLIST_SYNC_CONFIG": str(tmp_path / "missing.toml"),
        "ALLOWLIST_SYNC_HTTP_TIMEOUT": "nonsense",
        "ALLOWLIST_SYNC_NO_SUCH_SETTING": "1",
        "ALLOWLIST_SYNC_MAX_FEED_AGE": "1h",
        "ALLOWLIST_SYNC_METRICS_FILE": str(tmp_path / "metrics.prom"),
        "ALLOWLIST_SYNC_CACHE_DIR": str(cache),
    }.items():
        monkeypatch.setenv(name, value)
    code, text = demo_output()
    assert code == 0, text
    assert "All 2 targets done: 2 in sync." in text
    assert list(cache.iterdir()) == [] and not (tmp_path / "metrics.prom").exists()


def test_the_demo_runs_in_a_temporary_folder_of_any_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Quotes, a backslash, spaces, a token-like word and non-ASCII in the temporary folder's
    path change nothing: the config file names its files relative to itself."""
    odd = tmp_path / 'odd "tmp" \\ dbtc_abcdefgh_1 \u00e9'
    odd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    code, text = demo_output()
    assert code == 0, text
    assert "All 2 targets done: 2 in sync." in text
    assert list(odd.iterdir()) == []  # the demo's folder is gone


def test_the_demo_shows_one_target_failing_without_holding_back_the_other() -> None:
    """A sandbox that refuses the write fails alone: prod still converges, the demo exits 1."""
    store = seeded_store()
    store.account(SANDBOX_ACCOUNT).add_fault(
        Fault(method="PUT", action="status", status=403, times=10)
    )
    code, text = demo_output(store)
    assert code == 1
    apply = steps(text)[2]
    assert "Applied: 5 added, 2 removed; verified 245 CIDRs" in apply
    assert "FAILED: 1 of 2 targets: sandbox (permission)." in apply
    assert len(steps(text)) == 3  # it stops after the step that failed
