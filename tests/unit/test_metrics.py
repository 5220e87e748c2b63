"""SyncMetrics: what each Outcome adds, what is left out until known, one-shot and serve shapes."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync.azure.feed import SourceInfo
from allowlist_sync.dbt.models import Cidr
from allowlist_sync.outcome import Outcome
from allowlist_sync.plan import Plan
from allowlist_sync.reporting.metrics import SyncMetrics, file_date_timestamp

NETS = tuple(ipaddress.ip_network(f"10.0.{i}.0/24") for i in range(5))
SOURCE = SourceInfo(kind="file", location="feed.json", cloud="Public", change_number=375)


def samples(metrics: SyncMetrics) -> dict[str, float]:
    """Every sample as `name{label="v"}` -> value."""
    result = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            result[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return result


def applied(failed: tuple[str, ...] = ()) -> Outcome:
    plan = Plan(
        rule_name="r",
        rule_id=7,
        desired=NETS,
        current_count=3,
        add=NETS[3:],
        remove=(Cidr(id=1, cidr="192.0.2.0/24"),),
        keep=(Cidr(id=2, cidr=str(NETS[0])),),
    )
    status = "failed" if failed else "applied"
    return Outcome(
        status=status,
        dry_run=False,
        plan=plan,
        source=SOURCE,
        failed_cidrs=failed,
        duration_seconds=1.5,
        # What the pipeline sets after a verified write: the plan less what was refused.
        added=len(plan.add) - len(failed),
        removed=len(plan.remove),
    )


def test_an_applied_run_counts_changes_and_sets_gauges() -> None:
    """An applied run counts itself, the CIDRs added and removed, and sets the set sizes."""
    metrics = SyncMetrics()
    metrics.record(applied(), finished_at=1000.0)
    s = samples(metrics)
    assert s['allowlist_sync_runs_total{status="applied"}'] == 1
    assert s['allowlist_sync_runs_total{status="failed"}'] == 0
    assert s["allowlist_sync_cidrs_added_total"] == 2
    assert s["allowlist_sync_cidrs_removed_total"] == 1
    assert s["allowlist_sync_cidrs_refused_total"] == 0
    assert s["allowlist_sync_desired_cidrs"] == 5
    assert s["allowlist_sync_current_cidrs"] == 5
    assert s["allowlist_sync_source_change_number"] == 375
    assert s["allowlist_sync_last_success_timestamp_seconds"] == 1000.0
    assert s["allowlist_sync_last_run_duration_seconds"] == 1.5
    assert s["allowlist_sync_last_run_success"] == 1


def test_platform_refused_cidrs_are_counted() -> None:
    """CIDRs the platform refused are counted as refused, not added, and fail the run."""
    metrics = SyncMetrics()
    metrics.record(applied(failed=(str(NETS[4]),)), finished_at=1000.0)
    s = samples(metrics)
    assert s["allowlist_sync_cidrs_added_total"] == 1
    assert s["allowlist_sync_cidrs_refused_total"] == 1
    assert s["allowlist_sync_current_cidrs"] == 4
    assert s["allowlist_sync_last_run_success"] == 0


def test_unknown_values_are_left_out_not_zero() -> None:
    """Before any success there is no last-success sample; without a schedule, no next run."""
    metrics = SyncMetrics()
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=1000.0)
    s = samples(metrics)
    assert "allowlist_sync_last_success_timestamp_seconds" not in s
    assert "allowlist_sync_next_run_timestamp_seconds" not in s
    assert "allowlist_sync_desired_cidrs" not in s
    assert s['allowlist_sync_runs_total{status="failed"}'] == 1
    assert s["allowlist_sync_last_run_timestamp_seconds"] == 1000.0


def test_a_failure_keeps_the_last_success_time() -> None:
    """A failed run after a success leaves the last success time where it was."""
    metrics = SyncMetrics()
    metrics.record(applied(), finished_at=1000.0)
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=2000.0)
    assert samples(metrics)["allowlist_sync_last_success_timestamp_seconds"] == 1000.0


def test_next_run_comes_from_its_source() -> None:
    """The next-run gauge asks its source at each collection."""
    metrics = SyncMetrics()
    metrics.next_run_source = lambda: datetime(2025, 10, 28, 6, tzinfo=UTC)
    expected = datetime(2025, 10, 28, 6, tzinfo=UTC).timestamp()
    assert samples(metrics)["allowlist_sync_next_run_timestamp_seconds"] == expected


def test_restore_carries_counters_and_last_success_over() -> None:
    """Counters and the last success time of an earlier exposition continue in a new process."""
    first = SyncMetrics()
    first.record(applied(), finished_at=1000.0)
    first.record_skipped("overlap")
    second = SyncMetrics()
    second.restore(first.exposition().decode())
    second.record(Outcome(status="failed", dry_run=False), finished_at=2000.0)
    s = samples(second)
    assert s['allowlist_sync_runs_total{status="applied"}'] == 1
    assert s['allowlist_sync_runs_total{status="failed"}'] == 1
    assert s['allowlist_sync_runs_skipped_total{reason="overlap"}'] == 1
    assert s["allowlist_sync_cidrs_added_total"] == 2
    assert s["allowlist_sync_last_success_timestamp_seconds"] == 1000.0


def test_registry_is_not_the_global_one() -> None:
    """Each SyncMetrics has its own registry, so two never clash and nothing leaks globally."""
    from prometheus_client import REGISTRY

    a, b = SyncMetrics(), SyncMetrics()
    assert a.registry is not b.registry and a.registry is not REGISTRY
    assert REGISTRY.get_sample_value("allowlist_sync_runs_total", {"status": "applied"}) is None


def test_feed_date_and_cache_use_are_gauges() -> None:
    """The feed's YYYYMMDD date is exported at 00:00 UTC; reading the cache shows as 1."""
    metrics = SyncMetrics()
    cached = SourceInfo(kind="cache", location="c", change_number=375, file_date="20251028")
    metrics.record(Outcome(status="in_sync", dry_run=False, source=cached), finished_at=1.0)
    s = samples(metrics)
    assert (
        s["allowlist_sync_source_file_timestamp_seconds"]
        == datetime(2025, 10, 28, tzinfo=UTC).timestamp()
    )
    assert s["allowlist_sync_source_cache_used"] == 1
    fresh = SourceInfo(kind="date_probe", location="u", change_number=376, file_date="20251104")
    metrics.record(Outcome(status="in_sync", dry_run=False, source=fresh), finished_at=2.0)
    assert samples(metrics)["allowlist_sync_source_cache_used"] == 0


def test_an_unreadable_feed_date_is_left_out() -> None:
    """A file date that is not a real YYYYMMDD date exports nothing rather than a wrong time."""
    assert file_date_timestamp("20251399") is None
    assert file_date_timestamp("") is None
    assert file_date_timestamp(None) is None
    metrics = SyncMetrics()
    odd = SourceInfo(kind="url", location="u", file_date="2025-10-28")
    metrics.record(Outcome(status="in_sync", dry_run=False, source=odd), finished_at=1.0)
    assert "allowlist_sync_source_file_timestamp_seconds" not in samples(metrics)


def test_consecutive_failures_count_until_a_success() -> None:
    """Failed and refused runs add one each; a success sets the count back to 0."""
    metrics = SyncMetrics()
    assert samples(metrics)["allowlist_sync_consecutive_failures"] == 0
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=1.0)
    metrics.record(Outcome(status="refused", dry_run=False), finished_at=2.0)
    assert samples(metrics)["allowlist_sync_consecutive_failures"] == 2
    metrics.record(applied(), finished_at=3.0)
    assert samples(metrics)["allowlist_sync_consecutive_failures"] == 0


def test_seed_starts_from_a_persisted_state() -> None:
    """A new process starts with the persisted last success and failure streak."""
    metrics = SyncMetrics()
    metrics.seed(last_success=500.0, consecutive_failures=4)
    s = samples(metrics)
    assert s["allowlist_sync_last_success_timestamp_seconds"] == 500.0
    assert s["allowlist_sync_consecutive_failures"] == 4
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=600.0)
    metrics.seed(last_success=100.0, consecutive_failures=0)  # older: changes nothing
    s = samples(metrics)
    assert s["allowlist_sync_last_success_timestamp_seconds"] == 500.0
    assert s["allowlist_sync_consecutive_failures"] == 5


def test_last_run_changes_are_gauges_of_that_run() -> None:
    """What the last run added and removed; 0 for a run that wrote nothing."""
    metrics = SyncMetrics(one_shot=True)
    metrics.record(applied(), finished_at=1.0)
    s = samples(metrics)
    assert (
        s["allowlist_sync_last_run_added_cidrs"],
        s["allowlist_sync_last_run_removed_cidrs"],
    ) == (
        2,
        1,
    )
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=2.0)
    s = samples(metrics)
    assert (
        s["allowlist_sync_last_run_added_cidrs"],
        s["allowlist_sync_last_run_removed_cidrs"],
    ) == (
        0,
        0,
    )


def test_one_shot_exports_gauges_only() -> None:
    """A one-shot registry holds no counter, so no push resets one; nor process metrics."""
    metrics = SyncMetrics(one_shot=True)
    metrics.record(applied(), finished_at=1.0)
    text = metrics.exposition().decode()
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert set(types.values()) == {"gauge"}
    assert "allowlist_sync_last_run_success" in types
    assert not any(name.startswith("process_") for name in types)


def test_serve_adds_counters_and_process_metrics_to_the_endpoint_only() -> None:
    """Serve's /metrics has counters and process metrics; what it pushes has no process metrics."""
    metrics = SyncMetrics()
    metrics.record(applied(), finished_at=1.0)
    endpoint = {f.name for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert {"allowlist_sync_runs", "process_start_time_seconds"} <= endpoint
    pushed = generate_latest(metrics.registry).decode()
    assert "allowlist_sync_runs_total" in pushed and "process_" not in pushed


def test_next_retry_comes_from_its_source() -> None:
    """The next-retry gauge exists only while its source names a time."""
    metrics = SyncMetrics()
    when: list[datetime | None] = [None]
    metrics.next_retry_source = lambda: when[0]
    assert "allowlist_sync_next_retry_timestamp_seconds" not in samples(metrics)
    when[0] = datetime(2025, 10, 28, 6, 15, tzinfo=UTC)
    assert samples(metrics)["allowlist_sync_next_retry_timestamp_seconds"] == when[0].timestamp()
