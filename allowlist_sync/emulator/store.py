"""`EmulatorStore`: the emulated account behind one lock, with faults, a request log and a
Python API for tests.

`handle` answers one already-parsed request: control paths go to `control.py`; for `/api/`
paths it takes a matching fault, lets `api.py` answer (lock held), logs the request and applies
what the fault asks (drop, delay, store something other than was sent). The HTTP server in
`server.py` only moves bytes. Sleeps injected by faults happen outside the lock, so a delayed
request never stalls the others.
"""

from __future__ import annotations

import copy
import http
import ipaddress
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from allowlist_sync.emulator.account import (
    ALLOW,
    DEFAULT_ACCOUNT_ID,
    DENY,
    RULE_SET_ID,
    Account,
    mapped_network,
)
from allowlist_sync.emulator.api import DEFAULT_MAX_PAGE_SIZE, DEFAULT_TOKEN, ApiOptions, answer
from allowlist_sync.emulator.control import CONTROL_PREFIX, answer_control
from allowlist_sync.emulator.envelope import Response, error_response
from allowlist_sync.emulator.faults import STORE_OTHER, Fault, take_fault

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})


@dataclass(frozen=True)
class RequestRecord:
    """One request seen on a non-control path; never holds headers, so never the token."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None  # None when the connection was dropped before processing
    body: Any  # parsed JSON for writes (raw text if not JSON), None for reads
    caller_ip: str
    fault: str | None  # the injected fault action that applied, if any
    processed: bool  # False when a fault answered or dropped it before processing

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-compatible data."""
        return asdict(self)


def _record_body(method: str, body: bytes | None) -> Any:
    if method not in WRITE_METHODS or not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")


class EmulatorStore:
    """The emulated account: rules, CIDRs, enforcement, faults and the request log."""

    def __init__(
        self,
        account_id: int = DEFAULT_ACCOUNT_ID,
        token: str = DEFAULT_TOKEN,
        *,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        enforce: bool = False,
        caller_ip: str | None = None,
        validate_enveloped: bool = False,
        strict: bool = False,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be >= 1")
        if not token:
            raise ValueError("token must not be empty")
        self.account_id = account_id
        self._options = ApiOptions(token, max_page_size, validate_enveloped, strict)
        self._account = Account(account_id, enforce=enforce)
        self._initial_caller_ip = self._check_ip(caller_ip)
        # What reset() seeds again: none unless keep_as_initial() recorded a start-up state.
        self._initial_rules: list[tuple[str, int, list[str], str]] = []
        self._initial_faults: list[Fault] = []
        self._lock = threading.RLock()
        # Set by the server on stop() so sleeping (delayed) requests give up at once.
        self._wake = threading.Event()
        self._init_state()

    def _init_state(self) -> None:
        self._account.reset()
        self._caller_ip = self._initial_caller_ip
        self._faults: list[Fault] = [replace(f) for f in self._initial_faults]
        self._requests: list[RequestRecord] = []
        for name, rule_type, cidrs, description in self._initial_rules:
            rule = self._account.new_rule(name, rule_type, description)
            for text in cidrs:
                net = mapped_network(text)
                if net is not None:  # checked when first seeded
                    self._account.add_cidr(rule, text, net)

    @staticmethod
    def _check_ip(ip: str | None) -> str | None:
        if ip is not None:
            ipaddress.ip_address(ip)  # raises ValueError on garbage
        return ip

    # ----------------------------------------------------------------- Python API for tests

    def reset(self) -> None:
        """Back to the start-up state: the constructor's, or the one `keep_as_initial` kept.

        The request log and the flips are emptied; the mode (`strict`) and the page size stay
        as they are.
        """
        with self._lock:
            self._init_state()

    def keep_as_initial(self) -> None:
        """Make the rules, faults, enforcement and caller IP held now what `reset` restores.

        The command line's seed (`allowlist-sync emulator --rule ...`) is kept this way, so a
        rehearsal can be run again from the same account after `POST /_emulator/reset`.
        """
        with self._lock:
            account = self._account
            self._initial_rules = [
                (r.name, r.type, [c.cidr for c in r.active_cidrs()], r.description)
                for r in account.active_rules()
            ]
            self._initial_faults = [replace(f) for f in self._faults]
            account.initial_enforce = account.enabled
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
    def rule_set_enabled(self) -> bool:
        """Whether IP restrictions are enforced for the account."""
        with self._lock:
            return self._account.enabled

    def set_enforcement(self, enabled: bool) -> None:
        """Turn enforcement on or off directly (not counted as a flip)."""
        with self._lock:
            self._account.set_enabled(enabled, by_request=False)

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
        """How many API requests changed the account-wide enforcement value."""
        with self._lock:
            return self._account.flips

    @property
    def requests(self) -> list[RequestRecord]:
        """The request log (non-control requests, in arrival order)."""
        with self._lock:
            return list(self._requests)

    def write_count(self) -> int:
        """POST/PUT/DELETE requests on /api paths that were processed (not stopped by a fault)."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if r.processed and r.method in WRITE_METHODS and r.path.startswith("/api/")
            )

    @property
    def faults(self) -> list[Fault]:
        """Pending faults (copies)."""
        with self._lock:
            return [replace(f) for f in self._faults]

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; faults are tried in the order added."""
        with self._lock:
            self._faults.append(replace(fault))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def seed_rule(
        self, name: str, type: int = ALLOW, cidrs: Iterable[str] = (), description: str = ""
    ) -> int:
        """Create a rule directly (no conflict checks, no log); returns its id."""
        if type not in (ALLOW, DENY):
            raise ValueError("type must be 1 (allow) or 2 (deny)")
        networks = []
        for text in cidrs:
            net = mapped_network(text)
            if net is None:
                raise ValueError(f"not an IP address or network: {text!r}")
            networks.append((text, net))
        with self._lock:
            rule = self._account.new_rule(name, type, description)
            for text, net in networks:
                self._account.add_cidr(rule, text, net)
            return rule.id

    def snapshot(self) -> list[dict[str, Any]]:
        """Active rules as the API renders them, ordered by id (deep copies)."""
        with self._lock:
            account = self._account
            return copy.deepcopy([account.rule_json(r) for r in account.active_rules()])

    def state(self) -> dict[str, Any]:
        """Everything a test may want to look at, as JSON-compatible data."""
        with self._lock:
            return {
                "account_id": self.account_id,
                "rule_set_id": RULE_SET_ID,
                "rule_set_enabled": self._account.enabled,
                "enforcement_flips": self._account.flips,
                "caller_ip": self._caller_ip,
                "max_page_size": self._options.max_page_size,
                "strict": self._options.strict,
                "write_count": self.write_count(),
                "rules": self.snapshot(),
                "faults": [f.to_dict() for f in self._faults],
            }

    def wake_sleepers(self) -> None:
        """Abort every fault delay in progress (their requests are dropped); for shutdown."""
        self._wake.set()

    def clear_wake(self) -> None:
        """Let fault delays sleep again (the server calls this on start)."""
        self._wake.clear()

    def is_allowed(self, ip: str, exclude_rule_id: int | None = None) -> bool:
        """Whether `ip` is in an active allow rule's CIDR and in no active deny rule's CIDR."""
        with self._lock:
            return self._account.is_allowed(ip, exclude_rule_id)

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
            return answer_control(self, method, path, body)
        with self._lock:
            effective_ip = self._caller_ip or caller_ip
            fault = take_fault(self._faults, method, path) if path.startswith("/api/") else None
        record = {
            "method": method,
            "path": path,
            "query": dict(query),
            "body": _record_body(method, body),
            "caller_ip": effective_ip,
            "fault": fault.action if fault else None,
        }
        if fault is not None and fault.action == "status":
            extra_headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            response = error_response(
                fault.status,
                http.HTTPStatus(fault.status).phrase,
                "Injected fault",
                headers=extra_headers,
            )
            self._log(record, response.status, processed=False)
            return response
        if fault is not None and fault.action == "drop_before":
            self._log(record, None, processed=False)
            return Response(0, drop=True)
        if fault is not None and fault.action == "delay_before" and self._sleep(fault.seconds):
            self._log(record, None, processed=False)
            return Response(0, drop=True)
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            response, effect = answer(
                self._account, self._options, method, path, query, lowered, body, effective_ip
            )
            if effect is not None and take_fault(self._faults, method, path, after_write=True):
                effect.undo_one()
                taken = record["fault"]
                record["fault"] = STORE_OTHER if taken is None else f"{taken}+{STORE_OTHER}"
            self._log(record, response.status, processed=True)
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

    def _log(self, record: dict[str, Any], status: int | None, *, processed: bool) -> None:
        with self._lock:
            self._requests.append(RequestRecord(status=status, processed=processed, **record))
