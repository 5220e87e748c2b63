"""RunSettings: how the process runs (HTTP, logs, schedule, reporting, discovery limits), from the
environment; the part of the configuration a config file of sources and targets leaves to it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from allowlist_sync.config.durations import MAX_SECONDS, parse_durations
from allowlist_sync.config.environment import ENV_PREFIX
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


def secret_text(value: Any, wrong_type: str) -> str | None:
    """A secret setting's raw text (None when unset or empty); ValueError when not text."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ValueError(wrong_type)
    return text


def split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def parse_days(value: Any) -> Any:
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


def plain_name(value: str) -> str:
    """A name or description: not blank, no control characters."""
    if not value.strip():
        raise ValueError("must not be blank")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not hold control characters (line breaks, tabs, ...)")
    return value


class RunSettings(BaseSettings):
    """How the process runs: every setting but the target account and its source.

    With a config file (`--config`) these come from the environment and the file describes the
    sources and targets; without one, `Settings` adds the one target and its Azure source.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # `VAR=` in an .env file means "not set"
        allow_inf_nan=False,  # every duration and fraction is a finite number
    )

    # --- discovery of the newest file (azure/discover.py), and the last good copies ---
    probe_days: int = Field(default=14, ge=1, le=60)
    cache_dir: Path | None = None  # default: $XDG_CACHE_HOME or ~/.cache, else a temp dir
    max_feed_age_days: float = Field(
        default=14, gt=0, validation_alias="ALLOWLIST_SYNC_MAX_FEED_AGE"
    )

    # --- the feed scope guard: no published (or extra) network broader than these. The
    # broadest AzureActiveDirectory ever carried since 2019 is /18 and /48, in all three clouds.
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

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("pushgateway_job")
    @classmethod
    def _job_name(cls, value: str) -> str:
        return plain_name(value)

    @field_validator("max_feed_age_days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        return parse_days(value)

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_path(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("pushgateway_url", "metrics_file", mode="before")
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
        text = secret_text(value, "must be a URL")
        if text is None:
            return None
        check_http_url(text.strip(), show=False)
        return text.strip()

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
