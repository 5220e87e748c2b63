"""The shape of every answer: the `Response` value and the API's `{status, data}` envelope.

Success bodies are built where they are answered; this module holds the `status` block they
share and every error answer (400, 404, 405 and whatever a fault injects), so that an error
looks the same wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Response:
    """What the emulator answers: status, JSON body (None = no body), headers, or a drop."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # True: close the connection without writing any response (injected fault).
    drop: bool = False


class BadRequestError(Exception):
    """A request that does not match the schema (answered 400 with this message)."""


def status_block(code: int, user_message: str, developer_message: str = "") -> dict[str, Any]:
    """The envelope's `status` object."""
    return {
        "code": code,
        "is_success": 200 <= code < 300,
        "user_message": user_message,
        "developer_message": developer_message,
    }


def success_status(code: int = 200) -> dict[str, Any]:
    """The `status` object of a successful answer."""
    return status_block(code, "Success!")


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
    body: dict[str, Any] = {
        "status": status_block(code, user_message, developer_message),
        "data": data,
    }
    if extra is not None:
        body["extra"] = extra
    return Response(code, body, dict(headers or {}))


def not_found(developer_message: str) -> Response:
    """404 in the envelope."""
    return error_response(404, "Not found.", developer_message)


def method_not_allowed(method: str, allowed: Iterable[str]) -> Response:
    """405 in the envelope, with the `Allow` header listing what the path accepts."""
    allow = ", ".join(sorted(allowed))
    return error_response(
        405, "Method not allowed.", f"Method {method} is not allowed here", headers={"Allow": allow}
    )


def bad_request(developer_message: str) -> Response:
    """400 in the envelope, naming what is wrong with the request."""
    return error_response(400, "Invalid request.", developer_message)
