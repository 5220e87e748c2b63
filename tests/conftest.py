"""Shared fixtures: the project's own Admin API emulator on loopback, and an offline feed source.

Helpers live in named modules: `tests.feeds` (real data), `tests.emulated` (the emulated
account), `tests.cli` (the CLI as a process), `tests.receiver` (webhook and Pushgateway stand-in).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from tests.emulated import ACCOUNT_ID, TOKEN, emulator_settings
from tests.feeds import OFFLINE


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reaches Microsoft, and none touches the user's real feed cache."""
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ALLOWLIST_SYNC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


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


@pytest.fixture
def settings(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the emulator, with instant retries."""
    return emulator_settings(emulator, monkeypatch)
