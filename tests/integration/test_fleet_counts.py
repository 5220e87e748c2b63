"""The fleet benchmark's scenario, counted: 8 accounts on one emulator cost 8 one-account runs'
requests and no more, and each source is loaded once whatever the number of targets.

The scenario of `benchmarks/fleet_scale.py` in-process (`fleet.run_fleet`, concurrency 4): one
Azure source and one Okta source, both from files, feeding 8 targets on 8 accounts of one
emulator. Requests are counted per account in the emulator's log; nothing is timed.

The targets share one loopback transport (`run_fleet(dbt_transport=...)`): what they ask is the
same, and the test does not build eight TLS contexts it never uses (about 50 ms of CPU each).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from allowlist_sync.config import RunSettings, load_run_settings
from allowlist_sync.config.file import FleetConfig, read_config
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.fleet import run_fleet
from allowlist_sync.outcome import FleetOutcome
from tests.feeds import aad_prefixes, feed_doc, write_feed

ROOT = Path(__file__).parents[2]
OKTA_FEED = ROOT / "allowlist_sync/data/okta_ip_ranges_20220307.json"
OKTA_CELLS = ("us_cell_12", "us_cell_14")  # small cells: the counts do not depend on the size
AZURE_PREFIXES = 24  # the real feed's first Entra ID ranges, for the same reason
TOKEN = "dbtc_fleet_counts_test_token_8a7b6c"
TOKEN_ENV = "FLEET_DBT_TOKEN"
ACCOUNTS = tuple(range(5001, 5009))
RULE_NAME = "allowlist-sync: SCIM"
SOURCES = ("entra", "okta")
#: What one target alone asks of its account: a first run and a steady (in-sync) run.
FIRST_RUN = [("GET", "rules"), ("POST", "rules"), ("GET", "rules")]
STEADY_RUN = [("GET", "rules")]


def config_text(url: str, accounts: Sequence[int], feed: Path, concurrency: int = 4) -> str:
    """The benchmark's config file: both sources, one target per account fed by both."""
    text = f"""\
concurrency = {concurrency}

[sources.entra]
type = "azure-service-tags"
file = {json.dumps(str(feed))}

[sources.okta]
type = "okta-ip-ranges"
file = {json.dumps(str(OKTA_FEED))}
cells = {json.dumps(list(OKTA_CELLS))}
"""
    for account in accounts:
        text += f"""
[[targets]]
name = "account-{account}"
account_id = {account}
host_url = "{url}"
token_env = "{TOKEN_ENV}"
rule_name = "{RULE_NAME}"
sources = ["entra", "okta"]
"""
    return text


class SharedTransport(httpx.HTTPTransport):
    """One loopback connection pool for every target; closed by the test, not by a client."""

    def close(self) -> None:
        pass

    def shut(self) -> None:
        super().close()


@pytest.fixture
def transport() -> Iterator[SharedTransport]:
    """The transport every target's client sends through."""
    shared = SharedTransport()
    yield shared
    shared.shut()


@pytest.fixture
def store() -> EmulatorStore:
    """Eight accounts on one emulator, each taking the one token, answering at once."""
    return EmulatorStore(accounts=list(ACCOUNTS), token=TOKEN)


@pytest.fixture
def emulator(store: EmulatorStore) -> Iterator[EmulatorServer]:
    """The emulator serving the eight accounts on a free loopback port."""
    with EmulatorServer(store, quiet=True) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No target or source variable of the environment (refused beside a config file; the
    sources here are files, so nothing is discovered); the run lock in the test's cache."""
    for name in list(os.environ):
        if name.startswith("DBT_CLOUD_") or (
            name.startswith("ALLOWLIST_SYNC_") and name != "ALLOWLIST_SYNC_CACHE_DIR"
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def fleet_config(
    tmp_path: Path, url: str, accounts: Sequence[int] = ACCOUNTS
) -> tuple[FleetConfig, RunSettings]:
    """The config file (concurrency 4) written and read, and the process settings beside it."""
    feed = tmp_path / "ServiceTags_Public.json"
    if not feed.exists():
        write_feed(feed, aad_prefixes(feed_doc())[:AZURE_PREFIXES])
    path = tmp_path / f"fleet-{len(accounts)}-{url.rsplit(':', 1)[-1]}.toml"
    path.write_text(config_text(url, accounts, feed), encoding="utf-8")
    run = load_run_settings(config_file=str(path), retry_backoff=0, http_timeout=5)
    return read_config(path, run), run


Requests = dict[int, list[tuple[str, str]]]


def counted_run(
    config: FleetConfig,
    run: RunSettings,
    store: EmulatorStore,
    transport: httpx.BaseTransport,
    only: Sequence[str] = (),
) -> tuple[FleetOutcome, Requests, Counter[str]]:
    """Run the fleet once: its outcome, each account's requests (method, what they name) in
    order, and how many times each source was loaded."""
    before = len(store.requests)
    with capture_logs() as events:
        fleet = run_fleet(config, run, only=only, dbt_transport=transport)
    per_account: Requests = {}
    for record in store.requests[before:]:
        assert record.account_id is not None, record.path
        per_account.setdefault(record.account_id, []).append((record.method, shape(record.path)))
    loaded = Counter(e["source"] for e in events if e["event"] == "source_loaded")
    return fleet, per_account, loaded


def shape(path: str) -> str:
    """What a request names, the account left out: "rules", "rule" (one by id), or the path."""
    if re.fullmatch(r"/api/v3/accounts/\d+/ip-restrictions/", path):
        return "rules"
    if re.fullmatch(r"/api/v3/accounts/\d+/ip-restrictions/\d+/", path):
        return "rule"
    return path


def statuses(fleet: FleetOutcome) -> set[str]:
    """The statuses the targets ended with."""
    return {o.status for o in fleet.targets}


ONCE = Counter(dict.fromkeys(SOURCES, 1))


def test_a_first_run_asks_each_of_8_accounts_what_one_target_alone_asks(
    tmp_path: Path, emulator: EmulatorServer, store: EmulatorStore, transport: SharedTransport
) -> None:
    """A first run over 8 accounts asks each list + create + list, as one target alone does,
    and loads each source once, as one target alone does."""
    config, run = fleet_config(tmp_path, emulator.url)
    alone, alone_requests, alone_loaded = counted_run(
        config, run, store, transport, only=["account-5001"]
    )
    assert statuses(alone) == {"applied"} and len(alone.targets) == 1
    assert alone_requests == {5001: FIRST_RUN} and alone_loaded == ONCE
    store.reset()

    fleet, per_account, loaded = counted_run(config, run, store, transport)

    assert statuses(fleet) == {"applied"} and len(fleet.targets) == 8
    assert per_account == {account: alone_requests[5001] for account in ACCOUNTS}
    assert [(o.requests, o.writes) for o in fleet.targets] == [(3, 1)] * 8
    assert [store.write_count(account) for account in ACCOUNTS] == [1] * 8
    assert loaded == ONCE


def test_a_steady_run_is_one_list_per_account_as_for_one_target_alone(
    tmp_path: Path, emulator: EmulatorServer, store: EmulatorStore, transport: SharedTransport
) -> None:
    """Once every rule holds its ranges, a run over 8 accounts is one GET each and no write, as
    one target alone, and each source is still loaded once."""
    config, run = fleet_config(tmp_path, emulator.url)
    counted_run(config, run, store, transport)
    writes = [store.write_count(a) for a in ACCOUNTS]
    alone, alone_requests, alone_loaded = counted_run(
        config, run, store, transport, only=["account-5008"]
    )
    assert statuses(alone) == {"in_sync"}
    assert alone_requests == {5008: STEADY_RUN} and alone_loaded == ONCE

    fleet, per_account, loaded = counted_run(config, run, store, transport)

    assert statuses(fleet) == {"in_sync"}
    assert per_account == {account: alone_requests[5008] for account in ACCOUNTS}
    assert [(o.requests, o.writes) for o in fleet.targets] == [(1, 0)] * 8
    assert [store.write_count(a) for a in ACCOUNTS] == writes
    assert loaded == ONCE


def test_targets_wait_on_their_accounts_side_by_side_up_to_the_concurrency(
    tmp_path: Path, emulator: EmulatorServer, store: EmulatorStore, transport: SharedTransport
) -> None:
    """With each account a round trip away, 4 targets' requests are in flight at once, never 5."""
    config, run = fleet_config(tmp_path, emulator.url, ACCOUNTS[:4])
    counted_run(config, run, store, transport)  # the rules as the fleet writes them, to seed
    # A fresh emulator (its peak counted from zero) whose accounts already hold their rules,
    # so the measured run is one GET each; the wait is long beside a target's own work.
    far = EmulatorStore(accounts=list(ACCOUNTS[:4]), token=TOKEN, latency=0.5)
    for account in ACCOUNTS[:4]:
        rule = store.snapshot(account)[0]
        cidrs = [c["cidr"] for c in rule["cidrs"]]
        far.account(account).seed_rule(RULE_NAME, cidrs=cidrs, description=rule["description"])
    with EmulatorServer(far, quiet=True) as server:
        config, run = fleet_config(tmp_path, server.url, ACCOUNTS[:4])
        fleet, per_account, _ = counted_run(config, run, far, transport)

    assert statuses(fleet) == {"in_sync"}
    assert per_account == {account: STEADY_RUN for account in ACCOUNTS[:4]}
    assert 2 <= far.peak_in_flight <= 4
