"""Start-up stays cheap: --version and --help import none of the heavy modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from allowlist_sync.emulator import EmulatorServer
from tests.cli import cli_env
from tests.feeds import PUBLIC_FEED

HEAVY = (
    "httpx",
    "pydantic",
    "pydantic_settings",
    "apscheduler",
    "structlog",
    "tenacity",
    "prometheus_client",
    "orjson",
)

PROBE = """
import sys
from allowlist_sync.cli import main
try:
    main([{flag!r}])
except SystemExit:
    pass
print(",".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_flag_imports_no_heavy_module(flag: str) -> None:
    """`allowlist-sync {flag}` loads no HTTP, validation, scheduling or logging library."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(flag=flag, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stderr.strip().splitlines()[-1:] in ([], [""])


def test_probe_would_notice_a_heavy_import() -> None:
    """The probe itself sees a heavy module when one is imported (so the test can fail)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import httpx\n" + PROBE.format(flag="--version", heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "httpx" in proc.stderr


SYNC_PROBE = """
import sys
from allowlist_sync.cli import main
code = main(["sync", "--dry-run", "--source-file", {feed!r}])
print(code, ",".join(sorted(m for m in ("apscheduler", "prometheus_client") if m in sys.modules)),
      file=sys.stderr)
"""


def test_one_shot_sync_does_not_load_serve_modules(emulator: EmulatorServer) -> None:
    """A plain `sync --dry-run` loads neither the scheduler nor the metrics library."""
    proc = subprocess.run(
        [sys.executable, "-c", SYNC_PROBE.format(feed=str(PUBLIC_FEED))],
        env=cli_env(emulator, ALLOWLIST_SYNC_LOG_LEVEL="error"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stderr.splitlines()[-1].strip() == "0"
