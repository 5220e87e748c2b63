"""A local emulator of the dbt Admin API IP-restriction endpoints, for demos and tests.

The public surface is `__all__`: `EmulatorStore` holds the emulated accounts (one, or several
for a run that syncs several) and answers parsed requests; `AccountView` is one account's
Python API; `EmulatorServer` serves a store over loopback HTTP from a daemon thread;
`serve_forever` is the blocking `allowlist-sync emulator`, started from the `Seed` that
`build_seed` reads from its flags; `Fault` is what a test injects.
Behind it, a module per job (docs/emulator.md describes the behaviour):

    server.py    HTTP: bytes in, bytes out; the daemon thread and the CLI entry
    store.py     EmulatorStore: one lock, the accounts, the request log, the Python API for tests
    served.py    the accounts served: each one's data, token, faults, start-up state, its API
    record.py    the request log: one record per /api/ request, naming its account
    latency.py   the WAN-like delay before every /api/ request, and the requests in flight
    control.py   the /_emulator/ control API (seed, caller IP, enforcement, strict, faults)
    api.py       the /api/ surface: token, IP-restriction gate, routes, reads, rule set
    writes.py    rule create/update semantics, the platform's quirks, lenient and strict
    schema.py    request bodies and query parameters checked against the OpenAPI schemas
    account.py   the account's rules and CIDRs, enforcement, JSON rendering
    envelope.py  the Response value and the {status, data} error envelope
    faults.py    fault injection: which requests, what to break, how many times
    seed.py      the command line's seed: accounts, what each holds, presets; Seed.make_store
    specs.py     the command line's specs: --account-id, --rule, --fault, --caller-ip, --delay
"""

from __future__ import annotations

from allowlist_sync.emulator.account import DEFAULT_ACCOUNT_ID
from allowlist_sync.emulator.api import DEFAULT_TOKEN
from allowlist_sync.emulator.envelope import Response
from allowlist_sync.emulator.faults import Fault
from allowlist_sync.emulator.record import RequestRecord
from allowlist_sync.emulator.seed import Seed, SeedError, build_seed
from allowlist_sync.emulator.served import AccountView, UnknownAccountError
from allowlist_sync.emulator.server import EmulatorServer, bundled_snapshot, serve_forever
from allowlist_sync.emulator.store import EmulatorStore

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_TOKEN",
    "AccountView",
    "EmulatorServer",
    "EmulatorStore",
    "Fault",
    "RequestRecord",
    "Response",
    "Seed",
    "SeedError",
    "UnknownAccountError",
    "build_seed",
    "bundled_snapshot",
    "serve_forever",
]
