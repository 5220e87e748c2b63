"""Shared fixtures: the project's own Admin API emulator on loopback, real data, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from allowlist_sync.config import DEFAULT_RULE_NAME, Settings, load_settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore

DATA = Path(__file__).parent / "data"
PUBLIC_FEED = DATA / "ServiceTags_Public_20251028.trimmed.json"
TOKEN = "dbtc_s3cr3t_test_token_4f9a8b7c"
ACCOUNT_ID = 4242
RULE_NAME = DEFAULT_RULE_NAME
#: Nothing listens on the discard port: a test that forgets to give a source fails fast here
#: instead of reaching Microsoft.
OFFLINE = {
    "ALLOWLIST_SYNC_AZURE_DETAILS_URL": "http://127.0.0.1:9/details",
    "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE": "http://127.0.0.1:9/download",
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reaches Microsoft, and none touches the user's real feed cache."""
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ALLOWLIST_SYNC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def feed_doc(path: Path = PUBLIC_FEED) -> dict[str, Any]:
    """A service-tags file as a dict, to modify in a test."""
    return json.loads(path.read_text())


def aad_prefixes(doc: dict[str, Any]) -> list[str]:
    """The AzureActiveDirectory prefixes of a service-tags document."""
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    return list(entry["properties"]["addressPrefixes"])


def write_feed(path: Path, prefixes: list[str], *, base: Path = PUBLIC_FEED) -> Path:
    """Write a copy of a real feed whose AzureActiveDirectory entry holds `prefixes`."""
    doc = feed_doc(base)
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    entry["properties"]["addressPrefixes"] = prefixes
    path.write_text(json.dumps(doc))
    return path


#: Run a test (or a module, as `pytestmark`) against the emulator in both modes.
BOTH_MODES = pytest.mark.parametrize("emulator_mode", ["lenient", "strict"], indirect=True)


@pytest.fixture
def emulator_mode(request: pytest.FixtureRequest) -> str:
    """How the `store` fixture judges writes: "lenient" unless parametrized with BOTH_MODES."""
    return str(getattr(request, "param", "lenient"))


@pytest.fixture
def store(emulator_mode: str) -> EmulatorStore:
    """A fresh emulated account, lenient or strict (see `emulator_mode`)."""
    return EmulatorStore(account_id=ACCOUNT_ID, token=TOKEN, strict=emulator_mode == "strict")


@pytest.fixture
def emulator(store: EmulatorStore) -> Iterator[EmulatorServer]:
    """The emulator serving `store` on a free loopback port."""
    with EmulatorServer(store, quiet=True) as server:
        yield server


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


@pytest.fixture
def settings(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the emulator, with instant retries."""
    return emulator_settings(emulator, monkeypatch)


@dataclass
class CliResult:
    """A finished CLI process."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as the one JSON object `--output json` prints."""
        return json.loads(self.stdout)


def cli_env(emulator: EmulatorServer | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for the CLI: nothing inherited that could change its behaviour."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_"))
    }
    env.update({"ALLOWLIST_SYNC_LOG_FORMAT": "json", "ALLOWLIST_SYNC_RETRY_BACKOFF": "0"})
    env.update(OFFLINE)
    if "ALLOWLIST_SYNC_CACHE_DIR" in os.environ:  # the per-test cache the autouse fixture made
        env["ALLOWLIST_SYNC_CACHE_DIR"] = os.environ["ALLOWLIST_SYNC_CACHE_DIR"]
    if emulator is not None:
        env.update(
            {
                "DBT_CLOUD_HOST_URL": emulator.url,
                "DBT_CLOUD_ACCOUNT_ID": str(ACCOUNT_ID),
                "DBT_CLOUD_TOKEN": TOKEN,
            }
        )
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 60
) -> CliResult:
    """Run `python -m allowlist_sync ARGS` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "allowlist_sync", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def log_events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log events a process wrote to stderr."""
    events = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def owned_rule(store: EmulatorStore, name: str = RULE_NAME) -> dict[str, Any] | None:
    """The owned rule as the emulator stores it, or None."""
    rules = [r for r in store.snapshot() if r["name"] == name]
    assert len(rules) <= 1, f"{len(rules)} rules named {name!r}"
    return rules[0] if rules else None


def stored_networks(rule: dict[str, Any]) -> set[str]:
    """The rule's CIDRs, normalised, as strings."""
    import ipaddress

    return {str(ipaddress.ip_network(c["cidr"], strict=False)) for c in rule["cidrs"]}
