"""`allowlist-sync sync --config` as a real process: output per target, exit codes, the file and
the environment never mixing silently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import ExitCode
from tests.cli import cli_env, run_cli
from tests.emulated import TOKEN
from tests.feeds import PUBLIC_FEED

OKTA_FILE = Path(__file__).resolve().parents[1] / "data" / "okta_ip_ranges_20220307.json"
PROD, SANDBOX = 101, 202
WRONG = "dbtc_wrong_token_for_the_sandbox_1234"


@pytest.fixture
def two_accounts() -> Iterator[tuple[EmulatorServer, EmulatorStore]]:
    """One emulator serving two accounts; the sandbox has a token of its own."""
    store = EmulatorStore(
        accounts={PROD: None, SANDBOX: "dbtc_sandbox_own_token_5678"}, token=TOKEN
    )
    with EmulatorServer(store, quiet=True) as server:
        yield server, store


def config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
[sources.entra]
type = "azure-service-tags"
file = "{PUBLIC_FEED}"

[sources.okta]
type = "okta-ip-ranges"
file = "{OKTA_FILE}"
cells = ["us_cell_1"]

[[targets]]
name = "prod"
account_id = {PROD}
host_url = "{url}"
token_env = "PROD_TOKEN"
rule_name = "allowlist-sync: SCIM"
sources = ["entra", "okta"]

[[targets]]
name = "sandbox"
account_id = {SANDBOX}
host_url = "{url}"
token_file = "sandbox-token"
rule_name = "allowlist-sync: SCIM"
sources = ["okta"]
"""
    )
    return path


def env(**extra: str) -> dict[str, str]:
    """A clean environment (no target variables: the file describes the targets)."""
    base = cli_env(PROD_TOKEN=TOKEN, **extra)
    for name in ("ALLOWLIST_SYNC_AZURE_DETAILS_URL", "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE"):
        base.pop(name, None)
    return base


def test_text_output_has_a_block_per_target_and_ends_with_one_summary_line(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore]
) -> None:
    """A dry run prints each target's plan under its own header and one summary line last;
    with --detailed-exitcode it exits 2 and writes nothing."""
    server, store = two_accounts
    (tmp_path / "sandbox-token").write_text("dbtc_sandbox_own_token_5678\n")
    path = config_file(tmp_path, server.url)
    result = run_cli("sync", "--config", str(path), "--dry-run", "--detailed-exitcode", env=env())
    assert result.code == ExitCode.CHANGES_PENDING, result.stderr
    out = result.stdout
    assert "=== target prod: account 101" in out and "=== target sandbox: account 202" in out
    assert out.index("=== target prod") < out.index("=== target sandbox")
    assert "Source entra:" in out and "Source okta:" in out  # the mixed target names both
    last = out.rstrip("\n").splitlines()[-1]
    assert last == "All 2 targets done: 2 with changes pending. Dry run: nothing was written."
    assert store.write_count(PROD) == 0 and store.write_count(SANDBOX) == 0
    assert TOKEN not in out + result.stderr


def test_json_output_lists_targets_and_a_refused_token_fails_only_its_own(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore]
) -> None:
    """`--output json` is one object with `status` and a `targets` list; the sandbox's wrong
    token fails it alone (77) while prod is applied."""
    server, store = two_accounts
    (tmp_path / "sandbox-token").write_text(WRONG)
    path = config_file(tmp_path, server.url)
    result = run_cli("sync", "--config", str(path), "--output", "json", env=env())
    assert result.code == ExitCode.AUTH, result.stderr
    data = result.json()
    assert data["status"] == "failed"
    prod, sandbox = data["targets"]
    assert prod["target"] == "prod" and prod["status"] == "applied"
    assert prod["account_id"] == PROD and prod["rule"]["created"] is True
    assert sandbox["target"] == "sandbox" and sandbox["error"]["kind"] == "auth"
    assert "sandbox-token" in sandbox["error"]["message"]  # names where the token came from
    assert store.write_count(SANDBOX) == 0
    assert WRONG not in result.stdout + result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {e.get("target") for e in events if e["event"] == "run_finished"} == {"prod", "sandbox"}


def test_target_flag_selects_and_an_unknown_target_is_a_usage_error(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore]
) -> None:
    """`--target prod` runs prod alone; a name the file lacks is exit 64 naming the targets."""
    server, store = two_accounts
    (tmp_path / "sandbox-token").write_text(WRONG)
    path = config_file(tmp_path, server.url)
    result = run_cli("sync", "--config", str(path), "--target", "prod", env=env())
    assert result.code == ExitCode.OK, result.stdout + result.stderr
    assert "=== target sandbox" not in result.stdout
    assert result.stdout.rstrip("\n").splitlines()[-1] == "The one target done: 1 applied."
    assert store.write_count(PROD) == 1 and store.write_count(SANDBOX) == 0
    unknown = run_cli("sync", "--config", str(path), "--target", "prod-eu", env=env())
    assert unknown.code == ExitCode.USAGE
    assert "no target 'prod-eu'" in unknown.stderr and "prod, sandbox" in unknown.stderr


def test_the_config_file_may_come_from_the_environment(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore]
) -> None:
    """ALLOWLIST_SYNC_CONFIG names the file when --config is not given."""
    server, _ = two_accounts
    (tmp_path / "sandbox-token").write_text("dbtc_sandbox_own_token_5678")
    path = config_file(tmp_path, server.url)
    result = run_cli("sync", "--dry-run", env=env(ALLOWLIST_SYNC_CONFIG=str(path)))
    assert result.code == ExitCode.OK, result.stderr
    assert "All 2 targets done" in result.stdout


@pytest.mark.parametrize(
    "variable", ["DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_TOKEN", "ALLOWLIST_SYNC_RULE_NAME"]
)
def test_target_variables_beside_a_config_file_are_refused(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore], variable: str
) -> None:
    """The file and the environment never mix silently: a target variable set beside the file
    is exit 78 naming it, one JSON object, nothing written."""
    server, store = two_accounts
    path = config_file(tmp_path, server.url)
    result = run_cli(
        "sync", "--config", str(path), "--output", "json", env=env(**{variable: "4242"})
    )
    assert result.code == ExitCode.CONFIG
    data = result.json()
    assert data["status"] == "failed" and data["targets"] == []
    assert variable in data["error"]["message"] and "config file" in data["error"]["message"]
    assert store.write_count(PROD) == 0


def test_source_flags_and_target_flags_need_the_right_mode(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore]
) -> None:
    """`--source-file` with a config file is 78 (the file names its sources); `--target`
    without one is 64."""
    server, _ = two_accounts
    path = config_file(tmp_path, server.url)
    flagged = run_cli("sync", "--config", str(path), "--source-file", str(PUBLIC_FEED), env=env())
    assert flagged.code == ExitCode.CONFIG
    assert "[sources.NAME]" in flagged.stdout.splitlines()[-1]
    no_file = run_cli("sync", "--target", "prod", env=cli_env(server))
    assert no_file.code == ExitCode.USAGE and "--target needs a config file" in no_file.stderr


def test_a_broken_config_file_is_one_line_and_exit_78(tmp_path: Path) -> None:
    """A TOML syntax error names the file and the line; the status line says FAILED: config."""
    path = tmp_path / "fleet.toml"
    path.write_text("[[targets]\nname = 'x'\n")
    result = run_cli("sync", "--config", str(path), env=env())
    assert result.code == ExitCode.CONFIG
    last = result.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("FAILED: config:") and "fleet.toml" in last


def test_the_metrics_file_holds_every_target_and_a_subset_run_keeps_the_others(
    tmp_path: Path, two_accounts: tuple[EmulatorServer, EmulatorStore]
) -> None:
    """A config-file run writes each target's series under its label; a later `--target prod`
    run keeps the sandbox's last success in the file."""
    server, _ = two_accounts
    (tmp_path / "sandbox-token").write_text("dbtc_sandbox_own_token_5678")
    path = config_file(tmp_path, server.url)
    metrics = tmp_path / "allowlist_sync.prom"
    extra = {"ALLOWLIST_SYNC_METRICS_FILE": str(metrics)}
    assert run_cli("sync", "--config", str(path), env=env(**extra)).code == ExitCode.OK
    success = "allowlist_sync_last_success_timestamp_seconds"
    first = [line for line in metrics.read_text().splitlines() if line.startswith(success)]
    assert len(first) == 2 and any('target="sandbox"' in line for line in first)
    again = run_cli("sync", "--config", str(path), "--target", "prod", env=env(**extra))
    assert again.code == ExitCode.OK, again.stderr
    kept = [line for line in metrics.read_text().splitlines() if line.startswith(success)]
    assert [line for line in kept if 'target="sandbox"' in line] == [
        line for line in first if 'target="sandbox"' in line
    ]
