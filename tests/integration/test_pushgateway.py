"""One-shot runs push to a real Prometheus Pushgateway (Debian's binary) on loopback.

The fixture starts `/usr/bin/prometheus-pushgateway` without persistence on a free port; the
tests push with `allowlist-sync sync` and read the result back from the gateway's `/metrics`,
as Prometheus would scrape it. Without the binary the tests are skipped, except under CI=true,
where a missing binary is a failure (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from tests.feeds import PUBLIC_FEED
from tests.inprocess import run_main
from tests.receiver import free_port

BINARY = Path("/usr/bin/prometheus-pushgateway")
SYNC = ("sync", "--source-file", str(PUBLIC_FEED), "--output", "json")
JOB = "allowlist-sync-test"


class Pushgateway:
    """A running Pushgateway and a client for it."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.proc = proc

    def samples(self) -> dict[str, float]:
        """This job's allowlist_sync samples on the gateway's /metrics, by name."""
        text = httpx.get(f"{self.url}/metrics", timeout=5, trust_env=False).text
        return {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.labels.get("job") == JOB and s.name.startswith("allowlist_sync_")
        }

    def types(self) -> dict[str, str]:
        """The type of each allowlist_sync family the gateway serves."""
        text = httpx.get(f"{self.url}/metrics", timeout=5, trust_env=False).text
        return {
            f.name: f.type
            for f in text_string_to_metric_families(text)
            if f.name.startswith("allowlist_sync_")
        }


@pytest.fixture
def pushgateway() -> Iterator[Pushgateway]:
    """Debian's prometheus-pushgateway on a free loopback port, without a persistence file."""
    if not (BINARY.is_file() and os.access(BINARY, os.X_OK)):
        message = (
            f"{BINARY} is not installed (apt-get install -y prometheus-pushgateway); "
            "the real-Pushgateway tests need it"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BINARY), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"pushgateway exited {proc.returncode}: {log.read().decode()[-500:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("pushgateway did not answer /-/ready within 15 s")
            time.sleep(0.05)
        yield Pushgateway(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_the_binary_is_there_under_ci() -> None:
    """Under CI=true the Pushgateway binary must be installed, so its tests cannot skip away."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only checked under CI=true")
    assert shutil.which(str(BINARY)) is not None


def test_a_one_shot_run_is_scraped_from_the_pushgateway(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    pushgateway: Pushgateway,
) -> None:
    """A success then a failure: the gateway serves gauges only, and keeps the last success."""
    env = {"ALLOWLIST_SYNC_PUSHGATEWAY_URL": pushgateway.url, "ALLOWLIST_SYNC_PUSHGATEWAY_JOB": JOB}
    ok = run_main(monkeypatch, capsys, emulator, *SYNC, **env)
    assert ok.code == 0, ok.stderr
    first = pushgateway.samples()
    assert first["allowlist_sync_last_run_success"] == 1
    assert first["allowlist_sync_consecutive_failures"] == 0
    assert first["allowlist_sync_last_run_added_cidrs"] == first["allowlist_sync_desired_cidrs"]
    assert first["allowlist_sync_source_cache_used"] == 0
    success = first["allowlist_sync_last_success_timestamp_seconds"]
    assert success > time.time() - 60

    store.add_fault(Fault(action="status", status=503, times=100))
    failed = run_main(monkeypatch, capsys, emulator, *SYNC, **env)
    assert failed.code == 1
    second = pushgateway.samples()
    assert second["allowlist_sync_last_run_success"] == 0
    assert second["allowlist_sync_consecutive_failures"] == 1
    assert second["allowlist_sync_last_success_timestamp_seconds"] == success
    assert second["allowlist_sync_last_run_timestamp_seconds"] >= success
    assert set(pushgateway.types().values()) == {"gauge"}


def test_each_target_keeps_its_own_group_on_the_gateway(
    tmp_path: Path, pushgateway: Pushgateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs, each of one target (as `sync --config --target NAME` makes): the second push
    never erases the first target's series, because each target is its own group."""
    from allowlist_sync.config import load_run_settings
    from allowlist_sync.outcome import Outcome
    from allowlist_sync.reporting.report import Reporter, ReportTarget

    monkeypatch.setenv("ALLOWLIST_SYNC_PUSHGATEWAY_URL", pushgateway.url)
    monkeypatch.setenv("ALLOWLIST_SYNC_PUSHGATEWAY_JOB", JOB)
    monkeypatch.setenv("ALLOWLIST_SYNC_CACHE_DIR", str(tmp_path))
    for name in ("ALLOWLIST_SYNC_AZURE_DETAILS_URL", "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE"):
        monkeypatch.delenv(name, raising=False)
    run = load_run_settings(config_file="fleet.toml")
    for name, account in (("prod", 1), ("sandbox", 2)):
        outcome = Outcome(status="in_sync", dry_run=False, target=name, account_id=account)
        outcome.rule_name = "allowlist-sync: SCIM"
        Reporter(run, targets=[ReportTarget(name, account, "allowlist-sync: SCIM")]).report_all(
            [outcome]
        )
    text = httpx.get(f"{pushgateway.url}/metrics", timeout=5, trust_env=False).text
    success = {
        s.labels.get("target")
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("job") == JOB and s.name == "allowlist_sync_last_success_timestamp_seconds"
    }
    assert success == {"prod", "sandbox"}
