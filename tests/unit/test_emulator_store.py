"""Unit tests of the emulator's store: the dbt Admin API behaviour without any socket."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allowlist_sync.emulator import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_TOKEN,
    EmulatorStore,
    Fault,
    Response,
)
from allowlist_sync.emulator.account import cidr_ipv6, mapped_network

AUTH = {"Authorization": f"Token {DEFAULT_TOKEN}"}
BASE = f"/api/v3/accounts/{DEFAULT_ACCOUNT_ID}"
RULES = f"{BASE}/ip-restrictions/"
PEER = "127.0.0.1"


def call(
    store: EmulatorStore,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    ip: str = PEER,
) -> Response:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return store.handle(method, path, query or {}, AUTH if headers is None else headers, raw, ip)


def rule_body(
    cidrs: list[dict[str, Any]] | list[str],
    *,
    name: str = "azure-ad",
    rule_type: int = 1,
    enabled: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    items = [{"cidr": c} if isinstance(c, str) else c for c in cidrs]
    body = {"name": name, "type": rule_type, "rule_set_enabled": enabled, "account_id": 1}
    return {**body, "cidrs": items, **extra}


def body_of(response: Response) -> dict[str, Any]:
    assert response.body is not None
    return response.body


def cidr_strings(rule: dict[str, Any]) -> list[str]:
    return [c["cidr"] for c in rule["cidrs"]]


@pytest.fixture
def store() -> EmulatorStore:
    return EmulatorStore()


# ----------------------------------------------------------------------------- list


def test_list_empty_has_the_documented_envelope(store: EmulatorStore) -> None:
    """An empty account lists no rules inside the data/extra/status envelope."""
    response = call(store, "GET", RULES)
    assert response.status == 200
    assert body_of(response) == {
        "data": [],
        "extra": {"filters": {}, "order_by": "id", "pagination": {"count": 0, "total_count": 0}},
        "status": {
            "code": 200,
            "is_success": True,
            "user_message": "Success!",
            "developer_message": "",
        },
    }


def test_list_paginates_by_id_and_clamps_limit_to_max_page_size() -> None:
    """A limit above max_page_size is clamped and offset walks the rules in id order."""
    store = EmulatorStore(max_page_size=2)
    ids = [store.seed_rule(f"r{i}", cidrs=[f"10.0.{i}.0/24"]) for i in range(5)]
    first = body_of(call(store, "GET", RULES, query={"limit": "100", "offset": "0"}))
    assert [r["id"] for r in first["data"]] == ids[:2]
    assert first["extra"]["pagination"] == {"count": 2, "total_count": 5}
    last = body_of(call(store, "GET", RULES, query={"limit": "2", "offset": "4"}))
    assert [r["id"] for r in last["data"]] == ids[4:]
    assert last["extra"]["pagination"] == {"count": 1, "total_count": 5}


def test_list_limit_defaults_to_100() -> None:
    """Without a limit the list returns up to 100 rules per page."""
    store = EmulatorStore(max_page_size=500)
    for i in range(101):
        store.seed_rule(f"r{i}")
    page = body_of(call(store, "GET", RULES))
    assert page["extra"]["pagination"] == {"count": 100, "total_count": 101}


@pytest.mark.parametrize("query", [{"limit": "x"}, {"limit": "0"}, {"offset": "-1"}])
def test_list_rejects_bad_pagination_parameters(
    store: EmulatorStore, query: dict[str, str]
) -> None:
    """A non-integer or out-of-range limit/offset is a 400 error envelope."""
    response = call(store, "GET", RULES, query=query)
    assert response.status == 400
    assert body_of(response)["status"]["is_success"] is False


@settings(max_examples=30, deadline=None)
@given(n_rules=st.integers(0, 9), page_size=st.integers(1, 4), limit=st.integers(1, 6))
def test_paging_visits_every_rule_exactly_once(n_rules: int, page_size: int, limit: int) -> None:
    """Walking offset by count until total_count returns each active rule once, in id order."""
    store = EmulatorStore(max_page_size=page_size)
    ids = [store.seed_rule(f"r{i}") for i in range(n_rules)]
    seen: list[int] = []
    while True:
        page = body_of(
            call(store, "GET", RULES, query={"limit": str(limit), "offset": str(len(seen))})
        )
        seen += [r["id"] for r in page["data"]]
        if page["extra"]["pagination"]["count"] == 0 or len(seen) >= n_rules:
            break
    assert seen == ids
    assert page["extra"]["pagination"]["total_count"] == n_rules


# ----------------------------------------------------------------------------- auth, routing


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token wrong-token"},
        {"Authorization": f"Basic {DEFAULT_TOKEN}"},
        {"Authorization": DEFAULT_TOKEN},
    ],
)
def test_missing_or_wrong_token_is_401_without_echoing_it(
    store: EmulatorStore, headers: dict[str, str]
) -> None:
    """A missing or wrong Authorization header gets the 401 envelope, never echoing a token."""
    response = call(store, "GET", RULES, headers=headers)
    assert response.status == 401
    body = body_of(response)
    assert body["data"] is None
    assert body["status"]["code"] == 401
    assert body["status"]["is_success"] is False
    assert body["status"]["user_message"] == "Invalid token."
    text = json.dumps(body)
    assert DEFAULT_TOKEN not in text
    assert "wrong-token" not in text


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token", "bearer"])
def test_token_and_bearer_schemes_are_accepted(store: EmulatorStore, scheme: str) -> None:
    """Both `Token <t>` and `Bearer <t>` authenticate, whatever the header name's case."""
    response = call(store, "GET", RULES, headers={"authorization": f"{scheme} {DEFAULT_TOKEN}"})
    assert response.status == 200


@pytest.mark.parametrize("account", ["2", "abc"])
def test_other_account_is_404(store: EmulatorStore, account: str) -> None:
    """An account id in the path other than the store's is a 404 envelope."""
    response = call(store, "GET", f"/api/v3/accounts/{account}/ip-restrictions/")
    assert response.status == 404
    assert body_of(response)["status"]["is_success"] is False


@pytest.mark.parametrize(
    "path",
    [
        f"{BASE}/ip-restrictions",  # missing trailing slash
        f"{BASE}/ip-restrictions/1/",  # extra trailing slash
        f"{BASE}/jobs/",
        "/api/v2/accounts/1/",
        "/",
    ],
)
def test_unknown_paths_are_404(store: EmulatorStore, path: str) -> None:
    """Paths that differ from the real API's (trailing slashes included) are 404 envelopes."""
    store.seed_rule("r", cidrs=["10.0.0.0/8"])
    response = call(store, "GET", path)
    assert response.status == 404
    assert body_of(response)["data"] is None


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", RULES), ("DELETE", RULES), ("POST", f"{BASE}/ip-restrictions/1")],
)
def test_unsupported_methods_are_405(store: EmulatorStore, method: str, path: str) -> None:
    """A known path with an unsupported method is a 405 envelope with an Allow header."""
    store.seed_rule("r")
    response = call(store, method, path, {})
    assert response.status == 405
    assert body_of(response)["status"]["code"] == 405
    assert "Allow" in response.headers


# ----------------------------------------------------------------------------- create


def test_create_stores_cidrs_exactly_as_sent(store: EmulatorStore) -> None:
    """Create answers 200 (the spec) with the rule, cidr strings verbatim and cidr_ipv6 computed."""
    response = call(
        store, "POST", RULES, rule_body(["52.45.144.63", "20.190.128.0/18", "2001:DB8::/32"])
    )
    assert response.status == 200
    body = body_of(response)
    assert body["status"]["code"] == 200
    assert body["extra"] == {"failed_cidrs": [], "cidrs_already_exists": []}
    assert body["error_code"] is None
    rule = body["data"]
    assert cidr_strings(rule) == ["52.45.144.63", "20.190.128.0/18", "2001:DB8::/32"]
    assert [c["cidr_ipv6"] for c in rule["cidrs"]] == [
        "::ffff:52.45.144.63/128",
        "::ffff:20.190.128.0/114",
        "2001:db8::/32",
    ]
    assert rule["type"] == 1
    assert rule["state"] == 1
    assert rule["account_id"] == 1
    assert rule["ip_restriction_rule_set_id"] == 1
    assert rule["rule_set_enabled"] is False
    assert rule["enabled_for_service_tokens"] is True
    assert rule["created_by_id"] is None
    assert rule["created_by_service_token_id"] == 1
    assert rule["description"] == ""
    for cidr in rule["cidrs"]:
        assert cidr["state"] == 1
        assert cidr["enabled"] is True
        assert cidr["ip_restriction_rule_id"] == rule["id"]
        assert set(cidr) >= {"id", "created_at", "updated_at"}
    assert store.snapshot() == [rule]


def test_create_reports_invalid_and_duplicate_cidrs(store: EmulatorStore) -> None:
    """Invalid strings go to failed_cidrs; a network sent twice goes to cidrs_already_exists."""
    body = rule_body(["10.1.0.0/16", "not-an-ip", "10.1.2.3/16", "1.2.3.4/33", "10.2.0.0/16"])
    response = call(store, "POST", RULES, body)
    assert response.status == 200
    extra = body_of(response)["extra"]
    assert extra == {
        "failed_cidrs": ["not-an-ip", "1.2.3.4/33"],
        "cidrs_already_exists": ["10.1.2.3/16"],
    }
    assert cidr_strings(body_of(response)["data"]) == ["10.1.0.0/16", "10.2.0.0/16"]


def test_create_with_every_cidr_invalid_is_400_and_stores_nothing(store: EmulatorStore) -> None:
    """If no submitted CIDR can be saved, create is 400 "Invalid IP range" and stores nothing."""
    response = call(store, "POST", RULES, rule_body(["nope", "300.1.1.1"], enabled=True))
    assert response.status == 400
    body = body_of(response)
    assert body["status"]["user_message"] == "Invalid IP range"
    assert body["data"] is None
    assert store.snapshot() == []
    assert store.rule_set_enabled is False
    assert store.enforcement_flips == 0


def test_create_with_no_cidrs_makes_an_empty_rule(store: EmulatorStore) -> None:
    """A create with an empty cidrs list attempts nothing, so it succeeds with an empty rule."""
    response = call(store, "POST", RULES, rule_body([], description="owned by allowlist-sync"))
    assert response.status == 200
    assert body_of(response)["data"]["cidrs"] == []
    assert body_of(response)["data"]["description"] == "owned by allowlist-sync"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        [],
        rule_body(["1.1.1.1"], name=""),
        rule_body(["1.1.1.1"], rule_type=3),
        {**rule_body(["1.1.1.1"]), "type": True},
        {k: v for k, v in rule_body(["1.1.1.1"]).items() if k != "rule_set_enabled"},
        {k: v for k, v in rule_body(["1.1.1.1"]).items() if k != "account_id"},
        {**rule_body(["1.1.1.1"]), "account_id": 2},
        {**rule_body([]), "cidrs": "1.1.1.1"},
        {**rule_body([]), "cidrs": [{"state": 1}]},
        {**rule_body([]), "cidrs": [{"cidr": ""}]},
        {**rule_body([]), "cidrs": [{"cidr": "1.1.1.1", "state": 3}]},
        {**rule_body(["1.1.1.1"]), "description": 5},
    ],
)
def test_create_rejects_malformed_bodies(store: EmulatorStore, body: Any) -> None:
    """A body that is not JSON or does not match the request schema is a 400 envelope."""
    response = call(store, "POST", RULES, body)
    assert response.status == 400
    assert body_of(response)["status"]["is_success"] is False
    assert store.snapshot() == []


def test_same_network_in_allow_and_deny_fails_the_second(store: EmulatorStore) -> None:
    """A network already in an active rule of the other type lands in failed_cidrs."""
    store.seed_rule("deny", type=2, cidrs=["198.51.100.0/24"])
    response = call(store, "POST", RULES, rule_body(["198.51.100.7/24", "192.0.2.0/24"]))
    assert response.status == 200
    assert body_of(response)["extra"]["failed_cidrs"] == ["198.51.100.7/24"]
    assert cidr_strings(body_of(response)["data"]) == ["192.0.2.0/24"]


def test_ipv4_and_ipv4_mapped_ipv6_are_the_same_network(store: EmulatorStore) -> None:
    """Equality is by normalised network, so an IPv4-mapped IPv6 form duplicates the IPv4 one."""
    response = call(store, "POST", RULES, rule_body(["192.0.2.1", "::ffff:192.0.2.1/128"]))
    assert body_of(response)["extra"]["cidrs_already_exists"] == ["::ffff:192.0.2.1/128"]


# ----------------------------------------------------------------------------- get, delete


def test_get_and_delete_one_rule(store: EmulatorStore) -> None:
    """GET returns one enveloped rule; DELETE answers 204 without a body and hides the rule."""
    rule_id = store.seed_rule("r", cidrs=["10.0.0.0/8"], description="d")
    got = call(store, "GET", f"{RULES}{rule_id}")
    assert got.status == 200
    assert body_of(got)["data"]["description"] == "d"
    assert body_of(got)["status"]["code"] == 200
    deleted = call(store, "DELETE", f"{RULES}{rule_id}")
    assert deleted.status == 204
    assert deleted.body is None
    assert call(store, "GET", f"{RULES}{rule_id}").status == 404
    assert call(store, "DELETE", f"{RULES}{rule_id}").status == 404
    assert store.snapshot() == []


def test_get_unknown_rule_is_404(store: EmulatorStore) -> None:
    """A rule id that does not exist is a 404 envelope."""
    response = call(store, "GET", f"{RULES}999")
    assert response.status == 404
    assert body_of(response)["status"]["is_success"] is False


# ----------------------------------------------------------------------------- update


def put(store: EmulatorStore, rule_id: int, cidrs: list[Any], **kwargs: Any) -> Response:
    return call(store, "PUT", f"{RULES}{rule_id}", rule_body(cidrs, id=rule_id, **kwargs))


def test_update_is_additive(store: EmulatorStore) -> None:
    """Items without an id are appended and omitted existing CIDRs stay."""
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24", "10.0.1.0/24"])
    response = put(store, rule_id, ["10.0.2.0/24"], name="renamed", description="new")
    assert response.status == 200
    body = body_of(response)
    assert set(body) == {"status", "data", "extra", "error_code"}
    assert body["extra"] == {"failed_cidrs": [], "cidrs_already_exists": []}
    assert cidr_strings(body["data"]) == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
    assert body["data"]["name"] == "renamed"
    assert body["data"]["description"] == "new"


def test_update_removes_only_cidrs_sent_with_id_and_state_2(store: EmulatorStore) -> None:
    """`{id, cidr, state: 2}` removes that CIDR; `{id, cidr, state: 1}` leaves it as is."""
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24", "10.0.1.0/24"])
    first, second = store.snapshot()[0]["cidrs"]
    response = put(
        store,
        rule_id,
        [
            {"id": first["id"], "cidr": first["cidr"], "state": 2},
            {"id": second["id"], "cidr": second["cidr"], "state": 1},
        ],
    )
    assert response.status == 200
    assert body_of(response)["data"]["cidrs"] == [second]
    assert store.snapshot()[0]["cidrs"] == [second]


def test_update_with_unknown_cidr_id_reports_it_failed(store: EmulatorStore) -> None:
    """A cidr item whose id is not in the rule lands in failed_cidrs while the rest saves."""
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    response = put(
        store, rule_id, [{"id": 424242, "cidr": "10.9.9.0/24", "state": 2}, "10.0.5.0/24"]
    )
    assert response.status == 200
    assert body_of(response)["extra"]["failed_cidrs"] == ["10.9.9.0/24"]
    assert cidr_strings(body_of(response)["data"]) == ["10.0.0.0/24", "10.0.5.0/24"]


def test_update_where_every_addition_exists_is_409_and_changes_nothing(
    store: EmulatorStore,
) -> None:
    """When every submitted CIDR already exists the PUT answers 409 and leaves the rule alone."""
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    before = store.snapshot()
    response = put(store, rule_id, ["10.0.0.9/24"], name="renamed", enabled=True)
    assert response.status == 409
    assert body_of(response)["status"]["user_message"] == "CIDR(s) already exists"
    assert body_of(response)["data"] is None
    assert store.snapshot() == before
    assert store.enforcement_flips == 0


def test_update_where_additions_fail_but_something_is_removed_succeeds(
    store: EmulatorStore,
) -> None:
    """A PUT that removes a CIDR succeeds even when all of its additions fail."""
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24", "10.0.1.0/24"])
    first = store.snapshot()[0]["cidrs"][0]
    response = put(store, rule_id, [{"id": first["id"], "cidr": first["cidr"], "state": 2}, "x"])
    assert response.status == 200
    assert body_of(response)["extra"]["failed_cidrs"] == ["x"]
    assert cidr_strings(body_of(response)["data"]) == ["10.0.1.0/24"]


def test_retried_update_is_409_already_exists(store: EmulatorStore) -> None:
    """Replaying an applied PUT (additions plus removals) answers 409 and changes nothing."""
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    old = store.snapshot()[0]["cidrs"][0]
    cidrs = [{"id": old["id"], "cidr": old["cidr"], "state": 2}, "10.0.7.0/24"]
    assert put(store, rule_id, cidrs).status == 200
    after_first = store.snapshot()
    assert put(store, rule_id, cidrs).status == 409
    assert store.snapshot() == after_first


def test_update_can_remove_and_re_add_the_same_network(store: EmulatorStore) -> None:
    """Removals apply before additions, so removing and re-adding a network gives it a new id."""
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    old = store.snapshot()[0]["cidrs"][0]
    response = put(
        store, rule_id, [{"id": old["id"], "cidr": old["cidr"], "state": 2}, "10.0.0.0/24"]
    )
    assert response.status == 200
    (new,) = body_of(response)["data"]["cidrs"]
    assert new["cidr"] == "10.0.0.0/24"
    assert new["id"] != old["id"]


@pytest.mark.parametrize("body_id", [None, 999])
def test_update_needs_the_matching_rule_id_in_the_body(
    store: EmulatorStore, body_id: int | None
) -> None:
    """A PUT body without `id`, or with another rule's id, is a 400 envelope."""
    rule_id = store.seed_rule("azure-ad")
    body = rule_body(["10.0.0.0/24"])
    if body_id is not None:
        body["id"] = body_id
    assert call(store, "PUT", f"{RULES}{rule_id}", body).status == 400


def test_update_unknown_rule_is_404(store: EmulatorStore) -> None:
    """A PUT to a rule id that does not exist is a 404 envelope."""
    assert put(store, 77, ["10.0.0.0/24"]).status == 404


# ----------------------------------------------------------------------------- rule set


def test_rule_write_with_other_rule_set_enabled_flips_enforcement(store: EmulatorStore) -> None:
    """A rule write whose rule_set_enabled differs toggles the account and counts a flip."""
    other = store.seed_rule("other", cidrs=["127.0.0.0/8"])
    response = call(store, "POST", RULES, rule_body(["10.0.0.0/24"], enabled=True))
    assert response.status == 200
    assert store.rule_set_enabled is True
    assert store.enforcement_flips == 1
    assert body_of(call(store, "GET", f"{RULES}{other}"))["data"]["rule_set_enabled"] is True
    put(store, other, ["10.0.9.0/24"], enabled=True)
    assert store.enforcement_flips == 1


def test_rule_set_endpoint_sets_enforcement(store: EmulatorStore) -> None:
    """POST ip-restrictions-set/ sets enforcement and returns the rule set."""
    store.seed_rule("loopback", cidrs=["127.0.0.1"])
    response = call(store, "POST", f"{BASE}/ip-restrictions-set/", {"enabled": True})
    assert response.status == 200
    data = body_of(response)["data"]
    assert data["enabled"] is True
    assert {k: data[k] for k in ("id", "account_id", "state", "enabled_for_service_tokens")} == {
        "id": 1,
        "account_id": 1,
        "state": 1,
        "enabled_for_service_tokens": True,
    }
    assert store.rule_set_enabled is True
    assert store.enforcement_flips == 1
    bad = call(store, "POST", f"{BASE}/ip-restrictions-set/", {"enabled": "yes"})
    assert bad.status == 400


def test_set_enforcement_is_not_a_flip(store: EmulatorStore) -> None:
    """The Python API's set_enforcement changes the value without counting a flip."""
    store.set_enforcement(True)
    assert store.rule_set_enabled is True
    assert store.enforcement_flips == 0


# ----------------------------------------------------------------------------- validate


def validate(store: EmulatorStore, suffix: str = "", ip: str = PEER) -> Response:
    return call(store, "GET", f"{BASE}/ip-restrictions-set/1/validate/{suffix}", ip=ip)


def test_validate_checks_allow_and_deny_rules(store: EmulatorStore) -> None:
    """The caller is valid when inside an allow CIDR and in no deny CIDR (the spec's bare shape)."""
    assert body_of(validate(store, ip="203.0.113.7")) == {"is_valid_for_admin": False}
    store.seed_rule("allow", cidrs=["203.0.113.0/24"])
    assert body_of(validate(store, ip="203.0.113.7")) == {"is_valid_for_admin": True}
    store.seed_rule("deny", type=2, cidrs=["203.0.113.7"])
    assert body_of(validate(store, ip="203.0.113.7"))["is_valid_for_admin"] is False
    assert body_of(validate(store, ip="203.0.113.8"))["is_valid_for_admin"] is True


def test_validate_excluding_a_rule_ignores_it(store: EmulatorStore) -> None:
    """validate/{rule_id} answers as if that rule did not exist."""
    first = store.seed_rule("allow-a", cidrs=["203.0.113.0/24"])
    response = validate(store, str(first), ip="203.0.113.7")
    assert body_of(response)["is_valid_for_admin"] is False
    store.seed_rule("allow-b", cidrs=["203.0.113.7/32"])
    response = validate(store, str(first), ip="203.0.113.7")
    assert body_of(response)["is_valid_for_admin"] is True
    assert validate(store, "999").status == 404


def test_validate_can_answer_an_envelope() -> None:
    """With validate_enveloped=True the answer is wrapped in the data/status envelope."""
    store = EmulatorStore(validate_enveloped=True)
    store.seed_rule("allow", cidrs=["127.0.0.0/8"])
    enveloped = body_of(validate(store))
    assert enveloped["data"] == {"is_valid_for_admin": True}
    assert enveloped["status"]["code"] == 200
    store.validate_enveloped = False
    assert body_of(validate(store)) == {"is_valid_for_admin": True}


def test_validate_unknown_rule_set_is_404(store: EmulatorStore) -> None:
    """A rule-set id other than the account's is a 404 envelope."""
    response = call(store, "GET", f"{BASE}/ip-restrictions-set/2/validate/")
    assert response.status == 404


def test_validate_supports_ipv6_callers(store: EmulatorStore) -> None:
    """An IPv6 caller is matched against IPv6 CIDRs."""
    store.seed_rule("v6", cidrs=["2001:db8::/32"])
    assert body_of(validate(store, ip="2001:db8::1"))["is_valid_for_admin"] is True
    assert body_of(validate(store, ip="2001:db9::1"))["is_valid_for_admin"] is False


# ----------------------------------------------------------------------------- enforcement


def test_enforcement_blocks_callers_outside_the_allowlist(store: EmulatorStore) -> None:
    """With enforcement on, a caller not allowed gets the 403 account_access_denied envelope."""
    store.seed_rule("office", cidrs=["198.51.100.0/24"])
    store.set_enforcement(True)
    response = call(store, "GET", RULES, ip="203.0.113.7")
    assert response.status == 403
    assert body_of(response)["status"]["user_message"] == "Forbidden: Access denied"
    assert body_of(response)["data"] == {"account_access_denied": True, "is_service_token": True}
    assert call(store, "GET", RULES, ip="198.51.100.9").status == 200


def test_caller_ip_override_wins_over_the_peer_address(store: EmulatorStore) -> None:
    """store.caller_ip replaces the socket peer address for enforcement and validate."""
    store.seed_rule("loopback", cidrs=["127.0.0.0/8"])
    store.set_enforcement(True)
    assert call(store, "GET", RULES, ip="127.0.0.1").status == 200
    store.caller_ip = "203.0.113.7"
    assert call(store, "GET", RULES, ip="127.0.0.1").status == 403
    assert store.requests[-1].caller_ip == "203.0.113.7"
    with pytest.raises(ValueError, match="does not appear"):
        store.caller_ip = "not-an-ip"


def test_enforcement_disabled_lets_anyone_in(store: EmulatorStore) -> None:
    """With enforcement off, callers outside every rule are still served."""
    store.seed_rule("office", cidrs=["198.51.100.0/24"])
    assert call(store, "GET", RULES, ip="203.0.113.7").status == 200


# ----------------------------------------------------------------------------- faults


def test_status_fault_answers_without_processing(store: EmulatorStore) -> None:
    """A status fault answers its code and Retry-After without touching the state."""
    store.add_fault(Fault(action="status", method="POST", status=429, retry_after="7"))
    response = call(store, "POST", RULES, rule_body(["10.0.0.0/24"]))
    assert response.status == 429
    assert response.headers == {"Retry-After": "7"}
    assert body_of(response)["status"]["is_success"] is False
    assert store.snapshot() == []
    assert store.write_count() == 0
    assert call(store, "POST", RULES, rule_body(["10.0.0.0/24"])).status == 200
    assert store.write_count() == 1


def test_drop_before_does_not_process(store: EmulatorStore) -> None:
    """drop_before asks for a dropped connection and leaves the state unchanged."""
    store.add_fault(Fault(action="drop_before"))
    response = call(store, "POST", RULES, rule_body(["10.0.0.0/24"]))
    assert response.drop is True
    assert store.snapshot() == []
    assert store.write_count() == 0
    assert store.requests[-1].status is None


def test_drop_after_processes_then_drops(store: EmulatorStore) -> None:
    """drop_after applies the write and then asks for a dropped connection."""
    store.add_fault(Fault(action="drop_after", method="post"))
    response = call(store, "POST", RULES, rule_body(["10.0.0.0/24"]))
    assert response.drop is True
    assert response.status == 200
    assert len(store.snapshot()) == 1
    assert store.write_count() == 1


def test_faults_match_method_and_path_and_are_consumed(store: EmulatorStore) -> None:
    """A fault applies only to matching requests and only `times` times."""
    rule_id = store.seed_rule("r")
    store.add_fault(
        Fault(action="status", method="PUT", path_regex=r"/ip-restrictions/\d+$", times=2)
    )
    assert call(store, "GET", f"{RULES}{rule_id}").status == 200
    assert call(store, "GET", RULES).status == 200
    assert put(store, rule_id, ["10.0.0.0/24"]).status == 503
    assert len(store.faults) == 1
    assert store.faults[0].times == 1
    assert put(store, rule_id, ["10.0.0.0/24"]).status == 503
    assert store.faults == []
    assert put(store, rule_id, ["10.0.0.0/24"]).status == 200


def test_faults_do_not_apply_to_control_paths(store: EmulatorStore) -> None:
    """Control requests are never faulted, so tests can always inspect the emulator."""
    store.add_fault(Fault(action="drop_before"))
    assert call(store, "GET", "/_emulator/state", headers={}).status == 200
    assert len(store.faults) == 1


def test_delay_faults_sleep_before_or_after_processing(store: EmulatorStore) -> None:
    """delay_before and delay_after hold the answer for `seconds` and then answer normally."""
    store.add_fault(Fault(action="delay_before", seconds=0.15))
    store.add_fault(Fault(action="delay_after", seconds=0.15))
    for _ in range(2):
        start = time.monotonic()
        response = call(store, "GET", RULES)
        assert response.status == 200
        assert response.drop is False
        assert time.monotonic() - start >= 0.14


def test_delay_after_has_applied_the_write_while_sleeping(store: EmulatorStore) -> None:
    """During a delay_after the write is already visible, and other requests are not blocked."""
    store.add_fault(Fault(action="delay_after", method="POST", seconds=0.5))
    worker = threading.Thread(target=call, args=(store, "POST", RULES, rule_body(["10.0.0.0/24"])))
    worker.start()
    deadline = time.monotonic() + 0.4
    while not store.snapshot() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(store.snapshot()) == 1
    assert call(store, "GET", RULES).status == 200
    worker.join()


def test_wake_sleepers_turns_a_delay_into_a_drop(store: EmulatorStore) -> None:
    """Shutdown interrupts a delayed request, which is then dropped instead of answered."""
    store.add_fault(Fault(action="delay_before", seconds=30))
    results: list[Response] = []
    worker = threading.Thread(target=lambda: results.append(call(store, "GET", RULES)))
    worker.start()
    time.sleep(0.05)
    store.wake_sleepers()
    worker.join(timeout=2)
    assert results[0].drop is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action": "explode"},
        {"action": "status", "times": 0},
        {"action": "status", "status": 999},
        {"action": "delay_before", "seconds": -1},
        {"action": "status", "path_regex": "("},
    ],
)
def test_invalid_faults_are_rejected(kwargs: dict[str, Any]) -> None:
    """A fault with an unknown action or impossible values raises ValueError at construction."""
    with pytest.raises(ValueError, match="fault"):
        Fault(**kwargs)


# ----------------------------------------------------------------------------- log, Python API


def test_request_log_records_requests_but_not_control_or_headers(store: EmulatorStore) -> None:
    """The log holds method, path, query, status and parsed write bodies, never headers."""
    call(store, "GET", RULES, query={"limit": "5"})
    call(store, "POST", RULES, rule_body(["10.0.0.0/24"]))
    call(store, "GET", "/_emulator/state")
    records = store.requests
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", RULES, 200),
        ("POST", RULES, 200),
    ]
    assert records[0].query == {"limit": "5"}
    assert records[0].body is None
    assert records[1].body["cidrs"] == [{"cidr": "10.0.0.0/24"}]
    assert DEFAULT_TOKEN not in json.dumps([r.to_dict() for r in records])


def test_write_count_counts_processed_api_writes(store: EmulatorStore) -> None:
    """write_count counts POST/PUT/DELETE on /api that were processed, whatever their status."""
    call(store, "GET", RULES)
    call(store, "POST", RULES, rule_body(["bad"]))  # processed, answered 400
    call(store, "POST", "/nowhere", {})
    assert store.write_count() == 1


def test_snapshot_is_a_deep_copy(store: EmulatorStore) -> None:
    """Mutating a snapshot does not change the store."""
    store.seed_rule("r", cidrs=["10.0.0.0/24"])
    snap = store.snapshot()
    snap[0]["cidrs"].clear()
    assert cidr_strings(store.snapshot()[0]) == ["10.0.0.0/24"]


def test_seed_rule_validates_its_input(store: EmulatorStore) -> None:
    """seed_rule refuses invalid CIDRs and types."""
    with pytest.raises(ValueError, match="not an IP"):
        store.seed_rule("r", cidrs=["nope"])
    with pytest.raises(ValueError, match="type"):
        store.seed_rule("r", type=3)


def test_reset_returns_to_the_constructor_state() -> None:
    """reset clears rules, faults, the log and flips, and restores enforcement and caller IP."""
    store = EmulatorStore(enforce=False, caller_ip="127.0.0.1")
    store.seed_rule("r", cidrs=["127.0.0.1"])
    call(store, "POST", f"{BASE}/ip-restrictions-set/", {"enabled": True})
    store.caller_ip = "203.0.113.7"
    store.add_fault(Fault(action="drop_before"))
    store.reset()
    assert store.snapshot() == []
    assert store.faults == []
    assert store.requests == []
    assert store.enforcement_flips == 0
    assert store.rule_set_enabled is False
    assert store.caller_ip == "127.0.0.1"
    assert store.seed_rule("again") == 1


def test_rule_and_cidr_ids_do_not_overlap(store: EmulatorStore) -> None:
    """Rule ids and CIDR ids come from different ranges, so mixing them up is caught."""
    rule_id = store.seed_rule("r", cidrs=["10.0.0.0/24"])
    assert store.snapshot()[0]["cidrs"][0]["id"] != rule_id


@settings(max_examples=50, deadline=None)
@given(address=st.ip_addresses(v=4), prefix=st.integers(0, 32))
def test_cidr_ipv6_maps_every_ipv4_network(address: Any, prefix: int) -> None:
    """Every IPv4 network maps to ::ffff:<network>/<96+prefix>, which parses back to itself."""
    net = mapped_network(f"{address}/{prefix}")
    assert net is not None
    text = cidr_ipv6(net)
    assert text.startswith("::ffff:")
    assert text.endswith(f"/{96 + prefix}")
    assert mapped_network(text) == net


# ----------------------------------------------------------------------------- control API


def control(store: EmulatorStore, method: str, path: str, body: Any = None) -> Response:
    return call(store, method, f"/_emulator/{path}", body, headers={})


def test_control_api_without_auth(store: EmulatorStore) -> None:
    """The control endpoints work without a token and drive the same state as the Python API."""
    seeded = control(store, "POST", "rules", {"name": "r", "type": 1, "cidrs": ["127.0.0.1"]})
    assert seeded.status == 201
    assert cidr_strings(body_of(seeded)["data"]) == ["127.0.0.1"]
    assert control(store, "POST", "caller", {"ip": "203.0.113.7"}).status == 200
    assert store.caller_ip == "203.0.113.7"
    assert control(store, "POST", "enforcement", {"enabled": True}).status == 200
    assert call(store, "GET", RULES).status == 403
    faults = [{"action": "status", "status": 502}, {"action": "drop_before", "method": "PUT"}]
    assert control(store, "POST", "faults", faults).status == 200
    assert [f.action for f in store.faults] == ["status", "drop_before"]
    state = body_of(control(store, "GET", "state"))
    assert state["rule_set_enabled"] is True
    assert state["enforcement_flips"] == 0
    assert state["caller_ip"] == "203.0.113.7"
    assert [r["name"] for r in state["rules"]] == ["r"]
    assert len(state["faults"]) == 2
    requests = body_of(control(store, "GET", "requests"))["requests"]
    assert [(r["method"], r["status"]) for r in requests] == [("GET", 403)]
    assert control(store, "POST", "caller", {"ip": None}).status == 200
    assert store.caller_ip is None
    assert control(store, "POST", "reset").status == 200
    assert store.snapshot() == []
    assert store.faults == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "faults", [{"action": "nope"}], 400),
        ("POST", "faults", [{"action": "status", "colour": "red"}], 400),
        ("POST", "caller", {"ip": "nope"}, 400),
        ("POST", "rules", {"name": "r", "cidrs": ["nope"]}, 400),
        ("POST", "rules", {"cidrs": []}, 400),
        ("POST", "enforcement", {"enabled": 1}, 400),
        ("GET", "nothing", None, 404),
        ("GET", "reset", None, 405),
    ],
)
def test_control_api_rejects_bad_input(
    store: EmulatorStore, method: str, path: str, body: Any, status: int
) -> None:
    """Bad control requests are answered with an error envelope and change nothing."""
    response = control(store, method, path, body)
    assert response.status == status
    assert body_of(response)["status"]["is_success"] is False
    assert store.faults == []
    assert store.snapshot() == []
