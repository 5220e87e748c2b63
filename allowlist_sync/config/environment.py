"""Which environment variables exist (from the Settings fields), and a suggestion for a typo."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from pydantic import ValidationError

ENV_PREFIX = "ALLOWLIST_SYNC_"
#: `ALLOWLIST_SYNC_*` variables that are valid although no Settings field reads them: the
#: emulator's token and port, the container test switches, and the config file setting to come.
OTHER_ENV_NAMES = frozenset(
    {
        "ALLOWLIST_SYNC_EMULATOR_TOKEN",
        "ALLOWLIST_SYNC_EMULATOR_PORT",
        "ALLOWLIST_SYNC_CONFIG",
        "ALLOWLIST_SYNC_CONTAINER_TESTS",
        "ALLOWLIST_SYNC_IMAGE",
    }
)


def env_name(field: str) -> str:
    """The environment variable that sets a settings field (a variable name is returned as is)."""
    from allowlist_sync.config.settings import Settings  # the fields define the names

    info = Settings.model_fields.get(field)
    if info is None:
        return field
    alias = info.validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def setting_env_names() -> frozenset[str]:
    """Every environment variable this program reads, derived from the Settings fields."""
    from allowlist_sync.config.settings import Settings

    return frozenset(env_name(field) for field in Settings.model_fields) | OTHER_ENV_NAMES


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One problem per set `ALLOWLIST_SYNC_*` variable that no setting reads, with a suggestion."""
    valid = setting_env_names()
    # Suggestions compare the part after the prefix, so `ALLOWLIST_SYNC_TOKEN` can point at
    # DBT_CLOUD_TOKEN as well as `ALLOWLIST_SYNC_RULENAME` at ALLOWLIST_SYNC_RULE_NAME.
    stems = {name.removeprefix(ENV_PREFIX).removeprefix("DBT_CLOUD_"): name for name in valid}
    problems = []
    for name in sorted(environ):
        upper = name.upper()  # pydantic-settings reads variables case-insensitively
        if not upper.startswith(ENV_PREFIX) or upper in valid or environ[name] == "":
            continue
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), list(stems), n=1)
        hint = f"; did you mean {stems[close[0]]}?" if close else ""
        problems.append(f"{name}: no such setting{hint}")
    return problems


def describe_errors(exc: ValidationError, unknown: list[str]) -> str:
    """One line naming each bad variable; never echoes an input value (it may be the token)."""
    problems = list(unknown)
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        if loc:
            problems.append(f"{env_name(loc[0])}: {message}")
        else:
            problems.append(message)
    return "invalid configuration: " + "; ".join(problems)
