"""The emulator command line's account and delay flags: parsing, seeding, refusals (exit 64)."""

from __future__ import annotations

import argparse
import shlex

import pytest

from allowlist_sync.cli import build_parser, main
from allowlist_sync.emulator import DEFAULT_TOKEN, Fault, SeedError, build_seed
from allowlist_sync.emulator.account import ALLOW, DENY
from allowlist_sync.emulator.seed import (
    RuleSeed,
    Seed,
    parse_account,
    parse_delay,
    parse_fault,
    parse_rule,
)
from allowlist_sync.errors import ExitCode

A, B = 4242, 5151
TWO = [str(A), str(B)]


def seed_from(command: str) -> tuple[argparse.Namespace, Seed]:
    """The parsed arguments and the seed `allowlist-sync emulator ...` would build."""
    args = build_parser().parse_args(shlex.split(command)[1:])
    seed = build_seed(
        rules=args.rule,
        deny_rules=args.deny_rule,
        faults=args.fault,
        enforce=args.enforce,
        caller_ip=args.caller_ip,
        strict=args.strict,
        preset=args.preset,
        accounts=args.account_id,
        enforce_accounts=args.enforce_account,
        delay=args.delay,
    )
    return args, seed


# ------------------------------------------------------------------------------ --account-id


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("4242", (4242, None)), ("5151:dbtc_b", (5151, "dbtc_b")), ("1:a:b", (1, "a:b"))],
)
def test_an_account_spec_is_an_id_and_maybe_a_token(spec: str, expected: object) -> None:
    """`ID` serves an account with the emulator's token; `ID:TOKEN` with its own."""
    assert parse_account(spec) == expected


@pytest.mark.parametrize("spec", ["0", "-1", "abc", "", "4242:", "4242:two words", "١٢"])
def test_a_bad_account_spec_is_refused(spec: str) -> None:
    """An id that is not a whole number from 1, or an empty or spaced token: SeedError."""
    with pytest.raises(SeedError):
        parse_account(spec)


def test_a_bad_account_spec_never_echoes_its_token() -> None:
    """The message names the id part only: a token typed after the colon stays out of it."""
    with pytest.raises(SeedError) as caught:
        build_seed(accounts=["x9:dbtc_secret_value"])
    assert "dbtc_secret_value" not in str(caught.value)
    assert str(caught.value).startswith("--account-id 'x9:...': ")
    with pytest.raises(SeedError) as caught:
        build_seed(accounts=["9:dbtc secret"])
    assert "secret" not in str(caught.value)


def test_repeated_account_ids_serve_every_account_the_first_the_default() -> None:
    """`--account-id 4242 --account-id 5151:TOKEN`: both served, 4242 first, 5151 its token."""
    _, seed = seed_from(f"allowlist-sync emulator --account-id {A} --account-id {B}:dbtc_b")
    store = seed.make_store(token="t", max_page_size=100)
    assert store.accounts == [A, B]
    assert store.account_id == A


def test_the_same_account_twice_is_refused() -> None:
    """One account given twice is a usage error, not two tenants with one id."""
    with pytest.raises(SeedError, match=r"--account-id 4242: the account is given twice"):
        build_seed(accounts=["4242", "4242:dbtc_other"])


# ------------------------------------------------------------------------------ scoped seeds


def test_account_in_a_fault_spec_is_for_the_command_line_only() -> None:
    """parse_fault (one Fault, no account) refuses `account=`; build_seed takes it."""
    with pytest.raises(SeedError, match="account= is only for the command line's --fault"):
        parse_fault(f"account={B},status=500")
    assert build_seed(accounts=TWO, faults=[f"account={B}"]).account_faults == (
        (B, Fault(action="status")),
    )


def test_a_rule_spec_may_name_its_account() -> None:
    """`ID:NAME=CIDR` is for account ID; without the prefix, for every account."""
    assert parse_rule("5151:Office=10.0.0.0/8", ALLOW) == RuleSeed(
        "Office", ALLOW, ("10.0.0.0/8",), account=5151
    )
    assert parse_rule("1:2024: office=10.0.0.0/8", ALLOW).name == "2024: office"
    assert parse_rule("allowlist-sync: Entra=10.0.0.0/8", ALLOW).account is None


def test_scoped_rules_faults_and_enforcement_shape_each_account() -> None:
    """Unscoped flags reach every account; `ID:` rules, `account=ID` faults and
    --enforce-account ID reach that account only."""
    seed = build_seed(
        accounts=TWO,
        rules=["Shared=192.0.2.0/24", f"{B}:Office=198.51.100.0/24"],
        deny_rules=[f"{A}:Blocked=198.51.100.0/24"],  # no conflict: another account
        faults=["status=500", f"account={B},status=429"],
        enforce_accounts=[str(B)],
    )
    store = seed.make_store(token="t", max_page_size=100)
    assert [(r["id"], r["name"]) for r in store.snapshot(A)] == [(1, "Shared"), (2, "Blocked")]
    assert [(r["id"], r["name"]) for r in store.snapshot(B)] == [(1, "Shared"), (2, "Office")]
    assert [f.status for f in store.account(A).faults] == [500]
    assert [f.status for f in store.account(B).faults] == [500, 429]
    assert (store.rule_set_enabled, store.account(B).rule_set_enabled) == (False, True)
    store.account(B).seed_rule("later")
    store.account(B).clear_faults()
    store.reset()
    assert [r["name"] for r in store.snapshot(B)] == ["Shared", "Office"]
    assert store.account(B).faults == [
        Fault(action="status", status=500),
        Fault(action="status", status=429),
    ]
    assert seed.summary(B) == (
        "allow rule 'Shared' (1 CIDR), allow rule 'Office' (1 CIDR); enforcement on;"
        " caller: the socket peer; 2 faults"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rules": ["9:Office=10.0.0.0/8"]}, "--rule '9:Office=10.0.0.0/8': account 9 is not"),
        ({"deny_rules": ["9:X=10.0.0.0/8"]}, "--deny-rule '9:X=10.0.0.0/8': account 9 is not"),
        ({"faults": ["account=9"]}, "--fault 'account=9': account 9 is not served"),
        ({"faults": ["account=x"]}, "--fault 'account=x': 'x' is not a whole number"),
        ({"enforce_accounts": ["9"]}, "--enforce-account '9': account 9 is not served"),
        ({"enforce_accounts": ["nine"]}, "--enforce-account 'nine': 'nine' is not a whole"),
    ],
)
def test_a_spec_naming_an_account_not_served_is_refused(
    kwargs: dict[str, list[str]], message: str
) -> None:
    """An account prefix, `account=` or --enforce-account must name an --account-id."""
    with pytest.raises(SeedError) as caught:
        build_seed(accounts=TWO, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    if "not served" in message:
        assert str(caught.value).endswith("(--account-id: 4242, 5151)")


def test_without_account_ids_a_prefix_must_name_the_default_account() -> None:
    """No --account-id serves account 1 alone, so `1:` works and `2:` is refused."""
    assert build_seed(rules=["1:Office=10.0.0.0/8"]).rules[0].account == 1
    with pytest.raises(SeedError, match=r"account 2 is not served \(--account-id: 1\)"):
        build_seed(rules=["2:Office=10.0.0.0/8"])


def test_an_allow_deny_conflict_within_one_account_is_refused() -> None:
    """A network in an allow rule for every account and a deny rule for one: refused."""
    with pytest.raises(SeedError, match="also in allow rule 'Shared'"):
        build_seed(accounts=TWO, rules=["Shared=10.0.0.0/8"], deny_rules=[f"{B}:X=10.0.0.0/8"])


def test_each_account_gets_its_own_lockout_warning() -> None:
    """Enforcement in B with no rule for the caller there warns about B only."""
    seed = build_seed(accounts=TWO, enforce_accounts=[str(B)], caller_ip="198.51.100.7")
    assert seed.lockout_warning(A) is None
    assert seed.lockout_warning(B) is not None


# ------------------------------------------------------------------------------ --delay


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0.0), ("0.15", 0.15), (".5", 0.5), ("3600", 3600.0)]
)
def test_a_delay_is_seconds_from_zero(text: str, seconds: float) -> None:
    """--delay takes plain decimal seconds from 0 to an hour."""
    assert parse_delay(text) == seconds
    assert build_seed(delay=text).latency == seconds


@pytest.mark.parametrize("text", ["", "-1", "nan", "inf", "1e3", "3601", "abc", "0x10", "1_0"])
def test_a_bad_delay_is_refused(text: str) -> None:
    """Negative, not finite, exponent, over an hour or not a number: SeedError naming --delay."""
    with pytest.raises(SeedError, match=r"^--delay "):
        build_seed(delay=text)


def test_the_delay_reaches_the_store() -> None:
    """The seed's latency is the store's."""
    assert build_seed(delay="0.25").make_store(token="t", max_page_size=1).latency == 0.25


# ------------------------------------------------------------------------------ the command


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--delay", "nan"], "--delay 'nan': not a number of seconds from 0 to 3600"),
        (["--delay", "-0.5"], "--delay '-0.5': not a number of seconds"),
        (["--account-id", "7", "--account-id", "7"], "--account-id 7: the account is given twice"),
        (["--account-id", "7", "--rule", "8:R=10.0.0.0/8"], "account 8 is not served"),
        (["--account-id", "7:bad token"], "--account-id '7:...': the token must be"),
    ],
)
def test_bad_account_and_delay_flags_are_one_line_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command exits 64 with one line naming the flag, before serving anything."""
    assert main(["emulator", "--port", "0", *flags]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("allowlist-sync emulator: error: ")
    assert message in lines[0]
    assert "bad token" not in captured.err


def test_a_token_of_its_own_defaults_to_the_emulators() -> None:
    """An account given without a token takes the emulator's, one with a token only its own."""
    store = build_seed(accounts=[str(A), f"{B}:dbtc_b"]).make_store(token=DEFAULT_TOKEN)
    assert store.accounts == [A, B]
    auth = {"Authorization": f"Token {DEFAULT_TOKEN}"}
    path = "/api/v3/accounts/{}/ip-restrictions/"
    assert store.handle("GET", path.format(A), {}, auth, None, "127.0.0.1").status == 200
    assert store.handle("GET", path.format(B), {}, auth, None, "127.0.0.1").status == 401


def test_deny_rules_scoped_to_one_account_stay_there() -> None:
    """A deny rule for A is not in B."""
    seed = build_seed(accounts=TWO, deny_rules=[f"{A}:Blocked=192.0.2.0/24"])
    store = seed.make_store()
    assert [(r["name"], r["type"]) for r in store.snapshot(A)] == [("Blocked", DENY)]
    assert store.snapshot(B) == []
