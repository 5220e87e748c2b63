"""The accounts one emulator serves: each one's data, token, faults and start-up state.

A real sync may target several dbt accounts, each a separate tenant of the platform: its own
rules, rule set, enforcement, id counters and service token. `ServedAccount` is one of them as
the store keeps it; `AccountView` is the Python API a test uses for one account
(`store.account(5151).seed_rule(...)`), guarded by the store's one lock. The request log,
the caller IP, the strict mode and the latency are the emulator's, shared by every account.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from allowlist_sync.emulator.account import ALLOW, DENY, Account, Network, mapped_network
from allowlist_sync.emulator.faults import Fault
from allowlist_sync.emulator.record import RequestLog, RequestRecord

#: The `accounts` argument of `EmulatorStore`: ids (each taking the store's token), or ids
#: mapped to their own token (None: the store's).
AccountsSpec = Mapping[int, str | None] | Iterable[int]


class UnknownAccountError(LookupError):
    """An account id the emulator does not serve."""

    def __init__(self, account_id: object, served: Iterable[int]) -> None:
        listed = ", ".join(str(a) for a in served)
        super().__init__(f"account {account_id} is not served (served: {listed})")


def served_accounts(
    account_id: int | None, accounts: AccountsSpec | None, default_id: int
) -> list[tuple[int, str | None]]:
    """The (id, own token or None) pairs to serve, first the default; ValueError when bad."""
    if accounts is None:
        pairs: list[tuple[int, str | None]] = [
            (default_id if account_id is None else account_id, None)
        ]
    elif isinstance(accounts, Mapping):
        pairs = list(accounts.items())
    else:
        pairs = [(a, None) for a in accounts]
    if not pairs:
        raise ValueError("accounts: at least one account is required")
    seen: set[int] = set()
    for ident, token in pairs:
        if isinstance(ident, bool) or not isinstance(ident, int) or ident < 1:
            raise ValueError(f"account ids are whole numbers from 1, not {ident!r}")
        if ident in seen:
            raise ValueError(f"account {ident} is listed twice")
        seen.add(ident)
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"the token of account {ident} must not be empty")
    if accounts is not None and account_id is not None and account_id != pairs[0][0]:
        raise ValueError("account_id must be the first of accounts (or left out)")
    return pairs


def checked_networks(cidrs: Iterable[str]) -> list[tuple[str, Network]]:
    """Each CIDR with its network; ValueError names the first that is not one."""
    networks = []
    for text in cidrs:
        net = mapped_network(text)
        if net is None:
            raise ValueError(f"not an IP address or network: {text!r}")
        networks.append((text, net))
    return networks


class ServedAccount:
    """One served account: its data, its own token (None: the store's), faults, start-up state."""

    def __init__(self, account_id: int, token: str | None, *, enforce: bool) -> None:
        self.account = Account(account_id, enforce=enforce)
        self.token = token
        # What reset() seeds again: none unless keep_as_initial() recorded a start-up state.
        self.initial_rules: list[tuple[str, int, list[str], str]] = []
        self.initial_faults: list[Fault] = []
        self.faults: list[Fault] = []

    @property
    def account_id(self) -> int:
        """The account's id, as the paths name it."""
        return self.account.account_id

    def reset(self) -> None:
        """Back to the start-up state: rules, faults, enforcement; ids from the start."""
        self.account.reset()
        self.faults = [replace(f) for f in self.initial_faults]
        for name, rule_type, cidrs, description in self.initial_rules:
            self.add_rule(name, rule_type, checked_networks(cidrs), description)

    def keep_as_initial(self) -> None:
        """Make the rules, faults and enforcement held now what `reset` restores."""
        self.initial_rules = [
            (r.name, r.type, [c.cidr for c in r.active_cidrs()], r.description)
            for r in self.account.active_rules()
        ]
        self.initial_faults = [replace(f) for f in self.faults]
        self.account.initial_enforce = self.account.enabled

    def add_rule(
        self, name: str, rule_type: int, networks: list[tuple[str, Network]], description: str
    ) -> int:
        """Store a rule holding `networks` (no conflict checks); returns its id."""
        rule = self.account.new_rule(name, rule_type, description)
        for text, net in networks:
            self.account.add_cidr(rule, text, net)
        return rule.id

    def snapshot(self) -> list[dict[str, Any]]:
        """Active rules as the API renders them, ordered by id (deep copies)."""
        return copy.deepcopy([self.account.rule_json(r) for r in self.account.active_rules()])


class AccountView:
    """The Python API for one served account; every call takes the store's lock."""

    def __init__(self, served: ServedAccount, lock: threading.RLock, log: RequestLog) -> None:
        self._served = served
        self._lock = lock
        self._log = log

    @property
    def account_id(self) -> int:
        """The account's id."""
        return self._served.account_id

    @property
    def rule_set_enabled(self) -> bool:
        """Whether IP restrictions are enforced for the account."""
        with self._lock:
            return self._served.account.enabled

    def set_enforcement(self, enabled: bool) -> None:
        """Turn enforcement on or off directly (not counted as a flip)."""
        with self._lock:
            self._served.account.set_enabled(enabled, by_request=False)

    @property
    def enforcement_flips(self) -> int:
        """How many API requests changed the account-wide enforcement value."""
        with self._lock:
            return self._served.account.flips

    @property
    def faults(self) -> list[Fault]:
        """The account's pending faults (copies)."""
        with self._lock:
            return [replace(f) for f in self._served.faults]

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault for this account's requests; faults are tried in the order added."""
        with self._lock:
            self._served.faults.append(replace(fault))

    def clear_faults(self) -> None:
        """Drop every pending fault of this account."""
        with self._lock:
            self._served.faults.clear()

    def seed_rule(
        self, name: str, type: int = ALLOW, cidrs: Iterable[str] = (), description: str = ""
    ) -> int:
        """Create a rule directly (no conflict checks, no log); returns its id."""
        if type not in (ALLOW, DENY):
            raise ValueError("type must be 1 (allow) or 2 (deny)")
        networks = checked_networks(cidrs)
        with self._lock:
            return self._served.add_rule(name, type, networks, description)

    def snapshot(self) -> list[dict[str, Any]]:
        """Active rules as the API renders them, ordered by id (deep copies)."""
        with self._lock:
            return self._served.snapshot()

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests whose path named this account, in arrival order."""
        with self._lock:
            return self._log.records(self.account_id)

    def write_count(self) -> int:
        """This account's POST/PUT/DELETE requests that were processed."""
        with self._lock:
            return self._log.write_count(self.account_id)

    def is_allowed(self, ip: str, exclude_rule_id: int | None = None) -> bool:
        """Whether `ip` is in an active allow rule's CIDR and in no active deny rule's CIDR."""
        with self._lock:
            return self._served.account.is_allowed(ip, exclude_rule_id)

    def reset(self) -> None:
        """This account back to its start-up state; the log and other accounts are untouched."""
        with self._lock:
            self._served.reset()
