"""Seeding the emulator from the command line: rule, fault and caller specs, and presets.

`allowlist-sync emulator` can start as the account a person wants to rehearse against instead
of an empty one. Each flag's text is parsed here into plain values (`RuleSeed`, `Fault`), checked
as the platform would check them, and gathered into one `Seed`; `Seed.make_store` builds the
store that `/_emulator/reset` then returns to. Every bad spec is a `SeedError` with a one-line
message naming the flag and the problem, which the CLI prints as a usage error (exit 64).

Spec formats (docs/emulator.md shows examples):

    --rule / --deny-rule   NAME=CIDR[,CIDR...]      the CIDRs follow the last '='
    --fault                KEY=VALUE[,KEY=VALUE...] keys: action, status, method, path, times,
                                                    retry_after, seconds; action defaults to
                                                    `status` (503 unless status= says otherwise)
    --caller-ip            one IPv4 or IPv6 address
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

from allowlist_sync.emulator.account import ALLOW, DENY, Network, mapped_network
from allowlist_sync.emulator.faults import ACTIONS, Fault
from allowlist_sync.emulator.store import EmulatorStore

_T = TypeVar("_T")


class SeedError(ValueError):
    """A command-line seed spec that cannot be used; the message is one line."""


@dataclass(frozen=True)
class RuleSeed:
    """One rule to create before serving: name, type (1 allow, 2 deny), CIDRs as written."""

    name: str
    type: int
    cidrs: tuple[str, ...]
    description: str = ""


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
    """What the emulator holds when it starts, and again after `/_emulator/reset`."""

    rules: tuple[RuleSeed, ...] = ()
    faults: tuple[Fault, ...] = ()
    enforce: bool = False
    caller_ip: str | None = None
    strict: bool = False

    def make_store(self, account_id: int, token: str, *, max_page_size: int) -> EmulatorStore:
        """A store holding this seed, with the seed kept as the state `reset` returns to."""
        store = EmulatorStore(
            account_id,
            token,
            max_page_size=max_page_size,
            enforce=self.enforce,
            caller_ip=self.caller_ip,
            strict=self.strict,
        )
        for rule in self.rules:
            store.seed_rule(rule.name, rule.type, rule.cidrs, rule.description)
        for fault in self.faults:
            store.add_fault(fault)
        store.keep_as_initial()
        return store

    def summary(self) -> str:
        """One line for the start-up banner: what the account holds."""
        rules = ", ".join(
            f"{'allow' if r.type == ALLOW else 'deny'} rule {r.name!r} ({_count(r.cidrs, 'CIDR')})"
            for r in self.rules
        )
        parts = [
            rules or "no rules",
            f"enforcement {'on' if self.enforce else 'off'}",
            f"caller {self.caller_ip}" if self.caller_ip else "caller: the socket peer",
        ]
        if self.faults:
            parts.append(_count(self.faults, "fault"))
        if self.strict:
            parts.append("strict")
        return "; ".join(parts)

    def lockout_warning(self) -> str | None:
        """A warning when enforcement is on and the caller is let in by no rule; else None."""
        if not self.enforce:
            return None
        caller = self.caller_ip or "127.0.0.1"
        addr = mapped_network(caller)
        allowed = False
        for rule in self.rules:
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


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


# ------------------------------------------------------------------------------ rules


def parse_rule(spec: str, rule_type: int) -> RuleSeed:
    """`NAME=CIDR[,CIDR...]` as a rule of `rule_type`; SeedError says what is wrong."""
    name, sep, cidr_text = spec.rpartition("=")
    if not sep:
        raise SeedError("expected NAME=CIDR[,CIDR...]")
    if not name.strip():
        raise SeedError("the rule name is empty")
    if _has_control(name):
        raise SeedError("the rule name holds a control character")
    if not cidr_text.strip():
        raise SeedError("no CIDR after '='")
    cidrs: list[str] = []
    seen: set[Network] = set()
    for item in cidr_text.split(","):
        cidr = item.strip()
        if not cidr:
            raise SeedError("an empty CIDR in the list (two commas, or one at the end)")
        net = mapped_network(cidr)
        if net is None:
            raise SeedError(f"{cidr!r} is not an IP address or network")
        if net in seen:  # the platform would answer "already exists" for the second one
            raise SeedError(f"{cidr!r} is listed twice")
        seen.add(net)
        cidrs.append(cidr)
    return RuleSeed(name, rule_type, tuple(cidrs))


# ------------------------------------------------------------------------------ faults

_FAULT_KEYS = {
    "action": "action",
    "status": "status",
    "method": "method",
    "path": "path_regex",
    "path_regex": "path_regex",
    "times": "times",
    "retry_after": "retry_after",
    "seconds": "seconds",
}
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
_DELAYS = frozenset({"delay_before", "delay_after"})
_MAX_TIMES = 1_000_000
_MAX_SECONDS = 3600.0
_RETRY_AFTER = re.compile(r"[\x20-\x7e]{1,64}")


def parse_fault(spec: str) -> Fault:
    """`KEY=VALUE[,KEY=VALUE...]` as a `Fault`; SeedError says what is wrong."""
    fields = _fault_fields(spec)
    action = fields.pop("action", "status").lower()
    if action not in ACTIONS:
        raise SeedError(f"unknown action {action!r}; expected one of {', '.join(sorted(ACTIONS))}")
    if action != "status":
        for key in ("status", "retry_after"):
            if key in fields:
                raise SeedError(f"{key} only applies to action=status")
    if action in _DELAYS and "seconds" not in fields:
        raise SeedError(f"{action} needs seconds=N")
    if action not in _DELAYS and "seconds" in fields:
        raise SeedError("seconds only applies to delay_before and delay_after")
    fault = Fault(action=action)
    for key, value in fields.items():
        _FAULT_VALUES[key](fault, value)
    return fault


def _fault_fields(spec: str) -> dict[str, str]:
    if not spec.strip():
        raise SeedError("the fault spec is empty; e.g. status=429,method=PUT,times=2")
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise SeedError(f"expected KEY=VALUE, got {item.strip()!r}")
        field = _FAULT_KEYS.get(key)
        if field is None:
            known = ", ".join(sorted(_FAULT_KEYS))
            raise SeedError(f"unknown key {key!r}; expected one of {known}")
        if field in fields:
            raise SeedError(f"{key!r} given twice")
        fields[field] = value.strip()
    return fields


def _set_status(fault: Fault, value: str) -> None:
    if not re.fullmatch(r"[45][0-9]{2}", value):
        raise SeedError(f"status must be an HTTP error status (400-599), not {value!r}")
    fault.status = int(value)


def _set_method(fault: Fault, value: str) -> None:
    if value.upper() not in _METHODS:
        raise SeedError(f"method must be one of {', '.join(_METHODS)}, not {value!r}")
    fault.method = value.upper()


def _set_path(fault: Fault, value: str) -> None:
    if not value:
        raise SeedError("path must be a non-empty regular expression")
    try:
        re.compile(value)
    except re.error as exc:
        raise SeedError(f"path does not compile as a regular expression: {exc}") from None
    fault.path_regex = value


def _set_times(fault: Fault, value: str) -> None:
    if not re.fullmatch(r"[0-9]{1,7}", value) or not 1 <= int(value) <= _MAX_TIMES:
        raise SeedError(f"times must be a whole number from 1 to {_MAX_TIMES}, not {value!r}")
    fault.times = int(value)


def _set_retry_after(fault: Fault, value: str) -> None:
    if not _RETRY_AFTER.fullmatch(value):
        raise SeedError("retry_after must be 1-64 printable ASCII characters (seconds or a date)")
    fault.retry_after = value


def _set_seconds(fault: Fault, value: str) -> None:
    seconds = float(value) if re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,6})?", value) else math.nan
    if not 0.001 <= seconds <= _MAX_SECONDS:
        raise SeedError(f"seconds must be a number from 0.001 to {_MAX_SECONDS:g}, not {value!r}")
    fault.seconds = seconds


_FAULT_VALUES: dict[str, Callable[[Fault, str], None]] = {
    "status": _set_status,
    "method": _set_method,
    "path_regex": _set_path,
    "times": _set_times,
    "retry_after": _set_retry_after,
    "seconds": _set_seconds,
}


# ------------------------------------------------------------------------------ caller, presets


def parse_caller_ip(text: str) -> str:
    """One IPv4 or IPv6 address, returned as written; SeedError otherwise."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise SeedError("not an IP address (one IPv4 or IPv6 address, no prefix length)") from None
    return text


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
) -> Seed:
    """The seed the command line asks for; SeedError names the flag and spec at fault.

    A preset comes first (its rules before the ones given), and the flags add to it.
    """
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
    seeded += [_flag("--rule", spec, lambda s: parse_rule(s, ALLOW)) for spec in rules]
    seeded += [_flag("--deny-rule", spec, lambda s: parse_rule(s, DENY)) for spec in deny_rules]
    _check_allow_deny(seeded)
    return Seed(
        rules=tuple(seeded),
        faults=tuple(_flag("--fault", spec, parse_fault) for spec in faults),
        enforce=enforce,
        caller_ip=caller,
        strict=strict,
    )


def _flag(flag: str, spec: str, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(spec)
    except SeedError as exc:
        raise SeedError(f"{flag} {spec!r}: {exc}") from None


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
