"""Unit tests of emulator/seed.py: the command line's rule, fault and caller specs, and presets."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from allowlist_sync.cli import build_parser
from allowlist_sync.emulator import EmulatorStore, Fault, bundled_snapshot
from allowlist_sync.emulator.account import ALLOW, DENY
from allowlist_sync.emulator.seed import (
    HAND_MADE_PARTNER,
    HAND_MADE_RULE,
    HAND_MADE_STALE,
    JUST_ENABLED_CALLER,
    PRESETS,
    RuleSeed,
    Seed,
    SeedError,
    build_seed,
    parse_caller_ip,
    parse_fault,
    parse_rule,
)

# ------------------------------------------------------------------------------ rules


def test_a_rule_spec_names_the_rule_and_its_cidrs_as_sent() -> None:
    """`NAME=CIDR,CIDR` gives that name and the CIDRs exactly as written (a bare IP stays bare)."""
    rule = parse_rule("Office VPN=198.51.100.0/24, 203.0.113.10", ALLOW)
    assert rule == RuleSeed("Office VPN", ALLOW, ("198.51.100.0/24", "203.0.113.10"))


def test_a_rule_name_may_hold_an_equals_sign() -> None:
    """The CIDRs follow the last `=`, so a name like `a=b` survives."""
    assert parse_rule("a=b=10.0.0.0/8", DENY) == RuleSeed("a=b", DENY, ("10.0.0.0/8",))


def test_a_rule_may_hold_ipv6() -> None:
    """IPv6 networks are seeded as written."""
    assert parse_rule("v6=2001:db8::/32", ALLOW).cidrs == ("2001:db8::/32",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Office", "expected NAME=CIDR[,CIDR...]"),
        ("=10.0.0.0/8", "the rule name is empty"),
        ("   =10.0.0.0/8", "the rule name is empty"),
        ("Office=", "no CIDR after '='"),
        ("Office=10.0.0.0/8,,10.1.0.0/16", "an empty CIDR"),
        ("Office=10.0.0.0/8,", "an empty CIDR"),
        ("Office=not-a-network", "'not-a-network' is not an IP address or network"),
        ("Office=10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network"),
        ("Office=10.0.0.0/8,10.0.0.0/8", "'10.0.0.0/8' is listed twice"),
        ("Office=10.0.0.1,10.0.0.1/32", "'10.0.0.1/32' is listed twice"),
        ("Off\nice=10.0.0.0/8", "the rule name holds a control character"),
        ("Office=10.0.0.0/8\x00", "is not an IP address or network"),
    ],
)
def test_a_bad_rule_spec_is_refused_with_the_reason(spec: str, message: str) -> None:
    """Each malformed rule spec raises a SeedError saying what is wrong."""
    with pytest.raises(SeedError) as caught:
        parse_rule(spec, ALLOW)
    assert message in str(caught.value)


# ------------------------------------------------------------------------------ faults


def test_a_fault_spec_maps_to_fault_fields() -> None:
    """`status=429,method=PUT,times=2` is a status fault on PUT used twice."""
    fault = parse_fault("status=429,method=put,times=2,retry_after=3")
    assert fault == Fault(action="status", status=429, method="PUT", times=2, retry_after="3")


def test_a_fault_spec_takes_every_action_and_a_path() -> None:
    """`action=` picks the action; `path=` is the path regex; `seconds=` the delay."""
    assert parse_fault("action=drop_after,path=ip-restrictions/[0-9]+$") == Fault(
        action="drop_after", path_regex="ip-restrictions/[0-9]+$"
    )
    assert parse_fault(" action=delay_before , seconds=1.5 ") == Fault(
        action="delay_before", seconds=1.5
    )
    assert parse_fault("ACTION=Store_Other").action == "store_other"


def test_a_fault_spec_without_an_action_answers_a_status() -> None:
    """With no `action=`, the fault answers its status (503 unless given)."""
    assert parse_fault("method=GET") == Fault(action="status", method="GET", status=503)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("status", "expected KEY=VALUE"),
        ("colour=red", "unknown key 'colour'"),
        ("status=429,status=503", "'status' given twice"),
        ("action=explode", "unknown action 'explode'"),
        ("status=abc", "status must be an HTTP error status (400-599)"),
        ("status=200", "status must be an HTTP error status (400-599)"),
        ("status=600", "status must be an HTTP error status (400-599)"),
        ("status=4290", "status must be an HTTP error status (400-599)"),
        ("times=0", "times must be a whole number from 1"),
        ("times=-1", "times must be a whole number from 1"),
        ("times=1.5", "times must be a whole number from 1"),
        ("times=99999999", "times must be a whole number from 1"),
        ("method=FETCH", "method must be one of"),
        ("method=", "method must be one of"),
        ("path=", "path must be a non-empty regular expression"),
        ("path=(unclosed", "path does not compile"),
        ("action=delay_before", "delay_before needs seconds="),
        ("action=delay_after,seconds=0", "seconds must be a number from 0.001 to 3600"),
        ("action=delay_after,seconds=nan", "seconds must be a number from 0.001 to 3600"),
        ("action=delay_after,seconds=inf", "seconds must be a number from 0.001 to 3600"),
        ("action=delay_after,seconds=-1", "seconds must be a number from 0.001 to 3600"),
        ("action=delay_after,seconds=3601", "seconds must be a number from 0.001 to 3600"),
        ("seconds=2", "seconds only applies to delay_before and delay_after"),
        ("action=drop_before,status=500", "status only applies to action=status"),
        ("action=drop_before,retry_after=1", "retry_after only applies to action=status"),
        ("retry_after=", "retry_after must be 1-64 printable ASCII characters"),
        ("retry_after=1\r\nX-Evil: 1", "retry_after must be 1-64 printable ASCII characters"),
    ],
)
def test_a_bad_fault_spec_is_refused_with_the_reason(spec: str, message: str) -> None:
    """Each malformed or meaningless fault spec raises a SeedError saying what is wrong."""
    with pytest.raises(SeedError) as caught:
        parse_fault(spec)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fault_rejects_a_retry_after_that_would_split_the_header() -> None:
    """The control API cannot inject a header through retry_after either."""
    with pytest.raises(ValueError, match="retry_after"):
        Fault.from_dict({"action": "status", "retry_after": "1\r\nSet-Cookie: x=1"})


# ------------------------------------------------------------------------------ caller


@pytest.mark.parametrize("text", ["198.51.100.7", "2001:db8::7"])
def test_a_caller_ip_is_an_address(text: str) -> None:
    """A v4 or v6 address is accepted as written."""
    assert parse_caller_ip(text) == text


@pytest.mark.parametrize("text", ["", "198.51.100.0/24", "example.com", "300.1.1.1"])
def test_a_caller_ip_that_is_not_one_address_is_refused(text: str) -> None:
    """A network, a host name or garbage is a SeedError."""
    with pytest.raises(SeedError, match="not an IP address"):
        parse_caller_ip(text)


# ------------------------------------------------------------------------------ build_seed


def test_build_seed_collects_every_flag() -> None:
    """Rules, deny rules, faults, enforcement, caller and strict end up in one Seed."""
    seed = build_seed(
        rules=["Office=198.51.100.0/24"],
        deny_rules=["Blocked=203.0.113.0/24"],
        faults=["status=429,times=2"],
        enforce=True,
        caller_ip="198.51.100.7",
        strict=True,
    )
    assert seed == Seed(
        rules=(
            RuleSeed("Office", ALLOW, ("198.51.100.0/24",)),
            RuleSeed("Blocked", DENY, ("203.0.113.0/24",)),
        ),
        faults=(Fault(action="status", status=429, times=2),),
        enforce=True,
        caller_ip="198.51.100.7",
        strict=True,
    )


def test_build_seed_names_the_flag_and_the_spec_in_its_error() -> None:
    """The one-line error names the flag and echoes the spec safely (repr, no raw newline)."""
    with pytest.raises(SeedError) as caught:
        build_seed(deny_rules=["Bad\n=10.0.0.0/8"])
    text = str(caught.value)
    assert text.startswith("--deny-rule 'Bad\\n=10.0.0.0/8': ")
    assert "\n" not in text
    with pytest.raises(SeedError, match=r"^--fault 'times=0': "):
        build_seed(faults=["times=0"])
    with pytest.raises(SeedError, match=r"^--caller-ip 'nope': "):
        build_seed(caller_ip="nope")


def test_a_network_in_an_allow_and_a_deny_rule_is_refused() -> None:
    """The platform never stores one network in both kinds of rule, so neither does a seed."""
    with pytest.raises(SeedError, match="also in allow rule 'Office'"):
        build_seed(rules=["Office=10.0.0.0/8"], deny_rules=["Blocked=10.0.0.0/8"])


def test_the_just_enabled_preset_lets_the_caller_in_with_enforcement_on() -> None:
    """`just-enabled`: enforcement on, a fixed caller, an office rule holding the caller."""
    seed = build_seed(preset="just-enabled")
    assert seed.enforce is True
    assert seed.caller_ip == JUST_ENABLED_CALLER
    office = [(r.name, r.type, r.cidrs) for r in seed.rules]
    assert office == [("Office", ALLOW, ("198.51.100.0/24",))]
    store = seed.make_store(1, "t", max_page_size=100)
    assert store.is_allowed(JUST_ENABLED_CALLER)


@pytest.mark.parametrize(
    ("caller", "office"), [("203.0.113.9", "203.0.113.0/24"), ("2001:db8::9", "2001:db8::/64")]
)
def test_the_preset_office_rule_follows_a_given_caller(caller: str, office: str) -> None:
    """With --caller-ip, the preset's office network is the one holding that address."""
    seed = build_seed(preset="just-enabled", caller_ip=caller, rules=["Other=192.0.2.0/24"])
    assert seed.caller_ip == caller
    assert [(r.name, r.cidrs) for r in seed.rules] == [
        ("Office", (office,)),
        ("Other", ("192.0.2.0/24",)),
    ]


def test_the_hand_made_preset_holds_last_years_entra_ranges_and_a_partner() -> None:
    """`hand-made`: just-enabled plus a hand-kept allow rule with most of the published Entra
    ranges and one partner address, the adoption candidate of the README walk-through."""
    seed = build_seed(preset="hand-made")
    assert seed.enforce is True and seed.caller_ip == JUST_ENABLED_CALLER
    office, hand_made = seed.rules
    assert office.name == "Office" and hand_made.name == HAND_MADE_RULE
    assert hand_made.type == ALLOW and hand_made.cidrs[-1] == HAND_MADE_PARTNER
    published = json.loads(Path(str(bundled_snapshot())).read_text())
    entra = next(v for v in published["values"] if v["name"] == "AzureActiveDirectory")
    prefixes = entra["properties"]["addressPrefixes"]
    assert list(hand_made.cidrs[:-1]) == prefixes[: len(prefixes) - HAND_MADE_STALE]


def test_every_preset_is_described() -> None:
    """Each preset has a one-line description for --help and the docs."""
    assert set(PRESETS) == {"just-enabled", "hand-made"}
    assert all(text and "\n" not in text for text in PRESETS.values())


def test_an_unknown_preset_is_refused() -> None:
    """A preset name that does not exist is a SeedError listing the known ones."""
    with pytest.raises(SeedError, match=r"unknown preset 'nope'.*just-enabled"):
        build_seed(preset="nope")


# ------------------------------------------------------------------------------ the store


def test_make_store_holds_the_seed_and_reset_returns_to_it() -> None:
    """The store starts seeded, and /_emulator/reset goes back to that start-up state."""
    seed = build_seed(
        rules=["Office=198.51.100.0/24"],
        faults=["status=500,method=PUT"],
        enforce=True,
        caller_ip="198.51.100.7",
        strict=True,
    )
    store = seed.make_store(42, "tok", max_page_size=5)
    start = store.state()
    assert [r["name"] for r in start["rules"]] == ["Office"]
    assert start["rule_set_enabled"] is True
    assert start["caller_ip"] == "198.51.100.7"
    assert start["strict"] is True
    assert start["max_page_size"] == 5
    assert [f["status"] for f in start["faults"]] == [500]
    store.seed_rule("later", cidrs=["192.0.2.0/24"])
    store.clear_faults()
    store.set_enforcement(False)
    store.caller_ip = None
    store.reset()
    again = store.state()
    assert [r["name"] for r in again["rules"]] == ["Office"]
    assert [r["id"] for r in again["rules"]] == [r["id"] for r in start["rules"]]
    assert again["faults"] == start["faults"]
    assert (again["rule_set_enabled"], again["caller_ip"]) == (True, "198.51.100.7")


def test_an_empty_seed_is_the_plain_emulator() -> None:
    """No flags: no rules, no faults, enforcement off, the socket peer as caller, lenient."""
    state = Seed().make_store(1, "t", max_page_size=100).state()
    assert (state["rules"], state["faults"], state["rule_set_enabled"]) == ([], [], False)
    assert (state["caller_ip"], state["strict"]) == (None, False)


def test_the_summary_says_what_was_seeded() -> None:
    """One line for the banner: rules with their sizes, enforcement, caller, faults, mode."""
    seed = build_seed(
        rules=["Office=198.51.100.0/24,203.0.113.10"],
        deny_rules=["Blocked=192.0.2.0/24"],
        faults=["status=429"],
        enforce=True,
        caller_ip="198.51.100.7",
        strict=True,
    )
    assert seed.summary() == (
        "allow rule 'Office' (2 CIDRs), deny rule 'Blocked' (1 CIDR); enforcement on;"
        " caller 198.51.100.7; 1 fault; strict"
    )
    assert Seed().summary() == "no rules; enforcement off; caller: the socket peer"


def test_the_lockout_warning_names_the_caller_left_out() -> None:
    """Enforcement on with no allow rule holding the caller is worth a warning; else None."""
    assert build_seed(enforce=True, caller_ip="198.51.100.7").lockout_warning() == (
        "enforcement is on and no allow rule holds the caller 198.51.100.7:"
        " every API request will be refused (403)"
    )
    assert build_seed(enforce=True).lockout_warning() is not None  # 127.0.0.1, the peer
    assert build_seed(preset="just-enabled").lockout_warning() is None
    assert build_seed(caller_ip="198.51.100.7").lockout_warning() is None  # not enforced


def test_a_deny_rule_holding_the_caller_also_warns() -> None:
    """A deny rule wins over an allow rule, so that caller is refused too."""
    seed = build_seed(
        preset="just-enabled", deny_rules=["Blocked=198.51.100.7/32"], caller_ip="198.51.100.7"
    )
    assert seed.lockout_warning() is not None


def test_make_store_refuses_nothing_the_seed_allowed() -> None:
    """Every seeded rule and fault is in the store, in order (ids from 1)."""
    seed = build_seed(rules=["A=10.0.0.0/8", "B=10.1.0.0/16"], deny_rules=["C=192.0.2.1"])
    store = seed.make_store(1, "t", max_page_size=100)
    assert [(r["id"], r["name"], r["type"]) for r in store.snapshot()] == [
        (1, "A", ALLOW),
        (2, "B", ALLOW),
        (3, "C", DENY),
    ]
    assert isinstance(store, EmulatorStore)


# ------------------------------------------------------------------------------ the docs

ROOT = Path(__file__).parents[2]


def documented_emulator_commands() -> list[str]:
    """Every `allowlist-sync emulator ...` command line in the README and docs/emulator.md."""
    commands = []
    for name in ("README.md", "docs/emulator.md"):
        text = (ROOT / name).read_text().replace("\\\n", " ")
        for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
            for line in block.splitlines():
                command = line.partition(" #")[0].strip()
                if command.startswith("allowlist-sync emulator"):
                    commands.append(command)
    return commands


@pytest.mark.parametrize("command", documented_emulator_commands())
def test_every_documented_emulator_command_is_a_valid_seed(command: str) -> None:
    """The flags and specs the docs show parse and seed without a usage error."""
    args = build_parser().parse_args(shlex.split(command)[1:])
    build_seed(
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
    ).make_store(1, "t", max_page_size=args.page_size)


def test_the_docs_show_the_seeding_flags() -> None:
    """Between them, the documented commands use every seeding flag."""
    used = " ".join(documented_emulator_commands())
    for flag in ("--preset", "--rule", "--enforce", "--caller-ip", "--fault"):
        assert flag in used


def test_the_bundled_snapshot_is_the_one_the_demo_reads() -> None:
    """The banner's snapshot and the demo's are one file, shipped as package data."""
    from allowlist_sync.commands.demo import snapshot_path

    found = bundled_snapshot()
    assert found is not None
    assert Path(found) == Path(snapshot_path())
    assert Path(found).is_file()
