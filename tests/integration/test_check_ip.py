"""`allowlist-sync check-ip` in process, against the emulator on loopback and a config file.

Each test writes a config file to tmp_path whose sources are files (the bundled Azure and Okta
snapshots, a static list), so no source is fetched; the targets are accounts of one emulator.
The emulator's request log pins that check-ip sends only GET requests.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr
from structlog.testing import capture_logs

from allowlist_sync.cli import main
from allowlist_sync.commands import checkip_load
from allowlist_sync.commands.checkip import (
    MAX_ADDRESSES,
    Account,
    NetworkIndex,
    TargetRef,
    judge,
    parse_address,
    parse_addresses,
    read_account,
)
from allowlist_sync.config import DEFAULT_RULE_NAME, Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.emulator.account import DENY
from allowlist_sync.errors import ExitCode
from tests.fakes.download_center import DownloadCenter
from tests.fakes.okta import SNAPSHOT as OKTA_SNAPSHOT
from tests.feeds import OFFLINE, PUBLIC_FEED
from tests.inprocess import run_main

PROD, SANDBOX = 4242, 5151
PROD_TOKEN, SANDBOX_TOKEN = "dbtc_checkip_prod_token_4242", "dbtc_checkip_sandbox_token_5151"
RULE = "allowlist-sync: SCIM"
#: Inside the published AzureActiveDirectory range 20.190.128.0/18.
ENTRA_IP = "20.190.128.5"
#: Inside the published AzureActiveDirectory range 2603:1006:2000::/48.
ENTRA_IP6 = "2603:1006:2000::1"
#: Inside Okta's us_cell_1 range 18.209.113.128/26.
OKTA_IP = "18.209.113.130"
#: Published by no source.
NOWHERE_IP = "8.8.4.4"
#: The address the emulator sees this job call from; an "Office" rule lets it in when enforced.
CALLER = "9.9.9.9"


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    """`main` points the logs at this test's captured stderr; later tests must not inherit it."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def accounts() -> Iterator[EmulatorServer]:
    """One emulator serving a production and a sandbox account, each with its own token."""
    store = EmulatorStore(accounts={PROD: PROD_TOKEN, SANDBOX: SANDBOX_TOKEN}, caller_ip=CALLER)
    with EmulatorServer(store, quiet=True) as server:
        yield server


@pytest.fixture
def fleet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The targets' tokens in their variables; no target variable beside the config file."""
    for name in OFFLINE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALLOWLIST_SYNC_CONFIG", raising=False)
    monkeypatch.setenv("ALLOWLIST_SYNC_RETRY_BACKOFF", "0")
    monkeypatch.setenv("PROD_TOKEN", PROD_TOKEN)
    monkeypatch.setenv("SANDBOX_TOKEN", SANDBOX_TOKEN)


def write_config(
    tmp_path: Path, server: EmulatorServer, *, sandbox_sources: str = '["entra"]'
) -> Path:
    """A config file: entra (Azure file), okta (Okta file, us_cell_1), two targets."""
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
[sources.entra]
type = "azure-service-tags"
file = "{PUBLIC_FEED}"

[sources.okta]
type = "okta-ip-ranges"
cells = ["us_cell_1"]
file = "{OKTA_SNAPSHOT}"

[[targets]]
name = "prod-us"
account_id = {PROD}
host_url = "{server.url}"
token_env = "PROD_TOKEN"
rule_name = "{RULE}"
sources = ["entra", "okta"]

[[targets]]
name = "sandbox"
account_id = {SANDBOX}
host_url = "{server.url}"
token_env = "SANDBOX_TOKEN"
rule_name = "{RULE}"
sources = {sandbox_sources}
"""
    )
    return path


def check_ip(
    capsys: pytest.CaptureFixture[str], config: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    """Run `check-ip --output json` in process; the exit code and the one JSON object."""
    code = main(["check-ip", "--config", str(config), "--output", "json", *args])
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    return code, json.loads(out)


def check_ip_text(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str]:
    """Run `check-ip` with text output in process; the exit code and stdout."""
    code = main(["check-ip", "--config", str(config), *args])
    return code, capsys.readouterr().out


def target(report: dict[str, Any], address: int, name: str) -> dict[str, Any]:
    """One target's item of one address of the JSON report."""
    items = [t for t in report["addresses"][address]["targets"] if t["target"] == name]
    assert len(items) == 1
    return items[0]


def seed_owned(store: EmulatorStore, account: int, cidrs: list[str]) -> int:
    """The owned rule of `account`, holding `cidrs`; its id."""
    return store.account(account).seed_rule(RULE, cidrs=cidrs)


def enforce(store: EmulatorStore, account: int) -> None:
    """Enforcement on in `account`, with an "Office" rule letting this job's caller in."""
    store.account(account).seed_rule("Office", cidrs=[f"{CALLER}/32"])
    store.account(account).set_enforcement(True)


def only_gets(store: EmulatorStore) -> None:
    """Every request the emulator saw was a GET, and it saw some."""
    methods = {r.method for r in store.requests}
    assert methods == {"GET"}, methods
    assert store.write_count() == 0


@pytest.mark.usefixtures("fleet_env")
def test_an_address_in_a_published_range_held_by_the_owned_rule_is_let_in(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An Entra address the owned rule covers, with enforcement on, is let in: exit 0."""
    ids = [seed_owned(accounts.store, account, ["20.190.128.0/18"]) for account in (PROD, SANDBOX)]
    for account in (PROD, SANDBOX):
        enforce(accounts.store, account)
    code, text = check_ip_text(capsys, write_config(tmp_path, accounts), ENTRA_IP)
    assert code == ExitCode.OK
    assert text.splitlines() == [
        f"{ENTRA_IP}  entra: AzureActiveDirectory 20.190.128.0/18",
        f"  prod-us: LET IN by rule {ids[0]} '{RULE}' (20.190.128.0/18, the owned rule); "
        "enforcement on",
        f"  sandbox: LET IN by rule {ids[1]} '{RULE}' (20.190.128.0/18, the owned rule); "
        "enforcement on",
        f"{ENTRA_IP} is let in by every target.",
    ]
    only_gets(accounts.store)


@pytest.mark.usefixtures("fleet_env")
def test_an_address_in_a_published_range_missing_from_the_rule_is_blocked(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A published address the owned rule lacks is blocked under enforcement: run sync, exit 1."""
    owned = seed_owned(accounts.store, PROD, ["40.126.0.0/18"])
    seed_owned(accounts.store, SANDBOX, ["40.126.0.0/18"])
    for account in (PROD, SANDBOX):
        enforce(accounts.store, account)
    config = write_config(tmp_path, accounts)
    code, text = check_ip_text(capsys, config, ENTRA_IP)
    assert code == ExitCode.FAILED
    assert (
        f"  prod-us: BLOCKED: no active allow rule holds it (owned rule '{RULE}' id {owned} "
        "lacks it: run sync); enforcement on"
    ) in text.splitlines()
    assert text.splitlines()[-1].startswith("BLOCKED: ")
    code, report = check_ip(capsys, config, ENTRA_IP)
    prod = target(report, 0, "prod-us")
    assert (report["ok"], prod["let_in"], prod["enforcement"]) == (False, False, True)
    assert prod["owned_rule"] == {"id": owned, "name": RULE, "covering_cidr": None}
    assert prod["allowed_by"] == [] and prod["denied_by"] == []
    only_gets(accounts.store)


@pytest.mark.usefixtures("fleet_env")
def test_an_address_outside_every_source_is_named_as_such(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An address no source publishes is listed with no source, and blocked where enforced."""
    seed_owned(accounts.store, PROD, ["20.190.128.0/18"])
    enforce(accounts.store, PROD)
    config = write_config(tmp_path, accounts)
    code, text = check_ip_text(capsys, config, NOWHERE_IP, "--target", "prod-us")
    assert code == ExitCode.FAILED
    lines = text.splitlines()
    assert lines[0] == f"{NOWHERE_IP}  in no source (entra, okta)"
    assert lines[1] == (
        "  prod-us: BLOCKED: no active allow rule holds it (no source of this target publishes "
        "it); enforcement on"
    )
    code, report = check_ip(capsys, config, NOWHERE_IP, "--target", "prod-us")
    assert report["addresses"][0]["sources"] == []
    assert [t["target"] for t in report["addresses"][0]["targets"]] == ["prod-us"]


@pytest.mark.usefixtures("fleet_env")
def test_an_address_held_by_a_deny_rule_is_blocked_even_when_the_owned_rule_covers_it(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An active deny rule holding the address blocks it, named with its containing CIDR."""
    owned = seed_owned(accounts.store, PROD, ["20.190.128.0/18"])
    deny = accounts.store.account(PROD).seed_rule("Blocklist", DENY, ["20.190.128.0/24"])
    enforce(accounts.store, PROD)
    config = write_config(tmp_path, accounts)
    code, text = check_ip_text(capsys, config, ENTRA_IP, "--target", "prod-us")
    assert code == ExitCode.FAILED
    assert text.splitlines()[1] == (
        f"  prod-us: BLOCKED by deny rule {deny} 'Blocklist' (20.190.128.0/24); enforcement on"
    )
    _, report = check_ip(capsys, config, ENTRA_IP, "--target", "prod-us")
    prod = target(report, 0, "prod-us")
    assert prod["denied_by"] == [{"id": deny, "name": "Blocklist", "cidr": "20.190.128.0/24"}]
    assert prod["allowed_by"] == [{"id": owned, "name": RULE, "cidr": "20.190.128.0/18"}]
    assert prod["owned_rule"]["covering_cidr"] == "20.190.128.0/18"
    assert prod["let_in"] is False


@pytest.mark.usefixtures("fleet_env")
def test_two_targets_one_lacking_the_address_name_the_one_that_blocks(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prod holds the address and the sandbox does not: the summary names the sandbox, exit 1."""
    seed_owned(accounts.store, PROD, ["20.190.128.0/18"])
    seed_owned(accounts.store, SANDBOX, ["40.126.0.0/18"])
    for account in (PROD, SANDBOX):
        enforce(accounts.store, account)
    config = write_config(tmp_path, accounts)
    code, report = check_ip(capsys, config, ENTRA_IP)
    assert code == ExitCode.FAILED
    assert target(report, 0, "prod-us")["let_in"] is True
    assert target(report, 0, "sandbox")["let_in"] is False
    assert report["summary"] == f"BLOCKED: {ENTRA_IP} by sandbox."
    only_gets(accounts.store)


@pytest.mark.usefixtures("fleet_env")
def test_with_enforcement_off_every_address_is_let_in_and_the_enforced_answer_is_given(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Enforcement off lets everything in (exit 0) and says what turning it on would do."""
    owned = seed_owned(accounts.store, PROD, ["40.126.0.0/18"])
    config = write_config(tmp_path, accounts)
    code, text = check_ip_text(capsys, config, ENTRA_IP, "--target", "prod-us")
    assert code == ExitCode.OK
    assert text.splitlines()[1] == (
        "  prod-us: LET IN: enforcement off, nothing is enforced; with enforcement on it would "
        f"be BLOCKED: no active allow rule holds it (owned rule '{RULE}' id {owned} lacks it: "
        "run sync)"
    )
    _, report = check_ip(capsys, config, ENTRA_IP, "--target", "prod-us")
    prod = target(report, 0, "prod-us")
    assert (prod["let_in"], prod["enforcement"], prod["let_in_when_enforced"]) == (
        True,
        False,
        False,
    )


@pytest.mark.usefixtures("fleet_env")
def test_an_ipv6_address_is_matched_against_ipv6_ranges_and_rules(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An Entra IPv6 address is found in its /48 and let in by the rule holding that /48."""
    seed_owned(accounts.store, PROD, ["2603:1006:2000::/48", "20.190.128.0/18"])
    enforce(accounts.store, PROD)
    config = write_config(tmp_path, accounts)
    code, report = check_ip(capsys, config, ENTRA_IP6, "--target", "prod-us")
    assert code == ExitCode.OK
    item = report["addresses"][0]
    assert item["address"] == ENTRA_IP6
    assert item["sources"] == [
        {
            "source": "entra",
            "type": "azure-service-tags",
            "label": "AzureActiveDirectory",
            "prefix": "2603:1006:2000::/48",
        }
    ]
    assert target(report, 0, "prod-us")["owned_rule"]["covering_cidr"] == "2603:1006:2000::/48"


@pytest.mark.usefixtures("fleet_env")
def test_an_ipv4_mapped_address_is_checked_as_its_ipv4_address(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`::ffff:20.190.128.5` is checked as 20.190.128.5, and the output says so."""
    seed_owned(accounts.store, PROD, ["20.190.128.0/18"])
    config = write_config(tmp_path, accounts)
    code, report = check_ip(capsys, config, f"::ffff:{ENTRA_IP}", "--target", "prod-us")
    assert code == ExitCode.OK
    item = report["addresses"][0]
    assert (item["address"], item["given"]) == (ENTRA_IP, f"::ffff:{ENTRA_IP}")
    assert "IPv4-mapped" in item["note"]
    assert item["sources"][0]["prefix"] == "20.190.128.0/18"
    _, text = check_ip_text(capsys, config, f"::ffff:{ENTRA_IP}", "--target", "prod-us")
    assert text.splitlines()[0] == (
        f"{ENTRA_IP} (::ffff:{ENTRA_IP} is an IPv4-mapped IPv6 address: checked as {ENTRA_IP})"
        "  entra: AzureActiveDirectory 20.190.128.0/18"
    )


@pytest.mark.usefixtures("fleet_env")
def test_an_okta_address_names_its_source_and_cell(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An address of Okta's us_cell_1 is reported with source okta, its cell and its prefix."""
    seed_owned(accounts.store, PROD, ["18.209.113.128/26"])
    enforce(accounts.store, PROD)
    config = write_config(tmp_path, accounts)
    code, text = check_ip_text(capsys, config, OKTA_IP, "--target", "prod-us")
    assert code == ExitCode.OK
    assert text.splitlines()[0] == f"{OKTA_IP}  okta: us_cell_1 18.209.113.128/26"
    _, report = check_ip(capsys, config, OKTA_IP, "--target", "prod-us")
    assert report["addresses"][0]["sources"] == [
        {
            "source": "okta",
            "type": "okta-ip-ranges",
            "label": "us_cell_1",
            "prefix": "18.209.113.128/26",
        }
    ]


@pytest.mark.usefixtures("fleet_env")
def test_a_refused_token_is_reported_in_its_target_and_exits_77(
    accounts: EmulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sandbox's token refused: its item carries the error, prod still answers, exit 77."""
    seed_owned(accounts.store, PROD, ["20.190.128.0/18"])
    monkeypatch.setenv("SANDBOX_TOKEN", "dbtc_not_the_sandbox_token_0000")
    config = write_config(tmp_path, accounts)
    code, report = check_ip(capsys, config, ENTRA_IP)
    assert code == ExitCode.AUTH
    sandbox = target(report, 0, "sandbox")
    assert sandbox["let_in"] is None
    assert sandbox["error"]["kind"] == "auth"
    assert target(report, 0, "prod-us")["let_in"] is True
    code, text = check_ip_text(capsys, config, ENTRA_IP)
    assert code == ExitCode.AUTH
    assert "  sandbox: UNKNOWN: could not read the account: " in text
    assert "dbtc_not_the_sandbox_token_0000" not in text


@pytest.mark.usefixtures("fleet_env")
def test_an_unreadable_token_exits_78_and_an_api_outage_exits_1(
    accounts: EmulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unset token variable fails its target with 78; a down API is the more severe 1."""
    monkeypatch.delenv("SANDBOX_TOKEN")
    config = write_config(tmp_path, accounts)
    code, report = check_ip(capsys, config, ENTRA_IP, "--target", "sandbox")
    assert code == ExitCode.CONFIG
    assert target(report, 0, "sandbox")["error"]["kind"] == "config"
    config.write_text(config.read_text().replace(accounts.url, "http://127.0.0.1:9"))
    code, report = check_ip(capsys, config, ENTRA_IP)
    assert code == ExitCode.FAILED
    assert target(report, 0, "prod-us")["error"]["kind"] == "api"


@pytest.mark.usefixtures("fleet_env")
def test_a_failed_source_is_named_and_the_others_still_answer(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Okta file missing: okta is reported as failed, entra still finds the address."""
    seed_owned(accounts.store, PROD, ["20.190.128.0/18"])
    config = write_config(tmp_path, accounts)
    config.write_text(config.read_text().replace(str(OKTA_SNAPSHOT), str(tmp_path / "gone.json")))
    code, report = check_ip(capsys, config, ENTRA_IP, "--target", "prod-us")
    assert code == ExitCode.OK
    assert [s["source"] for s in report["sources_failed"]] == ["okta"]
    assert report["addresses"][0]["sources"][0]["source"] == "entra"
    code, text = check_ip_text(capsys, config, ENTRA_IP, "--target", "prod-us")
    assert text.splitlines()[0].startswith("source okta could not be read: ")


@pytest.mark.usefixtures("fleet_env")
def test_the_json_report_has_the_documented_shape(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--output json` prints one object: ok, addresses with sources and targets, a summary."""
    seed_owned(accounts.store, PROD, ["20.190.128.0/18"])
    enforce(accounts.store, PROD)
    config = write_config(tmp_path, accounts)
    code, report = check_ip(capsys, config, ENTRA_IP, NOWHERE_IP, "--target", "prod-us")
    assert code == ExitCode.FAILED
    assert set(report) == {"ok", "addresses", "sources_failed", "summary"}
    assert [a["address"] for a in report["addresses"]] == [ENTRA_IP, NOWHERE_IP]
    first = report["addresses"][0]
    assert set(first) == {"address", "given", "note", "sources", "targets"}
    assert set(first["targets"][0]) == {
        "target",
        "account_id",
        "let_in",
        "let_in_when_enforced",
        "enforcement",
        "owned_rule",
        "allowed_by",
        "denied_by",
        "published_by",
        "notes",
        "error",
    }
    assert first["targets"][0]["account_id"] == PROD
    assert first["targets"][0]["published_by"] == ["entra"]
    assert report["addresses"][1]["targets"][0]["published_by"] == []


@pytest.mark.usefixtures("fleet_env")
def test_each_account_is_listed_once_however_many_addresses(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three addresses, two targets: two GETs of the rule list, nothing else."""
    config = write_config(tmp_path, accounts)
    check_ip(capsys, config, ENTRA_IP, OKTA_IP, NOWHERE_IP)
    assert sorted((r.method, r.account_id) for r in accounts.store.requests) == [
        ("GET", PROD),
        ("GET", SANDBOX),
    ]


@pytest.mark.usefixtures("fleet_env")
def test_an_unknown_target_is_a_usage_error(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--target` naming no target of the file exits 64 and reads no account."""
    config = write_config(tmp_path, accounts)
    assert main(["check-ip", "--config", str(config), "--target", "nope", ENTRA_IP]) == 64
    assert "no target 'nope'" in capsys.readouterr().err
    assert accounts.store.requests == []


@pytest.mark.parametrize(
    "bad",
    [
        "20.190.128.0/18",
        "20.190.128.256",
        "not-an-ip",
        "",
        "fe80::1%eth0",
        "20.190.128.5\x00",
        "\x1b[31m1.2.3.4",
        "1" * 5000,
    ],
)
def test_a_bad_address_exits_64_with_one_line_and_reads_nothing(
    bad: str, accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A network, garbage, a scoped or control-character address: one line on stderr, exit 64."""
    config = write_config(tmp_path, accounts)
    assert main(["check-ip", "--config", str(config), bad]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert len(captured.err) < 300
    assert "\x1b" not in captured.err
    assert accounts.store.requests == []


# ------------------------------------------------------------------ what an account may store


def listing(rules: list[dict[str, Any]]) -> httpx.MockTransport:
    """A dbt API answering the rule list with `rules` (one page) and refusing anything else."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET", request.method
        body = {
            "data": rules,
            "extra": {"pagination": {"count": len(rules), "total_count": len(rules)}},
        }
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


def rule(
    ident: int, name: str, cidrs: list[str], *, kind: int = 1, enabled: bool = True, **extra: Any
) -> dict[str, Any]:
    """A rule as the API renders it."""
    return {
        "id": ident,
        "name": name,
        "type": kind,
        "state": 1,
        "rule_set_enabled": enabled,
        "ip_restriction_rule_set_id": 7,
        "cidrs": [{"id": ident * 100 + n, "cidr": c, "state": 1} for n, c in enumerate(cidrs)],
        **extra,
    }


def read(rules: list[dict[str, Any]], rule_name: str = RULE) -> Account:
    """The account `read_account` sees behind a MockTransport listing `rules`."""
    settings = Settings.model_construct(
        account_id=PROD, token=SecretStr(PROD_TOKEN), host_url="https://emulated.invalid"
    )
    ref = TargetRef("prod-us", PROD, rule_name, ("entra",))
    with capture_logs():  # not to a stream an earlier test's capture closed
        return read_account(ref, lambda: settings, transport=listing(rules))


def test_stored_forms_a_bare_ip_and_an_ipv4_mapped_cidr_hold_the_address() -> None:
    """A bare IP is its /32 and `::ffff:a.b.c.d/N` holds the IPv4 address, as on the platform."""
    account = read(
        [
            rule(1, "Bare", ["20.190.128.5"]),
            rule(2, "Mapped", ["::ffff:20.190.128.0/114"]),
            rule(3, RULE, ["20.190.128.0/18", "20.190.128.0/24", "not a cidr"]),
        ]
    )
    answer = judge(parse_address(ENTRA_IP), account, [])
    assert [(h.id, h.cidr) for h in answer.allowed_by] == [
        (1, "20.190.128.5"),
        (2, "::ffff:20.190.128.0/114"),
        (3, "20.190.128.0/24"),  # the rule's most specific CIDR holding it
    ]
    assert answer.owned_cidr == "20.190.128.0/24"
    assert answer.let_in is True


def test_deleted_cidrs_inactive_rules_and_unknown_types_hold_nothing() -> None:
    """Only active CIDRs of active allow or deny rules count; anything else is ignored."""
    gone = rule(1, "Deleted rule", ["20.190.128.0/18"], state=2)
    cidr_gone = rule(2, "Deleted CIDR", [])
    cidr_gone["cidrs"] = [{"id": 5, "cidr": "20.190.128.0/18", "state": 2}]
    odd = rule(3, "Odd type", ["20.190.128.0/18"], kind=3)
    account = read([gone, cidr_gone, odd, rule(4, "Office", ["9.9.9.9/32"])])
    answer = judge(parse_address(ENTRA_IP), account, [])
    assert (answer.allowed_by, answer.denied_by, answer.let_in) == ((), (), False)


def test_rules_that_disagree_on_enforcement_fail_the_target() -> None:
    """An account whose rules disagree on rule_set_enabled is a bad answer: unknown, exit 1."""
    account = read([rule(1, "A", ["9.9.9.9/32"]), rule(2, "B", ["8.8.8.8/32"], enabled=False)])
    assert account.error is not None and account.error.exit_code == ExitCode.FAILED
    assert judge(parse_address(ENTRA_IP), account, []).let_in is None


def test_two_rules_with_the_owned_name_still_answer_with_a_note() -> None:
    """Ambiguous ownership does not hide the answer: the rules decide, a note says why."""
    account = read([rule(1, RULE, ["20.190.128.0/18"]), rule(2, RULE, ["40.126.0.0/18"])])
    answer = judge(parse_address(ENTRA_IP), account, [])
    assert account.owned is None and "2 active rules" in account.notes[0]
    assert answer.let_in is True and [h.id for h in answer.allowed_by] == [1]


def test_the_index_finds_the_most_specific_network_first() -> None:
    """NetworkIndex returns every network holding the address, longest prefix first."""
    index: NetworkIndex[str] = NetworkIndex()
    for text in ("20.0.0.0/8", "20.190.128.0/18", "20.190.128.5/32", "2603:1006::/32", "0.0.0.0/0"):
        index.add(ipaddress.ip_network(text), text)
    assert index.holding(ipaddress.ip_address(ENTRA_IP)) == [
        "20.190.128.5/32",
        "20.190.128.0/18",
        "20.0.0.0/8",
        "0.0.0.0/0",
    ]
    assert index.holding(ipaddress.ip_address("2603:1006::9")) == ["2603:1006::/32"]


# ------------------------------------------------------------------ arguments and flags


def test_duplicates_are_checked_once_and_mapped_forms_count_as_their_ipv4() -> None:
    """The same address twice, or as IPv4-mapped IPv6, is one address; spaces are ignored."""
    parsed = parse_addresses([ENTRA_IP, f" {ENTRA_IP} ", f"::FFFF:{ENTRA_IP}", ENTRA_IP6])
    assert [a.text for a in parsed] == [ENTRA_IP, ENTRA_IP6]


def test_a_private_address_is_checked_with_a_note_that_it_is_not_public() -> None:
    """10.1.2.3 (also IPv4-mapped) is a valid address to check, noted as not public."""
    assert parse_address(ENTRA_IP).note is None
    assert "not a public address" in str(parse_address("10.1.2.3").note)
    note = str(parse_address("::ffff:10.1.2.3").note)
    assert "IPv4-mapped" in note and "10.1.2.3 is not a public address" in note


def test_more_addresses_than_the_limit_exit_64(capsys: pytest.CaptureFixture[str]) -> None:
    """Over MAX_ADDRESSES arguments is refused at once, in one line."""
    many = [f"20.190.{n // 250}.{n % 250}" for n in range(MAX_ADDRESSES + 1)]
    assert main(["check-ip", *many]) == ExitCode.USAGE
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.usefixtures("fleet_env")
def test_rule_names_with_control_characters_stay_on_their_line(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule named with a newline and a terminal escape cannot break or colour the text output."""
    accounts.store.account(PROD).seed_rule("evil\nname\x1b[2J", cidrs=["20.190.128.0/18"])
    config = write_config(tmp_path, accounts)
    code, text = check_ip_text(capsys, config, ENTRA_IP, "--target", "prod-us")
    assert code == ExitCode.OK
    assert len(text.splitlines()) == 3 and "\x1b" not in text


@pytest.mark.usefixtures("fleet_env")
def test_source_flags_beside_a_config_file_are_refused(
    accounts: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--source-file` with a config file exits 78 as `sync` does, reading no account."""
    config = write_config(tmp_path, accounts)
    args = ["--source-file", str(PUBLIC_FEED), ENTRA_IP]
    assert main(["check-ip", "--config", str(config), *args]) == ExitCode.CONFIG
    assert accounts.store.requests == []


def test_target_without_a_config_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--target` needs a config file: exit 64 naming the flag."""
    monkeypatch.delenv("ALLOWLIST_SYNC_CONFIG", raising=False)
    assert main(["check-ip", "--target", "prod-us", ENTRA_IP]) == ExitCode.USAGE
    assert "--target needs a config file" in capsys.readouterr().err


@pytest.mark.usefixtures("fleet_env")
def test_a_bad_config_file_prints_one_json_object_and_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid config file with `--output json` still prints one object, with the error."""
    config = tmp_path / "fleet.toml"
    config.write_text("[[targets]]\nname = 1\n")
    code, report = check_ip(capsys, config, ENTRA_IP)
    assert code == ExitCode.CONFIG
    assert (report["ok"], report["addresses"], report["error"]["kind"]) == (False, [], "config")


def test_env_mode_reads_the_source_url_once_and_the_one_account(
    emulator: EmulatorServer,
    store: EmulatorStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without a config file, `--source-url` is the one source (fetched once), `default` the
    target."""
    owned = store.seed_rule(DEFAULT_RULE_NAME, cidrs=["20.190.128.0/18"])
    with DownloadCenter() as center:
        center.mirror["tags.json"] = (PUBLIC_FEED.read_bytes(), None)
        url = center.mirror_url("tags.json")
        args = ("check-ip", "--output", "json", "--source-url", url, ENTRA_IP, ENTRA_IP6)
        result = run_main(monkeypatch, capsys, emulator, *args)
        fetched = len(center.requests)
    assert (result.code, fetched) == (ExitCode.OK, 1), result.stderr
    report = json.loads(result.stdout)
    first = report["addresses"][0]
    assert first["sources"][0] == {
        "source": "azure",
        "type": "azure-service-tags",
        "label": "AzureActiveDirectory",
        "prefix": "20.190.128.0/18",
    }
    assert first["targets"][0]["target"] == "default"
    assert first["targets"][0]["owned_rule"]["id"] == owned
    assert report["summary"] == "All 2 addresses are let in by every target."
    assert [r.method for r in store.requests] == ["GET"]


@pytest.mark.parametrize(
    ("raised", "kind", "code"),
    [
        (RuntimeError("boom"), "internal", ExitCode.FAILED),
        (KeyboardInterrupt(), "interrupted", 130),
    ],
)
def test_a_bug_or_ctrl_c_still_prints_one_json_object(
    raised: BaseException,
    kind: str,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Whatever ends the run, `--output json` prints exactly one object naming the kind."""

    def fail(*_: object, **__: object) -> None:
        raise raised

    monkeypatch.setattr(checkip_load, "gather", fail)
    assert main(["check-ip", "--output", "json", ENTRA_IP]) == code
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert (report["ok"], report["error"]["kind"]) == (False, kind)
