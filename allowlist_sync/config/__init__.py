"""Configuration: the Settings, which variables exist, and the service token.

runsettings.py   RunSettings: how the process runs (HTTP, logs, schedule, reporting), from the env
settings.py      Settings: RunSettings plus one target and its Azure source; load_settings
environment.py   the variables that exist (from the Settings fields), typos with suggestions
token.py         the service token: cleaned (BOM, one line end), checked, never echoed
"""

from allowlist_sync.config.environment import (
    ENV_PREFIX,
    OTHER_ENV_NAMES,
    env_name,
    setting_env_names,
    unknown_variables,
)
from allowlist_sync.config.runsettings import (
    DEFAULT_FAILED_RUN_RETRY,
    DEFAULT_HOST_URL,
    DEFAULT_RULE_DESCRIPTION,
    DEFAULT_RULE_NAME,
    DEFAULT_SCHEDULE,
    FAMILIES,
    RunSettings,
)
from allowlist_sync.config.settings import (
    Settings,
    check_source_url,
    load_run_settings,
    load_settings,
    target_env_names,
)
from allowlist_sync.config.token import MAX_TOKEN_FILE_BYTES, clean_token, read_token_file
from allowlist_sync.net.urls import check_http_url, check_url_parts, is_loopback_host

__all__ = [
    "DEFAULT_FAILED_RUN_RETRY",
    "DEFAULT_HOST_URL",
    "DEFAULT_RULE_DESCRIPTION",
    "DEFAULT_RULE_NAME",
    "DEFAULT_SCHEDULE",
    "ENV_PREFIX",
    "FAMILIES",
    "MAX_TOKEN_FILE_BYTES",
    "OTHER_ENV_NAMES",
    "RunSettings",
    "Settings",
    "check_http_url",
    "check_source_url",
    "check_url_parts",
    "clean_token",
    "env_name",
    "is_loopback_host",
    "load_run_settings",
    "load_settings",
    "read_token_file",
    "setting_env_names",
    "target_env_names",
    "unknown_variables",
]
