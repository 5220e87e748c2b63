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
    assert s['allowlist_sync_runs_total{status="applied",target="default"}'] == 1
    assert s['allowlist_sync_runs_total{status="failed",target="default"}'] == 0
    assert s['allowlist_sync_cidrs_added_total{target="default"}'] == 2
    assert s['allowlist_sync_cidrs_removed_total{target="default"}'] == 1
    assert s['allowlist_sync_cidrs_refused_total{target="default"}'] == 0
    assert s['allowlist_sync_desired_cidrs{target="default"}'] == 5
    assert s['allowlist_sync_current_cidrs{target="default"}'] == 5
    assert s['allowlist_sync_source_change_number{target="default"}'] == 375
    assert s['allowlist_sync_last_success_timestamp_seconds{target="default"}'] == 1000.0
    assert s['allowlist_sync_last_run_duration_seconds{target="default"}'] == 1.5
    assert s['allowlist_sync_last_run_success{target="default"}'] == 1


def test_platform_refused_cidrs_are_counted() -> None:
    """CIDRs the platform refused are counted as refused, not added, and fail the run."""
    metrics = SyncMetrics()
    metrics.record(applied(failed=(str(NETS[4]),)), finished_at=1000.0)
    s = samples(metrics)
    assert s['allowlist_sync_cidrs_added_total{target="default"}'] == 1
    assert s['allowlist_sync_cidrs_refused_total{target="default"}'] == 1
    assert s['allowlist_sync_current_cidrs{target="default"}'] == 4
    assert s['allowlist_sync_last_run_success{target="default"}'] == 0


def test_unknown_values_are_left_out_not_zero() -> None:
    """Before any success there is no last-success sample; without a schedule, no next run."""
    metrics = SyncMetrics()
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=1000.0)
    s = samples(metrics)
    assert 'allowlist_sync_last_success_timestamp_seconds{target="default"}' not in s
    assert "allowlist_sync_next_run_timestamp_seconds" not in s
    assert 'allowlist_sync_desired_cidrs{target="default"}' not in s
    assert s['allowlist_sync_runs_total{status="failed",target="default"}'] == 1
    assert s['allowlist_sync_last_run_timestamp_seconds{target="default"}'] == 1000.0


def test_a_failure_keeps_the_last_success_time() -> None:
    """A failed run after a success leaves the last success time where it was."""
    metrics = SyncMetrics()
    metrics.record(applied(), finished_at=1000.0)
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=2000.0)
    assert (
        samples(metrics)['allowlist_sync_last_success_timestamp_seconds{target="default"}']
        == 1000.0
    )


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
    assert s['allowlist_sync_runs_total{status="applied",target="default"}'] == 1
    assert s['allowlist_sync_runs_total{status="failed",target="default"}'] == 1
    assert s['allowlist_sync_runs_skipped_total{reason="overlap"}'] == 1
    assert s['allowlist_sync_cidrs_added_total{target="default"}'] == 2
    assert s['allowlist_sync_last_success_timestamp_seconds{target="default"}'] == 1000.0


def test_registry_is_not_the_global_one() -> None:
    """Each SyncMetrics has its own registry, so two never clash and nothing leaks globally."""
    from prometheus_client import REGISTRY

    a, b = SyncMetrics(), SyncMetrics()
    assert a.registry is not b.registry and a.registry is not REGISTRY
    assert (
        REGISTRY.get_sample_value(
            "allowlist_sync_runs_total", {"status": "applied", "target": "default"}
        )
        is None
    )


def test_feed_date_and_cache_use_are_gauges() -> None:
    """The feed's YYYYMMDD date is exported at 00:00 UTC; reading the cache shows as 1."""
    metrics = SyncMetrics()
    cached = SourceInfo(kind="cache", location="c", change_number=375, file_date="20251028")
    metrics.record(Outcome(status="in_sync", dry_run=False, source=cached), finished_at=1.0)
    s = samples(metrics)
    assert (
        s['allowlist_sync_source_file_timestamp_seconds{target="default"}']
        == datetime(2025, 10, 28, tzinfo=UTC).timestamp()
    )
    assert s['allowlist_sync_source_cache_used{target="default"}'] == 1
    fresh = SourceInfo(kind="date_probe", location="u", change_number=376, file_date="20251104")
    metrics.record(Outcome(status="in_sync", dry_run=False, source=fresh), finished_at=2.0)
    assert samples(metrics)['allowlist_sync_source_cache_used{target="default"}'] == 0


def test_an_unreadable_feed_date_is_left_out() -> None:
    """A file date that is not a real YYYYMMDD date exports nothing rather than a wrong time."""
    assert file_date_timestamp("20251399") is None
    assert file_date_timestamp("") is None
    assert file_date_timestamp(None) is None
    metrics = SyncMetrics()
    odd = SourceInfo(kind="url", location="u", file_date="2025-10-28")
    metrics.record(Outcome(status="in_sync", dry_run=False, source=odd), finished_at=1.0)
    assert 'allowlist_sync_source_file_timestamp_seconds{target="default"}' not in samples(metrics)


def test_consecutive_failures_count_until_a_success() -> None:
    """Failed and refused runs add one each; a success sets the count back to 0."""
    metrics = SyncMetrics()
    assert samples(metrics)['allowlist_sync_consecutive_failures{target="default"}'] == 0
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=1.0)
    metrics.record(Outcome(status="refused", dry_run=False), finished_at=2.0)
    assert samples(metrics)['allowlist_sync_consecutive_failures{target="default"}'] == 2
    metrics.record(applied(), finished_at=3.0)
    assert samples(metrics)['allowlist_sync_consecutive_failures{target="default"}'] == 0


def test_seed_starts_from_a_persisted_state() -> None:
    """A new process starts with the persisted last success and failure streak."""
    metrics = SyncMetrics()
    metrics.seed(last_success=500.0, consecutive_failures=4)
    s = samples(metrics)
    assert s['allowlist_sync_last_success_timestamp_seconds{target="default"}'] == 500.0
    assert s['allowlist_sync_consecutive_failures{target="default"}'] == 4
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=600.0)
    metrics.seed(last_success=100.0, consecutive_failures=0)  # older: changes nothing
    s = samples(metrics)
    assert s['allowlist_sync_last_success_timestamp_seconds{target="default"}'] == 500.0
    assert s['allowlist_sync_consecutive_failures{target="default"}'] == 5


def test_last_run_changes_are_gauges_of_that_run() -> None:
    """What the last run added and removed; 0 for a run that wrote nothing."""
    metrics = SyncMetrics(one_shot=True)
    metrics.record(applied(), finished_at=1.0)
    s = samples(metrics)
    assert (
        s['allowlist_sync_last_run_added_cidrs{target="default"}'],
        s['allowlist_sync_last_run_removed_cidrs{target="default"}'],
    ) == (
        2,
        1,
    )
    metrics.record(Outcome(status="failed", dry_run=False), finished_at=2.0)
    s = samples(metrics)
    assert (
        s['allowlist_sync_last_run_added_cidrs{target="default"}'],
        s['allowlist_sync_last_run_removed_cidrs{target="default"}'],
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


def of(target: str, outcome: Outcome) -> Outcome:
    """The outcome, as a run of `target`."""
    outcome.target = target
    return outcome


def test_two_targets_share_one_export_each_with_its_label() -> None:
    """Two targets recorded in one SyncMetrics are two series of each name, told apart by target."""
    metrics = SyncMetrics(one_shot=True, targets=["prod-us", "prod-eu"])
    metrics.record(of("prod-us", applied()), finished_at=1000.0)
    metrics.record(of("prod-eu", Outcome(status="failed", dry_run=False)), finished_at=1001.0)
    s = samples(metrics)
    assert s['allowlist_sync_last_run_success{target="prod-us"}'] == 1
    assert s['allowlist_sync_last_run_success{target="prod-eu"}'] == 0
    assert s['allowlist_sync_desired_cidrs{target="prod-us"}'] == 5
    assert 'allowlist_sync_desired_cidrs{target="prod-eu"}' not in s
    assert s['allowlist_sync_last_success_timestamp_seconds{target="prod-us"}'] == 1000.0
    assert 'allowlist_sync_last_success_timestamp_seconds{target="prod-eu"}' not in s
    assert not any('target="default"' in key for key in s)


def test_only_the_failing_target_s_streak_grows() -> None:
    """One target failing beside one succeeding grows the failure streak of the failing one only."""
    metrics = SyncMetrics(targets=["a", "b"])
    for when in (1.0, 2.0, 3.0):
        metrics.record(of("a", applied()), finished_at=when)
        metrics.record(of("b", Outcome(status="failed", dry_run=False)), finished_at=when)
    s = samples(metrics)
    assert s['allowlist_sync_consecutive_failures{target="a"}'] == 0
    assert s['allowlist_sync_consecutive_failures{target="b"}'] == 3
    assert s['allowlist_sync_runs_total{status="applied",target="a"}'] == 3
    assert s['allowlist_sync_runs_total{status="failed",target="b"}'] == 3
    assert s['allowlist_sync_runs_total{status="failed",target="a"}'] == 0
    assert (metrics.consecutive_failures("a"), metrics.consecutive_failures("b")) == (0, 3)
    assert (metrics.last_success("a"), metrics.last_success("b")) == (3.0, None)


def test_process_metrics_carry_no_target_label() -> None:
    """The version, skipped runs and the schedule belong to the process, not to a target."""
    metrics = SyncMetrics(targets=["a", "b"])
    metrics.next_run_source = lambda: datetime(2025, 10, 28, 6, tzinfo=UTC)
    metrics.record_skipped("missed")
    s = samples(metrics)
    assert s['allowlist_sync_runs_skipped_total{reason="missed"}'] == 1
    assert "allowlist_sync_next_run_timestamp_seconds" in s
    assert any(key.startswith("allowlist_sync_build_info{version=") for key in s)
    assert not any("target=" in key for key in s if "build_info" in key or "skipped" in key)


def test_restore_keeps_each_target_s_values() -> None:
    """Each target's counters and last success continue from a textfile, none mixed up."""
    first = SyncMetrics(targets=["a", "b"])
    first.record(of("a", applied()), finished_at=1000.0)
    first.record(of("b", applied()), finished_at=2000.0)
    first.record(of("b", applied()), finished_at=3000.0)
    second = SyncMetrics(targets=["a", "b"])
    second.restore(first.exposition().decode())
    s = samples(second)
    assert s['allowlist_sync_last_success_timestamp_seconds{target="a"}'] == 1000.0
    assert s['allowlist_sync_last_success_timestamp_seconds{target="b"}'] == 3000.0
    assert s['allowlist_sync_runs_total{status="applied",target="a"}'] == 1
    assert s['allowlist_sync_runs_total{status="applied",target="b"}'] == 2
    assert s['allowlist_sync_cidrs_added_total{target="b"}'] == 4


def test_restore_leaves_out_targets_no_longer_configured() -> None:
    """A textfile's target that is not among the known targets is not exported again."""
    first = SyncMetrics(targets=["old", "a"])
    first.record(of("old", applied()), finished_at=1000.0)
    first.record(of("a", applied()), finished_at=1000.0)
    second = SyncMetrics(one_shot=True, targets=["a"])
    second.restore(first.exposition().decode())
    assert not any('target="old"' in key for key in samples(second))


def test_restore_of_an_unlabelled_textfile_goes_to_the_default_target() -> None:
    """A textfile written before targets existed restores into the default target."""
    old = (
        "# TYPE allowlist_sync_last_success_timestamp_seconds gauge\n"
        "allowlist_sync_last_success_timestamp_seconds 1234.0\n"
        "# TYPE allowlist_sync_runs_total counter\n"
        'allowlist_sync_runs_total{status="applied"} 7.0\n'
    )
    metrics = SyncMetrics()
    metrics.restore(old)
    s = samples(metrics)
    assert s['allowlist_sync_last_success_timestamp_seconds{target="default"}'] == 1234.0
    assert s['allowlist_sync_runs_total{status="applied",target="default"}'] == 7


def test_a_target_seen_first_in_an_outcome_is_added() -> None:
    """An Outcome of a target not known up front gets its own series from then on."""
    metrics = SyncMetrics(targets=[])
    assert not any("target=" in key for key in samples(metrics))
    metrics.record(of("late", Outcome(status="refused", dry_run=False)), finished_at=1.0)
    assert samples(metrics)['allowlist_sync_consecutive_failures{target="late"}'] == 1


def test_a_target_name_with_quotes_and_newlines_survives_the_text_format() -> None:
    """Label values are escaped: an odd target name reads back as itself, and injects nothing."""
    odd = 'prod"} 1\nallowlist_sync_fake{x="'
    metrics = SyncMetrics(targets=[odd])
    metrics.record(of(odd, applied()), finished_at=1.0)
    text = metrics.exposition().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert "allowlist_sync_fake" not in names
    again = SyncMetrics(targets=[odd])
    again.restore(text)
    assert again.last_success(odd) == 1.0
