"""What every table of a config file shares: where a value is, its type, unknown keys, secrets.

Every problem is one `ConfigError` line `FILE: TABLE: KEY: problem` (exit 78). Values are shown
only where they cannot be secret (a CIDR, a source name that passed the secret scan); a value
that looks like a token is never shown, and is registered for redaction all the same.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from allowlist_sync.config.runsettings import plain_name
from allowlist_sync.errors import ConfigError
from allowlist_sync.logs import register_secret

NOT_A_SECRET_STORE = "a config file is not a secret store: use token_file or token_env"  # noqa: S105
#: Keys that name a secret (compared lower-case, `-` read as `_`), and the endings that do.
SECRET_KEYS = frozenset(
    {
        "token", "dbt_token", "service_token", "api_token", "access_token", "auth_token",
        "bearer_token", "dbt_cloud_token", "api_key", "apikey", "password", "passwd", "secret",
        "client_secret", "private_key",
    }
)  # fmt: skip
SECRET_KEY_ENDINGS = ("_token", "_password", "_secret", "_api_key", "_apikey")
#: dbt service tokens start `dbtc_`, personal access tokens `dbtu_`; an Authorization value
#: pasted whole starts with its scheme.
TOKEN_LOOKING = re.compile(r"(?i)(?:\bdbt[cu]_[a-z0-9_-]{6,}|^\s*(?:bearer|token)\s+\S{8,})")
#: The longest name, source or key shown in a message; longer ones are cut.
SHOWN_CHARS = 64


def shown(text: str) -> str:
    """A name as it may appear in a message: quoted, escaped, cut to a readable length."""
    cut = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."
    return '"' + cut.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def one_line(text: str) -> str:
    """`text` without control characters, so every message stays one line."""
    return "".join("?" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)


@dataclass(frozen=True)
class Place:
    """A table of the file (`[sources.entra]`, `[[targets]] #2 "sandbox"`), for messages."""

    file: str
    table: str

    def error(self, key: str | None, problem: str) -> ConfigError:
        """The one-line error for `problem` at `key` of this table (the table itself when None)."""
        if key is not None and len(key) > SHOWN_CHARS:
            key = key[:SHOWN_CHARS] + "..."
        where = f"{self.file}: {self.table}" + (f": {key}" if key is not None else "")
        return ConfigError(one_line(f"{where}: {problem}"))


def did_you_mean(word: str, choices: Iterable[str], *, listing: str = "valid keys") -> str:
    """`; did you mean x?` for a close choice, else the list of choices."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1)
    if not close and word:  # `okta` for okta-ip-ranges: a part too short for a close match
        close = [o for o in options if o.lower().startswith(word.lower())][:1]
    if close:
        return f"; did you mean {close[0]}?"
    return f"; {listing}: {', '.join(options)}"


def check_keys(
    place: Place, table: Mapping[str, Any], valid: Iterable[str], other: Mapping[str, str]
) -> None:
    """Refuse the first key of `table` not in `valid`: a key of another kind (`other`: key ->
    where it belongs) says so; else a close valid key is suggested, or the valid keys listed."""
    allowed = set(valid)
    for key in table:
        if key in allowed:
            continue
        if key in other:
            raise place.error(key, f"is a key of {other[key]}, not of this table")
        raise place.error(key, "no such key" + did_you_mean(key, allowed))


def _is_secret_key(key: str) -> bool:
    name = key.strip().lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(SECRET_KEY_ENDINGS)


def looks_like_token(text: str) -> bool:
    """Whether `text` holds what looks like a token (registered for redaction when it does)."""
    match = TOKEN_LOOKING.search(text)
    if match is None:
        return False
    register_secret(match.group(0).strip())
    register_secret(text)
    return True


def scan_secrets(place: Place, table: Mapping[str, Any], prefix: str = "") -> None:
    """Refuse a secret-named key or a token-looking key or string anywhere inside `table`."""
    for key, value in table.items():
        dotted = prefix + key
        if looks_like_token(key):
            raise place.error(
                prefix.rstrip(".") or None, "a key looks like a token; " + NOT_A_SECRET_STORE
            )
        if _is_secret_key(key):
            if isinstance(value, str):
                register_secret(value)
            raise place.error(dotted or None, NOT_A_SECRET_STORE)
        _scan_value(place, value, dotted)


def _scan_value(place: Place, value: Any, dotted: str) -> None:
    if isinstance(value, str) and looks_like_token(value):
        raise place.error(dotted or None, "holds what looks like a token; " + NOT_A_SECRET_STORE)
    if isinstance(value, dict):
        scan_secrets(place, value, dotted + ".")
    elif isinstance(value, list):
        for item in value:
            _scan_value(place, item, dotted)


# --- typed values: TOML already gives types, so a wrong type is refused, never converted ---


def text(place: Place, table: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    """The string at `key` (None when absent): not blank, no control characters."""
    if key not in table:
        if required:
            raise place.error(key, "is required")
        return None
    value = table[key]
    if not isinstance(value, str):
        raise place.error(key, "must be a string")
    try:
        return plain_name(value)
    except ValueError as exc:
        raise place.error(key, str(exc)) from None


def text_list(
    place: Place, table: Mapping[str, Any], key: str, *, required: bool = False
) -> list[str] | None:
    """The non-empty list of unique, non-blank strings at `key` (None when absent)."""
    if key not in table:
        if required:
            raise place.error(key, "is required (a list with at least one item)")
        return None
    value = table[key]
    if not isinstance(value, list):
        raise place.error(key, 'must be a list of strings, such as ["a", "b"]')
    if not value:
        raise place.error(key, "must hold at least one item")
    seen: set[str] = set()
    for position, item in enumerate(value, start=1):
        if not isinstance(item, str):
            raise place.error(key, f"item {position} must be a string")
        try:
            plain_name(item)
        except ValueError as exc:
            raise place.error(key, f"item {position} {exc}") from None
        if item != item.strip():
            raise place.error(key, f"item {position} has spaces around it")
        if item in seen:
            raise place.error(key, f"item {position} is listed twice")
        seen.add(item)
    return list(value)


def integer(place: Place, table: Mapping[str, Any], key: str) -> int | None:
    """The integer at `key` (None when absent); a float or a boolean is refused."""
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise place.error(key, "must be an integer, without quotes or a decimal point")
    return value


def number(place: Place, table: Mapping[str, Any], key: str) -> float | None:
    """The number at `key` (None when absent); a string or a boolean is refused."""
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise place.error(key, "must be a number, without quotes")
    return float(value)


def boolean(place: Place, table: Mapping[str, Any], key: str) -> bool | None:
    """The boolean at `key` (None when absent)."""
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, bool):
        raise place.error(key, "must be true or false, without quotes")
    return value
