"""The service token as read from the environment or a file: cleaned, checked, never echoed."""

from __future__ import annotations

from pathlib import Path

from allowlist_sync.errors import ConfigError
from allowlist_sync.logs import register_secret

#: The largest token file read; a Secret mount holds a few dozen bytes.
MAX_TOKEN_FILE_BYTES = 64 * 1024
_BOM = "\ufeff"


def _token_char_problem(char: str) -> str | None:
    if char in "\r\n":
        return "a line break"
    if char.isspace():
        return "whitespace"
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return "a control character"
    if ord(char) > 0x7E:
        return "a non-ASCII character"
    return None


def clean_token(raw: str) -> str:
    """`raw` without a leading BOM and one trailing line end; ValueError for anything else.

    A token is printable ASCII without spaces; the error names the position, never the value.
    """
    text = raw.removeprefix(_BOM)
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not text:
        raise ValueError("is empty")
    for position, char in enumerate(text, start=1):
        problem = _token_char_problem(char)
        if problem is not None:
            raise ValueError(
                f"character {position} is {problem}; a token is printable ASCII without "
                "spaces (only a leading BOM and one final line end are stripped)"
            )
    return text


def read_token_file(path: Path) -> str:
    """The token held in `path`; ConfigError naming the file and the problem, never the value."""
    where = f"DBT_CLOUD_TOKEN_FILE {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"invalid configuration: DBT_CLOUD_TOKEN_FILE: cannot read {path}: {exc.strerror}"
        ) from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(
            f"invalid configuration: {where}: over {MAX_TOKEN_FILE_BYTES} bytes, not a token file"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace").removeprefix(_BOM)
        raise ConfigError(
            f"invalid configuration: {where}: character {len(before) + 1} is not UTF-8; "
            "a token is printable ASCII"
        ) from None
    register_secret(text.strip())  # a stray character must not let the rest be printed
    try:
        return clean_token(text)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {where}: {exc}") from None
