"""Fixtures of the hostile suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer
from tests.emulated import emulator_settings


@pytest.fixture
def emulator_settings_factory(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Build emulator settings with overrides (instant retries by default)."""

    def build(**overrides: Any) -> Settings:
        return emulator_settings(emulator, monkeypatch, **overrides)

    return build
