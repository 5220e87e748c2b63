"""structlog set-up: events with fields on stderr (JSON, or console on a tty), secrets scrubbed.

Every secret the program learns (the service token) is registered with `register_secret`; the
`redact` processor replaces it wherever it appears in an event, including inside exception text,
and drops values of keys that name credentials outright.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
_SENSITIVE_KEYS = frozenset({"token", "authorization", "password", "secret", "api_key"})
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret so that no log line or error message can carry it."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by [REDACTED]."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in _SENSITIVE_KEYS else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub every field of the event."""
    for key in list(event_dict):
        if key.lower() in _SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _redacting(renderer: Any) -> Any:
    """Wrap the final renderer: scrub the rendered line itself too (covers tracebacks)."""

    def render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return redact(str(renderer(logger, method, event_dict)))

    return render


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send structlog events to stderr as JSON (default off a terminal) or console lines."""
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            _redacting(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound with the module name."""
    return structlog.get_logger(module=name.removeprefix("allowlist_sync."))
