"""`allowlist-sync emulator` as a real process: seeded by its flags, prints what to paste, stops."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from allowlist_sync.emulator import DEFAULT_TOKEN
from allowlist_sync.errors import ExitCode
from tests.cli import cli_env
from tests.feeds import PUBLIC_FEED

SNAPSHOT_NAME = "ServiceTags_Public_20251028.trimmed.json"


@dataclass
class Running:
    """A started emulator process and what it printed before serving."""

    proc: subprocess.Popen[str]
    stdout: list[str]  # the banner: exports, the snapshot comment, the dry-run line
    stderr: list[str]  # listening, what the account holds, any warning, the paste hint
    exports: dict[str, str]

    @property
    def url(self) -> str:
        """The emulator's base URL, from the printed export."""
        return self.exports["DBT_CLOUD_HOST_URL"]

    def state(self) -> dict[str, Any]:
        """GET /_emulator/state."""
        return dict(httpx.get(f"{self.url}/_emulator/state", timeout=5).json())


def _read_until(stream: Any, last: str) -> list[str]:
    lines: list[str] = []
    while True:
        line = stream.readline()
        assert line, f"the emulator ended before printing {last!r}: {lines}"
        lines.append(line.rstrip("\n"))
        if line.startswith(last):
            return lines


@contextmanager
def emulator_process(*flags: str, **env: str) -> Iterator[Running]:
    """Run `allowlist-sync emulator --port 0 FLAGS`; SIGTERM it after, asserting exit 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "allowlist_sync", "emulator", "--port", "0", *flags],
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        stdout = _read_until(proc.stdout, "allowlist-sync sync --dry-run")
        stderr = _read_until(proc.stderr, "emulator: paste the lines")
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in stdout
            if line.startswith("export ")
        )
        yield Running(proc, stdout, stderr, exports)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_emulator_command_prints_exports_serves_and_stops() -> None:
    """The printed exports are enough for a check; SIGTERM ends the process with exit 0."""
    with emulator_process("--page-size", "2") as emulator:
        assert set(emulator.exports) == {
            "DBT_CLOUD_HOST_URL",
            "DBT_CLOUD_ACCOUNT_ID",
            "DBT_CLOUD_TOKEN",
        }
        result = subprocess.run(
            [sys.executable, "-m", "allowlist_sync", "check", "--output", "json"],
            # The bundled snapshot: `check` also proves the feed can be read (offline here).
            env={**cli_env(), **emulator.exports, "ALLOWLIST_SYNC_SOURCE_FILE": str(PUBLIC_FEED)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert emulator.state()["rules"] == []


def test_the_banner_is_paste_ready_shell_naming_the_bundled_snapshot() -> None:
    """Three exports, then the installed snapshot's path and a dry-run line reading it."""
    with emulator_process() as emulator:
        assert [line.split("=", 1)[0] for line in emulator.stdout[:3]] == [
            "export DBT_CLOUD_HOST_URL",
            "export DBT_CLOUD_ACCOUNT_ID",
            "export DBT_CLOUD_TOKEN",
        ]
        assert emulator.exports["DBT_CLOUD_TOKEN"] == DEFAULT_TOKEN
        comment, command = emulator.stdout[3:]
        path = command.removeprefix("allowlist-sync sync --dry-run --source-file ")
        assert Path(path).name == SNAPSHOT_NAME
        assert Path(path).is_file()
        assert comment.startswith("#") and comment.endswith(path)
        assert emulator.stderr[1] == "emulator: account 1: no rules; enforcement off;" + (
            " caller: the socket peer"
        )


def test_the_seeding_flags_set_up_the_account() -> None:
    """--rule, --deny-rule, --enforce, --caller-ip, --fault and --strict shape the account."""
    with emulator_process(
        "--rule",
        "Office VPN=198.51.100.0/24,203.0.113.10",
        "--rule",
        "Partner=192.0.2.0/28",
        "--deny-rule",
        "Blocked=192.0.2.128/25",
        "--enforce",
        "--caller-ip",
        "198.51.100.7",
        "--fault",
        "status=429,method=GET,times=2,retry_after=1",
        "--strict",
        "--account-id",
        "77",
    ) as emulator:
        state = emulator.state()
        rules = [(r["name"], r["type"], [c["cidr"] for c in r["cidrs"]]) for r in state["rules"]]
        assert rules == [
            ("Office VPN", 1, ["198.51.100.0/24", "203.0.113.10"]),
            ("Partner", 1, ["192.0.2.0/28"]),
            ("Blocked", 2, ["192.0.2.128/25"]),
        ]
        assert (state["account_id"], state["rule_set_enabled"]) == (77, True)
        assert (state["caller_ip"], state["strict"]) == ("198.51.100.7", True)
        assert state["faults"] == [
            {
                "method": "GET",
                "path_regex": None,
                "times": 2,
                "action": "status",
                "status": 429,
                "retry_after": "1",
                "seconds": 0.0,
            }
        ]
        assert emulator.stderr[1] == (
            "emulator: account 77: allow rule 'Office VPN' (2 CIDRs), allow rule 'Partner'"
            " (1 CIDR), deny rule 'Blocked' (1 CIDR); enforcement on; caller 198.51.100.7;"
            " 1 fault; strict"
        )
        listing = f"{emulator.url}/api/v3/accounts/77/ip-restrictions/"
        auth = {"Authorization": f"Token {DEFAULT_TOKEN}"}
        answer = httpx.get(listing, headers=auth, timeout=5)
        assert (answer.status_code, answer.headers["Retry-After"]) == (429, "1")


def test_reset_returns_to_the_seeded_start_up_state() -> None:
    """POST /_emulator/reset brings back the flags' rules and faults, not an empty account."""
    with emulator_process("--rule", "Office=198.51.100.0/24", "--fault", "status=500") as emulator:
        before = emulator.state()
        httpx.delete(f"{emulator.url}/_emulator/faults", timeout=5)
        httpx.post(f"{emulator.url}/_emulator/rules", json={"name": "x"}, timeout=5)
        after = httpx.post(f"{emulator.url}/_emulator/reset", timeout=5).json()
        assert [r["name"] for r in after["rules"]] == ["Office"]
        assert after["faults"] == before["faults"]


def test_the_just_enabled_preset_lets_the_job_in_under_enforcement() -> None:
    """--preset just-enabled: enforcement on, an Office rule holding the caller, API answers."""
    with emulator_process("--preset", "just-enabled") as emulator:
        state = emulator.state()
        assert state["rule_set_enabled"] is True
        assert state["caller_ip"] == "198.51.100.7"
        assert [(r["name"], [c["cidr"] for c in r["cidrs"]]) for r in state["rules"]] == [
            ("Office", ["198.51.100.0/24"])
        ]
        auth = {"Authorization": f"Token {DEFAULT_TOKEN}"}
        rules = f"{emulator.url}/api/v3/accounts/1/ip-restrictions/"
        assert httpx.get(rules, headers=auth, timeout=5).status_code == 200
        assert not any("warning" in line for line in emulator.stderr)


def test_enforcement_that_lets_nobody_in_is_warned_about() -> None:
    """--enforce with no rule holding the caller starts, but says every request will get 403."""
    with emulator_process("--enforce", "--caller-ip", "203.0.113.5") as emulator:
        assert (
            "emulator: warning: enforcement is on and no allow rule holds the caller 203.0.113.5:"
            " every API request will be refused (403)"
        ) in emulator.stderr


def test_the_port_may_come_from_the_environment() -> None:
    """ALLOWLIST_SYNC_EMULATOR_PORT=0 without --port picks a free port (side-by-side runs)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "allowlist_sync", "emulator"],
        env=cli_env(ALLOWLIST_SYNC_EMULATOR_PORT="0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().removeprefix("export DBT_CLOUD_HOST_URL=")
        assert not url.endswith(":8000")
        assert httpx.get(f"{url}/_emulator/state", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--fault", "status=abc"], {}, "--fault 'status=abc': status must be an HTTP error"),
        (["--fault", "colour=red"], {}, "--fault 'colour=red': unknown key 'colour'"),
        (["--fault", "times=0"], {}, "--fault 'times=0': times must be a whole number"),
        (["--rule", "Office"], {}, "--rule 'Office': expected NAME=CIDR[,CIDR...]"),
        (["--deny-rule", "X=10.0.0.0/33"], {}, "'10.0.0.0/33' is not an IP address or network"),
        (
            ["--rule", "A=10.0.0.0/8", "--deny-rule", "B=10.0.0.0/8"],
            {},
            "10.0.0.0/8 is also in allow rule 'A'",
        ),
        (["--caller-ip", "10.0.0.0/8"], {}, "--caller-ip '10.0.0.0/8': not an IP address"),
        (["--preset", "nope"], {}, "unknown preset 'nope'; expected one of just-enabled"),
        ([], {"ALLOWLIST_SYNC_EMULATOR_PORT": "http"}, "ALLOWLIST_SYNC_EMULATOR_PORT: 'http'"),
        ([], {"ALLOWLIST_SYNC_EMULATOR_TOKEN": "a b"}, "ALLOWLIST_SYNC_EMULATOR_TOKEN must be"),
    ],
)
def test_a_bad_seed_is_a_one_line_usage_error(
    flags: list[str], env: dict[str, str], message: str
) -> None:
    """Each bad spec exits 64 with one line on stderr naming it, and never starts serving."""
    port = [] if "ALLOWLIST_SYNC_EMULATOR_PORT" in env else ["--port", "0"]
    result = subprocess.run(
        [sys.executable, "-m", "allowlist_sync", "emulator", *port, *flags],
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("allowlist-sync emulator: error: ")
    assert message in lines[0]


@pytest.mark.parametrize("flag", ["--page-size", "--account-id"])
def test_a_page_size_or_account_id_below_one_is_a_usage_error(flag: str) -> None:
    """0 is refused by the parser (exit 64), not met later as an internal error."""
    result = subprocess.run(
        [sys.executable, "-m", "allowlist_sync", "emulator", "--port", "0", flag, "0"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE
    assert "'0' is not a whole number from 1" in result.stderr
