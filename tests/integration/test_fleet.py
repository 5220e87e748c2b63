"""A config file's fleet over loopback: several accounts of one emulator, Entra and Okta sources.

Each target runs the whole pipeline on its own: one target's bad token, broken source or refusal
never holds back the others, and the exit code is the most severe target's.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from allowlist_sync.config import RunSettings, load_run_settings
from allowlist_sync.config.file import FleetConfig, read_config
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import ExitCode
from allowlist_sync.fleet import run_fleet, select_targets
from allowlist_sync.record import read_records
from allowlist_sync.sync import RunOptions
from tests.emulated import TOKEN
from tests.feeds import PUBLIC_FEED

DATA = Path(__file__).resolve().parents[1] / "data"
OKTA_FILE = DATA / "okta_ip_ranges_20220307.json"
PROD, SANDBOX, BROKEN = 101, 202, 303
RULE = "allowlist-sync: SCIM"


@pytest.fixture
def fleet_store() -> EmulatorStore:
    """One emulator serving three accounts with the same token."""
    return EmulatorStore(accounts=[PROD, SANDBOX, BROKEN], token=TOKEN)


@pytest.fixture
def fleet_emulator(fleet_store: EmulatorStore) -> Iterator[EmulatorServer]:
    with EmulatorServer(fleet_store, quiet=True) as server:
        yield server


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> RunSettings:
    """Process settings from a clean environment (every source here is a file): instant retries."""
    for name in list(os.environ):
        if (
            name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_"))
            and name != "ALLOWLIST_SYNC_CACHE_DIR"
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GOOD_TOKEN", TOKEN)
    monkeypatch.setenv("WRONG_TOKEN", "dbtc_not_the_right_token_0000")
    monkeypatch.setenv("ALLOWLIST_SYNC_RETRY_BACKOFF", "0")
    monkeypatch.setenv("ALLOWLIST_SYNC_RETRY_ATTEMPTS", "2")
    return load_run_settings(config_file="fleet.toml")


def target(
    name: str,
    account: int,
    sources: str,
    token_env: str = "GOOD_TOKEN",  # noqa: S107 - a variable name
    **extra: str,
) -> str:
    lines = [
        "[[targets]]",
        f'name = "{name}"',
        f"account_id = {account}",
        'host_url = "{url}"',
        f'token_env = "{token_env}"',
        f'rule_name = "{RULE}"',
        f"sources = [{sources}]",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


SOURCES = f"""
[sources.entra]
type = "azure-service-tags"
file = "{PUBLIC_FEED}"

[sources.okta]
type = "okta-ip-ranges"
file = "{OKTA_FILE}"
cells = ["us_cell_1", "emea_cell_1"]
"""


def write_config(
    tmp_path: Path, emulator: EmulatorServer, *targets: str, sources: str = SOURCES
) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(sources + "\n" + "\n".join(t.replace("{url}", emulator.url) for t in targets))
    return path


def three_targets(tmp_path: Path, emulator: EmulatorServer) -> Path:
    return write_config(
        tmp_path,
        emulator,
        target("prod", PROD, '"entra", "okta"'),
        target("sandbox", SANDBOX, '"okta"'),
        target("broken", BROKEN, '"entra"', token_env="WRONG_TOKEN"),
    )


def networks(store: EmulatorStore, account: int) -> set[str]:
    (rule,) = [r for r in store.snapshot(account) if r["name"] == RULE]
    return {str(ipaddress.ip_network(c["cidr"], strict=False)) for c in rule["cidrs"]}


def published(cells: tuple[str, ...] = ("us_cell_1", "emea_cell_1")) -> set[str]:
    import json

    doc = json.loads(OKTA_FILE.read_text())
    return {p for cell in cells for p in doc[cell]["ip_ranges"]}


def load(path: Path, run: RunSettings) -> FleetConfig:
    return read_config(path, run)


def test_a_bad_token_fails_only_its_target_and_the_others_converge(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """Three targets: the two good ones converge, the one with a refused token is untouched and
    the run exits 77 (the most severe), saying which target failed and why."""
    config = load(three_targets(tmp_path, fleet_emulator), run)
    fleet = run_fleet(config, run)
    by_name = {o.target: o for o in fleet.targets}
    assert [o.target for o in fleet.targets] == ["prod", "sandbox", "broken"]
    assert by_name["prod"].status == "applied" and by_name["sandbox"].status == "applied"
    assert by_name["broken"].status == "failed"
    assert by_name["broken"].error is not None and by_name["broken"].error.kind == "auth"
    assert fleet.exit_code() == ExitCode.AUTH and fleet.status == "failed"
    assert fleet_store.write_count(BROKEN) == 0 and fleet_store.snapshot(BROKEN) == []
    data = fleet.to_json()
    assert data["status"] == "failed" and data["summary"]["applied"] == 2
    assert [t["target"] for t in data["targets"]] == ["prod", "sandbox", "broken"]
    assert data["targets"][2]["error"]["kind"] == "auth"
    assert TOKEN not in str(data)
    # A second run: the good ones are in sync, the bad one still fails alone.
    again = run_fleet(config, run)
    assert [o.status for o in again.targets] == ["in_sync", "in_sync", "failed"]


def test_a_mixed_target_holds_the_union_and_an_okta_only_target_only_okta(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """The Entra+Okta target's rule holds both sources' ranges; the Okta-only target's holds the
    chosen cells' ranges, nothing of Azure's, and no Azure record in its description."""
    config = load(
        write_config(
            tmp_path,
            fleet_emulator,
            target("prod", PROD, '"entra", "okta"', aggregate="false"),
            target("sandbox", SANDBOX, '"okta"', aggregate="false"),
        ),
        run,
    )
    fleet = run_fleet(config, run)
    assert fleet.exit_code() == ExitCode.OK, [str(o.error) for o in fleet.targets]
    okta = published()
    prod = networks(fleet_store, PROD)
    assert okta <= prod and len(prod) > len(okta)
    assert "20.190.128.0/18" in prod  # an AzureActiveDirectory range of the bundled file
    assert networks(fleet_store, SANDBOX) == okta
    (prod_rule,) = fleet_store.snapshot(PROD)
    (sandbox_rule,) = fleet_store.snapshot(SANDBOX)
    assert set(read_records(prod_rule["description"])) == {"Public"}
    assert read_records(sandbox_rule["description"]) == {}
    sources = {s["name"]: s for s in fleet.targets[0].to_json()["sources"]}
    assert sources["okta"]["prefixes"] == {
        "us_cell_1": 535,
        "emea_cell_1": len(published(("emea_cell_1",))),
    }


def test_each_source_is_loaded_once_for_every_target(
    tmp_path: Path, fleet_emulator: EmulatorServer, run: RunSettings
) -> None:
    """Three targets share two sources: each source is fetched and validated once per run."""
    config = load(three_targets(tmp_path, fleet_emulator), run)
    with capture_logs() as logs:
        run_fleet(config, run, RunOptions(dry_run=True))
    loaded = [e["source"] for e in logs if e["event"] == "source_loaded"]
    assert sorted(loaded) == ["entra", "okta"]


def test_a_broken_source_fails_only_the_targets_that_use_it(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """An Okta file that is not JSON fails the targets using it (exit 1, naming the source);
    the Entra-only target still converges."""
    bad = tmp_path / "okta.json"
    bad.write_text("<html>gateway timeout</html>")
    sources = SOURCES.replace(str(OKTA_FILE), str(bad))
    config = load(
        write_config(
            tmp_path,
            fleet_emulator,
            target("prod", PROD, '"entra", "okta"'),
            target("sandbox", SANDBOX, '"entra"'),
            sources=sources,
        ),
        run,
    )
    fleet = run_fleet(config, run)
    prod, sandbox = fleet.targets
    assert prod.status == "failed" and prod.error is not None and prod.error.kind == "feed"
    assert "source okta" in str(prod.error)
    assert sandbox.status == "applied"
    assert fleet_store.write_count(PROD) == 0
    assert fleet.exit_code() == ExitCode.FAILED


def test_an_out_of_scope_static_source_is_refused_before_anything_runs(
    tmp_path: Path, fleet_emulator: EmulatorServer, run: RunSettings
) -> None:
    """A file source holding a private range is refused by the scope guard (exit 3) for the
    targets that use it; nothing is written to their account."""
    doc = '{"us_cell_1": {"ip_ranges": ["10.0.0.0/8", "3.33.136.245/32"]}}'
    (tmp_path / "okta.json").write_text(doc)
    sources = SOURCES.replace(str(OKTA_FILE), str(tmp_path / "okta.json")).replace(
        '"us_cell_1", "emea_cell_1"', '"us_cell_1"'
    )
    config = load(
        write_config(tmp_path, fleet_emulator, target("prod", PROD, '"okta"'), sources=sources),
        run,
    )
    fleet = run_fleet(config, run)
    (prod,) = fleet.targets
    assert prod.status == "refused" and fleet.exit_code() == ExitCode.REFUSED
    assert "10.0.0.0/8" in str(prod.error)


def test_a_retryable_failure_outranks_a_refused_token(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """One target's token refused (77) and another's API failing (1): the run exits 1, so the
    CronJob's back-off and serve's retry still try the failing one again."""
    from allowlist_sync.emulator.specs import parse_fault

    fleet_store.account(PROD).add_fault(parse_fault("status=503,times=99"))
    config = load(three_targets(tmp_path, fleet_emulator), run)
    fleet = run_fleet(config, run, only=["prod", "broken"])
    assert [o.exit_code() for o in fleet.targets] == [ExitCode.FAILED, ExitCode.AUTH]
    assert fleet.exit_code() == ExitCode.FAILED


def test_target_selection_runs_only_the_named_targets(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """`only` runs the named targets in the file's order; an unknown name is refused, naming
    the targets that exist."""
    config = load(three_targets(tmp_path, fleet_emulator), run)
    fleet = run_fleet(config, run, only=["sandbox"])
    assert [o.target for o in fleet.targets] == ["sandbox"]
    assert fleet_store.write_count(PROD) == 0 and fleet_store.write_count(SANDBOX) > 0
    with pytest.raises(ValueError, match=r"no target 'prod-eu'.*prod, sandbox, broken"):
        select_targets(config, ["prod-eu"])


def test_an_unreadable_token_file_fails_only_its_target(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """A target whose token file is missing ends with a configuration error (78) and the
    others still run; the run exits 78 when nothing retryable failed."""
    missing = target("prod", PROD, '"entra"').replace(
        'token_env = "GOOD_TOKEN"', f'token_file = "{tmp_path / "nope"}"'
    )
    config = load(
        write_config(tmp_path, fleet_emulator, missing, target("sandbox", SANDBOX, '"entra"')),
        run,
    )
    fleet = run_fleet(config, run)
    prod, sandbox = fleet.targets
    assert prod.error is not None and prod.error.kind == "config"
    assert sandbox.status == "applied"
    assert fleet.exit_code() == ExitCode.CONFIG


def test_concurrent_targets_each_make_a_one_target_runs_requests(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """Targets run at once (the emulator sees several in flight) and each makes exactly the
    requests of a run alone: list, create, list."""
    fleet_store.latency = 0.05
    config = load(
        write_config(
            tmp_path,
            fleet_emulator,
            target("prod", PROD, '"entra"'),
            target("sandbox", SANDBOX, '"entra"'),
            target("third", BROKEN, '"entra"'),
        ),
        run,
    )
    fleet = run_fleet(config, run)
    assert [o.requests for o in fleet.targets] == [3, 3, 3]
    assert [o.writes for o in fleet.targets] == [1, 1, 1]
    assert fleet_store.peak_in_flight > 1


def test_a_bug_in_one_target_fails_it_alone(
    tmp_path: Path,
    fleet_emulator: EmulatorServer,
    fleet_store: EmulatorStore,
    run: RunSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected exception in one target's pipeline ends that target as failed (exit 1,
    `unexpected error`) and the other target still converges."""
    import allowlist_sync.fleet as fleet_module

    real = fleet_module.sync_target

    def flaky(settings, ranges, options, outcome, *, transport):  # type: ignore[no-untyped-def]
        if outcome.target == "prod":
            raise RuntimeError("boom")
        real(settings, ranges, options, outcome, transport=transport)

    monkeypatch.setattr(fleet_module, "sync_target", flaky)
    config = load(
        write_config(
            tmp_path,
            fleet_emulator,
            target("prod", PROD, '"entra"'),
            target("sandbox", SANDBOX, '"entra"'),
        ),
        run,
    )
    fleet = run_fleet(config, run)
    prod, sandbox = fleet.targets
    assert prod.status == "failed" and "unexpected error: RuntimeError: boom" in str(prod.error)
    assert sandbox.status == "applied"
    assert fleet.exit_code() == ExitCode.FAILED


def test_ctrl_c_stops_the_targets_not_yet_started(
    tmp_path: Path, fleet_emulator: EmulatorServer, fleet_store: EmulatorStore, run: RunSettings
) -> None:
    """Interrupted while the first target plans (one at a time), the run stops: the targets
    that had not started never send a request."""
    config = load(
        write_config(
            tmp_path,
            fleet_emulator,
            target("prod", PROD, '"entra"'),
            target("sandbox", SANDBOX, '"entra"'),
            target("third", BROKEN, '"entra"'),
        ),
        run,
    )
    config = replace(config, concurrency=1)

    def interrupt(name: str, *_: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_fleet(config, run, on_plan=interrupt)
    accounts = {r.account_id for r in fleet_store.requests}
    assert accounts == {PROD}
    assert fleet_store.write_count(PROD) == 0
