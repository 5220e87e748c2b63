"""`allowlist-sync serve --config` as a real process: every target at each run, each reported
on its own in /status and /metrics."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from tests.cli import cli_env
from tests.emulated import TOKEN
from tests.feeds import PUBLIC_FEED
from tests.receiver import free_port

PROD, SANDBOX = 101, 202


@pytest.fixture
def two_accounts() -> Iterator[tuple[EmulatorServer, EmulatorStore]]:
    store = EmulatorStore(accounts=[PROD, SANDBOX], token=TOKEN)
    with EmulatorServer(store, quiet=True) as server:
        yield server, store


def test_serve_runs_every_target_and_reports_each(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore]
) -> None:
    """The start-up run syncs the good target and reports the one with a wrong token alone:
    /status lists both with their own status, /metrics labels each series by target."""
    server, store = two_accounts
    config = tmp_path / "fleet.toml"
    blocks = [
        f'[sources.entra]\ntype = "azure-service-tags"\nfile = "{PUBLIC_FEED}"\n',
        *(
            f'[[targets]]\nname = "{name}"\naccount_id = {account}\nhost_url = "{server.url}"\n'
            f'token_env = "{var}"\nrule_name = "allowlist-sync: SCIM"\nsources = ["entra"]\n'
            for name, account, var in (("prod", PROD, "GOOD"), ("sandbox", SANDBOX, "BAD"))
        ),
    ]
    config.write_text("\n".join(blocks))
    port = free_port()
    env = cli_env(
        ALLOWLIST_SYNC_CONFIG=str(config),
        ALLOWLIST_SYNC_HEALTH_HOST="127.0.0.1",
        ALLOWLIST_SYNC_HEALTH_PORT=str(port),
        ALLOWLIST_SYNC_RETRY_ATTEMPTS="2",
        GOOD=TOKEN,
        BAD="dbtc_not_this_accounts_token_000",
    )
    for name in ("ALLOWLIST_SYNC_AZURE_DETAILS_URL", "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE"):
        env.pop(name, None)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "allowlist_sync", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            status = wait_for_run(proc, port, log)
            targets = {t["target"]: t for t in status["last_run"]["targets"]}
            assert targets["prod"]["status"] == "applied"
            assert targets["sandbox"]["status"] == "failed"
            assert targets["sandbox"]["exit_code"] == 77
            assert status["last_run"]["exit_code"] == 77
            assert store.write_count(PROD) == 1 and store.write_count(SANDBOX) == 0
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            labelled = {
                (s.labels.get("target"), s.labels.get("status"))
                for family in text_string_to_metric_families(metrics)
                for s in family.samples
                if s.name == "allowlist_sync_runs_total" and s.value > 0
            }
            assert labelled == {("prod", "applied"), ("sandbox", "failed")}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def wait_for_run(proc: subprocess.Popen[bytes], port: int, log: Any) -> dict[str, Any]:
    """/status once the first run finished."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(log.read().decode())
        try:
            body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()
            if body.get("last_run"):
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    log.seek(0)
    raise AssertionError("no run finished; stderr:\n" + log.read().decode())
