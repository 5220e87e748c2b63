"""The docs stay the reference: settings, exit codes, metrics and schedule match the code."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.config import Settings, env_name
from allowlist_sync.errors import ExitCode
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan
from allowlist_sync.reporting.metrics import SyncMetrics

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
RUNNING = (ROOT / "docs" / "running.md").read_text()
DOCS = {
    name: (ROOT / name).read_text()
    for name in ("README.md", "docs/running.md", "docs/feed-discovery.md", "deploy/README.md")
}
#: Ways of saying that the default schedule is weekly (it is daily): none may appear in the docs.
WEEKLY_DEFAULT = (
    re.compile(r"default[^.|]{0,40}\bweekly\b", re.IGNORECASE),
    re.compile(r"\bweekly\b[^.|]{0,20}\bdefault\b", re.IGNORECASE),
    re.compile(r"every Tuesday", re.IGNORECASE),
    re.compile(r"\| `ALLOWLIST_SYNC_SCHEDULE` \| `0 6 \* \* 2` \|"),
)


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(field: str) -> None:
    """Each settings field has a row naming its environment variable."""
    assert f"| `{env_name(field)}` |" in README


@pytest.mark.parametrize("code", list(ExitCode))
def test_every_exit_code_is_documented(code: ExitCode) -> None:
    """Each exit code has a row in the exit-code table."""
    assert f"| {int(code)} |" in README


@pytest.mark.parametrize("text", [README, RUNNING], ids=["README.md", "docs/running.md"])
def test_the_schedule_rows_show_the_code_default(text: str) -> None:
    """The settings tables give the schedule default that config.py has."""
    default = Settings.model_fields["schedule"].default
    assert f"| `ALLOWLIST_SYNC_SCHEDULE` | `{default}` |" in text


@pytest.mark.parametrize("name", sorted(DOCS))
def test_no_doc_claims_the_default_schedule_is_weekly(name: str) -> None:
    """The default schedule is daily; no page says it is weekly or on Tuesdays."""
    found = [m.group(0) for pattern in WEEKLY_DEFAULT for m in pattern.finditer(DOCS[name])]
    assert found == []


def _metric_names() -> set[str]:
    """Every sample name serve's SyncMetrics exports once each gauge has a value."""
    metrics = SyncMetrics()
    when = datetime(2025, 10, 28, 6, tzinfo=UTC)
    metrics.next_run_source = lambda: when
    metrics.next_retry_source = lambda: when
    nets = tuple(ipaddress.ip_network(f"20.0.{i}.0/24") for i in range(3))
    plan = Plan(rule_name="r", rule_id=1, desired=nets, current_count=0, add=nets)
    source = SourceInfo(
        kind="cache", location="u", cloud="Public", change_number=1, file_date="20251027"
    )
    metrics.record(Outcome(status="applied", dry_run=False, plan=plan, source=source))
    return {
        sample.name
        for family in metrics.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@pytest.mark.parametrize("metric", sorted(_metric_names()))
def test_every_metric_is_in_the_metrics_table(metric: str) -> None:
    """Each exported metric has a row in docs/running.md's Metrics table."""
    short = metric.removeprefix("allowlist_sync_")
    assert re.search(rf"^\| `{re.escape(short)}[`{{]", RUNNING, re.MULTILINE), short
