"""`allowlist-sync check-ip` as a real process: the environment's one target, a config file,
bad addresses, the JSON object, and that it only ever reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.emulator.account import DENY
from allowlist_sync.errors import ExitCode
from tests.cli import cli_env, log_events, run_cli
from tests.e2e.test_startup import HEAVY
from tests.emulated import ACCOUNT_ID, RULE_NAME, TOKEN
from tests.feeds import OFFLINE, PUBLIC_FEED

ENTRA_IP = "20.190.128.5"
CALLER = "9.9.9.9"


@pytest.fixture
def enforced(store: EmulatorStore) -> EmulatorStore:
    """The emulated account enforcing, with an "Office" rule letting this job's caller in."""
    store.caller_ip = CALLER
    store.seed_rule("Office", cidrs=[f"{CALLER}/32"])
    store.set_enforcement(True)
    return store


def test_env_mode_with_a_source_file_answers_for_the_one_target(
    emulator: EmulatorServer, enforced: EmulatorStore
) -> None:
    """Without a config file: the environment's account and `--source-file`; exit 0, GETs only."""
    owned = enforced.seed_rule(RULE_NAME, cidrs=["20.190.128.0/18"])
    result = run_cli("check-ip", "--source-file", str(PUBLIC_FEED), ENTRA_IP, env=cli_env(emulator))
    assert result.code == ExitCode.OK, result.stderr
    assert result.stdout.splitlines() == [
        f"{ENTRA_IP}  azure: AzureActiveDirectory 20.190.128.0/18",
        f"  default: LET IN by rule {owned} {RULE_NAME!r} (20.190.128.0/18, the owned rule); "
        "enforcement on",
        f"{ENTRA_IP} is let in by every target.",
    ]
    assert {r.method for r in enforced.requests} == {"GET"}
    assert "check_ip_finished" in [e["event"] for e in log_events(result.stderr)]


def test_env_mode_json_names_the_account_and_a_deny_rule(
    emulator: EmulatorServer, enforced: EmulatorStore
) -> None:
    """`--output json`: one object; the deny rule holding the address blocks it, exit 1."""
    enforced.seed_rule(RULE_NAME, cidrs=["20.190.128.0/18"])
    deny = enforced.seed_rule("Blocklist", DENY, ["20.190.128.5/32"])
    result = run_cli(
        "check-ip",
        "--output",
        "json",
        "--source-file",
        str(PUBLIC_FEED),
        ENTRA_IP,
        env=cli_env(emulator),
    )
    assert result.code == ExitCode.FAILED
    report = result.json()
    item = report["addresses"][0]["targets"][0]
    assert (item["target"], item["account_id"], item["let_in"]) == ("default", ACCOUNT_ID, False)
    assert item["denied_by"] == [{"id": deny, "name": "Blocklist", "cidr": "20.190.128.5/32"}]
    assert report["ok"] is False and report["summary"] == f"BLOCKED: {ENTRA_IP} by default."
    assert enforced.write_count() == 0


def test_env_mode_a_source_that_cannot_be_read_still_answers_for_the_target(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """Discovery unreachable: the source is named as failed, the account is still read."""
    store.seed_rule(RULE_NAME, cidrs=["20.190.128.0/18"])
    result = run_cli("check-ip", "--output", "json", ENTRA_IP, env=cli_env(emulator))
    report = result.json()
    assert [s["source"] for s in report["sources_failed"]] == ["azure"]
    assert report["addresses"][0]["targets"][0]["let_in"] is True
    assert result.code == ExitCode.OK


def test_a_config_file_with_a_token_file_reads_each_target(
    emulator: EmulatorServer, enforced: EmulatorStore, tmp_path: Path
) -> None:
    """ALLOWLIST_SYNC_CONFIG and a token file: the target answers, the token never shows."""
    enforced.seed_rule("scim", cidrs=["40.126.0.0/18"])
    token = tmp_path / "token"
    token.write_text(TOKEN)
    config = tmp_path / "fleet.toml"
    config.write_text(
        f"""
[sources.entra]
type = "azure-service-tags"
file = "{PUBLIC_FEED}"

[[targets]]
name = "prod"
account_id = {ACCOUNT_ID}
host_url = "{emulator.url}"
token_file = "token"
rule_name = "scim"
sources = ["entra"]
"""
    )
    env = cli_env(ALLOWLIST_SYNC_CONFIG=str(config))
    for name in OFFLINE:
        env.pop(name)
    result = run_cli("check-ip", ENTRA_IP, "40.126.0.9", env=env)
    assert result.code == ExitCode.FAILED, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("  prod: BLOCKED: no active allow rule holds it (owned rule 'scim'")
    assert lines[3].startswith("  prod: LET IN by rule ")
    assert lines[-1] == f"BLOCKED: {ENTRA_IP} by prod."
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_bad_address_exits_64_before_anything_is_read(
    emulator: EmulatorServer, store: EmulatorStore, output: str
) -> None:
    """A network given as the address: one line on stderr, exit 64, no request sent."""
    result = run_cli("check-ip", "--output", output, "20.190.128.0/18", env=cli_env(emulator))
    assert result.code == ExitCode.USAGE
    assert "is a network, not an address" in result.stderr
    if output == "json":
        assert result.json()["error"]["kind"] == "usage"
    else:
        assert result.stdout == ""
    assert store.requests == []


def test_a_refused_token_exits_77_with_the_target_unknown(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """The platform refusing the token: the target's line says UNKNOWN, exit 77, no traceback."""
    env = cli_env(emulator, DBT_CLOUD_TOKEN="dbtc_wrong_token_for_this_account_00")
    result = run_cli("check-ip", "--source-file", str(PUBLIC_FEED), ENTRA_IP, env=env)
    assert result.code == ExitCode.AUTH
    assert "  default: UNKNOWN: could not read the account: " in result.stdout
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines()[-1] == "UNKNOWN: not read: default (auth)."


PROBE = """
import sys
from allowlist_sync.cli import main
try:
    main(["check-ip", "--help"])
except SystemExit:
    pass
print(",".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def test_check_ip_help_imports_no_heavy_module() -> None:
    """`check-ip --help` documents the command and loads no HTTP or logging library."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--target NAME" in proc.stdout and "ADDR" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1:] in ([], [""])
