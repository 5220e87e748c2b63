"""Reading the dbt Admin API's answers: JSON bodies, the error envelope, write results.

HTTP errors are mapped here to `ApiError` subclasses with messages that say what to fix
(and where the token came from), never the token itself.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from allowlist_sync.dbt.models import Pagination, Rule, WriteResult
from allowlist_sync.errors import (
    AccessDeniedError,
    ApiError,
    ApiResponseError,
    AuthError,
    CidrsRejectedError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)
from allowlist_sync.logs import redact

_M = TypeVar("_M", Rule, Pagination)


def reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact(text.splitlines()[0])


def json_body(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise ApiResponseError(
            f"HTTP {response.status_code} answer is not JSON",
            status_code=response.status_code,
            method=method,
            path=path,
        ) from None
    if not isinstance(body, dict):
        raise ApiResponseError("answer is not a JSON object", method=method, path=path)
    return body


def user_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    status = body.get("status") if isinstance(body, dict) else None
    if isinstance(status, dict):
        message = status.get("user_message") or status.get("developer_message") or ""
        return redact(str(message))[:200]
    return ""


def error_for(
    response: httpx.Response,
    method: str,
    path: str,
    *,
    token_source: str = "DBT_CLOUD_TOKEN",  # noqa: S107
) -> ApiError:
    status = response.status_code
    message = user_message(response)
    quoted = f" ({message!r})" if message else ""
    kwargs: dict[str, Any] = {"status_code": status, "method": method, "path": path}
    if status == 401:
        return AuthError(
            f"the service token was refused (401){quoted}; check the token in {token_source}",
            **kwargs,
        )
    if status == 403:
        try:
            data = response.json().get("data")
        except (ValueError, AttributeError):
            data = None
        if isinstance(data, dict) and data.get("account_access_denied"):
            return AccessDeniedError(
                "403 account_access_denied: the account's IP restrictions block the address "
                "this job calls from; allow its egress IP in another rule (only dbt support "
                "can undo a full lock-out)",
                **kwargs,
            )
        return ForbiddenError(
            f"forbidden (403){quoted}; the token needs the Security Admin or Account Admin "
            "permission set",
            **kwargs,
        )
    if status == 404:
        return NotFoundError(
            f"not found (404){quoted}; check DBT_CLOUD_ACCOUNT_ID and DBT_CLOUD_HOST_URL "
            "(the account's API access URL)",
            **kwargs,
        )
    if status == 409:
        return ConflictError(f"conflict (409){quoted}", **kwargs)
    return ApiError(f"HTTP {status}{quoted}", **kwargs)


def dig(body: dict[str, Any], *keys: str) -> Any:
    value: Any = body
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def parse(model: type[_M], value: Any, what: str) -> _M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ApiResponseError(f"unexpected answer to {what}: {loc}: {first['msg']}") from None


def cidr_strings(value: Any) -> list[str]:
    """`failed_cidrs` / `cidrs_already_exists` as strings, whether sent as strings or objects."""
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("cidr")
        if isinstance(item, str):
            out.append(item)
    return out


def raise_if_cidrs_rejected(response: httpx.Response, method: str, path: str) -> None:
    """A 400 that lists failed_cidrs means the platform refused every CIDR it was sent."""
    try:
        extra = response.json().get("extra")
    except (ValueError, AttributeError):
        return
    failed = cidr_strings(extra.get("failed_cidrs")) if isinstance(extra, dict) else []
    if failed:
        assert isinstance(extra, dict)
        raise CidrsRejectedError(
            f"the platform refused every submitted CIDR: {', '.join(failed)}",
            failed_cidrs=failed,
            already_exists=cidr_strings(extra.get("cidrs_already_exists")),
            status_code=400,
            method=method,
            path=path,
        )


def write_result(body: dict[str, Any], what: str) -> WriteResult:
    # The spec says PUT returns a bare rule; it is observed enveloped. Accept both.
    data = body.get("data") if "data" in body else body
    rule = parse(Rule, data, what)
    extra = body.get("extra") if isinstance(body.get("extra"), dict) else {}
    assert isinstance(extra, dict)
    return WriteResult(
        rule=rule,
        failed_cidrs=cidr_strings(extra.get("failed_cidrs")),
        cidrs_already_exists=cidr_strings(extra.get("cidrs_already_exists")),
    )
