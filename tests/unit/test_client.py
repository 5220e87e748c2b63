"""The dbt Admin API client against httpx.MockTransport: paging, errors, retries, ownership."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, TypeAdapter

from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.models import Cidr, Rule
from allowlist_sync.errors import (
    AccessDeniedError,
    AmbiguousWriteError,
    ApiError,
    ApiResponseError,
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    OwnershipError,
)
from allowlist_sync.net.retries import RetryPolicy

TOKEN = "dbtc_client_unit_token_55aa"
OWNED = "owned-rule"
Handler = Callable[[httpx.Request], httpx.Response]


def ok(data: Any, **extra: Any) -> dict[str, Any]:
    return {
        "data": data,
        "status": {
            "code": 200,
            "is_success": True,
            "user_message": "Success!",
            "developer_message": "",
        },
        **extra,
    }


def err(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {
        "data": data,
        "status": {
            "code": code,
            "is_success": False,
            "user_message": message,
            "developer_message": "",
        },
    }


def rule_json(
    rule_id: int, name: str = OWNED, cidrs: tuple[str, ...] = (), **kw: Any
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": name,
        "type": kw.get("type", 1),
        "state": 1,
        "ip_restriction_rule_set_id": 3,
        "rule_set_enabled": kw.get("enabled", False),
        "account_id": 9,
        "description": "d",
        "cidrs": [
            {
                "id": 100 + i,
                "cidr": c,
                "state": 1,
                "enabled": True,
                "ip_restriction_rule_id": rule_id,
            }
            for i, c in enumerate(cidrs)
        ],
    }


def client(handler: Handler, attempts: int = 3) -> DbtClient:
    return DbtClient(
        host_url="https://emea.dbt.com",
        account_id=9,
        token=SecretStr(TOKEN),
        owned_rule_name=OWNED,
        retry=RetryPolicy(attempts=attempts, backoff=0),
        transport=httpx.MockTransport(handler),
    )


def test_list_follows_pagination_and_sends_the_token() -> None:
    """Rules are listed across pages until total_count, with Token auth on every request."""
    all_rules = [rule_json(i) for i in range(1, 251)]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.url.path == "/api/v3/accounts/9/ip-restrictions/"
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        page = all_rules[offset : offset + limit]
        return httpx.Response(
            200,
            json=ok(
                page, extra={"pagination": {"count": len(page), "total_count": len(all_rules)}}
            ),
        )

    rules = client(handler).list_rules()
    assert [r.id for r in rules] == list(range(1, 251))
    assert len(seen) == 3
    assert all(r.headers["Authorization"] == f"Token {TOKEN}" for r in seen)


def test_list_stops_on_an_empty_page() -> None:
    """A server that over-reports total_count cannot make the client loop forever."""

    def handler(request: httpx.Request) -> httpx.Response:
        data = [rule_json(1)] if request.url.params["offset"] == "0" else []
        return httpx.Response(
            200, json=ok(data, extra={"pagination": {"count": len(data), "total_count": 5}})
        )

    assert len(client(handler).list_rules()) == 1


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, err(401, "Invalid token."), AuthError, "token was refused"),
        (
            403,
            err(
                403,
                "Forbidden: Access denied",
                {"account_access_denied": True, "is_service_token": True},
            ),
            AccessDeniedError,
            "account_access_denied",
        ),
        (403, err(403, "Permission denied"), ForbiddenError, "Security Admin"),
        (404, err(404, "Not found"), NotFoundError, "DBT_CLOUD_ACCOUNT_ID"),
        (400, err(400, "Bad request"), ApiError, "HTTP 400"),
    ],
)
def test_error_envelopes_become_clear_errors(
    status: int, body: dict[str, Any], error: type[ApiError], message: str
) -> None:
    """Each documented error answer maps to its own error type with a one-line message."""
    c = client(lambda r: httpx.Response(status, json=body))
    with pytest.raises(error, match=message) as info:
        c.list_rules()
    assert info.value.status_code == status
    assert "\n" not in str(info.value) and TOKEN not in str(info.value)


def test_non_json_answer_is_a_response_error() -> None:
    """An HTML error page instead of JSON is reported as such."""
    c = client(lambda r: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(ApiResponseError, match="not JSON"):
        c.list_rules()


def test_wrong_shape_is_a_response_error() -> None:
    """A list answer without pagination is reported, not guessed at."""
    c = client(lambda r: httpx.Response(200, json=ok([rule_json(1)])))
    with pytest.raises(ApiResponseError, match="pagination"):
        c.list_rules()


def test_reads_retry_transient_failures_with_retry_after() -> None:
    """A 503 and a 429 with Retry-After are retried; the third answer wins."""
    answers = [
        httpx.Response(503, json=err(503, "busy")),
        httpx.Response(429, headers={"Retry-After": "0"}, json=err(429, "slow down")),
        httpx.Response(200, json=ok(rule_json(5))),
    ]
    c = client(lambda r: answers.pop(0))
    assert c.get_rule(5).id == 5
    assert c.request_count == 3


def test_reads_give_up_after_the_attempts() -> None:
    """Retries are bounded: after the last attempt the error names the status."""
    c = client(lambda r: httpx.Response(502, json=err(502, "bad gateway")), attempts=2)
    with pytest.raises(ApiError, match=r"HTTP 502.*gave up"):
        c.get_rule(1)
    assert c.request_count == 2


def test_client_errors_are_not_retried() -> None:
    """A 4xx other than 408/429 is answered at once, never retried."""
    c = client(lambda r: httpx.Response(404, json=err(404, "nope")))
    with pytest.raises(NotFoundError):
        c.get_rule(1)
    assert c.request_count == 1


def owned_rule(*cidrs: str, name: str = OWNED, type_: int = 1) -> Rule:
    return Rule.model_validate(rule_json(7, name=name, cidrs=cidrs, type=type_, enabled=True))


def test_update_sends_only_additions_and_removals() -> None:
    """The PUT carries additions without id and removals as {id, cidr, state: 2}, nothing else."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(
            200,
            json=ok(
                rule_json(7, cidrs=("10.0.0.0/8",)),
                extra={"failed_cidrs": [], "cidrs_already_exists": []},
            ),
        )

    current = owned_rule("192.0.2.1", "10.0.0.0/8")
    result = client(handler).update_owned_rule(
        current, add=["198.51.100.0/24"], remove=[current.cidrs[0]]
    )
    assert bodies == [
        {
            "id": 7,
            "name": OWNED,
            "type": 1,
            "rule_set_enabled": True,
            "account_id": 9,
            "description": "d",
            "cidrs": [
                {"cidr": "198.51.100.0/24", "state": 1},
                {"id": 100, "cidr": "192.0.2.1", "state": 2},
            ],
        }
    ]
    assert result.failed_cidrs == []


def test_partial_failure_lists_are_read_as_strings_or_objects() -> None:
    """failed_cidrs / cidrs_already_exists are read whether items are strings or objects."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=ok(
                rule_json(7),
                extra={
                    "failed_cidrs": [{"cidr": "1.2.3.4/32"}],
                    "cidrs_already_exists": ["5.6.7.0/24"],
                },
            ),
        )

    result = client(handler).update_owned_rule(owned_rule(), add=["1.2.3.4/32"], remove=[])
    assert result.failed_cidrs == ["1.2.3.4/32"]
    assert result.cidrs_already_exists == ["5.6.7.0/24"]


def test_update_accepts_a_bare_rule_answer() -> None:
    """The spec's bare-rule PUT answer is accepted as well as the observed envelope."""
    c = client(lambda r: httpx.Response(200, json=rule_json(7)))
    assert c.update_owned_rule(owned_rule(), add=["1.2.3.4"], remove=[]).rule.id == 7


@pytest.mark.parametrize(("name", "type_"), [("someone else's", 1), (OWNED, 2)])
def test_client_refuses_to_write_a_rule_it_does_not_own(name: str, type_: int) -> None:
    """Another rule, or a deny rule, is never written: nothing is even sent."""
    c = client(lambda r: pytest.fail("a request was sent"))
    with pytest.raises(OwnershipError):
        c.update_owned_rule(owned_rule(name=name, type_=type_), add=["1.2.3.4"], remove=[])
    assert c.request_count == 0


def test_write_timeout_after_sending_is_ambiguous_and_not_replayed() -> None:
    """A PUT whose answer never comes is reported ambiguous after exactly one send."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    c = client(handler)
    with pytest.raises(AmbiguousWriteError, match="may have been applied"):
        c.update_owned_rule(owned_rule(), add=["1.2.3.4"], remove=[])
    assert c.request_count == 1


def test_write_5xx_is_ambiguous_and_not_replayed() -> None:
    """A 500 answer to a PUT is not retried blindly."""
    c = client(lambda r: httpx.Response(500, json=err(500, "oops")))
    with pytest.raises(AmbiguousWriteError):
        c.update_owned_rule(owned_rule(), add=["1.2.3.4"], remove=[])
    assert c.request_count == 1


def test_write_rate_limited_is_retried() -> None:
    """A 429 proves the write was not processed, so it is sent again."""
    answers = [
        httpx.Response(429, json=err(429, "slow")),
        httpx.Response(200, json=ok(rule_json(7))),
    ]
    c = client(lambda r: answers.pop(0))
    c.update_owned_rule(owned_rule(), add=["1.2.3.4"], remove=[])
    assert c.request_count == 2


def test_write_connect_error_is_retried() -> None:
    """A connection that never opened carried nothing, so the write is sent again."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json=ok(rule_json(7)))

    c = client(handler)
    assert c.create_owned_rule(cidrs=["1.2.3.4"], description="d", rule_set_enabled=False)
    assert len(calls) == 2


def test_conflict_is_its_own_error() -> None:
    """409 'already exists' is a ConflictError the pipeline can treat as applied."""
    c = client(lambda r: httpx.Response(409, json=err(409, "CIDR(s) already exists")))
    with pytest.raises(ConflictError, match="already exists"):
        c.update_owned_rule(owned_rule(), add=["1.2.3.4"], remove=[])


def test_validate_reads_both_answer_shapes() -> None:
    """The validate endpoint's answer is read bare or enveloped."""
    answers = [
        httpx.Response(200, json={"is_valid_for_admin": True}),
        httpx.Response(200, json=ok({"is_valid_for_admin": False})),
    ]
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return answers.pop(0)

    c = client(handler)
    assert c.caller_allowed(3) is True
    assert c.caller_allowed(3, without_rule_id=7) is False
    assert paths[1].endswith("/ip-restrictions-set/3/validate/7")


def test_repr_hides_the_token() -> None:
    """The client's repr shows where it talks to, never the token."""
    c = client(lambda r: httpx.Response(200))
    assert TOKEN not in repr(c) and "emea.dbt.com" in repr(c)


def test_cidr_model_tolerates_missing_id() -> None:
    """A CIDR without an id (as in the spec) still parses."""
    assert TypeAdapter(Cidr).validate_python({"cidr": "1.2.3.4", "state": 1}).id is None
