"""Hostile configuration: typos, odd numbers and widening CIDRs are refused before any request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allowlist_sync.config import load_settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import ConfigError
from tests.emulated import TOKEN
from tests.feeds import PUBLIC_FEED
from tests.inprocess import Result, run_main

SYNC = ("sync", "--output", "json", "--source-file", str(PUBLIC_FEED))


def refused(result: Result, store: EmulatorStore, *needles: str) -> str:
    """Exit 78, one JSON object naming the problem, no request to the target, no token."""
    assert result.code == 78, result.stdout + result.stderr
    assert store.requests == [] and store.snapshot() == []
    assert TOKEN not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    message: str = json.loads(lines[0])["error"]["message"]
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


@pytest.mark.parametrize(
    ("name", "value", "suggestion"),
    [
        ("ALLOWLIST_SYNC_EXCLUDE_CIDR", "20.0.0.0/8", "ALLOWLIST_SYNC_EXCLUDE_CIDRS"),
        ("ALLOWLIST_SYNC_MIN_PREFIX", "5000", "ALLOWLIST_SYNC_MIN_PREFIXES"),
        ("ALLOWLIST_SYNC_RULENAME", "x", "ALLOWLIST_SYNC_RULE_NAME"),
        ("ALLOWLIST_SYNC_TOKEN", TOKEN, "DBT_CLOUD_TOKEN"),
        ("allowlist_sync_dry_run", "true", ""),
    ],
)
def test_unknown_variable_is_refused_with_a_suggestion(
    name: str,
    value: str,
    suggestion: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A misspelt ALLOWLIST_SYNC_* variable is exit 78 naming it and the closest valid name."""
    result = run_main(monkeypatch, capsys, emulator, *SYNC, **{name: value})
    message = refused(result, store, f"{name}: no such setting")
    if suggestion:
        assert f"did you mean {suggestion}?" in message


def test_valid_names_come_from_the_settings_and_the_few_read_elsewhere() -> None:
    """Every Settings field's variable is valid, and so are the ones read outside Settings."""
    from allowlist_sync.config import setting_env_names, unknown_variables

    names = setting_env_names()
    for name in (
        "ALLOWLIST_SYNC_EXCLUDE_CIDRS",
        "ALLOWLIST_SYNC_MAX_FEED_AGE",
        "ALLOWLIST_SYNC_LOG_FORMAT",
        "ALLOWLIST_SYNC_LOG_LEVEL",
        "ALLOWLIST_SYNC_EMULATOR_TOKEN",
        "ALLOWLIST_SYNC_CONFIG",
        "DBT_CLOUD_TOKEN_FILE",
    ):
        assert name in names
    assert unknown_variables({"ALLOWLIST_SYNC_EMULATOR_TOKEN": "t", "PATH": "/bin"}) == []
    assert unknown_variables({"ALLOWLIST_SYNC_NOPE": ""}) == []  # empty counts as unset


def test_empty_token_beside_a_token_file_counts_as_unset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """`DBT_CLOUD_TOKEN=` (as in .env.example) with DBT_CLOUD_TOKEN_FILE uses the file."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    result = run_main(
        monkeypatch,
        capsys,
        emulator,
        "sync",
        "--dry-run",
        "--output",
        "json",
        "--source-file",
        str(PUBLIC_FEED),
        DBT_CLOUD_TOKEN="",
        DBT_CLOUD_TOKEN_FILE=str(token),
        ALLOWLIST_SYNC_MODE="",
        ALLOWLIST_SYNC_HTTP_TIMEOUT="",
    )
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "changes_pending"
    assert store.write_count() == 0 and TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("DBT_CLOUD_ACCOUNT_ID", "4242.0", "DBT_CLOUD_ACCOUNT_ID: must be a plain positive"),
        ("DBT_CLOUD_ACCOUNT_ID", "4_242", "DBT_CLOUD_ACCOUNT_ID: must be a plain positive"),
        ("DBT_CLOUD_ACCOUNT_ID", "-4242", "DBT_CLOUD_ACCOUNT_ID: must be a plain positive"),
        ("DBT_CLOUD_ACCOUNT_ID", "0", "DBT_CLOUD_ACCOUNT_ID"),
        ("DBT_CLOUD_ACCOUNT_ID", "9" * 40, "DBT_CLOUD_ACCOUNT_ID"),
        ("DBT_CLOUD_ACCOUNT_ID", "\u0664\u0662", "DBT_CLOUD_ACCOUNT_ID"),
        ("ALLOWLIST_SYNC_RULE_NAME", " ", "ALLOWLIST_SYNC_RULE_NAME: must not be blank"),
        ("ALLOWLIST_SYNC_RULE_NAME", "a\nb", "ALLOWLIST_SYNC_RULE_NAME: must not hold control"),
        ("ALLOWLIST_SYNC_RULE_DESCRIPTION", "\t", "ALLOWLIST_SYNC_RULE_DESCRIPTION"),
        ("ALLOWLIST_SYNC_PUSHGATEWAY_JOB", "  ", "ALLOWLIST_SYNC_PUSHGATEWAY_JOB"),
        ("ALLOWLIST_SYNC_HTTP_TIMEOUT", "inf", "ALLOWLIST_SYNC_HTTP_TIMEOUT"),
        ("ALLOWLIST_SYNC_HTTP_TIMEOUT", "nan", "ALLOWLIST_SYNC_HTTP_TIMEOUT"),
        ("ALLOWLIST_SYNC_HTTP_TIMEOUT", "-1", "ALLOWLIST_SYNC_HTTP_TIMEOUT"),
        ("ALLOWLIST_SYNC_RETRY_MAX_SECONDS", "Infinity", "ALLOWLIST_SYNC_RETRY_MAX_SECONDS"),
        ("ALLOWLIST_SYNC_RETRY_BACKOFF", "inf", "ALLOWLIST_SYNC_RETRY_BACKOFF"),
        ("ALLOWLIST_SYNC_RUN_TIMEOUT", "nan", "ALLOWLIST_SYNC_RUN_TIMEOUT"),
        ("ALLOWLIST_SYNC_WEBHOOK_TIMEOUT", "-inf", "ALLOWLIST_SYNC_WEBHOOK_TIMEOUT"),
        ("ALLOWLIST_SYNC_SHUTDOWN_GRACE", "inf", "ALLOWLIST_SYNC_SHUTDOWN_GRACE"),
        ("ALLOWLIST_SYNC_MAX_FEED_AGE", "infd", "ALLOWLIST_SYNC_MAX_FEED_AGE"),
        ("ALLOWLIST_SYNC_MAX_FEED_AGE", "nanh", "ALLOWLIST_SYNC_MAX_FEED_AGE"),
        ("ALLOWLIST_SYNC_MAX_DELETE_FRACTION", "nan", "ALLOWLIST_SYNC_MAX_DELETE_FRACTION"),
        ("DBT_CLOUD_HOST_URL", "https://cloud.getdbt.com:99999", "DBT_CLOUD_HOST_URL"),
        ("DBT_CLOUD_HOST_URL", "https://cloud.getdbt.com:0", "DBT_CLOUD_HOST_URL"),
        ("DBT_CLOUD_HOST_URL", "https://cloud.getdbt.com:-1", "DBT_CLOUD_HOST_URL"),
        ("ALLOWLIST_SYNC_SOURCE_URL", "https://example.com:70000/f.json", "SOURCE_URL"),
        ("ALLOWLIST_SYNC_PUSHGATEWAY_URL", "http://push:123456", "PUSHGATEWAY_URL"),
        ("ALLOWLIST_SYNC_WEBHOOK_URL", "https://hooks.example.com:99999/x", "WEBHOOK_URL"),
        ("ALLOWLIST_SYNC_HEALTH_PORT", "65536", "ALLOWLIST_SYNC_HEALTH_PORT"),
        ("ALLOWLIST_SYNC_SOURCE_URL", "https://exa\tmple.com/f.json", "whitespace or control"),
        ("ALLOWLIST_SYNC_PUSHGATEWAY_URL", "http://push/\nx", "whitespace or control"),
        ("DBT_CLOUD_HOST_URL", "https://cloud .getdbt.com", "DBT_CLOUD_HOST_URL: must not"),
    ],
)
def test_bad_value_is_refused_in_one_line(
    name: str,
    value: str,
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A bad value is exit 78 with one line naming the variable; nothing is sent or written."""
    result = run_main(monkeypatch, capsys, emulator, *SYNC, **{name: value})
    refused(result, store, needle)


@pytest.mark.parametrize(
    ("cidrs", "needle"),
    [
        ("10.0.0.0/8", "10.0.0.0/8 is not globally routable unicast"),
        ("20.0.0.0/8", "20.0.0.0/8 is broader than /16"),
        ("0.0.0.0/0", "0.0.0.0/0 is not globally routable unicast"),
        ("52.1.2.3/32,::/0", "ALLOWLIST_SYNC_EXTRA_CIDRS: ::/0 is "),
        ("2603:1000::/24", "2603:1000::/24 is broader than /32"),
        ("::ffff:20.1.2.3/128", "embeds IPv4"),
        ("127.0.0.1", "127.0.0.1/32 is not globally routable unicast"),
    ],
)
def test_extra_cidrs_obey_the_feed_scope_rule(
    cidrs: str,
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """An extra CIDR that is not global unicast or is too broad is exit 78 naming it."""
    result = run_main(monkeypatch, capsys, emulator, *SYNC, ALLOWLIST_SYNC_EXTRA_CIDRS=cidrs)
    refused(result, store, "ALLOWLIST_SYNC_EXTRA_CIDRS", needle)


def test_extra_cidrs_scope_follows_the_configured_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prefix-length limit for extra CIDRs is the configured one; excluded CIDRs are free."""
    monkeypatch.setenv("DBT_CLOUD_ACCOUNT_ID", "1")
    monkeypatch.setenv("DBT_CLOUD_TOKEN", TOKEN)
    monkeypatch.setenv("ALLOWLIST_SYNC_EXTRA_CIDRS", "20.0.0.0/12")
    monkeypatch.setenv("ALLOWLIST_SYNC_EXCLUDE_CIDRS", "10.0.0.0/8,0.0.0.0/0")
    with pytest.raises(ConfigError, match=r"20\.0\.0\.0/12 is broader than /16"):
        load_settings()
    monkeypatch.setenv("ALLOWLIST_SYNC_MIN_PREFIX_LENGTH_IPV4", "12")
    settings = load_settings()
    assert settings.extra_cidrs == ["20.0.0.0/12"]
    assert settings.exclude_cidrs == ["10.0.0.0/8", "0.0.0.0/0"]


@pytest.mark.parametrize("value", ["4242", " 4242 ", "4242\n"])
def test_plain_account_id_is_accepted(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain decimal account id, with surrounding whitespace, is read as that integer."""
    monkeypatch.setenv("DBT_CLOUD_ACCOUNT_ID", value)
    monkeypatch.setenv("DBT_CLOUD_TOKEN", TOKEN)
    assert load_settings().account_id == 4242


def test_token_file_that_is_huge_or_a_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token file pointing at a directory or at a big file is one line, not a hang or a crash."""
    monkeypatch.setenv("DBT_CLOUD_ACCOUNT_ID", "1")
    monkeypatch.delenv("DBT_CLOUD_TOKEN", raising=False)
    monkeypatch.setenv("DBT_CLOUD_TOKEN_FILE", str(tmp_path))
    with pytest.raises(ConfigError, match="DBT_CLOUD_TOKEN_FILE: cannot read"):
        load_settings()
    big = tmp_path / "big"
    big.write_bytes(b"a" * 100_000)
    monkeypatch.setenv("DBT_CLOUD_TOKEN_FILE", str(big))
    with pytest.raises(ConfigError, match="not a token file"):
        load_settings()
