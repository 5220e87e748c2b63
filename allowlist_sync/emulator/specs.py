"""The command line's specs for the emulator, each parsed into a plain value or a `SeedError`.

Every flag of `allowlist-sync emulator` that takes a spec is parsed here, checked as the
platform would check it, with a one-line message naming what is wrong (the CLI prints it as a
usage error, exit 64). `seed.py` gathers the results into a `Seed`.

    --account-id           ACCOUNT_ID[:TOKEN]                   repeatable; the first is the default
    --rule / --deny-rule   [ACCOUNT_ID:]NAME=CIDR[,CIDR...]     the CIDRs follow the last '='
    --fault                KEY=VALUE[,KEY=VALUE...]             keys: account, action, status,
                                                                method, path, times, retry_after,
                                                                seconds; action defaults to
                                                                `status` (503 unless status= says)
    --caller-ip            one IPv4 or IPv6 address
    --delay                SECONDS, 0 to 3600 (digits, an optional fraction)
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from allowlist_sync.emulator.account import Network, mapped_network
from allowlist_sync.emulator.faults import ACTIONS, Fault


class SeedError(ValueError):
    """A command-line seed spec that cannot be used; the message is one line."""


@dataclass(frozen=True)
class RuleSeed:
    """One rule to create before serving: name, type (1 allow, 2 deny), CIDRs as written, and
    the account it is for (None: every account served)."""

    name: str
    type: int
    cidrs: tuple[str, ...]
    description: str = ""
    account: int | None = None


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


# ------------------------------------------------------------------------------ accounts

#: A spec's `ACCOUNT_ID:` prefix: ASCII digits, then a colon.
_ACCOUNT_PREFIX = re.compile(r"([0-9]{1,18}):")
_TOKEN = re.compile(r"[!-~]{1,256}")


def parse_account_id(text: str) -> int:
    """An account id: a whole number from 1 (ASCII digits); SeedError otherwise."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise SeedError(f"{text!r} is not a whole number from 1 (an account id)")
    return int(text)


def parse_account(spec: str) -> tuple[int, str | None]:
    """`ACCOUNT_ID` or `ACCOUNT_ID:TOKEN`: the id, and its own token (None: the emulator's)."""
    ident, sep, token = spec.partition(":")
    account = parse_account_id(ident)
    if not sep:
        return account, None
    if not _TOKEN.fullmatch(token):
        # Never echo the token: say only what is wrong with it.
        raise SeedError("the token must be 1-256 printable ASCII characters without spaces")
    return account, token


def split_account(spec: str) -> tuple[int | None, str]:
    """A spec's optional `ACCOUNT_ID:` prefix and the rest (None: every account)."""
    match = _ACCOUNT_PREFIX.match(spec)
    if match is None:
        return None, spec
    return parse_account_id(match[1]), spec[match.end() :]


def parse_delay(text: str) -> float:
    """`--delay`: seconds from 0 to 3600, digits with an optional fraction; SeedError otherwise."""
    ok = re.fullmatch(r"[0-9]{1,4}(\.[0-9]{0,6})?|\.[0-9]{1,6}", text.strip())
    seconds = float(text) if ok else math.nan
    if not 0 <= seconds <= _MAX_SECONDS:
        raise SeedError(f"not a number of seconds from 0 to {_MAX_SECONDS:g}: {text!r}")
    return seconds


# ------------------------------------------------------------------------------ rules


def parse_rule(spec: str, rule_type: int) -> RuleSeed:
    """`[ACCOUNT_ID:]NAME=CIDR[,CIDR...]` as a rule of `rule_type`; SeedError says what is wrong.

    A leading `ACCOUNT_ID:` (digits and a colon) is always the account: a name that itself
    starts so is written with the account first (`1:2024: office=...`).
    """
    account, spec = split_account(spec)
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
    return RuleSeed(name, rule_type, tuple(cidrs), account=account)


# ------------------------------------------------------------------------------ faults

_FAULT_KEYS = {
    "account": "account",
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
    account, fault = parse_account_fault(spec)
    if account is not None:
        raise SeedError("account= is only for the command line's --fault")
    return fault


def parse_account_fault(spec: str) -> tuple[int | None, Fault]:
    """`--fault`'s spec: the account it is for (`account=ID`; None: every account), the fault."""
    fields = _fault_fields(spec)
    account = parse_account_id(fields.pop("account")) if "account" in fields else None
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
    return account, fault


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


# ------------------------------------------------------------------------------ caller


def parse_caller_ip(text: str) -> str:
    """One IPv4 or IPv6 address, returned as written; SeedError otherwise."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise SeedError("not an IP address (one IPv4 or IPv6 address, no prefix length)") from None
    return text
