"""structlog set-up: events with fields on stderr (JSON, or console on a tty), secrets scrubbed.

Unless a level is configured, a terminal gets warnings and errors only (the plan and the status
line on stdout are what a person reads); anything else (cron, CI, a container) gets every step.

Every secret the program learns (the service token, the webhook URL) is registered with
`register_secret`, and every configured URL with `register_url`, which makes its query string
and fragment (a signed mirror's `sig=`, a webhook's `code=`) secret too. The `redact` processor
replaces each of them wherever it appears in an event, including inside exception text, in the
escaped forms a message may carry (repr, JSON, URL-encoded), and drops values of keys that name
credentials outright. `display_url` is the form of a URL printed on purpose.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import structlog

REDACTED = "[REDACTED]"
#: What stands for a URL's query or fragment: `https://host/f.json?<redacted>`.
URL_PART_REDACTED = "<redacted>"
_SENSITIVE_KEYS = frozenset({"token", "authorization", "password", "secret", "api_key"})
#: Every form a secret may take in a message -> what replaces it; longest first when applied.
_replacements: dict[str, str] = {}
#: Longest first; replaced whole (never changed in place), so a reader in another thread (the
#: targets of a fleet run) always iterates one complete list.
_ordered: tuple[tuple[str, str], ...] = ()
_registering = threading.Lock()
_MIN_SECRET = 4  # shorter values would scrub ordinary words out of every line


def _escaped_forms(secret: str) -> Iterator[str]:
    """The secret as it may appear inside a message: raw, repr- and JSON-escaped, URL-encoded."""
    plain = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret, safe="/:@&=?#+,;$!*'()~"),
        secret.encode("unicode_escape").decode("ascii"),
    }
    yield from plain
    for form in plain:  # once more: an escaped message inside a JSON log line or a repr
        yield json.dumps(form)[1:-1]
        yield repr(form)[1:-1]


def _register(value: str, replacement: str) -> None:
    global _ordered
    if not value or len(value) < _MIN_SECRET:
        return
    with _registering:
        changed = False
        for form in _escaped_forms(value):
            if form and form not in _replacements:
                _replacements[form] = replacement
                changed = True
        if changed:
            _ordered = tuple(sorted(_replacements.items(), key=lambda item: -len(item[0])))


def register_secret(value: str) -> None:
    """Remember a secret so that no log line or error message can carry it, in any escaping."""
    _register(value, REDACTED)


def register_url(url: str | None) -> None:
    """Make a URL's query string, fragment and any user-info secret (shown as `<redacted>`)."""
    if not url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    for part in (parts.query, parts.fragment):
        _register(part, URL_PART_REDACTED)
    if parts.password:
        _register(parts.password, REDACTED)
    if "@" in parts.netloc:
        _register(parts.netloc.rpartition("@")[0], REDACTED)


def display_url(url: str) -> str:
    """`url` as it may be printed: no user-info, the query and fragment as `<redacted>`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            URL_PART_REDACTED if parts.query else "",
            URL_PART_REDACTED if parts.fragment else "",
        )
    )


def redact(text: str) -> str:
    """`text` with every registered secret replaced by [REDACTED] (URL parts by <redacted>)."""
    for secret, replacement in _ordered:
        if secret in text:
            text = text.replace(secret, replacement)
    return text


def scrub(value: Any) -> Any:
    """`value` (strings, mappings, lists, exceptions, nested) with every secret redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in _SENSITIVE_KEYS else scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
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
            event_dict[key] = scrub(event_dict[key])
    return event_dict


def _redacting(renderer: Any) -> Any:
    """Wrap the final renderer: scrub the rendered line itself too (covers tracebacks)."""

    def render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return redact(str(renderer(logger, method, event_dict)))

    return render


#: The level when none is set: on a terminal the plan and the result on stdout are the output,
#: so only what needs a person's attention is logged beside them; elsewhere every step is.
TERMINAL_DEFAULT_LEVEL = "warning"
DEFAULT_LEVEL = "info"


def on_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (a closed or unusual stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def default_level(stream: TextIO | None = None) -> str:
    """The log level when none is configured: warnings on a terminal, info elsewhere."""
    out = stream if stream is not None else sys.stderr
    return TERMINAL_DEFAULT_LEVEL if on_terminal(out) else DEFAULT_LEVEL


def configure(level: str | None = None, fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send structlog events to stderr as JSON (default off a terminal) or console lines.

    `level` None: `default_level` of the stream (warnings on a terminal, info elsewhere).
    """
    out = stream if stream is not None else sys.stderr
    if level is None:
        level = default_level(out)
    if fmt == "auto":
        fmt = "console" if on_terminal(out) else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=on_terminal(out))
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
