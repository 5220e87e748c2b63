"""The README's two-account config works as written, offline: the emulator, the file, each command.

The emulator command is started through the shell exactly as the README writes it, but with
`ALLOWLIST_SYNC_EMULATOR_PORT=0` (runs side by side never fight over port 8000); the config file
the README shows (and ships as examples/emulator-fleet.toml) is copied with its port 8000 set to
the one the emulator took, into a folder laid out as the repository's root (its `allowlist_sync`
a link to the real one, so the relative snapshot paths hold). Every command of the second block
then runs there with its exports, and nothing else from the environment, in this process through
`main` (a plain `allowlist-sync ARGS` line, which the test checks holds nothing the shell would
change). Both sources are files: nothing reaches the internet. Two more tests try what a reader
may get wrong, as the README warns: the banner's exports pasted, a token export forgotten.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from allowlist_sync.cli import main
from allowlist_sync.config import RunSettings
from allowlist_sync.config.file import read_config
from allowlist_sync.outcome import EXIT_SEVERITY
from allowlist_sync.sources.specs import AzureSource, OktaSource
from tests.cli import cli_env

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
SECTION = "## Several accounts and sources (config file)"
EXAMPLE = Path("examples/emulator-fleet.toml")
PORT = "127.0.0.1:8000"  # the emulator's default port, which the README's file names
SHELL_SPECIALS = set("$`|;&<>(){}*?[]~\\\"'")


def section() -> str:
    """The README's section, up to the next one."""
    start = README.index(SECTION)
    end = README.find("\n## ", start + len(SECTION))
    return README[start : end if end != -1 else len(README)]


def blocks(language: str) -> list[str]:
    """The section's fenced blocks of `language`, in order."""
    return re.findall(rf"```{language}\n(.*?)```", section(), re.DOTALL)


@dataclass(frozen=True)
class Step:
    """One command line and the exit code its comment promises (default 0)."""

    line: str
    argv: list[str]
    exit_code: int


def commands(block: str) -> list[Step]:
    """Every command in an `sh` block, comments parsed off."""
    steps = []
    for raw in block.splitlines():
        command, _, comment = raw.partition("#")
        command = command.strip()
        if command:
            promised = re.search(r"\bexit (\d+)", comment)
            steps.append(
                Step(command, shlex.split(command), int(promised.group(1)) if promised else 0)
            )
    return steps


EMULATOR, RUNS = (commands(block) for block in blocks("sh"))
(CONFIG,) = blocks("toml")


@pytest.fixture
def emulator_port() -> Iterator[str]:
    """The README's emulator command, started through the shell on a free port; yields it."""
    (start,) = EMULATOR
    bin_dir = str(Path(sys.executable).parent)  # where `allowlist-sync` is installed
    env = cli_env(ALLOWLIST_SYNC_EMULATOR_PORT="0")
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {start.line}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner: list[str] = []
        while not (banner and banner[-1].startswith("allowlist-sync sync")):
            line = proc.stdout.readline()
            assert line, f"the emulator ended before its banner was complete: {banner}"
            banner.append(line.rstrip("\n"))
        found = re.search(r"DBT_CLOUD_HOST_URL=http://(127\.0\.0\.1:\d+)", "\n".join(banner))
        assert found, banner
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def lay_out(folder: Path, address: str) -> Path:
    """`folder` laid out as the repository's root, holding the README's config file with its
    dbt host at `address`."""
    (folder / "allowlist_sync").symlink_to(ROOT / "allowlist_sync", target_is_directory=True)
    (folder / EXAMPLE).parent.mkdir()
    (folder / EXAMPLE).write_text(CONFIG.replace(PORT, address))
    return folder


@pytest.fixture
def repository(tmp_path: Path, emulator_port: str) -> Path:
    """The repository's layout, the config file naming the emulator's real port."""
    return lay_out(tmp_path, emulator_port)


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """The repository's layout, the config file naming a closed port (the discard port)."""
    return lay_out(tmp_path, "127.0.0.1:9")


def test_the_section_starts_the_emulator_then_runs_the_file() -> None:
    """The section holds the commands this test runs, so an edit cannot empty it silently."""
    assert [step.argv[:2] for step in EMULATOR] == [["allowlist-sync", "emulator"]]
    assert [step.argv[:2] for step in RUNS] == [
        *[["export", step.argv[1]] for step in RUNS[:2]],
        *[["allowlist-sync", "sync"]] * 5,
        ["export", RUNS[7].argv[1]],
        ["allowlist-sync", "sync"],
    ]
    for step in RUNS:
        if step.argv[0] != "export":
            assert step.argv[2:4] == ["--config", str(EXAMPLE)], step.line
    assert "--target" in RUNS[3].argv


def test_the_file_shown_is_the_one_shipped() -> None:
    """The README's config block is examples/emulator-fleet.toml, byte for byte."""
    assert (ROOT / EXAMPLE).read_text() == CONFIG


def test_the_file_names_what_the_emulator_serves_and_the_tokens_exported() -> None:
    """Read as it is, the file is valid: its accounts are the emulator's, on its default port,
    its snapshot files exist, and each target's token variable is one the section exports."""
    config = read_config(ROOT / EXAMPLE, RunSettings.model_construct())
    served = [int(arg.split(":")[0]) for arg in EMULATOR[0].argv[3::2]]
    assert EMULATOR[0].argv[2::2] == ["--account-id"] * len(served)
    assert "--port" not in EMULATOR[0].argv
    assert [t.account_id for t in config.targets] == served
    assert {t.host_url for t in config.targets} == {f"http://{PORT}"}
    exported = {step.argv[1].split("=")[0] for step in RUNS if step.argv[0] == "export"}
    assert {t.token_env for t in config.targets} == exported
    assert [t.sources for t in config.targets] == [("entra", "okta"), ("okta",)]
    entra, okta = config.sources["entra"], config.sources["okta"]
    assert isinstance(entra, AzureSource) and isinstance(okta, OktaSource)
    for file in (entra.file, okta.query.file):
        assert file is not None and Path(file).is_file(), file


def test_every_command_works_as_written(
    repository: Path,
    emulator_port: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the section's exports and no internet, each command exits as the README promises,
    prints what it shows, and both accounts end holding exactly their sources' ranges."""
    monkeypatch.chdir(repository)
    clean_env(monkeypatch, ALLOWLIST_SYNC_RETRY_BACKOFF="0")
    outputs = []
    for step in RUNS:
        if step.argv[0] == "export":  # what the shell would do with it
            name, _, value = step.argv[1].partition("=")
            monkeypatch.setenv(name, value)
            continue
        assert not SHELL_SPECIALS & set(step.line), f"the shell would change {step.line!r}"
        code, out, err = run_main(step.argv[1:], capsys)
        assert code == step.exit_code, f"{step.line}\n{out}\n{err}"
        outputs.append(out)
    dry_run, sandbox, pending, applied, in_sync, refused = outputs
    assert_shows(text_block(), dry_run)
    assert "=== target prod" not in sandbox and "Applied: created rule" in sandbox
    assert "All 2 targets done: 1 in sync, 1 with changes pending." in pending
    assert_subset(json.loads(blocks("json")[0]), json.loads(applied))
    assert "All 2 targets done: 2 in sync. Dry run: nothing was written." in in_sync
    summary = re.search(r"`(FAILED: 1 of 2 targets: [^`]*)`", section())
    assert summary and refused.splitlines()[-1] == summary.group(1)
    for account, count in ((12345, 245), (67890, 29)):
        state = httpx.get(f"http://{emulator_port}/_emulator/state?account={account}").json()
        (rule,) = state["rules"]
        assert rule["name"] == "allowlist-sync: SCIM" and len(rule["cidrs"]) == count


def clean_env(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """Nothing of this process's ALLOWLIST_SYNC_* / DBT_CLOUD_* settings but its cache, plus
    `extra`."""
    cache = os.environ["ALLOWLIST_SYNC_CACHE_DIR"]  # the per-test cache of the autouse fixture
    for name in list(os.environ):
        if name.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_")):
            monkeypatch.delenv(name)
    for name, value in {"ALLOWLIST_SYNC_CACHE_DIR": cache, **extra}.items():
        monkeypatch.setenv(name, value)


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`allowlist-sync ARGV` in this process: its exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        code = main(argv)
    finally:
        out, err = capsys.readouterr()
        structlog.reset_defaults()
    return code, out, err


def test_the_banners_exports_pasted_beside_the_file_are_refused(
    nowhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the README warns: with the emulator's exports pasted, the first run exits 78 naming
    them, before any account is called."""
    monkeypatch.chdir(nowhere)
    clean_env(
        monkeypatch,
        DBT_CLOUD_HOST_URL="http://127.0.0.1:9",
        DBT_CLOUD_ACCOUNT_ID="12345",
        DBT_CLOUD_TOKEN="dbtc_emulator_token",
        PROD_DBT_TOKEN="dbtc_emulator_token",
        SANDBOX_DBT_TOKEN="dbtc_sandbox_token",
    )
    code, out, err = run_main(RUNS[2].argv[1:], capsys)
    assert code == 78
    for name in ("DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_HOST_URL", "DBT_CLOUD_TOKEN"):
        assert name in out + err
    assert "dbtc_emulator_token" not in out + err


def test_a_forgotten_token_export_fails_each_target_alone(
    nowhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the README says: an unset `token_env` variable fails its target (78) and names it;
    the other target still runs (here, against a closed port: exit 1, which outranks 78)."""
    monkeypatch.chdir(nowhere)
    clean_env(monkeypatch, PROD_DBT_TOKEN="dbtc_emulator_token", ALLOWLIST_SYNC_RETRY_ATTEMPTS="1")
    code, out, _ = run_main([*RUNS[2].argv[1:], "--output", "json"], capsys)
    result = json.loads(out)
    prod, sandbox = result["targets"]
    assert (
        sandbox["error"]["kind"] == "config" and "SANDBOX_DBT_TOKEN" in sandbox["error"]["message"]
    )
    assert prod["error"] is not None and prod["error"]["kind"] != "config"
    assert code == 1 and result["status"] == "failed"


def test_the_exit_code_order_is_the_one_the_code_uses() -> None:
    """The README's order of combined exit codes is `outcome.EXIT_SEVERITY`, most severe first."""
    paragraph = section()[section().index("**Exit codes combine**") :].split("\n\n")[0]
    shown = [int(code) for code in re.findall(r"`(\d+)`", paragraph)]
    assert shown == [int(code) for code in reversed(EXIT_SEVERITY)]


def text_block() -> str:
    """The section's example of text output."""
    (block,) = blocks("text")
    return block


def assert_shows(example: str, output: str) -> None:
    """Each line of `example` is a line of `output`, in order; `...` stands for anything (a
    line of its own: any lines)."""
    lines = output.splitlines()
    at = 0
    for line in example.splitlines():
        if line == "...":
            continue
        pattern = re.compile(".*".join(map(re.escape, line.split("..."))))
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        assert at < len(lines), f"{line!r} is not in the output, in order:\n{output}"
        at += 1


def assert_subset(shown: Any, real: Any, where: str = "") -> None:
    """Every key and value the README shows is in the real object (lists item by item)."""
    if isinstance(shown, dict):
        assert isinstance(real, dict), where
        for key, value in shown.items():
            assert key in real, f"{where}.{key}"
            assert_subset(value, real[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(real, list) and len(real) == len(shown), where
        for index, (item, real_item) in enumerate(zip(shown, real, strict=True)):
            assert_subset(item, real_item, f"{where}[{index}]")
    else:
        assert shown == real, f"{where}: README {shown!r}, real {real!r}"
