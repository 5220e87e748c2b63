"""`allowlist-sync emulator` as a real process: prints what to export, serves, stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx

from tests.conftest import PUBLIC_FEED, cli_env


def test_emulator_command_prints_exports_serves_and_stops() -> None:
    """The printed exports are enough for a sync; SIGTERM ends the process with exit 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "allowlist_sync", "emulator", "--port", "0", "--page-size", "2"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        exports = dict(
            proc.stdout.readline().removeprefix("export ").strip().split("=", 1) for _ in range(3)
        )
        assert set(exports) == {"DBT_CLOUD_HOST_URL", "DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_TOKEN"}
        # The bundled snapshot: `check` also proves the feed can be read (offline here).
        env = {**cli_env(), **exports, "ALLOWLIST_SYNC_SOURCE_FILE": str(PUBLIC_FEED)}
        result = subprocess.run(
            [sys.executable, "-m", "allowlist_sync", "check", "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        url = exports["DBT_CLOUD_HOST_URL"]
        rules = httpx.get(f"{url}/_emulator/state", timeout=5).json()["rules"]
        assert rules == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
