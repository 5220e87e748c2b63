"""`allowlist-sync check-ip ADDR ...`: is this address let in, and if not, why?

    addresses (checked first: a bad one exits 64 before anything is read)
    -> sources (each loaded once): which publish the address, under which label, in which prefix
    -> targets (each account's rules listed once, GET requests only)
    -> per address and target (`judge`): the allow and deny rules holding it, whether the owned
       rule covers it, enforcement -> let in, blocked, or unknown (the account could not be read)

Let in means: enforcement is off, or an active allow rule holds the address and no active deny
rule does, which is how the platform decides. The typical address is one copied from Entra's or
Okta's provisioning log. Nothing is ever written; a target that cannot be read is reported in its
item, and the exit code is the most severe (`outcome.EXIT_SEVERITY`): 0 when every address is let
in by every target, 1 when one is blocked, 77 / 78 / 1 for a target that could not be read.
Rendering is in `checkip_render`.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Generic, TypeVar

import httpx
import structlog

from allowlist_sync.cidrs import Network, network_or_none
from allowlist_sync.config import Settings
from allowlist_sync.config.file_checks import shown
from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Rule, RuleType
from allowlist_sync.dbt.rules import find_owned_rule, rule_set_enabled
from allowlist_sync.errors import AllowlistSyncError, ExitCode, OwnershipError
from allowlist_sync.logs import get_logger
from allowlist_sync.outcome import EXIT_SEVERITY
from allowlist_sync.sources.ranges import Ranges

log = get_logger(__name__)

IPAddress = IPv4Address | IPv6Address
T = TypeVar("T")
#: Where IPv4 sits inside IPv6 (`::ffff:0:0/96`): the platform compares every CIDR there.
_MAPPED_BASE = int(IPv6Address("::ffff:0:0"))
#: More addresses than anyone pastes from a log; keeps a runaway shell expansion bounded.
MAX_ADDRESSES = 1000


class AddressError(ValueError):
    """An argument that is not one host address; the message is one line naming it."""


@dataclass(frozen=True)
class Address:
    """An address to check: as given, as checked (IPv4-mapped IPv6 becomes IPv4), and why."""

    given: str
    ip: IPAddress
    note: str | None = None

    @property
    def text(self) -> str:
        return str(self.ip)


def parse_address(text: str) -> Address:
    """One host address (IPv4 or IPv6, surrounding spaces ignored); AddressError otherwise."""
    given = text.strip()
    if not given:
        raise AddressError("an empty address: give one such as 20.190.128.5 or 2603:1006::1")
    if "/" in given:
        raise AddressError(
            f"{shown(given)} is a network, not an address: give one host address from the "
            "provisioning log, such as 20.190.128.5"
        )
    if "%" in given:
        raise AddressError(f"{shown(given)}: a scoped (%zone) address is not a public address")
    try:
        ip = ipaddress.ip_address(given)
    except ValueError:
        raise AddressError(
            f"{shown(given)} is not an IP address (such as 20.190.128.5 or 2603:1006::1)"
        ) from None
    notes = []
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        notes.append(f"{given} is an IPv4-mapped IPv6 address: checked as {ip.ipv4_mapped}")
        ip = ip.ipv4_mapped
    if not ip.is_global:  # a private or reserved address: not what a provider calls from
        notes.append(f"{ip} is not a public address: providers reach dbt from public ones")
    return Address(given, ip, "; ".join(notes) or None)


def parse_addresses(texts: Sequence[str]) -> list[Address]:
    """Every argument parsed, duplicates (after mapping) dropped, in the order given."""
    if len(texts) > MAX_ADDRESSES:
        raise AddressError(f"{len(texts)} addresses: at most {MAX_ADDRESSES} at once")
    seen: dict[IPAddress, Address] = {}
    for text in texts:
        address = parse_address(text)
        seen.setdefault(address.ip, address)
    return list(seen.values())


def mapped_ip(ip: IPAddress) -> IPv6Address:
    """An address in IPv6 space, IPv4 as IPv4-mapped (how the platform compares)."""
    return IPv6Address(_MAPPED_BASE + int(ip)) if isinstance(ip, IPv4Address) else ip


def mapped_network(network: Network) -> IPv6Network:
    """A network in IPv6 space, IPv4 as IPv4-mapped."""
    if isinstance(network, IPv4Network):
        base = _MAPPED_BASE + int(network.network_address)
        return IPv6Network((base, 96 + network.prefixlen))
    return network


class NetworkIndex(Generic[T]):
    """Networks (in IPv6 space) with an item each; `holding(ip)` finds those containing `ip`
    with one dictionary look-up per prefix length, most specific first, so an account of
    100,000 CIDRs or a source of 10,000 prefixes costs no scan per address."""

    def __init__(self) -> None:
        self._by_length: dict[int, dict[int, list[T]]] = {}

    def add(self, network: Network, item: T) -> None:
        mapped = mapped_network(network)
        at = self._by_length.setdefault(mapped.prefixlen, {})
        at.setdefault(int(mapped.network_address), []).append(item)

    def holding(self, ip: IPAddress) -> list[T]:
        """The items of every network holding `ip`, the longest prefix first."""
        value = int(mapped_ip(ip))
        found: list[T] = []
        for length in sorted(self._by_length, reverse=True):
            key = value >> (128 - length) << (128 - length) if length else 0
            found.extend(self._by_length[length].get(key, ()))
        return found


# ------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class SourceHit:
    """A published prefix holding the address: the source, its label (tag, cell) and prefix."""

    source: str
    type: str
    label: str
    prefix: str

    def to_json(self) -> dict[str, str]:
        return {
            "source": self.source,
            "type": self.type,
            "label": self.label,
            "prefix": self.prefix,
        }


SourceIndex = NetworkIndex[tuple[int, SourceHit]]


def index_sources(loaded: dict[str, Ranges]) -> SourceIndex:
    """Every published prefix as the SourceHit it would be, numbered in the sources' order."""
    index: SourceIndex = NetworkIndex()
    number = 0
    for name, ranges in loaded.items():
        for label, prefixes in ranges.prefixes.items():
            for prefix in prefixes:
                network = network_or_none(prefix)
                if network is not None:
                    index.add(network, (number, SourceHit(name, ranges.type, label, str(network))))
                    number += 1
    return index


def source_hits(address: Address, index: SourceIndex) -> list[SourceHit]:
    """Every published prefix holding `address`, in source, label and prefix order."""
    return [hit for _, hit in sorted(index.holding(address.ip), key=lambda pair: pair[0])]


# ------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class TargetRef:
    """A target to read: its name, account, owned rule's name and the sources feeding it."""

    name: str
    account_id: int
    rule_name: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Held:
    """One active CIDR of an active rule, as stored."""

    rule: Rule
    cidr: str


@dataclass
class Account:
    """What one target's account holds, read once: its rules, owned rule and enforcement."""

    target: TargetRef
    held: NetworkIndex[Held] = field(default_factory=NetworkIndex)
    owned: Rule | None = None
    enforcement: bool | None = None
    notes: list[str] = field(default_factory=list)
    error: AllowlistSyncError | None = None


def read_account(
    target: TargetRef,
    settings: Callable[[], Settings],
    transport: httpx.BaseTransport | None = None,
) -> Account:
    """List the account's rules (GET only); every expected error (the token unreadable or
    refused, the API down) lands in the Account."""
    with structlog.contextvars.bound_contextvars(target=target.name):
        return _read_account(target, settings, transport)


def _read_account(
    target: TargetRef, settings: Callable[[], Settings], transport: httpx.BaseTransport | None
) -> Account:
    account = Account(target)
    try:
        connection = settings().dbt_connection()
        with DbtClient.connect(
            connection, owned_rule_name=target.rule_name, transport=transport
        ) as client:
            rules = client.list_rules()
        account.enforcement = rule_set_enabled(rules)
    except AllowlistSyncError as exc:
        account.error = exc
        log.error("target_unread", target=target.name, kind=exc.kind, error=str(exc))
        return account
    try:
        account.owned = find_owned_rule(rules, target.rule_name)
    except OwnershipError as exc:  # the rules still answer; which one is owned is unclear
        account.notes.append(str(exc))
    for rule in rules:
        if not rule.is_active:
            continue
        for entry in rule.active_cidrs:
            network = network_or_none(entry.cidr)
            if network is not None:
                account.held.add(network, Held(rule, entry.cidr))
    return account


# ------------------------------------------------------------------------------ the verdict


@dataclass(frozen=True)
class RuleHit:
    """A rule holding the address, with the CIDR (as stored) that holds it."""

    id: int
    name: str
    cidr: str

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "cidr": self.cidr}


@dataclass(frozen=True)
class Answer:
    """Whether one target lets one address in, and every fact that decides it."""

    account: Account
    let_in: bool | None
    let_in_when_enforced: bool | None
    allowed_by: tuple[RuleHit, ...] = ()
    denied_by: tuple[RuleHit, ...] = ()
    owned_cidr: str | None = None
    #: The target's sources that publish the address.
    published_by: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.let_in is False


def judge(address: Address, account: Account, hits: Sequence[SourceHit]) -> Answer:
    """Whether `account` lets `address` in: enforcement off, or allowed and not denied."""
    published = tuple(dict.fromkeys(h.source for h in hits if h.source in account.target.sources))
    if account.error is not None:
        return Answer(account, None, None, published_by=published)
    allowed: dict[int, RuleHit] = {}
    denied: dict[int, RuleHit] = {}
    for held in account.held.holding(address.ip):  # the most specific CIDR of a rule wins
        hit = RuleHit(held.rule.id, held.rule.name, held.cidr)
        if held.rule.type == RuleType.DENY:
            denied.setdefault(hit.id, hit)
        elif held.rule.type == RuleType.ALLOW:
            allowed.setdefault(hit.id, hit)
    owned = account.owned
    owned_hit = allowed.get(owned.id) if owned is not None else None
    enforced = bool(allowed) and not denied
    return Answer(
        account,
        let_in=enforced or not account.enforcement,
        let_in_when_enforced=enforced,
        allowed_by=tuple(sorted(allowed.values(), key=lambda hit: hit.id)),
        denied_by=tuple(sorted(denied.values(), key=lambda hit: hit.id)),
        owned_cidr=owned_hit.cidr if owned_hit else None,
        published_by=published,
    )


@dataclass(frozen=True)
class AddressReport:
    """One address: the sources publishing it and each target's answer."""

    address: Address
    hits: list[SourceHit]
    answers: list[Answer]


@dataclass(frozen=True)
class Report:
    """The whole answer: per address, and the sources that could not be read."""

    addresses: list[AddressReport]
    sources: list[str]
    failed_sources: dict[str, AllowlistSyncError]
    accounts: list[Account]

    def exit_code(self) -> ExitCode:
        """0 when every address is let in by every target; else the most severe failure."""
        codes = [a.error.exit_code for a in self.accounts if a.error is not None]
        if any(answer.blocked for item in self.addresses for answer in item.answers):
            codes.append(ExitCode.FAILED)
        return max(codes, key=EXIT_SEVERITY.index, default=ExitCode.OK)


def build_report(
    addresses: Sequence[Address],
    loaded: dict[str, Ranges | AllowlistSyncError],
    accounts: list[Account],
) -> Report:
    """Every address against every loaded source and every account read."""
    good = {name: r for name, r in loaded.items() if isinstance(r, Ranges)}
    failed = {name: e for name, e in loaded.items() if isinstance(e, AllowlistSyncError)}
    index = index_sources(good)
    items = []
    for address in addresses:
        hits = source_hits(address, index)
        items.append(AddressReport(address, hits, [judge(address, a, hits) for a in accounts]))
    report = Report(items, list(good), failed, accounts)
    log.info(
        "check_ip_finished",
        addresses=len(items),
        targets=len(accounts),
        blocked=sum(1 for item in items for a in item.answers if a.blocked),
        unread=[a.target.name for a in accounts if a.error is not None],
        failed_sources=list(failed),
    )
    return report


def run_check_ip(args: argparse.Namespace) -> int:
    """The `check-ip` command: parse, load, read, judge, print; returns the exit code."""
    from allowlist_sync.cli import _configure_logs_from_env
    from allowlist_sync.commands.checkip_load import gather
    from allowlist_sync.commands.checkip_render import write_failure, write_report

    _configure_logs_from_env()  # first: logs go to stderr whatever fails (the settings refine it)
    try:
        try:
            addresses = parse_addresses(args.addresses)
        except AddressError as exc:
            print(f"allowlist-sync check-ip: error: {exc}", file=sys.stderr)
            write_failure(args, "usage", str(exc), sys.stdout)
            return ExitCode.USAGE
        gathered = gather(args)
        if isinstance(gathered, int):
            return gathered
        loaded, accounts = gathered
        report = build_report(addresses, loaded, accounts)
        write_report(report, args.output, sys.stdout)
        args.json_written = True
        return int(report.exit_code())
    except AllowlistSyncError as exc:  # before any target was read: main logs it
        write_failure(args, exc.kind, str(exc), sys.stdout)
        raise
    except KeyboardInterrupt:
        write_failure(args, "interrupted", "interrupted", sys.stdout)
        raise
    except Exception as exc:  # a bug: main logs it with its traceback
        write_failure(args, "internal", f"internal error: {type(exc).__name__}: {exc}", sys.stdout)
        raise
