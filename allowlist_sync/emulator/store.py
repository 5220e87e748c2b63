"""`EmulatorStore`: the emulated accounts behind one lock, with faults, a request log, latency
and a Python API for tests.

`handle` answers one already-parsed request: control paths go to `control.py`; an `/api/`
request first waits out the latency, then takes a matching fault of the account its path names
(the first account's when it names none served), lets `api.py` answer (lock held), logs the
request and applies what the fault asks (drop, delay, store something other than was sent).
The HTTP server in `server.py` only moves bytes. Latency and fault delays are waited out
outside the lock, so a delayed request never stalls the others.
"""

from __future__ import annotations

import http
import ipaddress
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from allowlist_sync.emulator.account import ALLOW, DEFAULT_ACCOUNT_ID, RULE_SET_ID
from allowlist_sync.emulator.api import (
    DEFAULT_MAX_PAGE_SIZE,
    DEFAULT_TOKEN,
    ApiOptions,
    answer,
    path_account,
)
from allowlist_sync.emulator.control import CONTROL_PREFIX, answer_control
from allowlist_sync.emulator.envelope import Response, error_response
from allowlist_sync.emulator.faults import STORE_OTHER, Fault, take_fault
from allowlist_sync.emulator.latency import Latency
from allowlist_sync.emulator.record import RequestLog, RequestRecord, record_body
from allowlist_sync.emulator.served import (
    AccountsSpec,
    AccountView,
    ServedAccount,
    UnknownAccountError,
    served_accounts,
)

__all__ = ["EmulatorStore", "RequestRecord"]


class EmulatorStore:
    """The emulated accounts: rules, CIDRs, enforcement, faults, the request log, latency.

    One account unless `accounts` lists several (ids, or ids mapped to their own token, None
    meaning `token`); the first is the default the one-account API (`snapshot()`,
    `seed_rule()`, `add_fault()`, ...) means, and `account(id)` gives the same API for any.
    """

    def __init__(
        self,
        account_id: int | None = None,
        token: str = DEFAULT_TOKEN,
        *,
        accounts: AccountsSpec | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        enforce: bool = False,
        caller_ip: str | None = None,
        validate_enveloped: bool = False,
        strict: bool = False,
        latency: float = 0.0,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be >= 1")
        if not token:
            raise ValueError("token must not be empty")
        pairs = served_accounts(account_id, accounts, DEFAULT_ACCOUNT_ID)
        self._served = {ident: ServedAccount(ident, own, enforce=enforce) for ident, own in pairs}
        self.account_id = pairs[0][0]
        self._default = self._served[self.account_id]
        self._options = ApiOptions(token, max_page_size, validate_enveloped, strict)
        self._initial_caller_ip = self._check_ip(caller_ip)
        self._lock = threading.RLock()
        self._log = RequestLog()
        # Set by the server on stop() so sleeping (delayed) requests give up at once.
        self._wake = threading.Event()
        self._latency = Latency(latency, self._wake)
        self._views = {
            ident: AccountView(served, self._lock, self._log)
            for ident, served in self._served.items()
        }
        self._init_state()

    def _init_state(self) -> None:
        for served in self._served.values():
            served.reset()
        self._caller_ip = self._initial_caller_ip
        self._log.clear()

    @staticmethod
    def _check_ip(ip: str | None) -> str | None:
        if ip is not None:
            ipaddress.ip_address(ip)  # raises ValueError on garbage
        return ip

    # ----------------------------------------------------------------- accounts

    @property
    def accounts(self) -> list[int]:
        """The ids of the accounts served, the default first."""
        return list(self._served)

    def account(self, account_id: int | None = None) -> AccountView:
        """The Python API for one account (None: the first); LookupError if not served."""
        view = self._views.get(self.account_id if account_id is None else account_id)
        if view is None:
            raise UnknownAccountError(account_id, self._served)
        return view

    # ----------------------------------------------------------------- Python API for tests

    def reset(self) -> None:
        """Every account back to its start-up state (the constructor's, or the one
        `keep_as_initial` kept), with the caller IP; the request log and the flips are emptied.

        The mode (`strict`), the page size and the latency stay as they are.
        """
        with self._lock:
            self._init_state()

    def keep_as_initial(self) -> None:
        """Make the rules, faults, enforcement and caller IP held now what `reset` restores.

        The command line's seed (`allowlist-sync emulator --rule ...`) is kept this way, so a
        rehearsal can be run again from the same account after `POST /_emulator/reset`.
        """
        with self._lock:
            for served in self._served.values():
                served.keep_as_initial()
            self._initial_caller_ip = self._caller_ip

    @property
    def max_page_size(self) -> int:
        """The most rules one list page holds, whatever `limit` asks."""
        with self._lock:
            return self._options.max_page_size

    @max_page_size.setter
    def max_page_size(self, size: int) -> None:
        if size < 1:
            raise ValueError("max_page_size must be >= 1")
        with self._lock:
            self._options.max_page_size = size

    @property
    def validate_enveloped(self) -> bool:
        """False: validate answers the spec's bare `{is_valid_for_admin}`; True: enveloped."""
        with self._lock:
            return self._options.validate_enveloped

    @validate_enveloped.setter
    def validate_enveloped(self, enveloped: bool) -> None:
        with self._lock:
            self._options.validate_enveloped = bool(enveloped)

    @property
    def strict(self) -> bool:
        """Whether writes get the stricter answers where the spec is silent (see writes.py)."""
        with self._lock:
            return self._options.strict

    @strict.setter
    def strict(self, strict: bool) -> None:
        with self._lock:
            self._options.strict = bool(strict)

    @property
    def latency(self) -> float:
        """Seconds every /api/ request waits before it is processed (a round trip away)."""
        return self._latency.seconds

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency.seconds = seconds

    @property
    def in_flight(self) -> int:
        """/api/ requests received and not yet answered."""
        return self._latency.in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most /api/ requests in flight at once since the store was made."""
        return self._latency.peak

    @property
    def rule_set_enabled(self) -> bool:
        """Whether IP restrictions are enforced for the first account."""
        return self.account().rule_set_enabled

    def set_enforcement(self, enabled: bool) -> None:
        """Turn the first account's enforcement on or off directly (not counted as a flip)."""
        self.account().set_enforcement(enabled)

    @property
    def caller_ip(self) -> str | None:
        """The IP every request is treated as coming from; None = the socket peer."""
        with self._lock:
            return self._caller_ip

    @caller_ip.setter
    def caller_ip(self, ip: str | None) -> None:
        checked = self._check_ip(ip)
        with self._lock:
            self._caller_ip = checked

    @property
    def enforcement_flips(self) -> int:
        """How many API requests changed the first account's enforcement value."""
        return self.account().enforcement_flips

    @property
    def requests(self) -> list[RequestRecord]:
        """The request log (non-control requests of every account, in arrival order)."""
        with self._lock:
            return self._log.records()

    def write_count(self, account_id: int | None = None) -> int:
        """POST/PUT/DELETE requests on /api paths that were processed (not stopped by a fault),
        of every account, or of `account_id`."""
        if account_id is not None:
            return self.account(account_id).write_count()
        with self._lock:
            return self._log.write_count()

    @property
    def faults(self) -> list[Fault]:
        """The first account's pending faults (copies)."""
        return self.account().faults

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault for the first account; faults are tried in the order added."""
        self.account().add_fault(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault of the first account."""
        self.account().clear_faults()

    def seed_rule(
        self, name: str, type: int = ALLOW, cidrs: Iterable[str] = (), description: str = ""
    ) -> int:
        """Create a rule in the first account directly (no conflict checks, no log); its id."""
        return self.account().seed_rule(name, type, cidrs, description)

    def snapshot(self, account_id: int | None = None) -> list[dict[str, Any]]:
        """An account's active rules as the API renders them, by id (deep copies); None: the
        first account."""
        return self.account(account_id).snapshot()

    def state(self, account_id: int | None = None) -> dict[str, Any]:
        """Everything a test may want to look at about an account (None: the first) and the
        emulator, as JSON-compatible data."""
        view = self.account(account_id)
        served = self._served[view.account_id]
        with self._lock:
            return {
                "account_id": view.account_id,
                "accounts": self.accounts,
                "rule_set_id": RULE_SET_ID,
                "rule_set_enabled": served.account.enabled,
                "enforcement_flips": served.account.flips,
                "caller_ip": self._caller_ip,
                "max_page_size": self._options.max_page_size,
                "strict": self._options.strict,
                "latency": self._latency.seconds,
                "write_count": self._log.write_count(view.account_id),
                "rules": served.snapshot(),
                "faults": [f.to_dict() for f in served.faults],
            }

    def wake_sleepers(self) -> None:
        """Abort every latency and fault delay in progress (their requests are dropped)."""
        self._wake.set()

    def clear_wake(self) -> None:
        """Let delays sleep again (the server calls this on start)."""
        self._wake.clear()

    def is_allowed(self, ip: str, exclude_rule_id: int | None = None) -> bool:
        """Whether `ip` is in an active allow rule's CIDR and in no active deny rule's CIDR,
        in the first account."""
        return self.account().is_allowed(ip, exclude_rule_id)

    # ----------------------------------------------------------------- request handling

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None,
        caller_ip: str,
    ) -> Response:
        """Answer one request; `path` excludes the query string, header names any case."""
        method = method.upper()
        if path.startswith(CONTROL_PREFIX):
            return answer_control(self, method, path, query, body)
        if not path.startswith("/api/"):
            return self._answer(method, path, query, headers, body, caller_ip)
        with self._latency.flying():
            if self._latency.wait():
                self._add_record(self._record(method, path, query, body, caller_ip, None), None)
                return Response(0, drop=True)
            return self._answer(method, path, query, headers, body, caller_ip)

    def _answer(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None,
        caller_ip: str,
    ) -> Response:
        # The faults of the account the path names; the first account's when it names none.
        owner = self._served.get(path_account(path) or 0, self._default)
        with self._lock:
            fault = take_fault(owner.faults, method, path) if path.startswith("/api/") else None
        record = self._record(method, path, query, body, caller_ip, fault)
        if fault is not None and fault.action == "status":
            extra_headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            response = error_response(
                fault.status,
                http.HTTPStatus(fault.status).phrase,
                "Injected fault",
                headers=extra_headers,
            )
            self._add_record(record, response.status)
            return response
        if fault is not None and fault.action == "drop_before":
            self._add_record(record, None)
            return Response(0, drop=True)
        if fault is not None and fault.action == "delay_before" and self._sleep(fault.seconds):
            self._add_record(record, None)
            return Response(0, drop=True)
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            accounts = [(s.account, s.token or self._options.token) for s in self._served.values()]
            response, effect = answer(
                accounts, self._options, method, path, query, lowered, body, record["caller_ip"]
            )
            if effect is not None and take_fault(owner.faults, method, path, after_write=True):
                effect.undo_one()
                taken = record["fault"]
                record["fault"] = STORE_OTHER if taken is None else f"{taken}+{STORE_OTHER}"
            self._add_record(record, response.status, processed=True)
        if fault is not None and fault.action == "drop_after":
            return replace(response, drop=True)
        if fault is not None and fault.action == "delay_after" and self._sleep(fault.seconds):
            return replace(response, drop=True)
        return response

    def _sleep(self, seconds: float) -> bool:
        """Sleep outside the lock; True if interrupted by shutdown."""
        if seconds <= 0:
            return False
        return self._wake.wait(seconds)

    def _record(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes | None,
        caller_ip: str,
        fault: Fault | None,
    ) -> dict[str, Any]:
        with self._lock:
            effective_ip = self._caller_ip or caller_ip
        return {
            "method": method,
            "path": path,
            "query": dict(query),
            "body": record_body(method, body),
            "caller_ip": effective_ip,
            "fault": fault.action if fault else None,
            "account_id": path_account(path),
        }

    def _add_record(
        self, record: dict[str, Any], status: int | None, *, processed: bool = False
    ) -> None:
        with self._lock:
            self._log.append(RequestRecord(status=status, processed=processed, **record))
