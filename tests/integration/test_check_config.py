"""`allowlist-sync check --config FILE`: the preflight of every target of a config file.

Each test runs the real command in-process against one emulator serving two accounts on
loopback, with sources read from files (Azure's real trimmed file, Okta's real snapshot, a
static list), and checks the verdict, the exit code, the per-target checks and that nothing
was written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from allowlist_sync.cli import main
from allowlist_sync.commands import preflight_fleet
from allowlist_sync.commands.preflight import Preflight
from allowlist_sync.commands.preflight_fleet import FleetPreflight, TargetCheck
from allowlist_sync.config.file import TargetSpec
from allowlist_sync.emulator import DEFAULT_TOKEN, EmulatorServer, EmulatorStore
from allowlist_sync.errors import AllowlistSyncError, AuthError, ConfigError, FeedError
from tests.fakes.okta import SNAPSHOT, OktaS3, snapshot_doc
from tests.feeds import OFFLINE, PUBLIC_FEED, aad_prefixes, feed_doc
from tests.inprocess import Result

PROD, SANDBOX = 4242, 5151
SANDBOX_TOKEN = "dbtc_sandbox_token_5151_abcdef"
RULE = "allowlist-sync: SCIM"
OFFICE = "Office VPN"
PUBLISHED = aad_prefixes(feed_doc())
CHANGE_NUMBER = feed_doc()["changeNumber"]
OKTA_CELL = "us_cell_1"
OKTA_PREFIXES = snapshot_doc()[OKTA_CELL]["ip_ranges"]
PARTNER = "8.8.8.0/24"
#: The per-target checks, in report order (today's checks; `sources` stands for `feed`).
TARGET_CHECKS = ["config", "api", "write", "rules", "enforcement", "caller", "sources"]


@pytest.fixture
def two() -> Iterator[EmulatorServer]:
    """One emulator serving prod (the emulator's token) and sandbox (its own token)."""
    store = EmulatorStore(accounts={PROD: None, SANDBOX: SANDBOX_TOKEN})
    with EmulatorServer(store, quiet=True) as server:
        yield server


def fleet_toml(
    server: EmulatorServer,
    folder: Path,
    *,
    okta_file: Path | str = SNAPSHOT,
    prod_sources: tuple[str, ...] = ("entra", "okta"),
    sandbox_sources: tuple[str, ...] = ("okta", "partner"),
    sandbox_token: str | None = SANDBOX_TOKEN,
) -> Path:
    """A two-target config file over the emulator; sandbox's token in a file beside it.

    `okta_file`: Okta's file, or (a str starting with http) the URL to download it from."""
    okta_key = "url" if str(okta_file).startswith("http") else "file"
    if sandbox_token is not None:
        (folder / "sandbox-token").write_text(sandbox_token + "\n")
    text = f"""\
[sources.entra]
type = "azure-service-tags"
file = {json.dumps(str(PUBLIC_FEED))}

[sources.okta]
type = "okta-ip-ranges"
cells = [{json.dumps(OKTA_CELL)}]
{okta_key} = {json.dumps(str(okta_file))}

[sources.partner]
type = "static"
cidrs = [{json.dumps(PARTNER)}]

[[targets]]
name = "prod"
account_id = {PROD}
host_url = {json.dumps(server.url)}
token_env = "PROD_DBT_TOKEN"
rule_name = {json.dumps(RULE)}
sources = {json.dumps(list(prod_sources))}

[[targets]]
name = "sandbox"
account_id = {SANDBOX}
host_url = {json.dumps(server.url)}
token_file = "sandbox-token"
rule_name = {json.dumps(RULE)}
sources = {json.dumps(list(sandbox_sources))}
min_prefixes = 1
"""
    path = folder / "fleet.toml"
    path.write_text(text)
    return path


def run_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    **env: str,
) -> Result:
    """`allowlist-sync check ARGS` in-process, with only the process settings in the environment
    (a config file refuses the target variables beside it) and prod's token variable."""
    cache_dir = os.environ.get("ALLOWLIST_SYNC_CACHE_DIR")  # the per-test one (conftest)
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")) or name == "PROD_DBT_TOKEN":
            monkeypatch.delenv(name)
    base = {
        "ALLOWLIST_SYNC_CACHE_DIR": cache_dir or "",
        "ALLOWLIST_SYNC_RETRY_BACKOFF": "0",
        "ALLOWLIST_SYNC_RETRY_ATTEMPTS": "2",
        "ALLOWLIST_SYNC_LOG_FORMAT": "json",
        "PROD_DBT_TOKEN": DEFAULT_TOKEN,
    }
    for name, value in {**base, **env}.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    try:
        code = main(["check", *args])
    finally:
        out, err = capsys.readouterr()
        structlog.reset_defaults()
    return Result(code, out, err)


def report_of(result: Result) -> dict[str, Any]:
    """The one JSON object of `check --output json` (and nothing else on stdout)."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    report: dict[str, Any] = json.loads(lines[0])
    return report


def target_of(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The item of `targets` for target `name`."""
    [item] = [t for t in report["targets"] if t["target"] == name]
    return item


def seed_owned(server: EmulatorServer) -> None:
    """Each account holds its owned rule (a few of its CIDRs) and an office rule."""
    server.store.account(PROD).seed_rule(RULE, cidrs=PUBLISHED[:3])
    server.store.account(PROD).seed_rule(OFFICE, cidrs=["198.51.100.0/24"])
    server.store.account(SANDBOX).seed_rule(RULE, cidrs=[PARTNER])


def assert_read_only(server: EmulatorServer) -> None:
    """The check sent only GET requests, to any account."""
    assert {r.method for r in server.store.requests} <= {"GET"}
    assert server.store.write_count(PROD) == 0 and server.store.write_count(SANDBOX) == 0


def test_two_targets_pass_with_a_block_per_target(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Two readable accounts and three good sources: PASSED first, the sources, then a block
    per target in the file's order with its checks and rules; exit 0, only GETs."""
    seed_owned(two)
    config = fleet_toml(two, tmp_path)
    result = run_check(monkeypatch, capsys, "--config", str(config))
    assert result.code == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.splitlines()[0].startswith("Preflight: PASSED")
    assert f"ok     configuration: config file {config}: valid, 2 targets, 3 sources" in out
    assert "Sources:" in out and "entra (azure-service-tags): file " in out
    assert f"cloud Public, changeNumber {CHANGE_NUMBER}" in out
    assert f"okta (okta-ip-ranges): file {SNAPSHOT}" in out
    assert out.index("Target prod ") < out.index("Target sandbox ")
    prod_block = out[out.index("Target prod ") : out.index("Target sandbox ")]
    assert f"account {PROD}" in prod_block and "dbt API: ok" in prod_block
    assert f"Rules in account {PROD} (2):" in prod_block and "(owned)" in prod_block
    assert repr(OFFICE) in prod_block
    assert "sources: entra, okta:" in prod_block
    sandbox_block = out[out.index("Target sandbox ") :]
    assert f"Rules in account {SANDBOX} (1):" in sandbox_block
    assert DEFAULT_TOKEN not in out + result.stderr and SANDBOX_TOKEN not in out + result.stderr
    assert_read_only(two)


def test_json_has_the_config_the_sources_and_a_target_list(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """`--output json` is one object: ok, config, each source (origin, date, prefixes per label)
    and one item per target carrying `target` and today's per-target checks."""
    seed_owned(two)
    config = fleet_toml(two, tmp_path)
    result = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
    assert result.code == 0, result.stderr
    report = report_of(result)
    assert report["ok"] is True and report["verdict"] == "passed" and report["failed"] == []
    assert report["config"]["ok"] is True and report["config"]["path"] == str(config)
    assert list(report["sources"]) == ["entra", "okta", "partner"]
    entra = report["sources"]["entra"]
    assert entra["ok"] is True and entra["type"] == "azure-service-tags"
    assert entra["change_number"] == CHANGE_NUMBER and entra["source"]["kind"] == "file"
    assert entra["prefixes"] == {"AzureActiveDirectory": len(PUBLISHED)}
    assert entra["used_by"] == ["prod"]
    okta = report["sources"]["okta"]
    assert okta["prefixes"] == {OKTA_CELL: len(OKTA_PREFIXES)}
    assert okta["used_by"] == ["prod", "sandbox"]
    assert report["sources"]["partner"]["prefixes"] == {"cidrs": 1}
    assert [t["target"] for t in report["targets"]] == ["prod", "sandbox"]
    for item in report["targets"]:
        assert item["checks"] == TARGET_CHECKS
        assert item["ok"] is True and item["failed"] == []
        for name in TARGET_CHECKS:
            assert "ok" in item[name] and "message" in item[name], name
    prod = target_of(report, "prod")
    assert prod["account_id"] == PROD and prod["host_url"] == two.url
    assert prod["rule_name"] == RULE
    assert prod["sources"]["sources"] == ["entra", "okta"]
    assert prod["api"]["owned_rule"]["cidrs"] == 3
    assert [r["name"] for r in prod["rules"]["rules"]] == [RULE, OFFICE]
    sandbox = target_of(report, "sandbox")
    assert sandbox["sources"]["desired"] >= 2 and sandbox["write"]["ok"] is None
    assert "DBT_CLOUD_TOKEN" not in report["settings"]
    assert report["schedule"]["expression"] == "0 6 * * *"
    assert_read_only(two)


def test_config_from_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """ALLOWLIST_SYNC_CONFIG selects the file as `--config` does."""
    seed_owned(two)
    config = fleet_toml(two, tmp_path)
    result = run_check(monkeypatch, capsys, "--output", "json", ALLOWLIST_SYNC_CONFIG=str(config))
    assert result.code == 0, result.stderr
    assert [t["target"] for t in report_of(result)["targets"]] == ["prod", "sandbox"]


def test_a_refused_token_exits_77_and_the_other_target_is_still_checked(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Sandbox's token refused by the platform: its api check fails (auth), its other API
    checks are skipped, prod passes every check; exit 77; the token never shows."""
    seed_owned(two)
    wrong = "dbtc_wrong_sandbox_token_0000"
    config = fleet_toml(two, tmp_path, sandbox_token=wrong)
    result = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
    assert result.code == 77, result.stderr
    report = report_of(result)
    assert report["ok"] is False and report["failed"] == ["sandbox: api"]
    sandbox = target_of(report, "sandbox")
    assert sandbox["ok"] is False and sandbox["api"]["error"]["kind"] == "auth"
    assert sandbox["rules"]["ok"] is None and sandbox["caller"]["ok"] is None
    assert sandbox["sources"]["ok"] is True
    prod = target_of(report, "prod")
    assert prod["ok"] is True and prod["api"]["ok"] is True
    assert wrong not in result.stdout + result.stderr
    assert_read_only(two)


def test_a_refused_token_in_text_names_the_target_first(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """The verdict line names the failing target and check; its block says FAILED."""
    seed_owned(two)
    config = fleet_toml(two, tmp_path, sandbox_token="dbtc_wrong_sandbox_token_0000")
    result = run_check(monkeypatch, capsys, "--config", str(config))
    assert result.code == 77
    first = result.stdout.splitlines()[0]
    assert first.startswith("Preflight: FAILED (sandbox: api)")
    assert "Target prod " in result.stdout and "PASSED" in result.stdout
    sandbox_block = result.stdout[result.stdout.index("Target sandbox ") :]
    assert "FAILED dbt API: auth:" in sandbox_block


def test_an_unreadable_token_fails_that_targets_config_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Prod's token variable unset: prod's config check fails naming the key (78) and its API
    checks are skipped without a request; sandbox is still checked."""
    seed_owned(two)
    config = fleet_toml(two, tmp_path)
    result = run_check(
        monkeypatch, capsys, "--config", str(config), "--output", "json", PROD_DBT_TOKEN=""
    )
    assert result.code == 78, result.stderr
    report = report_of(result)
    prod = target_of(report, "prod")
    assert prod["config"]["ok"] is False and "token_env" in prod["config"]["message"]
    assert "PROD_DBT_TOKEN" in prod["config"]["message"]
    assert prod["api"]["ok"] is None
    assert target_of(report, "sandbox")["ok"] is True
    assert not [r for r in two.store.requests if f"/accounts/{PROD}/" in r.path]


def test_mixed_failures_exit_with_the_most_severe(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """A refused token (77) beside an unreadable one (78) exits 78, as EXIT_SEVERITY orders."""
    config = fleet_toml(two, tmp_path, sandbox_token="dbtc_wrong_sandbox_token_0000")
    result = run_check(monkeypatch, capsys, "--config", str(config), PROD_DBT_TOKEN="")
    assert result.code == 78


BROKEN_OKTA = {
    "not JSON": b"<html>not json</html>",
    "missing cell": json.dumps({"emea_cell_1": {"ip_ranges": ["8.8.4.0/24"]}}).encode(),
    "empty cell": json.dumps({OKTA_CELL: {"ip_ranges": []}}).encode(),
    "out of scope": json.dumps({OKTA_CELL: {"ip_ranges": ["10.0.0.0/24"]}}).encode(),
}


@pytest.mark.parametrize("broken", list(BROKEN_OKTA))
def test_a_broken_okta_source_is_named_and_fails_its_targets_only(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
    broken: str,
) -> None:
    """A broken Okta file: the source is reported failed by name, the target using it fails its
    sources check (its account is still read), the Entra-only target passes; exit 1."""
    seed_owned(two)
    okta_file = tmp_path / "ip_ranges.json"
    okta_file.write_bytes(BROKEN_OKTA[broken])
    config = fleet_toml(two, tmp_path, okta_file=okta_file, prod_sources=("entra",))
    result = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
    assert result.code == 1, result.stderr
    report = report_of(result)
    okta = report["sources"]["okta"]
    assert okta["ok"] is False and okta["message"].startswith(f"{okta['error']['kind']}: ")
    assert "source okta" in okta["error"]["message"] and "\n" not in okta["message"]
    assert report["sources"]["entra"]["ok"] is True
    sandbox = target_of(report, "sandbox")
    assert sandbox["sources"]["ok"] is False and sandbox["sources"]["failed_sources"] == ["okta"]
    assert "source okta" in sandbox["sources"]["message"]
    assert sandbox["api"]["ok"] is True, "the account is read whatever the sources say"
    assert target_of(report, "prod")["ok"] is True
    assert report["failed"] == ["sandbox: sources"]
    assert_read_only(two)


def test_a_source_two_targets_use_is_fetched_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Okta's file downloaded over loopback for both targets: one request, both pass."""
    seed_owned(two)
    with OktaS3() as okta:
        config = fleet_toml(two, tmp_path, okta_file=okta.url)
        result = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
        assert result.code == 0, result.stderr
        assert len(okta.file_requests()) == 1
    report = report_of(result)
    assert report["sources"]["okta"]["source"]["url"] == okta.url
    assert report["sources"]["okta"]["used_by"] == ["prod", "sandbox"]


def test_an_okta_outage_names_the_source_and_never_shows_a_signed_query(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Okta's host answering 503 to a signed URL (no cached copy): the source fails by name,
    both targets fail their sources check (exit 1), and the signature is never printed."""
    seed_owned(two)
    with OktaS3(outage_status=503) as okta:
        signed = f"{okta.url}?X-Amz-Signature=topsecret4711"
        config = fleet_toml(two, tmp_path, okta_file=signed)
        result = run_check(monkeypatch, capsys, "--config", str(config))
    assert result.code == 1, result.stderr
    assert "topsecret4711" not in result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert "prod: sources" in first and "sandbox: sources" in first
    sources = result.stdout[result.stdout.index("Sources:") :].splitlines()
    [okta_line] = [line for line in sources if "okta (okta-ip-ranges)" in line]
    assert okta_line.startswith("  FAILED ") and "source okta" in okta_line


def test_okta_served_from_its_last_good_copy_passes_with_the_warning_shown(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Okta's host down after one good download: the source passes from the cached copy and
    its warning is on the source's line and in its JSON `warnings`, never silent."""
    seed_owned(two)
    with OktaS3() as okta:
        config = fleet_toml(two, tmp_path, okta_file=okta.url)
        first = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
        assert first.code == 0, first.stderr
        okta.outage_status = 503
        text = run_check(monkeypatch, capsys, "--config", str(config))
        again = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
    assert text.code == 0 and again.code == 0, again.stderr
    source = report_of(again)["sources"]["okta"]
    assert source["ok"] is True and source["source"]["kind"] == "cache" and source["warnings"]
    [okta_line] = [line for line in text.stdout.splitlines() if "okta (okta-ip-ranges)" in line]
    assert okta_line.startswith("  ok ") and "(warning: " in okta_line


def test_a_bug_in_one_target_fails_that_target_alone(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """An unexpected exception while reading prod's account fails prod's api check as
    `internal` (exit 1, one log event with the traceback); sandbox is still checked."""
    seed_owned(two)
    real = preflight_fleet.check_account

    def broken_for_prod(settings: Any, *args: Any, **kwargs: Any) -> None:
        if settings.account_id == PROD:
            raise RuntimeError("boom")
        real(settings, *args, **kwargs)

    monkeypatch.setattr(preflight_fleet, "check_account", broken_for_prod)
    config = fleet_toml(two, tmp_path)
    result = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
    assert result.code == 1
    report = report_of(result)
    prod = target_of(report, "prod")
    assert prod["api"]["error"] == {
        "kind": "internal",
        "message": "internal error: RuntimeError: boom",
    }
    assert prod["rules"]["ok"] is None and prod["sources"]["ok"] is True
    assert target_of(report, "sandbox")["ok"] is True
    assert '"internal_error"' in result.stderr


def test_target_selects_targets_and_loads_only_their_sources(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """`--target sandbox` checks sandbox alone: prod's account gets no request and entra, which
    only prod uses, is reported as skipped (not loaded)."""
    seed_owned(two)
    config = fleet_toml(two, tmp_path)
    result = run_check(
        monkeypatch, capsys, "--config", str(config), "--target", "sandbox", "--output", "json"
    )
    assert result.code == 0, result.stderr
    report = report_of(result)
    assert [t["target"] for t in report["targets"]] == ["sandbox"]
    assert report["sources"]["entra"]["ok"] is None and "skipped" in report["sources"]["entra"]
    assert report["sources"]["okta"]["ok"] is True
    assert not [r for r in two.store.requests if f"/accounts/{PROD}/" in r.path]
    assert [r for r in two.store.requests if f"/accounts/{SANDBOX}/" in r.path]


def test_target_repeated_keeps_the_files_order(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """`--target` twice checks both targets, in the file's order."""
    seed_owned(two)
    config = fleet_toml(two, tmp_path)
    args = ("--config", str(config), "--target", "sandbox", "--target", "prod")
    result = run_check(monkeypatch, capsys, *args, "--output", "json")
    assert result.code == 0, result.stderr
    assert [t["target"] for t in report_of(result)["targets"]] == ["prod", "sandbox"]


@pytest.mark.parametrize("output", ["text", "json"])
def test_an_unknown_target_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
    output: str,
) -> None:
    """`--target` naming no target of the file: exit 64, one line naming the valid targets,
    no request; with --output json still one JSON object, in text nothing on stdout."""
    config = fleet_toml(two, tmp_path)
    result = run_check(
        monkeypatch, capsys, "--config", str(config), "--target", "nope", "--output", output
    )
    assert result.code == 64
    [line] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "'nope'" in line and "prod, sandbox" in line
    if output == "json":
        report = report_of(result)
        assert report["ok"] is False and report["error"]["kind"] == "usage"
    else:
        assert result.stdout == ""
    assert two.store.requests == []


def test_target_without_a_config_file_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
) -> None:
    """`--target` in environment mode: exit 64, one line."""
    result = run_check(monkeypatch, capsys, "--target", "prod")
    assert result.code == 64
    assert "--target needs a config file" in result.stderr


BAD_FILES = {
    "not TOML": ("[[targets]\nname = ", "not valid TOML"),
    "token in the file": (
        '[sources.s]\ntype = "static"\ncidrs = ["8.8.8.0/24"]\n[[targets]]\nname = "t"\n'
        'account_id = 1\ntoken = "dbtc_pasted_token_123456"\nrule_name = "r"\nsources = ["s"]\n',
        "not a secret store",
    ),
    "unknown key": (
        '[sources.s]\ntype = "static"\ncidrs = ["8.8.8.0/24"]\n[[targets]]\nname = "t"\n'
        'account_id = 1\ntoken_env = "T_TOKEN"\nrule_nam = "r"\nsources = ["s"]\n',
        "rule_nam",
    ),
}


@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_a_bad_config_file_is_one_failed_config_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
    bad: str,
) -> None:
    """A file read_config refuses: exit 78, one JSON object whose config check failed with one
    line naming the file, no sources or targets checked, no request sent."""
    text, expected = BAD_FILES[bad]
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = run_check(monkeypatch, capsys, "--config", str(config), "--output", "json")
    assert result.code == 78, result.stderr
    report = report_of(result)
    assert report["ok"] is False and report["failed"] == ["config"]
    assert report["config"]["ok"] is False and report["config"]["error"]["kind"] == "config"
    message = report["config"]["message"]
    assert str(config) in message and expected in message and "\n" not in message
    assert report["sources"] == {} and report["targets"] == []
    assert "dbtc_pasted_token_123456" not in result.stdout + result.stderr
    assert two.store.requests == []


def test_a_bad_config_file_in_text_is_the_verdict_and_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Text output of a refused file: the FAILED verdict, then the config check in one line."""
    config = tmp_path / "missing.toml"
    result = run_check(monkeypatch, capsys, "--config", str(config))
    assert result.code == 78
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("Preflight: FAILED (config)")
    assert lines[1].split()[:2] == ["FAILED", "configuration:"]
    assert str(config) in lines[1] and "cannot read" in lines[1]
    assert len(lines) == 2


def test_a_target_variable_beside_the_file_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
) -> None:
    """DBT_CLOUD_TOKEN set beside a config file: exit 78 naming it, nothing checked."""
    config = fleet_toml(two, tmp_path)
    result = run_check(
        monkeypatch,
        capsys,
        "--config",
        str(config),
        "--output",
        "json",
        DBT_CLOUD_TOKEN="dbtc_env_token_beside_file_1",
    )
    assert result.code == 78
    report = report_of(result)
    assert "DBT_CLOUD_TOKEN" in report["config"]["message"] and report["targets"] == []
    assert "dbtc_env_token_beside_file_1" not in result.stdout + result.stderr
    assert two.store.requests == []


@pytest.mark.parametrize("flag", ["--source-file", "--source-url"])
def test_source_flags_with_a_config_file_are_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
    tmp_path: Path,
    flag: str,
) -> None:
    """`--source-file` / `--source-url` beside a config file: exit 78, one line saying to set
    `file` or `url` in the source's table, nothing checked."""
    config = fleet_toml(two, tmp_path)
    value = str(PUBLIC_FEED) if flag == "--source-file" else "https://example.com/f.json"
    result = run_check(
        monkeypatch, capsys, "--config", str(config), flag, value, "--output", "json"
    )
    assert result.code == 78
    report = report_of(result)
    assert "[sources.NAME]" in report["config"]["message"] and report["targets"] == []
    assert two.store.requests == []


def test_environment_mode_is_unchanged_by_the_new_flags(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two: EmulatorServer,
) -> None:
    """Without a config file, `check` still preflights the environment's one target."""
    two.store.account(PROD).seed_rule(RULE, cidrs=PUBLISHED[:3])
    result = run_check(
        monkeypatch,
        capsys,
        "--output",
        "json",
        DBT_CLOUD_HOST_URL=two.url,
        DBT_CLOUD_ACCOUNT_ID=str(PROD),
        DBT_CLOUD_TOKEN=DEFAULT_TOKEN,
        ALLOWLIST_SYNC_RULE_NAME=RULE,
        ALLOWLIST_SYNC_SOURCE_FILE=str(PUBLIC_FEED),
        **OFFLINE,
    )
    assert result.code == 0, result.stderr
    report = report_of(result)
    assert "targets" not in report and report["feed"]["ok"] is True


def target_failing(name: str, error: AllowlistSyncError | None) -> TargetCheck:
    """A target's checks that failed `api` with `error` (None: that passed)."""
    spec = TargetSpec(
        name=name,
        account_id=1,
        host_url="https://cloud.getdbt.com",
        token_file=None,
        token_env="T_TOKEN",
        rule_name=RULE,
        sources=("s",),
    )
    result = Preflight(names=preflight_fleet.TARGET_CHECKS)
    if error is None:
        result.checks["api"] = {"ok": True, "message": "ok"}
    else:
        result.fail("api", error)
    return TargetCheck(spec, result)


ERRORS: dict[int, AllowlistSyncError | None] = {
    0: None,
    77: AuthError("refused"),
    78: ConfigError("unreadable"),
    1: FeedError("broken"),
}


@pytest.mark.parametrize(
    ("codes", "expected"),
    [((0, 0), 0), ((0, 77), 77), ((77, 78), 78), ((77, 1), 1), ((78, 1, 0), 1)],
)
def test_the_exit_code_is_the_most_severe_in_exit_severity_order(
    codes: tuple[int, ...], expected: int
) -> None:
    """Mixed target results exit with the most severe code: 0 < 77 < 78 < 1."""
    fleet = FleetPreflight(
        config={"ok": True},
        targets=[target_failing(f"t{i}", ERRORS[code]) for i, code in enumerate(codes)],
    )
    assert fleet.exit_code == expected
    assert [t.preflight.exit_code for t in fleet.targets] == list(codes)
