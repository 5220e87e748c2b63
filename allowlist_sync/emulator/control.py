"""The control API under `/_emulator/`: drive and inspect a running emulator without a token.

Every endpoint calls the store's Python API, so a test in another process (or a person with
curl) can do what an in-process test does: seed rules, set the caller IP, enforcement, the
strict mode and faults, read the state and the request log, reset. docs/emulator.md lists
each endpoint with an example. Control requests are never faulted, logged, IP-restricted or
delayed.

What an account holds (state, reset, faults, rules, enforcement) is addressed with the
`account` query parameter, the first account when it is left out; `requests` takes it as a
filter. The caller IP, the strict mode and the latency are the emulator's: an `account`
parameter there is refused rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from allowlist_sync.emulator.account import ALLOW
from allowlist_sync.emulator.envelope import (
    BadRequestError,
    Response,
    bad_request,
    method_not_allowed,
    not_found,
)
from allowlist_sync.emulator.faults import Fault
from allowlist_sync.emulator.schema import int_id, is_int, parse_json
from allowlist_sync.emulator.served import UnknownAccountError

if TYPE_CHECKING:
    from allowlist_sync.emulator.store import EmulatorStore

CONTROL_PREFIX = "/_emulator/"

#: A handler gets the store, the `account` parameter's id (None when not given) and the body.
_Handler = Callable[["EmulatorStore", int | None, bytes | None], Response]


def answer_control(
    store: EmulatorStore, method: str, path: str, query: Mapping[str, str], body: bytes | None
) -> Response:
    """Answer one request under `/_emulator/` (a trailing slash is optional)."""
    methods = ROUTES.get(path.rstrip("/"))
    if methods is None:
        return not_found(f"No control endpoint {path}")
    handler = methods.get(method)
    if handler is None:
        return method_not_allowed(method, methods)
    try:
        account = _account_parameter(store, path, query)
        return handler(store, account, body)
    except UnknownAccountError as exc:
        return not_found(str(exc))
    except (BadRequestError, ValueError) as exc:
        return bad_request(str(exc))


def _account_parameter(store: EmulatorStore, path: str, query: Mapping[str, str]) -> int | None:
    """The served account `?account=` names; None when absent. 400 / 404 when it is bad."""
    if "account" not in query:
        return None
    if path.rstrip("/") in EMULATOR_WIDE:
        raise BadRequestError(f"{path.rstrip('/')} is emulator-wide: it takes no account")
    account = int_id(query["account"])
    if account is None:
        raise BadRequestError("account: a whole number (an account id) is required")
    return store.account(account).account_id  # LookupError when not served


def _state(store: EmulatorStore, account: int | None, _body: bytes | None) -> Response:
    return Response(200, store.state(account))


def _reset(store: EmulatorStore, account: int | None, _body: bytes | None) -> Response:
    # Without an account: the whole emulator (every account, caller, log), as one account did.
    if account is None:
        store.reset()
    else:
        store.account(account).reset()
    return Response(200, store.state(account))


def _list_faults(store: EmulatorStore, account: int | None, _body: bytes | None) -> Response:
    return Response(200, {"faults": [f.to_dict() for f in store.account(account).faults]})


def _add_faults(store: EmulatorStore, account: int | None, body: bytes | None) -> Response:
    data = parse_json(body)
    items = data if isinstance(data, list) else [data]
    faults = [Fault.from_dict(item) for item in items]  # all or nothing
    for fault in faults:
        store.account(account).add_fault(fault)
    return _list_faults(store, account, None)


def _clear_faults(store: EmulatorStore, account: int | None, _body: bytes | None) -> Response:
    store.account(account).clear_faults()
    return Response(200, {"faults": []})


def _requests(store: EmulatorStore, account: int | None, _body: bytes | None) -> Response:
    records = store.requests if account is None else store.account(account).requests
    return Response(200, {"requests": [r.to_dict() for r in records]})


def _caller(store: EmulatorStore, _account: int | None, body: bytes | None) -> Response:
    data = parse_json(body)
    if not isinstance(data, dict) or "ip" not in data:
        raise BadRequestError('expected {"ip": "<address>"} or {"ip": null}')
    ip = data["ip"]
    if ip is not None and not isinstance(ip, str):
        raise BadRequestError("ip: a string or null is required")
    store.caller_ip = ip
    return Response(200, {"caller_ip": store.caller_ip})


def _seed(store: EmulatorStore, account: int | None, body: bytes | None) -> Response:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object")
    name = data.get("name")
    rule_type = data.get("type", ALLOW)
    cidrs = data.get("cidrs", [])
    description = data.get("description", "")
    if not isinstance(name, str) or not name:
        raise BadRequestError("name: a non-empty string is required")
    if not is_int(rule_type):
        raise BadRequestError("type: must be 1 (allow) or 2 (deny)")
    if not isinstance(cidrs, list) or not all(isinstance(c, str) for c in cidrs):
        raise BadRequestError("cidrs: a list of strings is required")
    if not isinstance(description, str):
        raise BadRequestError("description: must be a string")
    view = store.account(account)
    rule_id = view.seed_rule(name, rule_type, cidrs, description)
    rule = next(r for r in view.snapshot() if r["id"] == rule_id)
    return Response(201, {"data": rule})


def _enforcement(store: EmulatorStore, account: int | None, body: bytes | None) -> Response:
    data = parse_json(body)
    enabled = data.get("enabled") if isinstance(data, dict) else None
    if not isinstance(enabled, bool):
        raise BadRequestError('expected {"enabled": true|false}')
    view = store.account(account)
    view.set_enforcement(enabled)
    return Response(200, {"rule_set_enabled": view.rule_set_enabled})


def _strict(store: EmulatorStore, _account: int | None, body: bytes | None) -> Response:
    data = parse_json(body)
    strict = data.get("strict") if isinstance(data, dict) else None
    if not isinstance(strict, bool):
        raise BadRequestError('expected {"strict": true|false}')
    store.strict = strict
    return Response(200, {"strict": store.strict})


def _latency(store: EmulatorStore, _account: int | None, body: bytes | None) -> Response:
    data = parse_json(body)
    seconds = data.get("seconds") if isinstance(data, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise BadRequestError('expected {"seconds": <number from 0>}')
    store.latency = seconds  # ValueError (400) when negative or not finite
    return Response(200, {"seconds": store.latency})


#: Path (without trailing slash) -> method -> handler. docs/emulator.md documents each one.
ROUTES: dict[str, dict[str, _Handler]] = {
    "/_emulator/state": {"GET": _state},
    "/_emulator/reset": {"POST": _reset},
    "/_emulator/faults": {"GET": _list_faults, "POST": _add_faults, "DELETE": _clear_faults},
    "/_emulator/requests": {"GET": _requests},
    "/_emulator/caller": {"POST": _caller},
    "/_emulator/rules": {"POST": _seed},
    "/_emulator/enforcement": {"POST": _enforcement},
    "/_emulator/strict": {"POST": _strict},
    "/_emulator/latency": {"POST": _latency},
}
#: Endpoints that set something of the whole emulator, not of one account.
EMULATOR_WIDE = frozenset({"/_emulator/caller", "/_emulator/strict", "/_emulator/latency"})
