"""Retry delays: `ALLOWLIST_SYNC_FAILED_RUN_RETRY` durations, parsed strictly at start-up."""

from __future__ import annotations

import os

import pytest

from allowlist_sync.config import DEFAULT_FAILED_RUN_RETRY, load_settings
from allowlist_sync.config.durations import parse_duration, parse_durations
from allowlist_sync.errors import ConfigError, ExitCode

VARIABLE = "ALLOWLIST_SYNC_FAILED_RUN_RETRY"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if (
            name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_"))
            and name != "ALLOWLIST_SYNC_CACHE_DIR"
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DBT_CLOUD_ACCOUNT_ID", "1")
    monkeypatch.setenv("DBT_CLOUD_TOKEN", "dbtc_unit_test_token_123")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("2h30m", 9000),
        ("1d", 86400),
        (" 1H ", 3600),
        ("1h0m5s", 3605),
        ("30d", 30 * 86400),
    ],
)
def test_durations_people_write(text: str, seconds: float) -> None:
    """Whole numbers with units, largest first, mean what they say."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "15",
        "1.5h",
        "-5m",
        "+5m",
        "0s",
        "0h0m",
        "inf",
        "nan",
        "1m1h",
        "1h1h",
        "5 m",
        "31d",
        "9999999d",
        "15min",
        "\uff11\uff15m",
        "1e3s",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    """Bare numbers, fractions, signs, zero, inf, wrong order, non-ASCII digits, > 30 days: no."""
    with pytest.raises(ValueError, match=r"not a duration|is zero|longer than 30 days"):
        parse_duration(text)


def test_lists_and_off() -> None:
    """A comma list keeps its order; `off` turns retries off; an empty item is an error."""
    assert parse_durations("30s,15m, 1h") == (30, 900, 3600)
    assert parse_durations("OFF") == ()
    with pytest.raises(ValueError, match="'' is not a duration"):
        parse_durations("15m,,1h")
    with pytest.raises(ValueError, match="at most 20"):
        parse_durations(",".join(["1m"] * 21))


def test_default_is_15m_1h_4h(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset or empty, the delays are 15 minutes, 1 hour, 4 hours."""
    assert load_settings().failed_run_retry == DEFAULT_FAILED_RUN_RETRY == (900, 3600, 14400)
    monkeypatch.setenv(VARIABLE, "")
    assert load_settings().failed_run_retry == (900, 3600, 14400)
    monkeypatch.setenv(VARIABLE, "1s")
    assert load_settings().failed_run_retry == (1,)


@pytest.mark.parametrize("value", ["0s", "-1m", "inf", "15m,abc", "1.5h", "15"])
def test_a_bad_setting_is_one_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """A bad delay stops the start with exit 78 and one line naming the variable."""
    monkeypatch.setenv(VARIABLE, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert VARIABLE in message and "\n" not in message
    assert info.value.exit_code == ExitCode.CONFIG


@pytest.mark.parametrize("delays", [(0.0,), (-1.0,), (float("inf"),), (float("nan"),)])
def test_numbers_from_code_are_checked_too(delays: tuple[float, ...]) -> None:
    """Delays given as numbers (not strings) are held to the same rule."""
    with pytest.raises(ConfigError, match=VARIABLE):
        load_settings(failed_run_retry=delays)
