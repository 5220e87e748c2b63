"""Hostile output paths: `--output json` is one object on every exit, text says what is true."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from tests.cli import cli_env, run_cli
from tests.emulated import RULE_NAME, TOKEN
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc
from tests.inprocess import Result, run_main

PUBLISHED = aad_prefixes(feed_doc())
FEED = ("--source-file", str(PUBLIC_FEED))


def one_json(result: Result) -> dict[str, Any]:
    """stdout is exactly one JSON object on one line; no secret and no traceback anywhere."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    assert TOKEN not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout
    return value


def broken(exc: BaseException) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return fail


@pytest.mark.parametrize(
    ("case", "code", "status"),
    [
        ("pending", 0, "changes_pending"),
        ("detailed", 2, "changes_pending"),
        ("in_sync", 0, "in_sync"),
        ("refused", 3, "refused"),
        ("feed", 1, "failed"),
        ("auth", None, "failed"),
        ("config", 78, "failed"),
        ("unknown_variable", 78, "failed"),
        ("internal", 1, "failed"),
        ("internal_in_settings", 1, "failed"),
        ("interrupted", 130, "failed"),
    ],
)
def test_sync_json_is_one_object_on_every_exit(
    case: str,
    code: int | None,
    status: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """Every way `sync --output json` can end prints exactly one JSON object with the status."""
    args = ["sync", "--dry-run", "--output", "json", *FEED]
    env: dict[str, str] = {}
    if case == "detailed":
        args.append("--detailed-exitcode")
    elif case == "in_sync":
        store.seed_rule(RULE_NAME, cidrs=PUBLISHED)
    elif case == "refused":
        store.seed_rule(RULE_NAME, cidrs=[f"52.{i}.0.0/24" for i in range(30)])
    elif case == "feed":
        args[-1] = str(tmp_path / "absent.json")
    elif case == "auth":
        env["DBT_CLOUD_TOKEN"] = "dbtc_wrong_token_value"
    elif case == "config":
        env["ALLOWLIST_SYNC_MODE"] = "mirror"
    elif case == "unknown_variable":
        env["ALLOWLIST_SYNC_EXCLUDE_CIDR"] = "20.0.0.0/8"
    elif case == "internal":
        monkeypatch.setattr("allowlist_sync.sync.run_once", broken(RuntimeError(f"boom {TOKEN}")))
    elif case == "internal_in_settings":
        monkeypatch.setattr("allowlist_sync.config.load_settings", broken(RuntimeError("boom")))
    elif case == "interrupted":
        monkeypatch.setattr("allowlist_sync.sync.run_once", broken(KeyboardInterrupt()))
    seeded = store.snapshot()
    result = run_main(monkeypatch, capsys, emulator, *args, **env)
    if code is not None:
        assert result.code == code, result.stderr
    else:
        assert result.code not in (0, 2, 3, 78)
    out = one_json(result)
    assert out["status"] == status and out["dry_run"] is True
    assert (out["error"] is None) == (code in (0, 2))
    if case.startswith("internal"):
        assert out["error"]["kind"] == "internal"
        assert "boom" in out["error"]["message"]
    assert store.write_count() == 0 and store.snapshot() == seeded


@pytest.mark.parametrize(
    ("case", "code"),
    [("ok", 0), ("auth", 77), ("config", 78), ("internal", 1), ("internal_in_settings", 1)],
)
def test_check_json_is_one_object_on_every_exit(
    case: str,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """Every way `check --output json` can end prints exactly one JSON object with `ok`."""
    env: dict[str, str] = {"ALLOWLIST_SYNC_SOURCE_FILE": str(PUBLIC_FEED)}  # the feed check
    if case == "auth":
        env["DBT_CLOUD_TOKEN"] = "dbtc_wrong_token_value"
    elif case == "config":
        env["DBT_CLOUD_ACCOUNT_ID"] = "4242.0"
    elif case == "internal":
        monkeypatch.setattr(
            "allowlist_sync.commands.check.run_check", broken(ValueError(f"x {TOKEN}"))
        )
    elif case == "internal_in_settings":
        monkeypatch.setattr("allowlist_sync.config.load_settings", broken(RuntimeError("boom")))
    result = run_main(monkeypatch, capsys, emulator, "check", "--output", "json", **env)
    assert result.code == code, result.stderr
    out = one_json(result)
    assert out["ok"] is (code == 0)
    if case == "config":
        assert out["config"]["error"]["kind"] == "config"
    if case.startswith("internal"):
        assert out["error"]["kind"] == "internal"
    assert store.write_count() == 0


def test_add_only_no_changes_says_what_the_rule_holds(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """In add-only mode an unchanged rule holding an extra entry is not called 'exactly' desired."""
    store.seed_rule(RULE_NAME, cidrs=[*PUBLISHED, "52.99.0.0/24"])
    result = run_main(
        monkeypatch, capsys, emulator, "sync", "--dry-run", *FEED, ALLOWLIST_SYNC_MODE="add-only"
    )
    assert result.code == 0, result.stderr
    desired = len(PUBLISHED)
    assert f"Current: {desired + 1} CIDRs" in result.stdout
    assert "exactly" not in result.stdout
    assert (
        f"No changes. The rule holds the desired {desired} CIDRs plus 1 no longer desired, "
        "kept by add-only mode." in result.stdout
    )
    assert store.write_count() == 0


def test_add_only_with_nothing_extra_still_says_exactly(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """An add-only rule holding just the desired set is described as exactly that."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED)
    result = run_main(
        monkeypatch, capsys, emulator, "sync", "--dry-run", *FEED, ALLOWLIST_SYNC_MODE="add-only"
    )
    assert result.code == 0
    assert f"The rule holds exactly the desired {len(PUBLISHED)} CIDRs." in result.stdout
    assert store.write_count() == 0 and TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("port", ["99999", "-1", "eighty"])
def test_emulator_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`emulator --port 99999` is exit 64 from argparse, with no traceback."""
    from allowlist_sync.cli import main

    with pytest.raises(SystemExit) as info:
        main(["emulator", "--port", port])
    assert info.value.code == 64
    err = capsys.readouterr().err
    assert "--port" in err and "Traceback" not in err


def test_emulator_port_in_use_is_one_line_and_exit_1() -> None:
    """A port already in use ends `emulator` with exit 1 and one clean line on stderr."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("emulator", "--port", str(port), env=cli_env(), timeout=20)
    assert result.code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "Traceback" not in result.stderr
