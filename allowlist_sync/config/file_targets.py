"""The `[[targets]]` tables of a config file: checked by the SAME rules as the environment's
Settings (a target is validated by building its `Settings`), and built into `TargetSpec`s.

The token is never in the file: a target names a file (`token_file`) or a variable (`token_env`)
and the token is read only when the target runs (`build_settings`), so one unreadable token
fails that target alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from allowlist_sync.config.environment import ENV_PREFIX, env_name
from allowlist_sync.config.file_checks import (
    Place,
    boolean,
    check_keys,
    did_you_mean,
    integer,
    looks_like_token,
    number,
    text,
    text_list,
)
from allowlist_sync.config.file_sources import resolve
from allowlist_sync.config.runsettings import RunSettings
from allowlist_sync.config.settings import Settings, target_env_names
from allowlist_sync.config.token import clean_token
from allowlist_sync.errors import ConfigError
from allowlist_sync.logs import register_secret

TARGET_KEYS = (
    "name", "account_id", "host_url", "token_file", "token_env", "rule_name", "sources", "mode",
    "rule_description", "extra_cidrs", "exclude_cidrs", "ip_families", "aggregate",
    "min_prefixes", "max_delete_fraction",
)  # fmt: skip
#: A target name: used in metric labels and file names.
TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A variable "name" longer than this without an underscore is more likely a pasted token.
PASTED_LENGTH = 24
#: Stands for the token while a target is checked; never read.
_UNREAD = Path("/nonexistent/allowlist-sync/token-checked-at-run-time")


@dataclass(frozen=True)
class TargetSpec:
    """One `[[targets]]` table: a dbt account, the rule it owns there, the sources feeding it."""

    name: str
    account_id: int
    host_url: str
    token_file: Path | None
    token_env: str | None
    rule_name: str
    sources: tuple[str, ...]
    mode: str = "sync"
    rule_description: str | None = None
    extra_cidrs: tuple[str, ...] = ()
    exclude_cidrs: tuple[str, ...] = ()
    ip_families: tuple[str, ...] = ("ipv4", "ipv6")
    aggregate: bool = True
    min_prefixes: int = 10
    max_delete_fraction: float = 0.3


class TargetSettings(Settings):
    """A target's Settings: the run's values plus the file's, never the environment's."""

    _token_origin: str = PrivateAttr(default="")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @property
    def token_source(self) -> str:
        """Where the token came from: the target's token_env or token_file."""
        return self._token_origin or super().token_source


def target_label(index: int, name: object) -> str:
    """`[[targets]] #2 "sandbox"`, or `[[targets]] #2` while the name is not a valid one."""
    if isinstance(name, str) and TARGET_NAME.fullmatch(name) and not looks_like_token(name):
        return f'[[targets]] #{index} "{name}"'
    return f"[[targets]] #{index}"


def read_target(
    place: Place, table: Mapping[str, Any], folder: Path, sources: Mapping[str, object],
    run: RunSettings,
) -> TargetSpec:  # fmt: skip
    """One `[[targets]]` table as a TargetSpec; ConfigError for its first problem."""
    check_keys(place, table, TARGET_KEYS, {})
    name = text(place, table, "name", required=True)
    assert name is not None
    if not TARGET_NAME.fullmatch(name):
        raise place.error(
            "name",
            "must be 1-63 letters, digits, _ . or -, starting with a letter or digit "
            "(at most 63 characters: it names metric labels and files)",
        )
    token_file, token_env = _token_keys(place, table, folder)
    names = text_list(place, table, "sources", required=True)
    assert names is not None
    for source in names:
        if source not in sources:
            hint = did_you_mean(source, sources, listing="defined sources")
            raise place.error("sources", f"no source {source!r} is defined{hint}")
    values = _target_values(place, table)
    settings = _validated(place, run, values, token_file=token_file or _UNREAD)
    return TargetSpec(
        name=name,
        account_id=settings.account_id,
        host_url=settings.host_url,
        token_file=token_file,
        token_env=token_env,
        rule_name=settings.rule_name,
        sources=tuple(names),
        mode=settings.mode,
        rule_description=values.get("rule_description"),
        extra_cidrs=tuple(settings.extra_cidrs),
        exclude_cidrs=tuple(settings.exclude_cidrs),
        ip_families=tuple(settings.ip_families),
        aggregate=settings.aggregate,
        min_prefixes=settings.min_prefixes,
        max_delete_fraction=settings.max_delete_fraction,
    )


def _token_keys(
    place: Place, table: Mapping[str, Any], folder: Path
) -> tuple[Path | None, str | None]:
    if "token_file" in table and "token_env" in table:
        raise place.error("token_file", "set token_file or token_env, not both")
    token_file = text(place, table, "token_file")
    if "token_env" not in table:
        if token_file is None:
            raise place.error(
                "token_file or token_env", "one is required: a file or a variable holding the token"
            )
        return resolve(place, "token_file", folder, token_file), None
    variable = table["token_env"]
    if not isinstance(variable, str):
        raise place.error("token_env", "must be a string: the name of an environment variable")
    if not VARIABLE_NAME.fullmatch(variable):
        register_secret(variable)  # perhaps the token itself, pasted
        raise place.error(
            "token_env",
            "must be the NAME of an environment variable (letters, digits and _, not starting "
            "with a digit) that holds the token, never the token itself",
        )
    if len(variable) > PASTED_LENGTH and "_" not in variable:
        register_secret(variable)
        raise place.error(
            "token_env",
            f"a name over {PASTED_LENGTH} characters without _ looks like a token pasted in; "
            "give the NAME of the environment variable that holds it",
        )
    upper = variable.upper()
    if upper.startswith(ENV_PREFIX) or upper in target_env_names():
        raise place.error(
            "token_env",
            f"{variable} is a variable of this program's own setup, refused beside a config "
            "file: name one of your own, such as PROD_US_DBT_TOKEN",
        )
    return None, variable


def _target_values(place: Place, table: Mapping[str, Any]) -> dict[str, Any]:
    """The target's Settings values, type-checked (TOML has types: none is converted)."""
    values: dict[str, Any] = {}
    if "account_id" not in table:
        raise place.error("account_id", "is required: the dbt account id, such as 12345")
    values["account_id"] = table["account_id"]  # int, or digits as in the environment
    for key in ("host_url", "rule_name", "rule_description", "mode"):
        values[key] = text(place, table, key, required=key == "rule_name")
    for key in ("extra_cidrs", "exclude_cidrs", "ip_families"):
        values[key] = _strings(place, table, key)
    values["aggregate"] = boolean(place, table, "aggregate")
    values["min_prefixes"] = integer(place, table, "min_prefixes")
    values["max_delete_fraction"] = number(place, table, "max_delete_fraction")
    return {key: value for key, value in values.items() if value is not None}


def _strings(place: Place, table: Mapping[str, Any], key: str) -> list[str] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise place.error(key, 'must be a list of strings, such as ["a", "b"]')
    return list(value)


def _validated(place: Place, run: RunSettings, values: Mapping[str, Any], **token: Any) -> Settings:
    """The target's Settings, checked by Settings' own rules; errors name the file's keys."""
    run_values = {field: getattr(run, field) for field in RunSettings.model_fields}
    try:
        return TargetSettings(**run_values, **values, **token)
    except ValidationError as exc:
        raise place.error(None, _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """Each problem as `key: message`, with the file's key names (never an input value)."""
    own = set(Settings.model_fields) - set(RunSettings.model_fields)
    env_keys = {env_name(field): field for field in own}
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        key = str(error["loc"][0]) if error["loc"] else ""
        if not key:
            env, _, rest = message.partition(": ")
            key, message = (env_keys[env], rest) if env in env_keys else ("", message)
        problems.append(f"{key}: {message}" if key else message)
    return "; ".join(problems)


def build_settings(place: Place, target: TargetSpec, run: RunSettings) -> Settings:
    """The target's Settings with its token read now; ConfigError naming the target's key."""
    values: dict[str, Any] = {
        "account_id": target.account_id,
        "host_url": target.host_url,
        "rule_name": target.rule_name,
        "mode": target.mode,
        "extra_cidrs": list(target.extra_cidrs),
        "exclude_cidrs": list(target.exclude_cidrs),
        "ip_families": list(target.ip_families),
        "aggregate": target.aggregate,
        "min_prefixes": target.min_prefixes,
        "max_delete_fraction": target.max_delete_fraction,
    }
    if target.rule_description is not None:
        values["rule_description"] = target.rule_description
    if target.token_env is not None:
        token = os.environ.get(target.token_env, "")
        if not token:
            raise place.error(
                "token_env", f"the variable {target.token_env} is not set (or is empty)"
            )
        register_secret(token)
        try:
            token = clean_token(token)
        except ValueError as exc:
            raise place.error("token_env", f"{target.token_env}: {exc}") from None
        settings = _validated(place, run, values, token=SecretStr(token))
        origin = f"token_env {target.token_env} of target {target.name}"
    else:
        assert target.token_file is not None
        settings = _validated(place, run, values, token_file=target.token_file)
        try:
            token = settings.service_token().get_secret_value()
        except ConfigError as exc:
            # read_token_file names the environment variable; here the key is the file's own.
            detail = str(exc).removeprefix("invalid configuration: DBT_CLOUD_TOKEN_FILE")
            raise place.error(None, "token_file" + detail) from None
        register_secret(token)
        origin = f"token_file {target.token_file} of target {target.name}"
    assert isinstance(settings, TargetSettings)
    settings._token_origin = origin
    return settings
