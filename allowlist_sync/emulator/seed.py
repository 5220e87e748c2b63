"""Seeding the emulator from the command line: the accounts, what each holds, and presets.

`allowlist-sync emulator` can start as the accounts a person wants to rehearse against instead
of one empty account. Each flag's text is parsed by `specs.py` into plain values (`RuleSeed`,
`Fault`, account ids and tokens), checked as the platform would check them, and gathered here
into one `Seed`; `Seed.make_store` builds the store that `/_emulator/reset` then returns to.
Every bad spec is a `SeedError` with a one-line message naming the flag and the problem, which
the CLI prints as a usage error (exit 64).

Rules, deny rules and faults go to every account served unless their spec names one
(`5151:NAME=CIDR`, `account=5151,...`); `--enforce` turns enforcement on everywhere,
`--enforce-account ID` in one account; the caller IP and the latency are the emulator's.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import TypeVar

from allowlist_sync.emulator.account import ALLOW, DEFAULT_ACCOUNT_ID, DENY, Network, mapped_network
from allowlist_sync.emulator.api import DEFAULT_MAX_PAGE_SIZE, DEFAULT_TOKEN
from allowlist_sync.emulator.faults import Fault
from allowlist_sync.emulator.specs import (
    RuleSeed,
    SeedError,
    parse_account,
    parse_account_fault,
    parse_account_id,
    parse_caller_ip,
    parse_delay,
    parse_fault,
    parse_rule,
)
from allowlist_sync.emulator.store import EmulatorStore

# The spec parsers are part of this module's surface (tests and the CLI import them from here).
__all__ = [
    "HAND_MADE_PARTNER",
    "HAND_MADE_RULE",
    "HAND_MADE_STALE",
    "JUST_ENABLED_CALLER",
    "PRESETS",
    "RuleSeed",
    "Seed",
    "SeedError",
    "build_seed",
    "parse_account",
    "parse_caller_ip",
    "parse_delay",
    "parse_fault",
    "parse_rule",
]

_T = TypeVar("_T")


#: The `hand-made` preset: the rule a dbt admin keeps by hand, a little out of date.
HAND_MADE_RULE = "Entra SCIM (by hand)"
HAND_MADE_STALE = 5
HAND_MADE_PARTNER = "192.0.2.10/32"
#: The caller the `just-enabled` preset uses unless --caller-ip names one (TEST-NET-2).
JUST_ENABLED_CALLER = "198.51.100.7"
#: Preset name -> what it sets up (shown by --help and in docs/emulator.md).
PRESETS: dict[str, str] = {
    "just-enabled": "IP restrictions just turned on: enforcement on, and an allow rule 'Office' "
    f"holding the caller's network (caller {JUST_ENABLED_CALLER} unless --caller-ip is given)",
    "hand-made": "just-enabled, plus the allow rule an admin made by hand for Entra last year: "
    f"{HAND_MADE_RULE!r} with the bundled snapshot's AzureActiveDirectory ranges less its last "
    f"{HAND_MADE_STALE}, plus a partner address {HAND_MADE_PARTNER}",
}
_PRESET_DESCRIPTION = "the office network (preset just-enabled): keeps this job's caller allowed"


@dataclass(frozen=True)
class Seed:
    """What the emulator holds when it starts, and again after `/_emulator/reset`.

    `accounts` are (id, own token or None) pairs, the default first; none: the one account
    `make_store` is given. Rules with an `account` and `account_faults` go to that account
    only; the rest to every account (its own faults after those for every account).
    """

    rules: tuple[RuleSeed, ...] = ()
    faults: tuple[Fault, ...] = ()
    enforce: bool = False
    caller_ip: str | None = None
    strict: bool = False
    accounts: tuple[tuple[int, str | None], ...] = ()
    account_faults: tuple[tuple[int, Fault], ...] = ()
    enforced: tuple[int, ...] = ()  # accounts enforcing even when `enforce` is False
    latency: float = 0.0

    def make_store(
        self,
        account_id: int | None = None,
        token: str = DEFAULT_TOKEN,
        *,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
    ) -> EmulatorStore:
        """A store holding this seed, with the seed kept as the state `reset` returns to.

        `account_id` is the one account served when the seed lists none; the seed's own
        `accounts`, when it has them, are what is served.
        """
        store = EmulatorStore(
            None if self.accounts else account_id,
            token,
            accounts=dict(self.accounts) or None,
            max_page_size=max_page_size,
            enforce=self.enforce,
            caller_ip=self.caller_ip,
            strict=self.strict,
            latency=self.latency,
        )
        for ident in store.accounts:
            account = store.account(ident)
            if ident in self.enforced:
                account.set_enforcement(True)
            for rule in self._rules_of(ident):
                account.seed_rule(rule.name, rule.type, rule.cidrs, rule.description)
            for fault in self._faults_of(ident):
                account.add_fault(fault)
        store.keep_as_initial()
        return store

    def _rules_of(self, account: int | None) -> list[RuleSeed]:
        return [r for r in self.rules if r.account in (None, account)]

    def _faults_of(self, account: int | None) -> list[Fault]:
        return [*self.faults, *(f for a, f in self.account_faults if a == account)]

    def summary(self, account: int | None = None) -> str:
        """One line for the start-up banner: what `account` holds (None: the one served)."""
        rules = ", ".join(
            f"{'allow' if r.type == ALLOW else 'deny'} rule {r.name!r} ({_count(r.cidrs, 'CIDR')})"
            for r in self._rules_of(account)
        )
        enforce = self.enforce or account in self.enforced
        parts = [
            rules or "no rules",
            f"enforcement {'on' if enforce else 'off'}",
            f"caller {self.caller_ip}" if self.caller_ip else "caller: the socket peer",
        ]
        faults = self._faults_of(account)
        if faults:
            parts.append(_count(faults, "fault"))
        if self.strict:
            parts.append("strict")
        return "; ".join(parts)

    def lockout_warning(self, account: int | None = None) -> str | None:
        """A warning when enforcement is on and the caller is let in by no rule; else None."""
        if not (self.enforce or account in self.enforced):
            return None
        caller = self.caller_ip or "127.0.0.1"
        addr = mapped_network(caller)
        allowed = False
        for rule in self._rules_of(account):
            if addr is None or not any(addr.subnet_of(_network(c)) for c in rule.cidrs):
                continue
            if rule.type == DENY:
                allowed = False
                break
            allowed = True
        if allowed:
            return None
        return (
            f"enforcement is on and no allow rule holds the caller {caller}:"
            " every API request will be refused (403)"
        )


def _count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _network(cidr: str) -> Network:
    net = mapped_network(cidr)
    if net is None:  # pragma: no cover - parse_rule admitted only networks
        raise SeedError(f"{cidr!r} is not an IP address or network")
    return net


def _office_network(caller: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) that holds `caller`: an office's network."""
    addr = ipaddress.ip_address(caller)
    return str(ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 64}", strict=False))


def _hand_made_rule() -> RuleSeed:
    """Last year's Entra ranges kept by hand: the snapshot less a few, plus a partner address."""
    ranges = _snapshot_ranges("AzureActiveDirectory")
    kept = ranges[: len(ranges) - HAND_MADE_STALE]
    return RuleSeed(
        HAND_MADE_RULE,
        ALLOW,
        (*kept, HAND_MADE_PARTNER),
        "Entra ID provisioning ranges, copied by hand from the service tags (and a partner)",
    )


def _snapshot_ranges(tag: str) -> list[str]:
    """A tag's prefixes in the bundled snapshot (read with json: the emulator shares no code)."""
    data = resources.files("allowlist_sync") / "data"
    name = max(e.name for e in data.iterdir() if e.name.startswith("ServiceTags_Public_"))
    doc = json.loads((data / name).read_text(encoding="utf-8"))
    entry = next(v for v in doc["values"] if v["name"] == tag)
    return list(entry["properties"]["addressPrefixes"])


def build_seed(
    *,
    rules: Iterable[str] = (),
    deny_rules: Iterable[str] = (),
    faults: Iterable[str] = (),
    enforce: bool = False,
    caller_ip: str | None = None,
    strict: bool = False,
    preset: str | None = None,
    accounts: Iterable[str] = (),
    enforce_accounts: Iterable[str] = (),
    delay: str | None = None,
) -> Seed:
    """The seed the command line asks for; SeedError names the flag and spec at fault.

    A preset comes first (its rules before the ones given), and the flags add to it. `accounts`
    are `--account-id` specs (none: the one default account); a spec naming an account not
    among them is refused.
    """
    served = _accounts(accounts)
    ids = [a for a, _ in served] or [DEFAULT_ACCOUNT_ID]
    caller = _flag("--caller-ip", caller_ip, parse_caller_ip) if caller_ip is not None else None
    seeded: list[RuleSeed] = []
    if preset is not None:
        if preset not in PRESETS:
            raise SeedError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
        caller = caller or JUST_ENABLED_CALLER
        enforce = True
        seeded.append(RuleSeed("Office", ALLOW, (_office_network(caller),), _PRESET_DESCRIPTION))
        if preset == "hand-made":
            seeded.append(_hand_made_rule())
    for flag, specs, rule_type in (("--rule", rules, ALLOW), ("--deny-rule", deny_rules, DENY)):
        for spec in specs:
            rule = _flag(flag, spec, partial(parse_rule, rule_type=rule_type))
            _served_by(flag, spec, rule.account, ids)
            seeded.append(rule)
    for account in {r.account for r in seeded} - {None} or {None}:
        _check_allow_deny([r for r in seeded if r.account in (None, account)])
    every: list[Fault] = []
    scoped: list[tuple[int, Fault]] = []
    for spec in faults:
        account, fault = _flag("--fault", spec, parse_account_fault)
        _served_by("--fault", spec, account, ids)
        if account is None:
            every.append(fault)
        else:
            scoped.append((account, fault))
    enforced = [_flag("--enforce-account", a, parse_account_id) for a in enforce_accounts]
    for account in enforced:
        _served_by("--enforce-account", str(account), account, ids)
    return Seed(
        rules=tuple(seeded),
        faults=tuple(every),
        enforce=enforce,
        caller_ip=caller,
        strict=strict,
        accounts=tuple(served),
        account_faults=tuple(scoped),
        enforced=tuple(dict.fromkeys(enforced)),
        latency=_flag("--delay", delay, parse_delay) if delay is not None else 0.0,
    )


def _accounts(specs: Iterable[str]) -> list[tuple[int, str | None]]:
    """`--account-id` specs as (id, token) pairs; a repeated id is refused."""
    served: list[tuple[int, str | None]] = []
    for spec in specs:
        # The id only: a token given after the colon is never echoed in a message.
        shown = spec.partition(":")[0] + (":..." if ":" in spec else "")
        account, token = _flag("--account-id", spec, parse_account, shown=shown)
        if any(a == account for a, _ in served):
            raise SeedError(f"--account-id {account}: the account is given twice")
        served.append((account, token))
    return served


def _served_by(flag: str, spec: str, account: int | None, ids: Sequence[int]) -> None:
    if account is not None and account not in ids:
        listed = ", ".join(str(a) for a in ids)
        raise SeedError(
            f"{flag} {spec!r}: account {account} is not served (--account-id: {listed})"
        )


def _flag(flag: str, spec: str, parse: Callable[[str], _T], *, shown: str | None = None) -> _T:
    try:
        return parse(spec)
    except SeedError as exc:
        raise SeedError(f"{flag} {spec if shown is None else shown!r}: {exc}") from None


def _check_allow_deny(rules: Sequence[RuleSeed]) -> None:
    """The platform refuses a network held by an allow and a deny rule, so a seed does too."""
    allowed = {_network(c): r for r in rules if r.type == ALLOW for c in r.cidrs}
    for rule in rules:
        if rule.type != DENY:
            continue
        for cidr in rule.cidrs:
            other = allowed.get(_network(cidr))
            if other is not None:
                raise SeedError(
                    f"--deny-rule {rule.name!r}: {cidr} is also in allow rule {other.name!r};"
                    " the platform never stores a network in both"
                )
