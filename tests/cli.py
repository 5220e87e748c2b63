"""Run the CLI as a real process with a clean environment, and read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from allowlist_sync.emulator import EmulatorServer
from tests.emulated import ACCOUNT_ID, TOKEN
from tests.feeds import OFFLINE


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
