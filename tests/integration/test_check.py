"""`allowlist-sync check`: effective settings, secrets redacted, reads only, exit 0/78/77/1.

The preflight's checks one by one, against the emulator in each state: test_preflight.py.
"""

from __future__ import annotations

import json

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from tests.emulated import RULE_NAME, TOKEN
from tests.feeds import PUBLIC_FEED
from tests.inprocess import run_main

HOOK = "https://hooks.slack.example/services/T0/B0/hooksecret"
#: A feed `check` can read offline (a file a person chose only warns about its age).
FEED = {"ALLOWLIST_SYNC_SOURCE_FILE": str(PUBLIC_FEED)}


def test_check_passes_and_redacts_secrets(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A valid configuration and a working token exit 0; token and webhook are redacted."""
    store.seed_rule(RULE_NAME, cidrs=["10.0.0.0/24", "10.0.1.0/24"])
    result = run_main(
        monkeypatch,
        capsys,
        emulator,
        "check",
        "--output",
        "json",
        ALLOWLIST_SYNC_WEBHOOK_URL=HOOK,
        **FEED,
    )
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["settings"]["DBT_CLOUD_TOKEN"] == "[REDACTED]"
    assert report["settings"]["ALLOWLIST_SYNC_WEBHOOK_URL"] == "[REDACTED]"
    assert report["settings"]["ALLOWLIST_SYNC_SCHEDULE"] == "0 6 * * *"
    assert report["schedule"]["next_run"].endswith("06:00:00+00:00")
    assert report["api"]["owned_rule"]["cidrs"] == 2
    assert TOKEN not in result.stdout + result.stderr
    assert "hooksecret" not in result.stdout + result.stderr
    assert {r.method for r in store.requests} == {"GET"} and store.write_count() == 0


def test_check_text_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], emulator: EmulatorServer
) -> None:
    """The text report lists settings by variable name and says the owned rule is not there yet."""
    result = run_main(monkeypatch, capsys, emulator, "check", **FEED)
    assert result.code == 0
    assert "DBT_CLOUD_TOKEN" in result.stdout and TOKEN not in result.stdout
    assert "dbt API: ok" in result.stdout and "does not exist yet" in result.stdout


def test_invalid_configuration_exits_78(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], emulator: EmulatorServer
) -> None:
    """A bad schedule is reported as a configuration error before any API call."""
    result = run_main(
        monkeypatch, capsys, emulator, "check", "--output", "json", ALLOWLIST_SYNC_SCHEDULE="0 6 *"
    )
    assert result.code == 78
    report = json.loads(result.stdout)
    assert (
        report["ok"] is False and "ALLOWLIST_SYNC_SCHEDULE" in report["config"]["error"]["message"]
    )


def test_rejected_token_exits_77(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], emulator: EmulatorServer
) -> None:
    """A token the API refuses fails the check with exit 77 (a person must act) and the kind."""
    result = run_main(
        monkeypatch, capsys, emulator, "check", "--output", "json", DBT_CLOUD_TOKEN="dbtc_wrong_one"
    )
    assert result.code == 77
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["api"]["error"]["kind"] == "auth"
