"""Two runs at once never leave two owned rules, and the one delete touches only its own rule."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from allowlist_sync.config import Settings
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.emulator.faults import Fault
from allowlist_sync.errors import OwnershipError
from allowlist_sync.outcome import Outcome
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import ACCOUNT_ID, RULE_NAME, TOKEN
from tests.feeds import PUBLIC_FEED

OPTIONS = RunOptions(source_file=str(PUBLIC_FEED))


def run_together(settings: list[Settings]) -> list[Outcome]:
    """Start one run per settings at the same moment; wait for all (bounded)."""
    outcomes: list[Outcome] = []
    start = threading.Barrier(len(settings))

    def one(s: Settings) -> None:
        start.wait()
        outcomes.append(run_once(s, OPTIONS))

    threads = [threading.Thread(target=one, args=(s,)) for s in settings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a run hung"
    return outcomes


def owned(store: EmulatorStore) -> list[dict[str, Any]]:
    """The active rules carrying the owned name."""
    return [r for r in store.snapshot() if r["name"] == RULE_NAME]


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_two_machines_creating_at_once_end_with_one_rule(
    emulator_settings_factory: Any, store: EmulatorStore, tmp_path: Path, attempt: int
) -> None:
    """Both runs create (their creates overlap); the creator of the higher id deletes its own."""
    office = store.seed_rule("Office", cidrs=["198.51.100.0/24"])
    before = {r["id"]: r for r in store.snapshot()}[office]
    # Both first listings are answered only after both were read: each run sees no rule, and both
    # create it, the race the issue reproduced. The second create (the higher id) always re-lists
    # after both exist.
    store.add_fault(
        Fault(method="GET", path_regex="ip-restrictions/$", action="delay_after", seconds=1,
              times=2)
    )  # fmt: skip
    runs = [
        emulator_settings_factory(cache_dir=tmp_path / f"machine-{n}-{attempt}") for n in (1, 2)
    ]
    outcomes = run_together(runs)
    assert sorted(o.status for o in outcomes) == ["applied", "applied"]
    rules = owned(store)
    assert len(rules) == 1, rules
    assert {o.rule_id for o in outcomes} == {rules[0]["id"]}
    posts = [r for r in store.requests if r.method == "POST" and r.processed]
    deletes = [r for r in store.requests if r.method == "DELETE"]
    assert len(posts) == 2 and len(deletes) == 1
    assert int(deletes[0].path.rsplit("/", 1)[-1]) > rules[0]["id"]  # the higher id went
    assert {r["id"]: r for r in store.snapshot()}[office] == before


def test_two_runs_on_one_machine_never_overlap(
    emulator_settings_factory: Any, store: EmulatorStore, tmp_path: Path
) -> None:
    """Runs sharing a cache folder take turns (a file lock): one create, then a run in sync."""
    store.add_fault(Fault(method="POST", action="delay_after", seconds=0.5))
    shared = emulator_settings_factory(cache_dir=tmp_path / "shared")
    outcomes = run_together([shared, shared])
    assert sorted(o.status for o in outcomes) == ["applied", "in_sync"]
    assert len(owned(store)) == 1
    assert [r.method for r in store.requests if r.method != "GET"] == ["POST"]


def test_the_client_deletes_only_a_rule_it_created(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """Deleting any id this client did not create is refused before anything is sent."""
    office = store.seed_rule("Office", cidrs=["198.51.100.0/24"])
    client = DbtClient(
        host_url=emulator.url,
        account_id=ACCOUNT_ID,
        token=SecretStr(TOKEN),
        owned_rule_name=RULE_NAME,
    )
    with client, pytest.raises(OwnershipError, match="deletes only a rule it created"):
        client.delete_created_rule(office)
    assert store.requests == [] and len(store.snapshot()) == 1
