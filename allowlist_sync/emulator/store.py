"""State and behaviour of the emulated dbt Admin API IP-restriction endpoints (no HTTP here).

`EmulatorStore.handle` takes one already-parsed request and returns a `Response`; the HTTP
server in `server.py` only moves bytes. Everything is guarded by one lock, and sleeps
injected by faults happen outside it so a delayed request never stalls the others.
"""

from __future__ import annotations

import copy
import hmac
import http
import ipaddress
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from allowlist_sync.emulator.faults import Fault, take_fault

DEFAULT_ACCOUNT_ID = 1
DEFAULT_TOKEN = "dbtc_emulator_token"  # noqa: S105 - a public, documented demo token
DEFAULT_MAX_PAGE_SIZE = 100
RULE_SET_ID = 1
ALLOW = 1
DENY = 2
ACTIVE = 1
DELETED = 2
SERVICE_TOKEN_ID = 1
# Rule and CIDR ids come from different ranges so a client that mixes them up gets a
# 404 or a failed CIDR instead of silently touching the wrong object.
FIRST_RULE_ID = 1
FIRST_CIDR_ID = 1001
MAX_CIDR_LENGTH = 100

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
CONTROL_PREFIX = "/_emulator/"

_ACCOUNT = r"^/api/v3/accounts/(?P<account>[^/]+)"
_RULES = re.compile(_ACCOUNT + r"/ip-restrictions/$")
_RULE = re.compile(_ACCOUNT + r"/ip-restrictions/(?P<rule>[^/]+)$")
_RULE_SET = re.compile(_ACCOUNT + r"/ip-restrictions-set/$")
_VALIDATE = re.compile(_ACCOUNT + r"/ip-restrictions-set/(?P<set>[^/]+)/validate/$")
_VALIDATE_EXCEPT = re.compile(
    _ACCOUNT + r"/ip-restrictions-set/(?P<set>[^/]+)/validate/(?P<rule>[^/]+)$"
)

Network = ipaddress.IPv6Network


@dataclass(frozen=True)
class Response:
    """What the emulator answers: status, JSON body (None = no body), headers, or a drop."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # True: close the connection without writing any response (injected fault).
    drop: bool = False


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


@dataclass
class _Cidr:
    id: int
    rule_id: int
    cidr: str
    network: Network
    state: int
    created_at: str
    updated_at: str


@dataclass
class _Rule:
    id: int
    name: str
    type: int
    description: str
    state: int
    created_at: str
    updated_at: str
    cidrs: list[_Cidr] = field(default_factory=list)

    def active_cidrs(self) -> list[_Cidr]:
        return [c for c in self.cidrs if c.state == ACTIVE]


class _BadRequestError(Exception):
    """A request body that does not match the schema (answered 400)."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def parse_network(text: str) -> Network | None:
    """The network a CIDR string denotes, IPv4 as IPv4-mapped IPv6; None if not an IP/network."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if isinstance(net, ipaddress.IPv4Network):
        # Map IPv4 into ::ffff:0:0/96 so one comparison covers both families, as the real
        # server's computed `cidr_ipv6` column suggests it does.
        return ipaddress.IPv6Network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
    return net


def cidr_ipv6(network: Network) -> str:
    """The `cidr_ipv6` string the server computes, e.g. `::ffff:52.45.144.63/128`."""
    mapped = network.network_address.ipv4_mapped
    if mapped is not None and network.prefixlen >= 96:
        return f"::ffff:{mapped}/{network.prefixlen}"
    return str(network)


def _address(text: str) -> ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{addr}")
    return addr


def _status(code: int, user_message: str, developer_message: str = "") -> dict[str, Any]:
    return {
        "code": code,
        "is_success": 200 <= code < 300,
        "user_message": user_message,
        "developer_message": developer_message,
    }


def _ok(code: int = 200) -> dict[str, Any]:
    return _status(code, "Success!")


def error_response(
    code: int,
    user_message: str,
    developer_message: str,
    *,
    data: Any = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error in the API's envelope: `{"status": {...}, "data": ...}`."""
    body: dict[str, Any] = {"status": _status(code, user_message, developer_message), "data": data}
    if extra is not None:
        body["extra"] = extra
    return Response(code, body, dict(headers or {}))


def _not_found(developer_message: str) -> Response:
    return error_response(404, "Not found.", developer_message)


def _method_not_allowed(method: str, allowed: Iterable[str]) -> Response:
    allow = ", ".join(sorted(allowed))
    return error_response(
        405, "Method not allowed.", f"Method {method} is not allowed here", headers={"Allow": allow}
    )


def _bad_request(developer_message: str) -> Response:
    return error_response(400, "Invalid request.", developer_message)


def _int_id(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_json(body: bytes | None) -> Any:
    if not body:
        raise _BadRequestError("a JSON body is required")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequestError(f"the body is not valid JSON: {exc}") from None


def _record_body(method: str, body: bytes | None) -> Any:
    if method not in WRITE_METHODS or not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _CidrItem:
    cidr: str
    state: int
    id: int | None


@dataclass(frozen=True)
class _RuleBody:
    name: str
    type: int
    rule_set_enabled: bool
    description: str | None
    cidrs: list[_CidrItem]


@dataclass
class _Outcome:
    added: list[tuple[str, Network]] = field(default_factory=list)
    removed: list[_Cidr] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    already_exists: list[str] = field(default_factory=list)
    attempted: int = 0  # items that asked for a change, successful or not


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
        validate_enveloped: bool = True,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be >= 1")
        if not token:
            raise ValueError("token must not be empty")
        self.account_id = account_id
        self.max_page_size = max_page_size
        # The real API's validate endpoint is documented bare but other calls are enveloped;
        # clients must accept both, so tests can switch the shape here.
        self.validate_enveloped = validate_enveloped
        self._token = token
        self._initial_enforce = enforce
        self._initial_caller_ip = self._check_ip(caller_ip)
        self._lock = threading.RLock()
        # Set by the server on stop() so sleeping (delayed) requests give up at once.
        self._wake = threading.Event()
        self._init_state()

    def _init_state(self) -> None:
        now = _now()
        self._rules: dict[int, _Rule] = {}
        self._next_rule_id = FIRST_RULE_ID
        self._next_cidr_id = FIRST_CIDR_ID
        self._enabled = self._initial_enforce
        self._rule_set_created_at = now
        self._rule_set_updated_at = now
        self._caller_ip = self._initial_caller_ip
        self._flips = 0
        self._faults: list[Fault] = []
        self._requests: list[RequestRecord] = []

    @staticmethod
    def _check_ip(ip: str | None) -> str | None:
        if ip is not None:
            ipaddress.ip_address(ip)  # raises ValueError on garbage
        return ip

    # ----------------------------------------------------------------- Python API for tests

    def reset(self) -> None:
        """Back to the constructor's state: no rules, faults or log; initial enforcement/caller."""
        with self._lock:
            self._init_state()

    @property
    def rule_set_enabled(self) -> bool:
        """Whether IP restrictions are enforced for the account."""
        with self._lock:
            return self._enabled

    def set_enforcement(self, enabled: bool) -> None:
        """Turn enforcement on or off directly (not counted as a flip)."""
        with self._lock:
            if self._enabled != enabled:
                self._enabled = enabled
                self._rule_set_updated_at = _now()

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
            return self._flips

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
        cidr_list = list(cidrs)
        networks = []
        for text in cidr_list:
            net = parse_network(text)
            if net is None:
                raise ValueError(f"not an IP address or network: {text!r}")
            networks.append((text, net))
        with self._lock:
            rule = self._new_rule(name, type, description)
            for text, net in networks:
                self._add_cidr(rule, text, net)
            return rule.id

    def snapshot(self) -> list[dict[str, Any]]:
        """Active rules as the API renders them, ordered by id (deep copies)."""
        with self._lock:
            return copy.deepcopy([self._rule_json(r) for r in self._active_rules()])

    def state(self) -> dict[str, Any]:
        """Everything a test may want to look at, as JSON-compatible data."""
        with self._lock:
            return {
                "account_id": self.account_id,
                "rule_set_id": RULE_SET_ID,
                "rule_set_enabled": self._enabled,
                "enforcement_flips": self._flips,
                "caller_ip": self._caller_ip,
                "max_page_size": self.max_page_size,
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
        addr = _address(ip)
        if addr is None:
            return False
        with self._lock:
            allowed = False
            for rule in self._active_rules():
                if rule.id == exclude_rule_id:
                    continue
                if any(addr in c.network for c in rule.active_cidrs()):
                    if rule.type == DENY:
                        return False
                    allowed = True
            return allowed

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
            return self._control(method, path, body)
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
            response = self._process(method, path, query, lowered, body, effective_ip)
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

    def _authenticate(self, headers: Mapping[str, str]) -> Response | None:
        header = headers.get("authorization")
        if header is None:
            problem = "Authentication credentials were not provided."
        else:
            scheme, _, credential = header.strip().partition(" ")
            if scheme.lower() not in ("token", "bearer"):
                problem = "The Authorization header must be 'Token <token>' or 'Bearer <token>'."
            # compare_digest: constant time, and the credential is never put in a message.
            elif hmac.compare_digest(credential.strip().encode(), self._token.encode()):
                return None
            else:
                problem = "The token is not valid for this account."
        return error_response(401, "Invalid token.", problem)

    def _process(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None,
        caller_ip: str,
    ) -> Response:
        if not path.startswith("/api/"):
            return _not_found(f"No route for {path}")
        denied = self._authenticate(headers)
        if denied is not None:
            return denied
        if self._enabled and not self.is_allowed(caller_ip):
            return error_response(
                403,
                "Forbidden: Access denied",
                f"IP restrictions are enforced for account {self.account_id} and the caller's "
                "IP is not allowed",
                data={"account_access_denied": True, "is_service_token": True},
            )
        match = None
        for pattern in (_RULES, _RULE, _RULE_SET, _VALIDATE, _VALIDATE_EXCEPT):
            match = pattern.match(path)
            if match:
                break
        if match is None:
            return _not_found(f"No route for {path}")
        if _int_id(match["account"]) != self.account_id:
            return _not_found(f"Account {match['account']} not found")
        try:
            return self._route(match, method, query, body, caller_ip)
        except _BadRequestError as exc:
            return _bad_request(str(exc))

    def _route(
        self,
        match: re.Match[str],
        method: str,
        query: Mapping[str, str],
        body: bytes | None,
        caller_ip: str,
    ) -> Response:
        pattern = match.re
        if pattern is _RULES:
            if method == "GET":
                return self._list(query)
            if method == "POST":
                return self._create(_parse_json(body))
            return _method_not_allowed(method, ("GET", "POST"))
        if pattern is _RULE:
            rule = self._find_rule(match["rule"])
            if method not in ("GET", "PUT", "DELETE"):
                return _method_not_allowed(method, ("GET", "PUT", "DELETE"))
            if rule is None:
                return _not_found(f"IP restriction rule {match['rule']} not found")
            if method == "GET":
                return Response(200, {"data": self._rule_json(rule), "status": _ok()})
            if method == "PUT":
                return self._update(rule, _parse_json(body))
            rule.state = DELETED
            rule.updated_at = _now()
            return Response(204)
        if pattern is _RULE_SET:
            if method != "POST":
                return _method_not_allowed(method, ("POST",))
            return self._set_enabled(_parse_json(body))
        # validate, with or without an excluded rule
        if method != "GET":
            return _method_not_allowed(method, ("GET",))
        if _int_id(match["set"]) != RULE_SET_ID:
            return _not_found(f"IP restriction rule set {match['set']} not found")
        exclude: int | None = None
        if pattern is _VALIDATE_EXCEPT:
            excluded = self._find_rule(match["rule"])
            if excluded is None:
                return _not_found(f"IP restriction rule {match['rule']} not found")
            exclude = excluded.id
        valid = {"is_valid_for_admin": self.is_allowed(caller_ip, exclude)}
        if self.validate_enveloped:
            return Response(200, {"data": valid, "status": _ok()})
        return Response(200, valid)

    # ----------------------------------------------------------------- endpoints

    def _list(self, query: Mapping[str, str]) -> Response:
        limit = self._query_int(query, "limit", DEFAULT_MAX_PAGE_SIZE, minimum=1)
        offset = self._query_int(query, "offset", 0, minimum=0)
        limit = min(limit, self.max_page_size)
        rules = self._active_rules()
        page = rules[offset : offset + limit]
        return Response(
            200,
            {
                "data": [self._rule_json(r) for r in page],
                "extra": {
                    "filters": {},
                    "order_by": "id",
                    "pagination": {"count": len(page), "total_count": len(rules)},
                },
                "status": _ok(),
            },
        )

    @staticmethod
    def _query_int(query: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        value = _int_id(raw)
        if value is None or value < minimum:
            raise _BadRequestError(f"{name} must be an integer >= {minimum}")
        return value

    def _create(self, data: Any) -> Response:
        parsed = self._rule_body(data, update_id=None)
        # Nothing is stored until the outcome is known: an all-failed create changes nothing.
        probe = _Rule(0, parsed.name, parsed.type, "", ACTIVE, "", "")
        outcome = self._plan_cidrs(probe, parsed)
        refused = self._refusal(outcome)
        if refused is not None:
            return refused
        rule = self._new_rule(parsed.name, parsed.type, parsed.description or "")
        for text, net in outcome.added:
            self._add_cidr(rule, text, net)
        self._apply_rule_set_enabled(parsed.rule_set_enabled)
        return self._write_response(201, rule, outcome)

    def _update(self, rule: _Rule, data: Any) -> Response:
        parsed = self._rule_body(data, update_id=rule.id)
        # Additions are checked against the type the rule will have after this update.
        probe = replace(rule, type=parsed.type)
        outcome = self._plan_cidrs(probe, parsed)
        refused = self._refusal(outcome)
        if refused is not None:
            return refused
        now = _now()
        rule.name = parsed.name
        rule.type = parsed.type
        if parsed.description is not None:
            rule.description = parsed.description
        for cidr in outcome.removed:
            cidr.state = DELETED
            cidr.updated_at = now
        for text, net in outcome.added:
            self._add_cidr(rule, text, net)
        rule.updated_at = now
        self._apply_rule_set_enabled(parsed.rule_set_enabled)
        return self._write_response(200, rule, outcome)

    def _set_enabled(self, data: Any) -> Response:
        if not isinstance(data, dict):
            raise _BadRequestError("the body must be a JSON object")
        enabled = data.get("enabled")
        if not isinstance(enabled, bool):
            raise _BadRequestError("enabled: a boolean is required")
        self._apply_rule_set_enabled(enabled)
        return Response(
            200,
            {
                "data": {
                    "id": RULE_SET_ID,
                    "account_id": self.account_id,
                    "state": ACTIVE,
                    "enabled": self._enabled,
                    "enabled_for_service_tokens": True,
                    "created_at": self._rule_set_created_at,
                    "updated_at": self._rule_set_updated_at,
                },
                "status": _ok(),
            },
        )

    # ----------------------------------------------------------------- helpers (lock held)

    def _apply_rule_set_enabled(self, enabled: bool) -> None:
        # One account-wide value: a rule write carrying a different one toggles enforcement
        # for every rule (the real platform's inferred behaviour), which a sync must never do.
        if enabled != self._enabled:
            self._enabled = enabled
            self._rule_set_updated_at = _now()
            self._flips += 1

    def _refusal(self, outcome: _Outcome) -> Response | None:
        if outcome.attempted == 0 or outcome.added or outcome.removed:
            return None
        extra = {"failed_cidrs": outcome.failed, "cidrs_already_exists": outcome.already_exists}
        if not outcome.failed:
            return error_response(
                409,
                "CIDR(s) already exists",
                "Every submitted CIDR already exists in this rule; nothing was saved",
                extra=extra,
            )
        return error_response(
            400, "Invalid IP range", "No submitted CIDR could be saved", extra=extra
        )

    def _write_response(self, code: int, rule: _Rule, outcome: _Outcome) -> Response:
        return Response(
            code,
            {
                "status": _ok(code),
                "data": self._rule_json(rule),
                "extra": {
                    "failed_cidrs": outcome.failed,
                    "cidrs_already_exists": outcome.already_exists,
                },
                "error_code": None,
            },
        )

    def _plan_cidrs(self, rule: _Rule, body: _RuleBody) -> _Outcome:
        outcome = _Outcome()
        by_id = {c.id: c for c in rule.cidrs}
        # Removals first, so a body that removes a CIDR and adds it again re-adds it.
        for item in body.cidrs:
            if item.id is None:
                continue
            existing = by_id.get(item.id)
            if existing is None:
                outcome.attempted += 1
                outcome.failed.append(item.cidr)
            elif item.state == DELETED and existing.state == ACTIVE:
                outcome.attempted += 1
                outcome.removed.append(existing)
            # Known id with state 1, or re-removing a removed CIDR: a no-op, so retrying a
            # PUT whose first attempt was applied does not fail on its removals.
        removed_ids = {c.id for c in outcome.removed}
        present = {c.network for c in rule.active_cidrs() if c.id not in removed_ids}
        other_type = DENY if rule.type == ALLOW else ALLOW
        conflicting = {
            c.network
            for r in self._active_rules()
            if r.type == other_type and r.id != rule.id
            for c in r.active_cidrs()
        }
        for item in body.cidrs:
            if item.id is not None:
                continue
            outcome.attempted += 1
            if item.state == DELETED:
                outcome.failed.append(item.cidr)  # cannot remove a CIDR without its id
                continue
            net = parse_network(item.cidr)
            if net is None:
                outcome.failed.append(item.cidr)
            elif net in present:
                outcome.already_exists.append(item.cidr)
            elif net in conflicting:
                # "The second entry fails to save": allow and deny may not share a network.
                outcome.failed.append(item.cidr)
            else:
                present.add(net)
                outcome.added.append((item.cidr, net))
        return outcome

    def _rule_body(self, data: Any, *, update_id: int | None) -> _RuleBody:
        if not isinstance(data, dict):
            raise _BadRequestError("the body must be a JSON object")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise _BadRequestError("name: a non-empty string is required")
        rule_type = data.get("type")
        if not _is_int(rule_type) or rule_type not in (ALLOW, DENY):
            raise _BadRequestError("type: must be 1 (allow) or 2 (deny)")
        enabled = data.get("rule_set_enabled")
        if not isinstance(enabled, bool):
            raise _BadRequestError("rule_set_enabled: a boolean is required")
        account_id = data.get("account_id")
        if not _is_int(account_id):
            raise _BadRequestError("account_id: an integer is required")
        if account_id != self.account_id:
            raise _BadRequestError("account_id: does not match the account in the path")
        if update_id is not None:
            body_id = data.get("id")
            if not _is_int(body_id):
                raise _BadRequestError("id: an integer is required")
            if body_id != update_id:
                raise _BadRequestError("id: does not match the rule id in the path")
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            raise _BadRequestError("description: must be a string")
        raw_cidrs = data.get("cidrs")
        if not isinstance(raw_cidrs, list):
            raise _BadRequestError("cidrs: a list is required")
        items = [self._cidr_item(index, raw) for index, raw in enumerate(raw_cidrs)]
        return _RuleBody(name, rule_type, enabled, description, items)

    @staticmethod
    def _cidr_item(index: int, raw: Any) -> _CidrItem:
        where = f"cidrs[{index}]"
        if not isinstance(raw, dict):
            raise _BadRequestError(f"{where}: must be an object")
        text = raw.get("cidr")
        if not isinstance(text, str) or not text:
            raise _BadRequestError(f"{where}.cidr: a non-empty string is required")
        if len(text) > MAX_CIDR_LENGTH:
            raise _BadRequestError(f"{where}.cidr: longer than {MAX_CIDR_LENGTH} characters")
        state = raw.get("state", ACTIVE)
        if not _is_int(state) or state not in (ACTIVE, DELETED):
            raise _BadRequestError(f"{where}.state: must be 1 or 2")
        cidr_id = raw.get("id")
        if cidr_id is not None and not _is_int(cidr_id):
            raise _BadRequestError(f"{where}.id: must be an integer")
        return _CidrItem(text, state, cidr_id)

    def _active_rules(self) -> list[_Rule]:
        return [r for _, r in sorted(self._rules.items()) if r.state == ACTIVE]

    def _find_rule(self, raw_id: str) -> _Rule | None:
        rule = self._rules.get(_int_id(raw_id) or -1)
        return rule if rule is not None and rule.state == ACTIVE else None

    def _new_rule(self, name: str, rule_type: int, description: str) -> _Rule:
        now = _now()
        rule = _Rule(self._next_rule_id, name, rule_type, description, ACTIVE, now, now)
        self._rules[rule.id] = rule
        self._next_rule_id += 1
        return rule

    def _add_cidr(self, rule: _Rule, text: str, net: Network) -> None:
        now = _now()
        rule.cidrs.append(_Cidr(self._next_cidr_id, rule.id, text, net, ACTIVE, now, now))
        self._next_cidr_id += 1

    def _rule_json(self, rule: _Rule) -> dict[str, Any]:
        return {
            "id": rule.id,
            "name": rule.name,
            "type": rule.type,
            "state": rule.state,
            "ip_restriction_rule_set_id": RULE_SET_ID,
            "rule_set_enabled": self._enabled,
            "account_id": self.account_id,
            "description": rule.description,
            "enabled_for_service_tokens": True,
            "created_by_id": None,
            "created_by_service_token_id": SERVICE_TOKEN_ID,
            "created_at": rule.created_at,
            "updated_at": rule.updated_at,
            "cidrs": [
                {
                    "id": c.id,
                    "state": c.state,
                    "ip_restriction_rule_id": rule.id,
                    "enabled": True,
                    "cidr": c.cidr,
                    "cidr_ipv6": cidr_ipv6(c.network),
                    "created_at": c.created_at,
                    "updated_at": c.updated_at,
                }
                for c in rule.active_cidrs()
            ],
        }

    # ----------------------------------------------------------------- control API

    def _control(self, method: str, path: str, body: bytes | None) -> Response:
        routes: dict[str, dict[str, Callable[[bytes | None], Response]]] = {
            "/_emulator/state": {"GET": lambda _b: Response(200, self.state())},
            "/_emulator/reset": {"POST": self._control_reset},
            "/_emulator/faults": {
                "GET": lambda _b: Response(200, {"faults": [f.to_dict() for f in self.faults]}),
                "POST": self._control_add_faults,
                "DELETE": self._control_clear_faults,
            },
            "/_emulator/requests": {
                "GET": lambda _b: Response(200, {"requests": [r.to_dict() for r in self.requests]})
            },
            "/_emulator/caller": {"POST": self._control_caller},
            "/_emulator/rules": {"POST": self._control_seed},
            "/_emulator/enforcement": {"POST": self._control_enforcement},
        }
        methods = routes.get(path.rstrip("/"))
        if methods is None:
            return _not_found(f"No control endpoint {path}")
        handler = methods.get(method)
        if handler is None:
            return _method_not_allowed(method, methods)
        try:
            return handler(body)
        except (_BadRequestError, ValueError) as exc:
            return _bad_request(str(exc))

    def _control_reset(self, _body: bytes | None) -> Response:
        self.reset()
        return Response(200, self.state())

    def _control_add_faults(self, body: bytes | None) -> Response:
        data = _parse_json(body)
        items = data if isinstance(data, list) else [data]
        faults = [Fault.from_dict(item) for item in items]  # all or nothing
        for fault in faults:
            self.add_fault(fault)
        return Response(200, {"faults": [f.to_dict() for f in self.faults]})

    def _control_clear_faults(self, _body: bytes | None) -> Response:
        self.clear_faults()
        return Response(200, {"faults": []})

    def _control_caller(self, body: bytes | None) -> Response:
        data = _parse_json(body)
        if not isinstance(data, dict) or "ip" not in data:
            raise _BadRequestError('expected {"ip": "<address>"} or {"ip": null}')
        ip = data["ip"]
        if ip is not None and not isinstance(ip, str):
            raise _BadRequestError("ip: a string or null is required")
        self.caller_ip = ip
        return Response(200, {"caller_ip": self.caller_ip})

    def _control_seed(self, body: bytes | None) -> Response:
        data = _parse_json(body)
        if not isinstance(data, dict):
            raise _BadRequestError("the body must be a JSON object")
        name = data.get("name")
        rule_type = data.get("type", ALLOW)
        cidrs = data.get("cidrs", [])
        description = data.get("description", "")
        if not isinstance(name, str) or not name:
            raise _BadRequestError("name: a non-empty string is required")
        if not _is_int(rule_type):
            raise _BadRequestError("type: must be 1 (allow) or 2 (deny)")
        if not isinstance(cidrs, list) or not all(isinstance(c, str) for c in cidrs):
            raise _BadRequestError("cidrs: a list of strings is required")
        if not isinstance(description, str):
            raise _BadRequestError("description: must be a string")
        rule_id = self.seed_rule(name, rule_type, cidrs, description)
        with self._lock:
            return Response(201, {"data": self._rule_json(self._rules[rule_id])})

    def _control_enforcement(self, body: bytes | None) -> Response:
        data = _parse_json(body)
        enabled = data.get("enabled") if isinstance(data, dict) else None
        if not isinstance(enabled, bool):
            raise _BadRequestError('expected {"enabled": true|false}')
        self.set_enforcement(enabled)
        return Response(200, {"rule_set_enabled": self.rule_set_enabled})
