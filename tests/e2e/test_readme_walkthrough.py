"""The README's emulator walk-through works as written, offline: each command, its exit code.

The emulator command is started through the shell exactly as the README writes it (with
`ALLOWLIST_SYNC_EMULATOR_PORT=0`, so runs side by side never fight over port 8000); the lines
it prints are what a reader pastes; every following command runs with those exports, from the
repository's root, with Microsoft's site unreachable (`cli_env`). Those commands run in this
process through `main` (a plain `allowlist-sync ARGS` line, which the test checks holds nothing
the shell would change), to keep the test quick.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from allowlist_sync.cli import main
from allowlist_sync.emulator import bundled_snapshot
from tests.cli import cli_env

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
SECTION = "## Rehearse with the emulator"
SHELL_SPECIALS = set("$`|;&<>(){}*?[]~\\\"'")


@dataclass(frozen=True)
class Step:
    """One command of the walk-through and the exit code its comment promises (default 0)."""

    line: str
    argv: list[str]
    exit_code: int


def walkthrough() -> list[Step]:
    """Every command in the section's `sh` blocks, in order, comments parsed off."""
    start = README.index(SECTION)
    end = README.find("\n## ", start + len(SECTION))
    section = README[start : end if end != -1 else len(README)]
    steps = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for raw in block.splitlines():
            command, _, comment = raw.partition("#")
            command = command.strip()
            if not command:
                continue
            promised = re.search(r"\bexit (\d+)", comment)
            steps.append(
                Step(command, shlex.split(command), int(promised.group(1)) if promised else 0)
            )
    return steps


STEPS = walkthrough()


@pytest.fixture
def emulator_exports() -> Iterator[dict[str, str]]:
    """The README's emulator command, started through the shell; yields the exports it printed."""
    first = STEPS[0]
    assert first.argv[:2] == ["allowlist-sync", "emulator"], first.line
    bin_dir = str(Path(sys.executable).parent)  # where `allowlist-sync` is installed
    env = cli_env(ALLOWLIST_SYNC_EMULATOR_PORT="0")
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {first.line}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = []
        while not (banner and banner[-1].startswith("allowlist-sync sync")):
            line = proc.stdout.readline()
            assert line, f"the emulator ended before its banner was complete: {banner}"
            banner.append(line.rstrip("\n"))
        exports = [shlex.split(line.removeprefix("export "))[0] for line in banner[:3]]
        yield dict(item.split("=", 1) for item in exports)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_the_walkthrough_refuses_then_adopts_applies_and_reruns() -> None:
    """The section holds the commands this test runs, so an edit cannot empty it silently."""
    assert [step.argv[:2] for step in STEPS] == [
        ["allowlist-sync", "emulator"],
        ["allowlist-sync", "sync"],
        ["export", "ALLOWLIST_SYNC_RULE_NAME=Entra SCIM (by hand)"],
        *[["allowlist-sync", "sync"]] * 3,
    ]


def test_the_walkthrough_reads_the_bundled_snapshot_offline() -> None:
    """Every sync names `--source-file`: the bundled snapshot, as packaged beside the code."""
    snapshot = bundled_snapshot()
    assert snapshot is not None
    for step in STEPS[1:]:
        if step.argv[0] == "export":
            continue
        path = step.argv[step.argv.index("--source-file") + 1]
        assert (ROOT / path).resolve() == Path(snapshot).resolve()


def test_every_walkthrough_command_works_as_written(
    emulator_exports: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the pasted exports and no internet, each command exits as the README promises."""
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.delenv(name)
    for name, value in {**cli_env(), **emulator_exports}.items():
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.setenv(name, value)
    outputs = []
    for step in STEPS[1:]:
        if step.argv[0] == "export":  # what the shell would do with it
            name, _, value = step.argv[1].partition("=")
            monkeypatch.setenv(name, value)
            continue
        assert not SHELL_SPECIALS & set(step.line), f"the shell would change {step.line!r}"
        capsys.readouterr()
        try:
            code = main(step.argv[1:])
        finally:
            out, err = capsys.readouterr()
            structlog.reset_defaults()
        assert code == step.exit_code, f"{step.line}\n{out}\n{err}"
        outputs.append(out)
    refused, dry_run, applied, rerun = outputs
    assert "Refused:" in refused and "'Entra SCIM (by hand)'" in refused
    assert "Dry run: nothing was written." in dry_run and "not published" in dry_run
    assert "192.0.2.10/32" in dry_run
    assert "Applied: 5 added, 1 removed" in applied
    assert "No changes." in rerun
