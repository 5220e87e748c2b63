"""Prometheus metrics of the job, in a registry of its own (never prometheus_client's global one).

`SyncMetrics` is a collector over plain values: every Outcome is `record`ed into it, and it
renders them on demand, for `/metrics` in serve mode, a Pushgateway push or a node-exporter
textfile. Gauges that have no value yet (no successful run, no next run in one-shot mode) are
left out rather than exported as 0, so a push after a failed run cannot overwrite the last
success time; alerts use `absent()` for "never succeeded".

Every series about a run carries a `target` label: the Outcome's target (`default` for the
environment-only setup), so one export holds every target of a config file and each alert
fires for the target it is about. What belongs to the process (the version, skipped scheduled
runs, the next run and retry: the schedule is one for all targets) has no `target` label.

Two shapes, one name set:

    serve      counters (`*_total`) and gauges on `/metrics`, plus the process collector
    one-shot   gauges only (textfile, Pushgateway): a counter that starts again at each run's
               push would read as a reset every time, so a one-shot run reports what it did
               (`last_run_added_cidrs`, ...) and the persisted state carries the rest
               (`last_success_timestamp_seconds`, `consecutive_failures`)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from allowlist_sync._version import __version__
from allowlist_sync.outcome import DEFAULT_TARGET, STATUSES, Outcome

PREFIX = "allowlist_sync"
#: The label naming the target (the dbt account and rule) a series is about.
TARGET_LABEL = "target"
#: Why a scheduled run did not start: past the misfire grace time, or the previous one still ran.
SKIP_REASONS = ("missed", "overlap")


@dataclass
class _Values:
    """What one target's runs left behind."""

    #: Every outcome status, so that each `runs_total` series exists (at 0) from the start.
    runs: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0.0))
    #: A run was recorded, or the run state seeded it: its failure streak is known.
    known: bool = False
    cidrs_added: float = 0.0
    cidrs_removed: float = 0.0
    cidrs_refused: float = 0.0
    desired: float | None = None
    current: float | None = None
    change_number: float | None = None
    last_run: float | None = None
    last_success: float | None = None
    last_duration: float | None = None
    last_ok: float | None = None
    consecutive_failures: float = 0.0
    last_added: float | None = None
    last_removed: float | None = None
    source_file_time: float | None = None
    source_cache_used: float | None = None


def file_date_timestamp(file_date: str | None) -> float | None:
    """Unix time of a feed's `YYYYMMDD` date at 00:00 UTC; None when absent or not a date."""
    if file_date is None:
        return None
    try:
        return datetime.strptime(file_date, "%Y%m%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class SyncMetrics:
    """The job's metrics: fed with Outcomes, rendered in the Prometheus text format.

    `targets` are the targets known before any run (their series exist from the start, and a
    textfile's values are restored for them only); a target first seen in an Outcome is added
    then. `one_shot=True` (a `sync` run exporting to a textfile or Pushgateway) leaves counters
    out. `registry` is what is exported; `exposition()` (serve's `/metrics`) adds process metrics.
    """

    def __init__(
        self, *, one_shot: bool = False, targets: Iterable[str] = (DEFAULT_TARGET,)
    ) -> None:
        self._lock = threading.Lock()
        self._targets: dict[str, _Values] = {name: _Values(known=True) for name in targets}
        self._skipped: dict[str, float] = dict.fromkeys(SKIP_REASONS, 0.0)
        self.one_shot = one_shot
        #: Asked at every collection for the next scheduled run (serve mode sets it).
        self.next_run_source: Callable[[], datetime | None] | None = None
        #: Asked at every collection for the pending retry of a failed run (serve mode sets it).
        self.next_retry_source: Callable[[], datetime | None] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._endpoint = self.registry
        if not one_shot:
            self._endpoint = CollectorRegistry(auto_describe=False)
            self._endpoint.register(self)
            ProcessCollector(registry=self._endpoint)

    def _target(self, name: str) -> _Values:
        # Called with the lock held.
        values = self._targets.get(name)
        if values is None:
            values = self._targets[name] = _Values()
        return values

    @property
    def targets(self) -> list[str]:
        """The targets with series, in the order they became known."""
        with self._lock:
            return list(self._targets)

    def record(self, outcome: Outcome, *, finished_at: float | None = None) -> None:
        """Count one finished run of the Outcome's target."""
        now = time.time() if finished_at is None else finished_at
        plan = outcome.plan
        with self._lock:
            v = self._target(outcome.target)
            v.known = True
            v.runs[outcome.status] = v.runs.get(outcome.status, 0.0) + 1
            v.last_run = now
            v.last_duration = outcome.duration_seconds
            ok = outcome.succeeded
            v.last_ok = 1.0 if ok else 0.0
            if ok:
                v.last_success = now
                v.consecutive_failures = 0.0
            else:
                v.consecutive_failures += 1
            v.last_added = v.last_removed = 0.0
            source = outcome.source
            if source is not None:
                if source.change_number is not None:
                    v.change_number = float(source.change_number)
                file_time = file_date_timestamp(source.file_date)
                if file_time is not None:
                    v.source_file_time = file_time
                v.source_cache_used = 1.0 if source.kind == "cache" else 0.0
            if plan is None:
                return
            v.desired = float(len(plan.desired))
            # A verified write (the run may still fail for CIDRs the platform refused); a dry
            # run or a refusal wrote nothing, whatever it planned.
            written = (
                not outcome.dry_run
                and outcome.error is None
                and (outcome.status == "applied" or bool(outcome.failed_cidrs))
            )
            if written:
                # The rule now holds the desired set, less what the platform refused.
                v.last_added = float(outcome.added)
                v.last_removed = float(outcome.removed)
                v.cidrs_added += v.last_added
                v.cidrs_removed += v.last_removed
                v.cidrs_refused += len(outcome.failed_cidrs)
                v.current = float(len(plan.desired) - len(outcome.failed_cidrs))
            else:
                v.current = float(plan.current_count)

    def record_skipped(self, reason: str) -> None:
        """Count a scheduled run that did not start (`missed` or `overlap`)."""
        with self._lock:
            self._skipped[reason] = self._skipped.get(reason, 0.0) + 1

    def last_success(self, target: str = DEFAULT_TARGET) -> float | None:
        """Unix time of the target's last successful run, if any."""
        with self._lock:
            values = self._targets.get(target)
            return values.last_success if values is not None else None

    def consecutive_failures(self, target: str = DEFAULT_TARGET) -> int:
        """The target's unsuccessful runs since its last success."""
        with self._lock:
            values = self._targets.get(target)
            return int(values.consecutive_failures) if values is not None else 0

    def seed(
        self,
        *,
        last_success: float | None,
        consecutive_failures: int,
        target: str = DEFAULT_TARGET,
    ) -> None:
        """Start a target from a persisted state (before this process recorded a run of it)."""
        with self._lock:
            v = self._target(target)
            if last_success is not None and (
                v.last_success is None or last_success > v.last_success
            ):
                v.last_success = last_success
            if v.last_run is None:
                v.consecutive_failures = float(max(consecutive_failures, 0))
                v.known = True

    def restore(self, text: str, *, targets: Collection[str] | None = None) -> None:
        """Carry counters and last success times over from an earlier exposition (a textfile).

        Each target keeps its own values; a sample without a `target` label (written before
        there were targets) belongs to the default target. Only `targets` (by default the
        targets this SyncMetrics knows, when it knows any) are restored: a target removed from
        the configuration is not exported for ever. Raises ValueError when `text` is not in
        the Prometheus text format.
        """
        counters = {
            f"{PREFIX}_cidrs_added_total": "cidrs_added",
            f"{PREFIX}_cidrs_removed_total": "cidrs_removed",
            f"{PREFIX}_cidrs_refused_total": "cidrs_refused",
        }
        families = list(text_string_to_metric_families(text))  # parse it all before changing
        with self._lock:
            only = set(targets) if targets is not None else set(self._targets) or None
            for family in families:
                for sample in family.samples:
                    if sample.name == f"{PREFIX}_runs_skipped_total":
                        reason = sample.labels.get("reason", "")
                        if reason in self._skipped:
                            self._skipped[reason] += sample.value
                        continue
                    name = sample.labels.get(TARGET_LABEL, DEFAULT_TARGET)
                    if only is not None and name not in only:
                        continue
                    if sample.name == f"{PREFIX}_runs_total":
                        v = self._target(name)
                        status = sample.labels.get("status", "")
                        if status in v.runs:
                            v.runs[status] += sample.value
                    elif sample.name in counters:
                        v = self._target(name)
                        attr = counters[sample.name]
                        setattr(v, attr, getattr(v, attr) + sample.value)
                    elif sample.name == f"{PREFIX}_last_success_timestamp_seconds":
                        v = self._target(name)
                        if v.last_success is None or sample.value > v.last_success:
                            v.last_success = sample.value

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format (with process metrics in serve mode)."""
        return generate_latest(self._endpoint)

    def collect(self) -> Iterator[Metric]:
        """prometheus_client collector protocol: the current values as metric families."""
        with self._lock:
            targets = {name: replace(v, runs=dict(v.runs)) for name, v in self._targets.items()}
            skipped = dict(self._skipped)
        yield _info()
        if not self.one_shot:
            yield from _counters(targets, skipped)
        yield from _gauges(targets)
        schedule = (
            (
                "next_run_timestamp_seconds",
                "When the scheduler runs next (Unix time; serve mode only).",
                _timestamp(self.next_run_source),
            ),
            (
                "next_retry_timestamp_seconds",
                "When a failed run is tried again (Unix time; serve mode, while one is pending).",
                _timestamp(self.next_retry_source),
            ),
        )
        for name, documentation, value in schedule:
            if value is not None:
                yield GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


#: The per-target gauges: name, help, and which value of a target's runs each shows.
_GAUGES: tuple[tuple[str, str, Callable[[_Values], float | None]], ...] = (
    ("desired_cidrs", "CIDRs the owned rule should hold (last run).", lambda v: v.desired),
    (
        "current_cidrs",
        "CIDRs the owned rule holds (after the last run).",
        lambda v: v.current,
    ),
    (
        "last_run_added_cidrs",
        "CIDRs the last run added to the owned rule.",
        lambda v: v.last_added,
    ),
    (
        "last_run_removed_cidrs",
        "CIDRs the last run removed from the owned rule.",
        lambda v: v.last_removed,
    ),
    (
        "source_change_number",
        "changeNumber of the service-tags file the last run read.",
        lambda v: v.change_number,
    ),
    (
        "source_file_timestamp_seconds",
        "Date of the service-tags file the last run read (Unix time, 00:00 UTC).",
        lambda v: v.source_file_time,
    ),
    (
        "source_cache_used",
        "1 if the last run read the feed from the local cache (Microsoft unreachable).",
        lambda v: v.source_cache_used,
    ),
    (
        "last_run_timestamp_seconds",
        "When the last run finished (Unix time).",
        lambda v: v.last_run,
    ),
    (
        "last_success_timestamp_seconds",
        "When the last successful run finished (Unix time); absent before any success.",
        lambda v: v.last_success,
    ),
    ("last_run_duration_seconds", "How long the last run took.", lambda v: v.last_duration),
    ("last_run_success", "1 if the last run succeeded, 0 if not.", lambda v: v.last_ok),
    (
        "consecutive_failures",
        "Unsuccessful runs (failed or refused) since the last success.",
        lambda v: v.consecutive_failures if v.known else None,
    ),
)


def _gauges(targets: dict[str, _Values]) -> Iterator[Metric]:
    """A family per gauge with a series per target that has a value for it."""
    for name, documentation, value_of in _GAUGES:
        family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=[TARGET_LABEL])
        for target, v in targets.items():
            value = value_of(v)
            if value is not None:
                family.add_metric([target], value)
        if family.samples:
            yield family


def _timestamp(source: Callable[[], datetime | None] | None) -> float | None:
    when = source() if source is not None else None
    return when.timestamp() if when is not None else None


def _counters(targets: dict[str, _Values], skipped: dict[str, float]) -> Iterator[Metric]:
    """The counters: serve mode only, where one process keeps counting."""
    runs = CounterMetricFamily(
        f"{PREFIX}_runs", "Sync runs, by outcome status.", labels=["status", TARGET_LABEL]
    )
    for target, v in targets.items():
        for status, count in v.runs.items():
            runs.add_metric([status, target], count)
    yield runs
    skips = CounterMetricFamily(
        f"{PREFIX}_runs_skipped",
        "Scheduled runs that did not start: missed (later than the misfire grace time) "
        "or overlap (the previous run was still going).",
        labels=["reason"],
    )
    for reason, count in skipped.items():
        skips.add_metric([reason], count)
    yield skips
    changes = (
        ("cidrs_added", "CIDRs added to the owned rule.", "cidrs_added"),
        ("cidrs_removed", "CIDRs removed from the owned rule.", "cidrs_removed"),
        (
            "cidrs_refused",
            "CIDRs the dbt platform refused to store (failed_cidrs).",
            "cidrs_refused",
        ),
    )
    for name, documentation, attr in changes:
        family = CounterMetricFamily(f"{PREFIX}_{name}", documentation, labels=[TARGET_LABEL])
        for target, v in targets.items():
            family.add_metric([target], getattr(v, attr))
        yield family


def _info() -> Metric:
    info = GaugeMetricFamily(
        f"{PREFIX}_build_info", "Version of allowlist-sync.", labels=["version"]
    )
    info.add_metric([__version__], 1.0)
    return info
