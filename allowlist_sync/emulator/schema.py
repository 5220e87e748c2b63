"""Request validation: bodies and query parameters checked against the OpenAPI request schemas.

Every problem raises `BadRequestError` with a message naming the field, answered 400 before
anything is stored. What the values mean (does a CIDR exist, may it be saved) is decided in
`writes.py`; here only their shape is checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from allowlist_sync.emulator.account import ACTIVE, ALLOW, DELETED, DENY
from allowlist_sync.emulator.envelope import BadRequestError

MAX_CIDR_LENGTH = 100


@dataclass(frozen=True)
class CidrItem:
    """One item of a rule body's `cidrs`: an addition (no id) or a change to a stored CIDR."""

    cidr: str
    state: int
    id: int | None


@dataclass(frozen=True)
class RuleBody:
    """A create or update body that matches the schema."""

    name: str
    type: int
    rule_set_enabled: bool
    description: str | None
    cidrs: list[CidrItem]


def int_id(text: str) -> int | None:
    """A path or query id as an int; None unless it is plain ASCII digits."""
    return int(text) if text.isascii() and text.isdigit() else None


def is_int(value: object) -> bool:
    """An integer that is not a bool (JSON `true` is not an id)."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_json(body: bytes | None) -> Any:
    """The request body as JSON; a missing or undecodable body is a bad request."""
    if not body:
        raise BadRequestError("a JSON body is required")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None


def query_int(query: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    """An integer query parameter (`limit`, `offset`), `default` when absent or empty."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = int_id(raw)
    if value is None or value < minimum:
        raise BadRequestError(f"{name} must be an integer >= {minimum}")
    return value


def parse_rule_body(data: Any, *, account_id: int, update_id: int | None) -> RuleBody:
    """A create body (`update_id` None) or an update body for rule `update_id`."""
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequestError("name: a non-empty string is required")
    rule_type = data.get("type")
    if not is_int(rule_type) or rule_type not in (ALLOW, DENY):
        raise BadRequestError("type: must be 1 (allow) or 2 (deny)")
    enabled = data.get("rule_set_enabled")
    if not isinstance(enabled, bool):
        raise BadRequestError("rule_set_enabled: a boolean is required")
    body_account = data.get("account_id")
    if not is_int(body_account):
        raise BadRequestError("account_id: an integer is required")
    if body_account != account_id:
        raise BadRequestError("account_id: does not match the account in the path")
    if update_id is not None:
        body_id = data.get("id")
        if not is_int(body_id):
            raise BadRequestError("id: an integer is required")
        if body_id != update_id:
            raise BadRequestError("id: does not match the rule id in the path")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise BadRequestError("description: must be a string")
    raw_cidrs = data.get("cidrs")
    if not isinstance(raw_cidrs, list):
        raise BadRequestError("cidrs: a list is required")
    items = [parse_cidr_item(index, raw) for index, raw in enumerate(raw_cidrs)]
    return RuleBody(name, rule_type, enabled, description, items)


def parse_cidr_item(index: int, raw: Any) -> CidrItem:
    """Item `index` of `cidrs`: `cidr` required, `state` 1 or 2 (default 1), optional `id`."""
    where = f"cidrs[{index}]"
    if not isinstance(raw, dict):
        raise BadRequestError(f"{where}: must be an object")
    text = raw.get("cidr")
    if not isinstance(text, str) or not text:
        raise BadRequestError(f"{where}.cidr: a non-empty string is required")
    if len(text) > MAX_CIDR_LENGTH:
        raise BadRequestError(f"{where}.cidr: longer than {MAX_CIDR_LENGTH} characters")
    state = raw.get("state", ACTIVE)
    if not is_int(state) or state not in (ACTIVE, DELETED):
        raise BadRequestError(f"{where}.state: must be 1 or 2")
    cidr_id = raw.get("id")
    if cidr_id is not None and not is_int(cidr_id):
        raise BadRequestError(f"{where}.id: must be an integer")
    return CidrItem(text, state, cidr_id)


def parse_enabled(data: Any) -> bool:
    """The rule-set body `{"enabled": bool}`."""
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object")
    enabled = data.get("enabled")
    if not isinstance(enabled, bool):
        raise BadRequestError("enabled: a boolean is required")
    return enabled
