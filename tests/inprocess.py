"""Run `allowlist-sync` in this process (faster than a subprocess) with a clean environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import structlog

from allowlist_sync.cli import main
from allowlist_sync.emulator import EmulatorServer
from tests.emulated import ACCOUNT_ID, TOKEN
from tests.feeds import OFFLINE


@dataclass
class Result:
    """Exit code and captured output of one in-process command."""

    code: int
    stdout: str
    stderr: str


def run_main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    *args: str,
    **env: str,
) -> Result:
    """`allowlist-sync ARGS` against the emulator, with `env` on top of a clean environment."""
    cache_dir = os.environ.get("ALLOWLIST_SYNC_CACHE_DIR")  # the per-test one (conftest)
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.delenv(name)
    if cache_dir is not None:
        monkeypatch.setenv("ALLOWLIST_SYNC_CACHE_DIR", cache_dir)
    base = {
        "DBT_CLOUD_HOST_URL": emulator.url,
        "DBT_CLOUD_ACCOUNT_ID": str(ACCOUNT_ID),
        "DBT_CLOUD_TOKEN": TOKEN,
        "ALLOWLIST_SYNC_RETRY_BACKOFF": "0",
        "ALLOWLIST_SYNC_RETRY_ATTEMPTS": "2",
        "ALLOWLIST_SYNC_LOG_FORMAT": "json",
        **OFFLINE,  # discovery (`check`, a sync without a source) never reaches Microsoft
    }
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = main(list(args))
    finally:
        out, err = capsys.readouterr()
        structlog.reset_defaults()
    return Result(code, out, err)
