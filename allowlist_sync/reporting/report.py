"""After a run: record, export, announce and remember it. Used by `sync` and `serve`.

    report_all(outcomes)   metrics.record each target -> textfile / Pushgateway, once
                           -> webhook per target (once per incident of that target)
                           -> each target's run state (last success, failure streak,
                              incident) saved in the cache folder, so the next process
                              starts where this one ended
    report(outcome)        the same for one target (the environment-only setup)
    report_fleet(fleet)    the same for a FleetOutcome; a run that failed as a whole
                           (nothing attempted) counts as a failure of every known target

Every step here is best effort: a metrics file that cannot be written, a Pushgateway that is
down, a webhook that fails or a state that cannot be saved is logged as a warning and never
changes the run's result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import pushadd_to_gateway, write_to_textfile
from prometheus_client.metrics_core import Metric

from allowlist_sync.azure.cache import default_cache_dir
from allowlist_sync.config import RunSettings, Settings
from allowlist_sync.logs import get_logger, register_secret
from allowlist_sync.outcome import DEFAULT_TARGET, FleetOutcome, Outcome
from allowlist_sync.reporting.metrics import SyncMetrics
from allowlist_sync.reporting.notify import build_message, decide, safe_url, send_webhook
from allowlist_sync.reporting.runstate import RunState, load_state, save_state, state_path

log = get_logger(__name__)

#: Seconds a Pushgateway push may take.
PUSH_TIMEOUT = 10.0


@dataclass(frozen=True)
class ReportTarget:
    """A target as reporting knows it before any run: its name, account and owned rule."""

    name: str
    account_id: int | None
    rule_name: str | None

    @classmethod
    def of_settings(cls, settings: Settings) -> ReportTarget:
        """The one target of the environment-only setup."""
        return cls(DEFAULT_TARGET, settings.account_id, settings.rule_name)


class OneTarget:
    """A collector of one target's series (and the series of no target, such as the version),
    for the Pushgateway group of that target."""

    def __init__(self, metrics: SyncMetrics, target: str) -> None:
        self._metrics = metrics
        self._target = target

    def collect(self) -> Iterator[Metric]:
        for family in self._metrics.collect():
            own = [
                s for s in family.samples if s.labels.get("target", self._target) == self._target
            ]
            if own:
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = own
                yield copy


class Reporter:
    """Reports each Outcome to metrics (and their file or Pushgateway) and the webhook.

    `targets`: the configured targets (their metrics exist from the start; a run that failed
    as a whole is reported for each); by default the environment's one target when `run` is
    a `Settings`, else none (targets are then learned from the Outcomes). `serve=True` for the
    long-running service (counters and process metrics on `/metrics`, each target's state
    loaded at once); otherwise a one-shot run, which exports gauges only.
    """

    def __init__(
        self,
        run: RunSettings,
        metrics: SyncMetrics | None = None,
        *,
        targets: Sequence[ReportTarget] | None = None,
        webhook_transport: httpx.BaseTransport | None = None,
        serve: bool = False,
    ) -> None:
        self.settings = run
        if targets is None:
            targets = [ReportTarget.of_settings(run)] if isinstance(run, Settings) else []
        self.targets: dict[str, ReportTarget] = {t.name: t for t in targets}
        # A one-shot run exports the targets it ran (and the last success of the others, from
        # the textfile), not a failure streak of 0 for a target that did not run.
        self.metrics = (
            metrics
            if metrics is not None
            else SyncMetrics(one_shot=not serve, targets=list(self.targets) if serve else [])
        )
        self._webhook_transport = webhook_transport
        self._state_dir = run.cache_dir or default_cache_dir()
        self._states: dict[tuple[str, bool], RunState] = {}
        if run.webhook_url is not None:
            register_secret(run.webhook_url.get_secret_value())
        if run.metrics_file is not None:
            self._restore(run.metrics_file)
        if serve:  # the last success is known before the first run of this process ends
            for target in self.targets.values():
                self.state(target, dry_run=False)

    def _target_of(self, outcome: Outcome) -> ReportTarget:
        # The Outcome names its account and rule; a configured target fills in what a run
        # that failed early left out.
        known = self.targets.get(outcome.target) or ReportTarget(outcome.target, None, None)
        return ReportTarget(
            outcome.target,
            outcome.account_id if outcome.account_id is not None else known.account_id,
            outcome.rule_name or known.rule_name,
        )

    def state_file(self, target: ReportTarget, *, dry_run: bool) -> Path | None:
        """Where the run state of a target (apply or dry-run) is kept; None when unknown."""
        if target.account_id is None or target.rule_name is None:
            return None
        return state_path(
            self._state_dir,
            account_id=target.account_id,
            rule_name=target.rule_name,
            dry_run=dry_run,
        )

    def state(self, target: ReportTarget, *, dry_run: bool) -> RunState:
        """A target's run state, read once from the cache folder and fed into the metrics."""
        state = self._states.get((target.name, dry_run))
        if state is None:
            path = self.state_file(target, dry_run=dry_run)
            state = load_state(path) if path is not None else RunState()
            self._states[(target.name, dry_run)] = state
            self.metrics.seed(
                last_success=state.last_success,
                consecutive_failures=state.consecutive_failures,
                target=target.name,
            )
        return state

    def report(self, outcome: Outcome) -> None:
        """Record, export and announce one finished run, and remember it; never raises."""
        self.report_all([outcome])

    def report_fleet(self, fleet: FleetOutcome, *, ran: Sequence[str] | None = None) -> None:
        """Report every target of a fleet run; a run-level failure fails each target that was to
        run (`ran`: their names, e.g. a `--target` selection; default: every known target)."""
        outcomes = list(fleet.targets)
        if not outcomes and fleet.error is not None:
            charged = [t for t in self.targets.values() if ran is None or t.name in ran]
            outcomes = [
                Outcome(
                    status="failed",
                    dry_run=fleet.dry_run,
                    target=t.name,
                    account_id=t.account_id,
                    rule_name=t.rule_name,
                    error=fleet.error,
                    duration_seconds=fleet.duration_seconds,
                )
                for t in charged
            ]
        self.report_all(outcomes)

    def report_all(self, outcomes: Sequence[Outcome]) -> None:
        """Record every target's run, export the metrics once, announce each, remember each.

        Never raises.
        """
        finished_at = time.time()
        steps: list[tuple[Outcome, ReportTarget, RunState, int]] = []
        for outcome in outcomes:
            target = self._target_of(outcome)
            state = self.state(target, dry_run=outcome.dry_run)
            failures_before = self.metrics.consecutive_failures(target.name)
            try:
                self.metrics.record(outcome, finished_at=finished_at)
            except Exception as exc:  # metrics must never fail a run
                log.warning(
                    "metrics_record_failed",
                    target=target.name,
                    error=f"{type(exc).__name__}: {exc}",
                )
            state.last_success = self.metrics.last_success(target.name)
            state.consecutive_failures = self.metrics.consecutive_failures(target.name)
            steps.append((outcome, target, state, failures_before))
        self.export_metrics(pushed=[target.name for _, target, _, _ in steps])
        for outcome, target, state, failures_before in steps:
            self.notify(outcome, state, failures_before=failures_before, target=target)
            path = self.state_file(target, dry_run=outcome.dry_run)
            if path is None:
                log.debug("run_state_not_saved", target=target.name, reason="account unknown")
                continue
            save_state(path, state)

    def export_metrics(self, pushed: Sequence[str] = ()) -> None:
        """Write the textfile and push the `pushed` targets to the Pushgateway, when configured."""
        settings = self.settings
        if settings.metrics_file is not None:
            self._write_textfile(settings.metrics_file)
        if settings.pushgateway_url is not None:
            for name in pushed:
                self._push(settings.pushgateway_url, settings.pushgateway_job, name)

    def notify(
        self,
        outcome: Outcome,
        state: RunState,
        *,
        failures_before: int = 0,
        target: ReportTarget | None = None,
    ) -> bool:
        """Send the webhook message when the policy and the target's open incident say so.

        True when one was delivered; the incident in `state` moves on only then, so a message
        that could not be delivered is tried again at the next run.
        """
        settings = self.settings
        if settings.webhook_url is None:
            return False
        target = target if target is not None else self._target_of(outcome)
        notice = decide(outcome, settings.notify, state.incident)
        if not notice.send:
            state.incident = notice.incident
            log.debug("notification_skipped", target=target.name, reason=notice.reason)
            return False
        message = build_message(
            outcome,
            account_id=target.account_id,
            recovered_after=failures_before if notice.recovery else None,
        )
        try:
            delivered = send_webhook(
                settings.webhook_url.get_secret_value(),
                message,
                timeout=settings.webhook_timeout,
                retry_pause=min(settings.retry_backoff, 5.0),
                transport=self._webhook_transport,
            )
        except Exception as exc:  # a webhook must never fail a run
            log.warning("webhook_failed", target=target.name, error=f"{type(exc).__name__}: {exc}")
            return False
        if delivered:
            state.incident = notice.incident
        return delivered

    def _restore(self, path: Path) -> None:
        # Counters and the last success time survive from one one-shot run to the next.
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("metrics_file_unreadable", path=str(path), error=exc.strerror)
            return
        except UnicodeDecodeError as exc:  # not a textfile this job wrote: start afresh
            log.warning("metrics_file_unparsable", path=str(path), error=str(exc))
            return
        try:
            self.metrics.restore(text, targets=list(self.targets) or None)
        except ValueError as exc:
            log.warning("metrics_file_unparsable", path=str(path), error=str(exc))

    def _write_textfile(self, path: Path) -> None:
        # write_to_textfile writes a temporary file beside `path` and renames it over `path`,
        # so the node exporter never reads a half-written file.
        try:
            write_to_textfile(str(path), self.metrics.registry)
        except Exception as exc:
            log.warning("metrics_file_failed", path=str(path), error=f"{type(exc).__name__}: {exc}")
            return
        log.debug("metrics_file_written", path=str(path))

    def _push(self, url: str, job: str, target: str) -> None:
        # One group per target (grouping key job + target): the Pushgateway replaces a pushed
        # metric's whole family within a group, so a run of one target (`--target`, a target
        # that failed early) never erases another's series. POST (pushadd), not PUT: a metric
        # this run does not have (the last success time, after a failure) keeps the value an
        # earlier run pushed.
        registry = CollectorRegistry(auto_describe=False)
        registry.register(OneTarget(self.metrics, target))
        try:
            pushadd_to_gateway(
                url,
                job=job,
                registry=registry,
                grouping_key={"target": target},
                timeout=PUSH_TIMEOUT,
            )
        except Exception as exc:
            log.warning(
                "metrics_push_failed",
                pushgateway=safe_url(url),
                target=target,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        log.info("metrics_pushed", pushgateway=safe_url(url), job=job, target=target)
