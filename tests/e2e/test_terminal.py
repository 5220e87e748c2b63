"""`sync` on a real terminal: quiet logs, and stdout ending with one status line for every outcome.

The CLI runs as a real process whose stdout and stderr are pseudo-terminals (Python's `pty`), as
when a person types the command, against the emulator on loopback. The status line words are the
contract README "Reading the output" documents: `In sync.`, `Changes pending: ...`,
`Applied: ...`, `Refused: ...`, `FAILED: <kind>: <message>`.
"""

from __future__ import annotations

import io
import os
import pty
import re
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from allowlist_sync.errors import ApiError, UnsafePlanError
from allowlist_sync.outcome import Outcome
from allowlist_sync.render import render_outcome_text, status_line
from tests.cli import cli_env, log_events, run_cli
from tests.emulated import TOKEN
from tests.feeds import aad_prefixes, feed_doc
from tests.inprocess import run_main

ROOT = Path(__file__).parents[2]
#: The feed exactly as the issue names it: a path relative to the repository.
FEED = "tests/data/ServiceTags_Public_20251028.trimmed.json"
PUBLISHED = aad_prefixes(feed_doc())
STALE = "192.0.2.0/24"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STATUS = re.compile(r"^(In sync\.|Changes pending: |Applied: |Refused: |FAILED: [a-z_]+: )")


@dataclass
class Screen:
    """What a process wrote to its terminals, colours stripped, line ends as `\\n`."""

    code: int
    stdout: str
    stderr: str

    @property
    def last_stdout_line(self) -> str:
        lines = self.stdout.rstrip("\n").splitlines()
        return lines[-1] if lines else ""

    def status_lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if STATUS.match(line)]


def _clean(raw: bytes) -> str:
    return ANSI.sub("", raw.decode(errors="replace")).replace("\r\n", "\n")


def run_on_terminal(*args: str, env: dict[str, str], shared: bool = False) -> Screen:
    """Run `python -m allowlist_sync ARGS` with stdout and stderr on pseudo-terminals.

    `shared`: both on ONE terminal, as a person sees them; the screen is then in `stdout`.
    """
    out_master, out_slave = pty.openpty()
    err_master, err_slave = (out_master, out_slave) if shared else pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "allowlist_sync", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out_slave,
        stderr=err_slave,
    )
    masters = (
        {out_master: bytearray()} if shared else {out_master: bytearray(), err_master: bytearray()}
    )
    for fd in {out_slave, err_slave}:
        os.close(fd)
    selector = selectors.DefaultSelector()
    for fd in masters:
        selector.register(fd, selectors.EVENT_READ)
    give_up = time.monotonic() + 60  # a safety net against a hung child, not a measurement
    try:
        while selector.get_map() and time.monotonic() < give_up:
            for key, _ in selector.select(timeout=1):
                try:
                    data = os.read(key.fd, 65536)
                except OSError:  # EIO: the child closed its end of the terminal
                    data = b""
                if data:
                    masters[key.fd] += data
                else:
                    selector.unregister(key.fd)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        for fd in masters:
            os.close(fd)
    return Screen(
        code,
        _clean(bytes(masters[out_master])),
        "" if shared else _clean(bytes(masters[err_master])),
    )


def terminal_env(emulator: EmulatorServer | None = None, **extra: str) -> dict[str, str]:
    """The CLI's clean environment with the log format left to its default (auto)."""
    env = cli_env(emulator, **extra)
    if "ALLOWLIST_SYNC_LOG_FORMAT" not in extra:
        env.pop("ALLOWLIST_SYNC_LOG_FORMAT")
    return env


def sync_on_terminal(emulator: EmulatorServer, *flags: str, **extra: str) -> Screen:
    return run_on_terminal(
        "sync", *flags, "--source-file", FEED, env=terminal_env(emulator, **extra)
    )


def info_lines(text: str) -> list[str]:
    """Console log lines at info level (or below)."""
    return [line for line in text.splitlines() if re.search(r"\[(info|debug)\s*\]", line)]


def assert_ends_with_one_status_line(screen: Screen, start: str) -> None:
    assert screen.last_stdout_line.startswith(start), screen.stdout
    assert screen.status_lines() == [screen.last_stdout_line], screen.stdout


def test_dry_run_on_a_terminal_is_the_plan_and_a_status_line(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """On a terminal a dry run logs no info lines and ends stdout with `Changes pending:`."""
    screen = sync_on_terminal(emulator, "--dry-run")
    assert screen.code == 0, screen.stdout + screen.stderr
    assert info_lines(screen.stderr) == [] and "run_finished" not in screen.stderr
    assert f"Plan: create the rule with {len(PUBLISHED)}, remove 0, keep 0." in screen.stdout
    assert_ends_with_one_status_line(screen, f"Changes pending: add {len(PUBLISHED)}, remove 0.")
    assert "nothing was written" in screen.last_stdout_line
    assert store.write_count() == 0


def test_applied_run_on_a_terminal_ends_with_applied(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """An apply on a terminal ends stdout with `Applied: ...` and shows no info log lines."""
    store.seed_rule("allowlist-sync: Entra ID SCIM (AzureActiveDirectory)", cidrs=PUBLISHED[2:])
    screen = sync_on_terminal(emulator)
    assert screen.code == 0, screen.stdout + screen.stderr
    assert info_lines(screen.stderr) == []
    assert_ends_with_one_status_line(screen, "Applied: 2 added, 0 removed; verified ")


def test_first_apply_on_a_terminal_says_it_created_the_rule(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """Creating the rule ends stdout with `Applied: created rule ...` and the stored count."""
    screen = sync_on_terminal(emulator)
    assert screen.code == 0, screen.stdout + screen.stderr
    assert_ends_with_one_status_line(screen, "Applied: created rule ")
    assert f"with {len(PUBLISHED)} CIDRs" in screen.last_stdout_line


def test_run_in_sync_on_a_terminal_ends_with_in_sync(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """A run with nothing to do ends stdout with exactly `In sync.`."""
    store.seed_rule("allowlist-sync: Entra ID SCIM (AzureActiveDirectory)", cidrs=PUBLISHED)
    screen = sync_on_terminal(emulator)
    assert screen.code == 0, screen.stdout + screen.stderr
    assert screen.last_stdout_line == "In sync."
    assert_ends_with_one_status_line(screen, "In sync.")


def test_refused_run_on_a_terminal_ends_with_refused(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """A lock-out refusal ends stdout with `Refused: ...` naming the flag; exit 3, no write."""
    store.seed_rule(
        "allowlist-sync: Entra ID SCIM (AzureActiveDirectory)", cidrs=[*PUBLISHED, STALE]
    )
    store.set_enforcement(True)
    store.caller_ip = "192.0.2.10"
    screen = sync_on_terminal(emulator)
    assert screen.code == 3
    assert_ends_with_one_status_line(screen, "Refused: ")
    assert "--allow-lockout-risk" in screen.last_stdout_line
    assert screen.last_stdout_line.endswith("Nothing was written.")
    assert info_lines(screen.stderr) == [] and "plan_refused" in screen.stderr
    assert store.write_count() == 0


def test_failed_write_on_a_terminal_ends_with_failed(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """A PUT answered 403 ends stdout with `FAILED: permission: ...`; exit 77."""
    store.seed_rule(
        "allowlist-sync: Entra ID SCIM (AzureActiveDirectory)", cidrs=[*PUBLISHED, STALE]
    )
    store.add_fault(Fault(method="PUT", action="status", status=403))
    screen = sync_on_terminal(emulator)
    assert screen.code == 77
    assert_ends_with_one_status_line(screen, "FAILED: permission: PUT ")
    assert "403" in screen.last_stdout_line
    assert info_lines(screen.stderr) == [] and "run_failed" in screen.stderr


def test_failed_run_ends_the_screen_with_its_status_line(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """With stdout and stderr on one terminal, the last line a person sees is the status line."""
    store.add_fault(Fault(method="POST", action="status", status=403))
    screen = run_on_terminal("sync", "--source-file", FEED, env=terminal_env(emulator), shared=True)
    assert screen.code == 77
    assert screen.last_stdout_line.startswith("FAILED: permission: POST ")
    assert "run_failed" in screen.stdout and info_lines(screen.stdout) == []


def test_log_level_setting_wins_on_a_terminal(emulator: EmulatorServer) -> None:
    """ALLOWLIST_SYNC_LOG_LEVEL=info brings the info lines back; the status line stays last."""
    screen = sync_on_terminal(emulator, "--dry-run", ALLOWLIST_SYNC_LOG_LEVEL="info")
    assert screen.code == 0, screen.stdout + screen.stderr
    assert any("run_finished" in line for line in info_lines(screen.stderr))
    assert_ends_with_one_status_line(screen, "Changes pending: ")


def test_bad_configuration_on_a_terminal_prints_failed(emulator: EmulatorServer) -> None:
    """A configuration error prints `FAILED: config: ...` on stdout too (exit 78)."""
    env = terminal_env(emulator)
    del env["DBT_CLOUD_ACCOUNT_ID"]
    screen = run_on_terminal("sync", "--dry-run", "--source-file", FEED, env=env)
    assert screen.code == 78
    assert_ends_with_one_status_line(screen, "FAILED: config: ")
    assert "DBT_CLOUD_ACCOUNT_ID" in screen.last_stdout_line
    assert "config_invalid" in screen.stderr


def test_off_a_terminal_logs_stay_json_at_info(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """With pipes (cron, CI), logs stay JSON at info and stdout still ends with the status line."""
    store.add_fault(Fault(method="POST", action="status", status=403))
    result = run_cli("sync", "--source-file", str(ROOT / FEED), env=terminal_env(emulator))
    assert result.code == 77
    events = log_events(result.stderr)
    finished = [e for e in events if e["event"] == "run_finished"]
    assert len(finished) == 1 and finished[0]["level"] == "info"
    assert finished[0]["added"] == 0 and finished[0]["planned_add"] == len(PUBLISHED)
    last = result.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("FAILED: permission: POST ")
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (KeyboardInterrupt(), "FAILED: interrupted: interrupted"),
        (RuntimeError(f"boom near {TOKEN}"), "FAILED: internal: internal error: RuntimeError: "),
    ],
    ids=["interrupted", "internal"],
)
def test_a_run_that_never_finishes_still_prints_a_status_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    raised: BaseException,
    status: str,
) -> None:
    """Ctrl-C and a bug end stdout with a `FAILED:` line too, the token scrubbed from it."""
    import allowlist_sync.sync as pipeline

    def broken(*args: object, **kwargs: object) -> Outcome:
        raise raised

    monkeypatch.setattr(pipeline, "run_once", broken)
    result = run_main(
        monkeypatch, capsys, emulator, "sync", "--dry-run", "--source-file", str(ROOT / FEED)
    )
    assert result.code in (1, 130)
    assert result.stdout.rstrip("\n").splitlines()[-1].startswith(status)
    assert TOKEN not in result.stdout + result.stderr


def test_the_status_line_is_one_printable_line_whatever_the_message() -> None:
    """A message with line breaks and terminal escapes (an API's text) stays one inert line."""
    hostile = "HTTP 403 nope\n\x1b]0;pwned\x07\x1b[2J\rsecond line\u2028third"
    out = io.StringIO()
    failed = Outcome(status="failed", dry_run=False, error=ApiError(hostile))
    render_outcome_text(failed, out)
    last = out.getvalue().rstrip("\n").splitlines()[-1]
    assert out.getvalue().count("\n") == 2 and last.startswith("FAILED: api: HTTP 403 nope ")
    assert all(c.isprintable() for c in last) and "second line" in last and "third" in last
    refused = UnsafePlanError(hostile, guard="x", details={})
    out = io.StringIO()
    render_outcome_text(Outcome(status="refused", dry_run=False, error=refused), out)
    assert out.getvalue().count("\n") == 2
    assert all(c.isprintable() for c in out.getvalue().strip("\n"))


def test_a_refusal_after_a_write_does_not_claim_nothing_was_written() -> None:
    """A re-plan refused after an unconfirmed write says how many writes were sent."""
    refused = UnsafePlanError("removes 3 of 4 CIDRs", guard="max_delete", details={})
    outcome = Outcome(status="refused", dry_run=False, error=refused, writes=1)
    assert status_line(outcome) == (
        "Refused: removes 3 of 4 CIDRs. 1 write(s) had been sent before the refusal."
    )


def test_a_long_list_of_refused_cidrs_is_cut_in_the_status_line() -> None:
    """Hundreds of CIDRs the platform refused are named ten at a time, the rest counted."""
    refused = tuple(f"10.0.{i}.0/24" for i in range(300))
    line = status_line(Outcome(status="failed", dry_run=False, failed_cidrs=refused))
    assert line.startswith("FAILED: cidrs_rejected: the platform cannot store 300 published ")
    assert line.endswith("10.0.9.0/24 and 290 more") and "10.0.10.0/24" not in line
