"""Counts that tell the truth: `run_finished` and the JSON `counts` report what was written.

`added` / `removed` are the changes a run wrote and read back; `planned_add` / `planned_remove`
are what its plan asked for. A refused, failed or dry run wrote nothing, whatever it planned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorStore, Fault
from allowlist_sync.outcome import Outcome
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import owned_rule
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc, write_feed

PUBLISHED = aad_prefixes(feed_doc())
STALE = "192.0.2.0/24"


def run(
    settings: Settings,
    feed: Path = PUBLIC_FEED,
    *,
    dbt_transport: httpx.BaseTransport | None = None,
    **options: Any,
) -> tuple[Outcome, Any]:
    """Run the pipeline once; the outcome and its one `run_finished` event."""
    with capture_logs() as events:
        outcome = run_once(
            settings,
            RunOptions(source_file=str(feed), **options),
            dbt_transport=dbt_transport,
        )
    finished = [e for e in events if e["event"] == "run_finished"]
    assert len(finished) == 1
    return outcome, finished[0]


class DenyBeforeWrite(httpx.HTTPTransport):
    """Someone adds a deny rule holding `cidr` between this job's read and its write."""

    def __init__(self, store: EmulatorStore, cidr: str) -> None:
        super().__init__()
        self.store, self.cidr = store, cidr

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method in ("POST", "PUT") and self.cidr:
            self.store.seed_rule("Blocked meanwhile", type=2, cidrs=[self.cidr])
            self.cidr = ""
        return super().handle_request(request)


def written(outcome: Outcome, event: dict[str, Any]) -> tuple[int, int]:
    """(added, removed) as the log event says them; the JSON counts must say the same."""
    counts = outcome.to_json()["counts"]
    assert (counts["added"], counts["removed"]) == (event["added"], event["removed"])
    assert (counts["planned_add"], counts["planned_remove"]) == (
        event["planned_add"],
        event["planned_remove"],
    )
    return event["added"], event["removed"]


def test_a_refused_run_counts_nothing_written(settings: Settings, store: EmulatorStore) -> None:
    """A lock-out refusal of a plan removing one CIDR reports removed=0, planned_remove=1."""
    store.seed_rule(settings.rule_name, cidrs=[*PUBLISHED, STALE])
    store.set_enforcement(True)
    store.caller_ip = "192.0.2.10"  # let in only by the range the plan would remove
    outcome, event = run(settings)
    assert outcome.status == "refused" and store.write_count() == 0
    assert written(outcome, event) == (0, 0)
    assert (event["planned_add"], event["planned_remove"]) == (0, 1)
    assert event["writes"] == 0


def test_a_write_refused_with_403_counts_nothing_written(
    settings: Settings, store: EmulatorStore
) -> None:
    """A PUT answered 403 reports added=0 / removed=0 beside the planned 1 and 1."""
    store.seed_rule(settings.rule_name, cidrs=[*PUBLISHED[1:], STALE])
    store.add_fault(Fault(method="PUT", action="status", status=403))
    outcome, event = run(settings)
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.kind == "permission"
    assert written(outcome, event) == (0, 0)
    assert (event["planned_add"], event["planned_remove"]) == (1, 1)
    assert stored(store) == {*PUBLISHED[1:], STALE}  # the 403 wrote nothing indeed


def test_a_failed_create_counts_nothing_written(settings: Settings, store: EmulatorStore) -> None:
    """A create answered 403 reports added=0 although the plan created the whole rule."""
    store.add_fault(Fault(method="POST", action="status", status=403))
    outcome, event = run(settings)
    assert outcome.status == "failed" and owned_rule(store) is None
    assert written(outcome, event) == (0, 0)
    assert event["planned_add"] == len(PUBLISHED)
    assert outcome.to_json()["rule"]["created"] is False


def test_an_applied_run_counts_what_it_wrote(settings: Settings, store: EmulatorStore) -> None:
    """A verified write reports the CIDRs it added and removed, equal to the plan."""
    store.seed_rule(settings.rule_name, cidrs=[*PUBLISHED[2:], STALE])
    outcome, event = run(settings)
    assert outcome.status == "applied"
    assert written(outcome, event) == (2, 1)
    assert (event["planned_add"], event["planned_remove"]) == (2, 1)


def test_a_dry_run_counts_nothing_written(settings: Settings, store: EmulatorStore) -> None:
    """A dry run with changes pending reports 0 written and the plan's numbers as planned."""
    outcome, event = run(settings, dry_run=True)
    assert outcome.status == "changes_pending"
    assert written(outcome, event) == (0, 0)
    assert event["planned_add"] == len(PUBLISHED)


def test_cidrs_the_platform_refuses_are_not_counted_as_added(
    settings: Settings, store: EmulatorStore, tmp_path: Path
) -> None:
    """A write whose one new CIDR a deny rule blocks counts it as planned, not as added."""
    store.seed_rule(settings.rule_name, cidrs=PUBLISHED)
    new = "20.20.64.0/19"
    feed = write_feed(tmp_path / "f.json", [*PUBLISHED[1:], new])
    outcome, event = run(settings, feed, dbt_transport=DenyBeforeWrite(store, new))
    assert outcome.status == "failed" and outcome.failed_cidrs == (new,)
    assert written(outcome, event) == (0, 1)
    assert (event["planned_add"], event["planned_remove"]) == (1, 1)


def stored(store: EmulatorStore) -> set[str]:
    """The owned rule's CIDRs as stored."""
    rule = owned_rule(store)
    assert rule is not None
    return {c["cidr"] for c in rule["cidrs"]}
