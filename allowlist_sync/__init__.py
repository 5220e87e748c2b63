"""allowlist-sync: keep a dbt IP allowlist rule equal to Azure's AzureActiveDirectory ranges.

The public surface is small and imported lazily, so `allowlist-sync --version` stays cheap:

    from allowlist_sync import Settings, load_settings, run_once, RunOptions, Outcome, Plan
"""

from __future__ import annotations

import importlib
from typing import Any

from allowlist_sync._version import __version__

__all__ = [
    "AllowlistSyncError",
    "Outcome",
    "Plan",
    "RunOptions",
    "Settings",
    "__version__",
    "load_settings",
    "run_once",
]

_LAZY = {
    "AllowlistSyncError": "allowlist_sync.errors",
    "Outcome": "allowlist_sync.outcome",
    "Plan": "allowlist_sync.plan",
    "RunOptions": "allowlist_sync.sync",
    "Settings": "allowlist_sync.config",
    "load_settings": "allowlist_sync.config",
    "run_once": "allowlist_sync.sync",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'allowlist_sync' has no attribute {name!r}")
