"""Settings from the environment: names, defaults, validation, and the token kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from allowlist_sync.config import DEFAULT_HOST_URL, load_settings
from allowlist_sync.errors import ConfigError, ExitCode

TOKEN = "dbtc_config_test_token_987654"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DBT_CLOUD_ACCOUNT_ID", "12")
    monkeypatch.setenv("DBT_CLOUD_TOKEN", TOKEN)


def test_defaults() -> None:
    """With only the account and token set, the defaults describe the documented job."""
    s = load_settings()
    assert s.account_id == 12
    assert s.host_url == DEFAULT_HOST_URL
    assert s.service_tags == ["AzureActiveDirectory"]
    assert s.ip_families == ["ipv4", "ipv6"]
    assert s.aggregate is True and s.mode == "sync"
    assert s.service_token().get_secret_value() == TOKEN


@pytest.mark.parametrize(
    "url",
    [
        "https://ab123.us1.dbt.com",
        "https://ab123.us1.dbt.com/",
        "https://ab123.us1.dbt.com/api",
        "https://ab123.us1.dbt.com/api/",
    ],
)
def test_host_url_accepts_the_terraform_form(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DBT_CLOUD_HOST_URL works with or without a trailing /api or slash."""
    monkeypatch.setenv("DBT_CLOUD_HOST_URL", url)
    assert load_settings().host_url == "https://ab123.us1.dbt.com"


def test_plain_http_is_refused_except_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is never sent over plain http to a non-loopback host."""
    monkeypatch.setenv("DBT_CLOUD_HOST_URL", "http://cloud.getdbt.com")
    with pytest.raises(ConfigError, match="DBT_CLOUD_HOST_URL: must use https"):
        load_settings()
    monkeypatch.setenv("DBT_CLOUD_HOST_URL", "http://127.0.0.1:8000/api")
    assert load_settings().host_url == "http://127.0.0.1:8000"


def test_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tags and families are comma lists; families are case-insensitive."""
    monkeypatch.setenv(
        "ALLOWLIST_SYNC_SERVICE_TAGS", "AzureActiveDirectory, AzureFrontDoor.Backend"
    )
    monkeypatch.setenv("ALLOWLIST_SYNC_IP_FAMILIES", "IPv4")
    s = load_settings()
    assert s.service_tags == ["AzureActiveDirectory", "AzureFrontDoor.Backend"]
    assert s.ip_families == ["ipv4"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "ALLOWLIST_SYNC_IP_FAMILIES",
            "ipv5",
            "ALLOWLIST_SYNC_IP_FAMILIES: unknown address family",
        ),
        ("ALLOWLIST_SYNC_EXTRA_CIDRS", "10.0.0.0/8,nope", "ALLOWLIST_SYNC_EXTRA_CIDRS: 'nope'"),
        ("ALLOWLIST_SYNC_MAX_DELETE_FRACTION", "2", "ALLOWLIST_SYNC_MAX_DELETE_FRACTION"),
        ("ALLOWLIST_SYNC_MODE", "mirror", "ALLOWLIST_SYNC_MODE"),
        ("DBT_CLOUD_ACCOUNT_ID", "abc", "DBT_CLOUD_ACCOUNT_ID"),
        ("ALLOWLIST_SYNC_AGGREGATE", "perhaps", "ALLOWLIST_SYNC_AGGREGATE"),
    ],
)
def test_bad_values_name_the_variable(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bad value is a one-line ConfigError naming the environment variable (exit 78)."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings()
    assert info.value.exit_code == ExitCode.CONFIG
    assert "\n" not in str(info.value)


def test_missing_account_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing account id names DBT_CLOUD_ACCOUNT_ID."""
    monkeypatch.delenv("DBT_CLOUD_ACCOUNT_ID")
    with pytest.raises(ConfigError, match="DBT_CLOUD_ACCOUNT_ID: is required"):
        load_settings()


def test_token_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DBT_CLOUD_TOKEN_FILE is read (trailing newline stripped), as a Secret mount gives it."""
    monkeypatch.delenv("DBT_CLOUD_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("DBT_CLOUD_TOKEN_FILE", str(token_file))
    assert load_settings().service_token().get_secret_value() == TOKEN


def test_unreadable_or_empty_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing or empty token file is a configuration error naming the file."""
    monkeypatch.delenv("DBT_CLOUD_TOKEN")
    monkeypatch.setenv("DBT_CLOUD_TOKEN_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="DBT_CLOUD_TOKEN_FILE: cannot read"):
        load_settings()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("DBT_CLOUD_TOKEN_FILE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="is empty"):
        load_settings()


def test_no_token_and_two_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly one of DBT_CLOUD_TOKEN and DBT_CLOUD_TOKEN_FILE must be set."""
    monkeypatch.setenv("DBT_CLOUD_TOKEN_FILE", str(tmp_path / "t"))
    with pytest.raises(ConfigError, match="not both"):
        load_settings()
    monkeypatch.delenv("DBT_CLOUD_TOKEN_FILE")
    monkeypatch.delenv("DBT_CLOUD_TOKEN")
    with pytest.raises(ConfigError, match="no service token"):
        load_settings()


def test_token_never_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token appears in no repr, str or validation message."""
    s = load_settings()
    assert TOKEN not in repr(s) and TOKEN not in str(s)
    assert TOKEN not in repr(s.service_token())
    monkeypatch.setenv("ALLOWLIST_SYNC_MODE", TOKEN)  # a secret pasted in the wrong place
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert TOKEN not in str(info.value)


def test_unrelated_variables_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain TOKEN or ACCOUNT_ID variables are not mistaken for the dbt ones."""
    monkeypatch.delenv("DBT_CLOUD_TOKEN")
    monkeypatch.setenv("TOKEN", "x" * 10)
    monkeypatch.setenv("token", "x" * 10)
    with pytest.raises(ConfigError, match="no service token"):
        load_settings()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (" " + TOKEN, "character 1 is whitespace"),
        (TOKEN + " ", "character 30 is whitespace"),
        (TOKEN[:5] + "\x07" + TOKEN[5:], "character 6 is a control character"),
        (TOKEN[:5] + "\u200b" + TOKEN[5:], "character 6 is a non-ASCII character"),
        (TOKEN + "\r", "character 30 is a line break"),
        ("\n", "is empty"),
    ],
)
def test_token_variable_rules(raw: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DBT_CLOUD_TOKEN must be printable ASCII without spaces; the error gives the position only."""
    monkeypatch.setenv("DBT_CLOUD_TOKEN", raw)
    with pytest.raises(ConfigError, match=f"DBT_CLOUD_TOKEN: {message}") as info:
        load_settings()
    assert TOKEN[5:] not in str(info.value)


def test_token_variable_loses_bom_and_one_line_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leading BOM and one final line end are stripped from DBT_CLOUD_TOKEN."""
    monkeypatch.setenv("DBT_CLOUD_TOKEN", "\ufeff" + TOKEN + "\r\n")
    assert load_settings().service_token().get_secret_value() == TOKEN


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`VAR=` leaves every setting at its default, as if the line were absent."""
    for name in ("ALLOWLIST_SYNC_MODE", "ALLOWLIST_SYNC_HTTP_TIMEOUT", "DBT_CLOUD_HOST_URL"):
        monkeypatch.setenv(name, "")
    s = load_settings()
    assert s.mode == "sync" and s.http_timeout == 30.0 and s.host_url == DEFAULT_HOST_URL
