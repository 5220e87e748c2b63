"""The `/api/` surface: token check, the IP-restriction gate, routes, and the non-write endpoints.

`answer` takes one parsed request (lock held by the store) and returns the response plus, for
a successful rule write, what it changed. The documented paths (trailing slashes exactly as
the real API has them) are routed here; rule writes are delegated to `writes.py`.

Several accounts may be served, each with its own token: a request is authenticated against
the account its path names. A path naming an account not served still needs a token some
served account takes (else 401), passes that account's IP gate, and is then 404, as the real
platform answers a token used for another account.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from allowlist_sync.emulator.account import DELETED, RULE_SET_ID, Account, StoredRule, now
from allowlist_sync.emulator.envelope import (
    BadRequestError,
    Response,
    bad_request,
    error_response,
    method_not_allowed,
    not_found,
    success_status,
)
from allowlist_sync.emulator.schema import int_id, parse_enabled, parse_json, query_int
from allowlist_sync.emulator.writes import WriteEffect, create_rule, update_rule

DEFAULT_TOKEN = "dbtc_emulator_token"  # noqa: S105 - a public, documented demo token
DEFAULT_MAX_PAGE_SIZE = 100

_ACCOUNT = r"^/api/v3/accounts/(?P<account>[^/]+)"
_NAMED_ACCOUNT = re.compile(_ACCOUNT + r"(?:/|$)")
_RULES = re.compile(_ACCOUNT + r"/ip-restrictions/$")
_RULE = re.compile(_ACCOUNT + r"/ip-restrictions/(?P<rule>[^/]+)$")
_RULE_SET = re.compile(_ACCOUNT + r"/ip-restrictions-set/$")
_VALIDATE = re.compile(_ACCOUNT + r"/ip-restrictions-set/(?P<set>[^/]+)/validate/$")
_VALIDATE_EXCEPT = re.compile(
    _ACCOUNT + r"/ip-restrictions-set/(?P<set>[^/]+)/validate/(?P<rule>[^/]+)$"
)
_ROUTES = (_RULES, _RULE, _RULE_SET, _VALIDATE, _VALIDATE_EXCEPT)


@dataclass
class ApiOptions:
    """How the emulated API behaves; the store may change `strict` while serving."""

    token: str = DEFAULT_TOKEN
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE
    #: The spec's validate answer is bare `{is_valid_for_admin}`; True wraps it in the envelope.
    validate_enveloped: bool = False
    #: The stricter answers where the spec is silent (see writes.py).
    strict: bool = False


def path_account(path: str) -> int | None:
    """The account id an /api/ path names, or None when it names none (or not a number)."""
    match = _NAMED_ACCOUNT.match(path)
    return int_id(match["account"]) if match is not None else None


def answer(
    accounts: Sequence[tuple[Account, str]],
    options: ApiOptions,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes | None,
    caller_ip: str,
) -> tuple[Response, WriteEffect | None]:
    """Answer one request to a non-control path; `accounts` are (account, token), first the
    default; header names lower-cased."""
    if not path.startswith("/api/"):
        return not_found(f"No route for {path}"), None
    named = path_account(path)
    account = next((a for a, _ in accounts if a.account_id == named), None)
    if account is not None:
        token = next(t for a, t in accounts if a is account)
        denied = authenticate(headers, token)
        gate = account
    else:
        # Not a served account: the token must still be one the platform knows, and its own
        # account's IP restrictions apply before the 404.
        owner = next((a for a, t in accounts if authenticate(headers, t) is None), None)
        denied = authenticate(headers, accounts[0][1]) if owner is None else None
        gate = owner if owner is not None else accounts[0][0]
    if denied is not None:
        return denied, None
    if gate.enabled and not gate.is_allowed(caller_ip):
        return error_response(
            403,
            "Forbidden: Access denied",
            f"IP restrictions are enforced for account {gate.account_id} and the caller's "
            "IP is not allowed",
            data={"account_access_denied": True, "is_service_token": True},
        ), None
    match = next((m for m in (p.match(path) for p in _ROUTES) if m is not None), None)
    if match is None:
        return not_found(f"No route for {path}"), None
    if account is None:
        return not_found(f"Account {match['account']} not found"), None
    try:
        return _route(account, options, match, method, query, body, caller_ip)
    except BadRequestError as exc:
        return bad_request(str(exc)), None


def authenticate(headers: Mapping[str, str], token: str) -> Response | None:
    """None when `Authorization: Token|Bearer <token>` matches, else the 401 envelope."""
    header = headers.get("authorization")
    if header is None:
        problem = "Authentication credentials were not provided."
    else:
        scheme, _, credential = header.strip().partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            problem = "The Authorization header must be 'Token <token>' or 'Bearer <token>'."
        # compare_digest: constant time, and the credential is never put in a message.
        elif hmac.compare_digest(credential.strip().encode(), token.encode()):
            return None
        else:
            problem = "The token is not valid for this account."
    return error_response(401, "Invalid token.", problem)


def _route(
    account: Account,
    options: ApiOptions,
    match: re.Match[str],
    method: str,
    query: Mapping[str, str],
    body: bytes | None,
    caller_ip: str,
) -> tuple[Response, WriteEffect | None]:
    pattern = match.re
    if pattern is _RULES:
        if method == "GET":
            return list_rules(account, options, query), None
        if method == "POST":
            return create_rule(account, parse_json(body), strict=options.strict)
        return method_not_allowed(method, ("GET", "POST")), None
    if pattern is _RULE:
        if method not in ("GET", "PUT", "DELETE"):
            return method_not_allowed(method, ("GET", "PUT", "DELETE")), None
        rule = account.find_rule(int_id(match["rule"]))
        if rule is None:
            return not_found(f"IP restriction rule {match['rule']} not found"), None
        if method == "GET":
            return get_rule(account, rule), None
        if method == "PUT":
            return update_rule(account, rule, parse_json(body), strict=options.strict)
        rule.state = DELETED
        rule.updated_at = now()
        return Response(204), None
    if pattern is _RULE_SET:
        if method != "POST":
            return method_not_allowed(method, ("POST",)), None
        return set_enforcement(account, parse_json(body)), None
    return validate(account, options, match, method, caller_ip), None


def list_rules(account: Account, options: ApiOptions, query: Mapping[str, str]) -> Response:
    """GET ip-restrictions/: one page of active rules by id, `limit` clamped to the page size."""
    limit = query_int(query, "limit", DEFAULT_MAX_PAGE_SIZE, minimum=1)
    offset = query_int(query, "offset", 0, minimum=0)
    limit = min(limit, options.max_page_size)
    rules = account.active_rules()
    page = rules[offset : offset + limit]
    return Response(
        200,
        {
            "data": [account.rule_json(r) for r in page],
            "extra": {
                "filters": {},
                "order_by": "id",
                "pagination": {"count": len(page), "total_count": len(rules)},
            },
            "status": success_status(),
        },
    )


def get_rule(account: Account, rule: StoredRule) -> Response:
    """GET ip-restrictions/{id}: one rule in the envelope."""
    return Response(200, {"data": account.rule_json(rule), "status": success_status()})


def set_enforcement(account: Account, data: object) -> Response:
    """POST ip-restrictions-set/: turn enforcement on or off, answer the rule set."""
    account.set_enabled(parse_enabled(data), by_request=True)
    return Response(200, {"data": account.rule_set_json(), "status": success_status()})


def validate(
    account: Account, options: ApiOptions, match: re.Match[str], method: str, caller_ip: str
) -> Response:
    """GET ip-restrictions-set/{id}/validate/[{rule_id}]: is the caller allowed (minus a rule)."""
    if method != "GET":
        return method_not_allowed(method, ("GET",))
    if int_id(match["set"]) != RULE_SET_ID:
        return not_found(f"IP restriction rule set {match['set']} not found")
    exclude: int | None = None
    if match.re is _VALIDATE_EXCEPT:
        excluded = account.find_rule(int_id(match["rule"]))
        if excluded is None:
            return not_found(f"IP restriction rule {match['rule']} not found")
        exclude = excluded.id
    valid = {"is_valid_for_admin": account.is_allowed(caller_ip, exclude)}
    if options.validate_enveloped:
        return Response(200, {"data": valid, "status": success_status()})
    return Response(200, valid)
