"""The emulated dbt account tests run against: its identity, settings for it, what it stores."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest

from allowlist_sync.config import DEFAULT_RULE_NAME, Settings, load_settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from tests.feeds import OFFLINE

TOKEN = "dbtc_s3cr3t_test_token_4f9a8b7c"
ACCOUNT_ID = 4242
RULE_NAME = DEFAULT_RULE_NAME

#: Run a test (or a module, as `pytestmark`) against the emulator in both modes.
BOTH_MODES = pytest.mark.parametrize("emulator_mode", ["lenient", "strict"], indirect=True)


def emulator_settings(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> Settings:
    """Settings for the emulator with instant retries; nothing else from the environment."""
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")) and name not in OFFLINE:
            monkeypatch.delenv(name)
    options: dict[str, Any] = {"retry_backoff": 0, "retry_attempts": 3, "http_timeout": 5}
    options.update(overrides)
    return load_settings(account_id=ACCOUNT_ID, token=TOKEN, host_url=emulator.url, **options)


def owned_rule(store: EmulatorStore, name: str = RULE_NAME) -> dict[str, Any] | None:
    """The owned rule as the emulator stores it, or None."""
    rules = [r for r in store.snapshot() if r["name"] == name]
    assert len(rules) <= 1, f"{len(rules)} rules named {name!r}"
    return rules[0] if rules else None


def stored_networks(rule: dict[str, Any]) -> set[str]:
    """The rule's CIDRs, normalised, as strings."""
    return {str(ipaddress.ip_network(c["cidr"], strict=False)) for c in rule["cidrs"]}
