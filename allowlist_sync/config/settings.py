"""Settings: the dbt Terraform provider's `DBT_CLOUD_*` names, and `ALLOWLIST_SYNC_*` for the rest.

The service token is a `SecretStr` from `DBT_CLOUD_TOKEN` or the file named by
`DBT_CLOUD_TOKEN_FILE` (a Kubernetes Secret mount); it is never part of a repr or an error.

Configuration is strict, because a setting that is silently ignored is a safety setting that
does not apply: an unknown `ALLOWLIST_SYNC_*` variable, a token with a stray character, a URL
carrying credentials, a non-finite duration or an extra CIDR outside the feed scope is a
one-line error (exit 78) that names the variable and never echoes a secret. An empty value
counts as unset, as in an `.env` file with the line left blank.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from allowlist_sync.azure.query import FeedQuery
from allowlist_sync.cidrs import scope_problem
from allowlist_sync.config.environment import describe_errors, env_name, unknown_variables
from allowlist_sync.config.runsettings import (
    DEFAULT_HOST_URL,
    DEFAULT_RULE_DESCRIPTION,
    DEFAULT_RULE_NAME,
    FAMILIES,
    CommaList,
    RunSettings,
    plain_name,
    secret_text,
    split_commas,
)
from allowlist_sync.config.token import clean_token, read_token_file
from allowlist_sync.dbt.connection import Connection
from allowlist_sync.errors import ConfigError
from allowlist_sync.logs import display_url, register_secret, register_url
from allowlist_sync.net.urls import check_http_url


class Settings(RunSettings):
    """One target and its Azure source, from the environment: everything a one-target run needs."""

    # --- the dbt platform account (Terraform provider names) ---
    account_id: int = Field(gt=0, lt=2**63, validation_alias="DBT_CLOUD_ACCOUNT_ID")
    token: SecretStr | None = Field(default=None, validation_alias="DBT_CLOUD_TOKEN")
    token_file: Path | None = Field(default=None, validation_alias="DBT_CLOUD_TOKEN_FILE")
    host_url: str = Field(default=DEFAULT_HOST_URL, validation_alias="DBT_CLOUD_HOST_URL")

    # --- the rule this program owns ---
    rule_name: str = Field(default=DEFAULT_RULE_NAME, min_length=1, max_length=255)
    rule_description: str = Field(default=DEFAULT_RULE_DESCRIPTION, min_length=1)

    # --- the desired set ---
    service_tags: CommaList = Field(default_factory=lambda: ["AzureActiveDirectory"], min_length=1)
    ip_families: CommaList = Field(default_factory=lambda: list(FAMILIES), min_length=1)
    aggregate: bool = True
    extra_cidrs: CommaList = Field(default_factory=list)
    exclude_cidrs: CommaList = Field(default_factory=list)
    azure_cloud: Literal["Public", "AzureGovernment", "China"] = "Public"
    source_url: str | None = None

    # --- discovery of the newest file when no source is given (azure/discover.py) ---
    azure_details_url: str | None = None  # default: the cloud's Download Center page; `{id}` ok
    azure_download_base: str | None = None  # default: the cloud's documented direct folder

    # --- safety ---
    mode: Literal["sync", "add-only"] = "sync"
    min_prefixes: int = Field(default=10, ge=1)
    max_delete_fraction: float = Field(default=0.3, gt=0, le=1)

    # --- where the feed comes from when no flag says (serve mode has no flags) ---
    source_file: str | None = None

    @field_validator("service_tags", "ip_families", "extra_cidrs", "exclude_cidrs", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("account_id", mode="before")
    @classmethod
    def _plain_integer(cls, value: Any) -> Any:
        # pydantic would take `4242.0` and `4_242`; an id is digits, nothing else.
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be a plain positive integer such as 12345")
        if isinstance(value, str):
            text = value.strip()
            if not (text.isascii() and text.isdigit()):
                raise ValueError("must be a plain positive integer such as 12345")
            return int(text)
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        text = secret_text(value, "must be a string")
        if text is None:
            return None
        register_secret(text)  # before anything can go wrong and be printed
        register_secret(text.strip())
        return SecretStr(clean_token(text))

    @field_validator("rule_name", "rule_description")
    @classmethod
    def _rule_text(cls, value: str) -> str:
        return plain_name(value)

    @field_validator("ip_families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        families = [v.lower() for v in value]
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown address family {', '.join(unknown)}; use ipv4 and/or ipv6")
        return [f for f in FAMILIES if f in families]

    @field_validator("extra_cidrs", "exclude_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not an IP network") from None
        return value

    @field_validator("host_url")
    @classmethod
    def _host_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        url = url.removesuffix("/api").rstrip("/")
        check_http_url(url)
        parts = urlsplit(url)
        if parts.query or parts.fragment or parts.path not in ("",):
            raise ValueError(
                f"{display_url(value)!r} must be a bare host URL such as {DEFAULT_HOST_URL}"
            )
        return url

    @field_validator("source_url", "azure_details_url", "azure_download_base")
    @classmethod
    def _source_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        check_http_url(value)
        return value

    @field_validator("source_file", mode="before")
    @classmethod
    def _empty_source_file(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_source(self) -> Settings:
        if self.source_file is not None and self.source_url is not None:
            raise ValueError(
                "set ALLOWLIST_SYNC_SOURCE_FILE or ALLOWLIST_SYNC_SOURCE_URL, not both"
            )
        return self

    @model_validator(mode="after")
    def _one_token(self) -> Settings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set DBT_CLOUD_TOKEN or DBT_CLOUD_TOKEN_FILE, not both")
        if self.token is None and self.token_file is None:
            raise ValueError("no service token: set DBT_CLOUD_TOKEN or DBT_CLOUD_TOKEN_FILE")
        return self

    @model_validator(mode="after")
    def _extra_cidrs_in_scope(self) -> Settings:
        # Added networks obey the feed scope rule: configuration can never widen the rule
        # beyond what a feed may. Excluding can never widen, so EXCLUDE_CIDRS stay free.
        for text in self.extra_cidrs:
            network = ipaddress.ip_network(text, strict=False)
            problem = scope_problem(
                network,
                min_prefix_v4=self.min_prefix_length_ipv4,
                min_prefix_v6=self.min_prefix_length_ipv6,
            )
            if problem is not None:
                raise ValueError(f"ALLOWLIST_SYNC_EXTRA_CIDRS: {network} {problem}")
        return self

    def service_token(self) -> SecretStr:
        """The token, read from DBT_CLOUD_TOKEN_FILE when that is how it was given."""
        if self.token is not None:
            return self.token
        assert self.token_file is not None
        return SecretStr(read_token_file(self.token_file))

    def feed_query(self) -> FeedQuery:
        """What the Azure source fetches, as plain values for the azure package."""
        return FeedQuery(
            tags=tuple(self.service_tags),
            cloud=self.azure_cloud,
            source_url=self.source_url,
            details_url=self.azure_details_url,
            download_base=self.azure_download_base,
            probe_days=self.probe_days,
            cache_dir=self.cache_dir,
            max_age_days=self.max_feed_age_days,
            timeout=self.http_timeout,
            retry=self.retry_policy(),
        )

    def dbt_connection(self) -> Connection:
        """How to reach the configured account, as plain values for the dbt client."""
        return Connection(
            host_url=self.host_url,
            account_id=self.account_id,
            token=self.service_token(),
            token_source=self.token_source,
            timeout=self.http_timeout,
            retry=self.api_retry_policy(),
            max_body_bytes=self.api_max_body_bytes,
        )

    @property
    def token_source(self) -> str:
        """Where the token came from, for messages: the variable, and the file's path."""
        if self.token_file is not None:
            return f"DBT_CLOUD_TOKEN_FILE ({self.token_file})"
        return "DBT_CLOUD_TOKEN"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment plus overrides; any problem is one ConfigError line."""
    unknown = unknown_variables(os.environ)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, unknown)) from None
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(unknown))
    # Read the token now (an unreadable file fails here, not halfway through a run) and make
    # every secret known to the log redaction before anything can log or raise.
    register_secret(settings.service_token().get_secret_value())
    if settings.webhook_url is not None:
        register_secret(settings.webhook_url.get_secret_value())
        register_url(settings.webhook_url.get_secret_value())
    for url in (
        settings.source_url,
        settings.azure_details_url,
        settings.azure_download_base,
        settings.pushgateway_url,
    ):
        register_url(url)
    return settings


def target_env_names() -> tuple[str, ...]:
    """The variables that describe the one target and its source (not the process): a config
    file describes those itself, so they must not be set beside it."""
    own = set(Settings.model_fields) - set(RunSettings.model_fields)
    return tuple(sorted(env_name(field) for field in own))


def load_run_settings(*, config_file: str, **overrides: Any) -> RunSettings:
    """The process settings of a run whose targets `config_file` describes, from the environment.

    The file and the environment never mix silently: a target variable (DBT_CLOUD_ACCOUNT_ID,
    ALLOWLIST_SYNC_RULE_NAME, ...) set beside the file is a ConfigError naming it.
    """
    unknown = unknown_variables(os.environ)
    upper = {name.upper() for name, value in os.environ.items() if value != ""}
    mixed = [name for name in target_env_names() if name in upper]
    if mixed:
        unknown.append(
            f"{', '.join(mixed)} set beside the config file {config_file}, which describes the "
            "targets and their sources: move them into the file, or unset them"
        )
    try:
        settings = RunSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, unknown)) from None
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(unknown))
    if settings.webhook_url is not None:
        register_secret(settings.webhook_url.get_secret_value())
        register_url(settings.webhook_url.get_secret_value())
    register_url(settings.pushgateway_url)
    return settings


def check_source_url(url: str, name: str = "--source-url") -> str:
    """A source URL given outside Settings (the flag), checked like ALLOWLIST_SYNC_SOURCE_URL."""
    try:
        check_http_url(url)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {name}: {exc}") from None
    register_url(url)
    return url
