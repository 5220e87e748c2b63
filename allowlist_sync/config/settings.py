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
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from allowlist_sync.azure.query import FeedQuery
from allowlist_sync.cidrs import scope_problem
from allowlist_sync.config.durations import MAX_SECONDS, parse_durations
from allowlist_sync.config.environment import ENV_PREFIX, describe_errors, unknown_variables
from allowlist_sync.config.token import clean_token, read_token_file
from allowlist_sync.dbt.connection import Connection
from allowlist_sync.errors import ConfigError
from allowlist_sync.logs import display_url, register_secret, register_url
from allowlist_sync.net.retries import RetryPolicy
from allowlist_sync.net.urls import check_http_url, check_url_parts

DEFAULT_HOST_URL = "https://cloud.getdbt.com"
DEFAULT_RULE_NAME = "allowlist-sync: Entra ID SCIM (AzureActiveDirectory)"
DEFAULT_RULE_DESCRIPTION = (
    "Managed by allowlist-sync from Azure service tag ranges; manual edits are overwritten."
)
#: Every day at 06:00: a missed or failed day is caught up the next morning at the latest, well
#: before new ranges are used (Microsoft publishes them a week ahead). Weekly: `0 6 * * 2`.
DEFAULT_SCHEDULE = "0 6 * * *"
#: Delays before a failed `serve` run is tried again; the last one repeats.
DEFAULT_FAILED_RUN_RETRY = (15 * 60.0, 3600.0, 4 * 3600.0)
FAMILIES = ("ipv4", "ipv6")

CommaList = Annotated[list[str], NoDecode]


def _secret_text(value: Any, wrong_type: str) -> str | None:
    """A secret setting's raw text (None when unset or empty); ValueError when not text."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ValueError(wrong_type)
    return text


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _parse_days(value: Any) -> Any:
    """`14`, `14d` or `36h` as days; anything else is left for pydantic to refuse."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    for suffix, hours in (("d", 24.0), ("h", 1.0)):
        if text.endswith(suffix):
            try:
                return float(text[:-1]) * hours / 24.0
            except ValueError:
                return value
    return text


class Settings(BaseSettings):
    """Everything a run needs; built from the environment (and CLI overrides)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # `VAR=` in an .env file means "not set"
        allow_inf_nan=False,  # every duration and fraction is a finite number
    )

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
    probe_days: int = Field(default=14, ge=1, le=60)
    cache_dir: Path | None = None  # default: $XDG_CACHE_HOME or ~/.cache, else a temp dir
    max_feed_age_days: float = Field(
        default=14, gt=0, validation_alias="ALLOWLIST_SYNC_MAX_FEED_AGE"
    )

    # --- safety ---
    mode: Literal["sync", "add-only"] = "sync"
    min_prefixes: int = Field(default=10, ge=1)
    max_delete_fraction: float = Field(default=0.3, gt=0, le=1)
    # The feed scope guard: no published (or extra) network broader than these. The broadest
    # AzureActiveDirectory ever carried since 2019 is /18 and /48, in all three clouds.
    min_prefix_length_ipv4: int = Field(default=16, ge=0, le=32)
    min_prefix_length_ipv6: int = Field(default=32, ge=0, le=128)

    # --- HTTP ---
    http_timeout: float = Field(default=30.0, gt=0)
    retry_attempts: int = Field(default=4, ge=1, le=20)
    #: One call's budget: long enough to ride out one dbt rate-limit cool-down (300 s).
    retry_max_seconds: float = Field(default=600.0, gt=0)
    retry_backoff: float = Field(default=1.0, ge=0)
    #: The wait after a 429 without Retry-After: dbt's documented five-minute cool-down.
    rate_limit_cooldown: float = Field(default=300.0, ge=0)
    #: The whole run's deadline, whatever the retries and servers do.
    run_timeout: float = Field(default=900.0, gt=0)
    #: The largest dbt API answer read; a larger one is refused.
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    # --- logs ---
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # --- where the feed comes from when no flag says (serve mode has no flags) ---
    source_file: str | None = None

    # --- serve mode: schedule, shutdown, health endpoint ---
    schedule: str = DEFAULT_SCHEDULE
    timezone: str = "UTC"
    run_on_start: bool = True
    schedule_jitter: int = Field(default=0, ge=0, le=86400)
    misfire_grace_time: int = Field(default=3600, ge=1)
    shutdown_grace: float = Field(default=10.0, ge=0)
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=0, le=65535)
    #: Seconds to wait before each retry of a failed (exit 1) run; `()` when turned off.
    failed_run_retry: Annotated[tuple[float, ...], NoDecode] = DEFAULT_FAILED_RUN_RETRY

    # --- reporting: metrics export and webhook ---
    metrics_file: Path | None = None
    pushgateway_url: str | None = None
    pushgateway_job: str = Field(default="allowlist-sync", min_length=1)
    webhook_url: SecretStr | None = None
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    notify: Literal["changes", "always", "never"] = "changes"

    @field_validator("service_tags", "ip_families", "extra_cidrs", "exclude_cidrs", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)

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
        text = _secret_text(value, "must be a string")
        if text is None:
            return None
        register_secret(text)  # before anything can go wrong and be printed
        register_secret(text.strip())
        return SecretStr(clean_token(text))

    @field_validator("rule_name", "rule_description", "pushgateway_job")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("must not hold control characters (line breaks, tabs, ...)")
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

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

    @field_validator("max_feed_age_days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        return _parse_days(value)

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_path(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("source_url", "azure_details_url", "azure_download_base")
    @classmethod
    def _source_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        check_http_url(value)
        return value

    @field_validator("source_file", "pushgateway_url", "metrics_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("notify", mode="before")
    @classmethod
    def _lower_notify(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value == DEFAULT_SCHEDULE:
            return value  # known good; spares every one-shot run importing apscheduler
        from allowlist_sync.serve.crontab import cron_trigger

        cron_trigger(value, "UTC")
        return value.strip()

    @field_validator("failed_run_retry", mode="before")
    @classmethod
    def _retry_delays(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return DEFAULT_FAILED_RUN_RETRY
        return parse_durations(value)

    @field_validator("failed_run_retry")
    @classmethod
    def _retry_delays_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        # Strings were checked above; this catches numbers given in code.
        if any(not 0 < delay <= MAX_SECONDS for delay in value):
            raise ValueError("each delay must be positive and at most 30 days")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if value == "UTC":
            return value
        from allowlist_sync.serve.crontab import resolve_timezone

        resolve_timezone(value)
        return value

    @field_validator("pushgateway_url")
    @classmethod
    def _pushgateway_url(cls, value: str | None) -> str | None:
        # Plain http stays allowed: an in-cluster Pushgateway rarely has TLS.
        if value is not None:
            check_url_parts(value)
        return value

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _webhook_url(cls, value: Any) -> Any:
        # Checked before it becomes a SecretStr; messages never repeat it (it holds a token).
        text = _secret_text(value, "must be a URL")
        if text is None:
            return None
        check_http_url(text.strip(), show=False)
        return text.strip()

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

    @property
    def reports_anywhere(self) -> bool:
        """Whether a run's outcome goes to a metrics file, a Pushgateway or a webhook."""
        return any(
            value is not None
            for value in (self.metrics_file, self.pushgateway_url, self.webhook_url)
        )

    def retry_policy(self) -> RetryPolicy:
        """How single HTTP calls are retried."""
        return RetryPolicy(
            attempts=self.retry_attempts,
            max_seconds=self.retry_max_seconds,
            backoff=self.retry_backoff,
        )

    def api_retry_policy(self) -> RetryPolicy:
        """How dbt API calls are retried: as any call, plus dbt's 429 cool-down."""
        return replace(self.retry_policy(), rate_limit_cooldown=self.rate_limit_cooldown)

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


def check_source_url(url: str, name: str = "--source-url") -> str:
    """A source URL given outside Settings (the flag), checked like ALLOWLIST_SYNC_SOURCE_URL."""
    try:
        check_http_url(url)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {name}: {exc}") from None
    register_url(url)
    return url
