"""A local emulator of the dbt Admin API IP-restriction endpoints, for demos and tests.

`EmulatorStore` holds the state and answers parsed requests; `EmulatorServer` serves it over
loopback HTTP from a daemon thread; `serve_forever` is the blocking `allowlist-sync emulator`.
"""

from __future__ import annotations

from allowlist_sync.emulator.faults import Fault
from allowlist_sync.emulator.server import EmulatorServer, serve_forever
from allowlist_sync.emulator.store import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_TOKEN,
    EmulatorStore,
    RequestRecord,
    Response,
)

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_TOKEN",
    "EmulatorServer",
    "EmulatorStore",
    "Fault",
    "RequestRecord",
    "Response",
    "serve_forever",
]
