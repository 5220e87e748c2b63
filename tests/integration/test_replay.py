"""Replay every distinct weekly AzureActiveDirectory set since 2019 through the real pipeline.

`tests/data/AzureActiveDirectory-history.distinct.jsonl` holds each cloud's weekly sets with
consecutive duplicates dropped (Public 20, AzureGovernment 12, China 11), copied from the real
history of every weekly file. After every step the rule must equal that week's set, and each
change must take exactly one write and one verifying read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allowlist_sync.cidrs import build_desired
from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorStore
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import owned_rule, stored_networks
from tests.feeds import DATA

HISTORY = [
    json.loads(line)
    for line in (DATA / "AzureActiveDirectory-history.distinct.jsonl").read_text().splitlines()
]


def weeks(cloud: str) -> list[dict[str, Any]]:
    return sorted((w for w in HISTORY if w["cloud"] == cloud), key=lambda w: w["file_date"])


def feed_file(tmp_path: Path, week: dict[str, Any]) -> Path:
    path = tmp_path / f"ServiceTags_{week['cloud']}_{week['file_date']}.json"
    path.write_text(
        json.dumps(
            {
                "changeNumber": week["changeNumber"],
                "cloud": week["cloud"],
                "values": [
                    {
                        "name": "AzureActiveDirectory",
                        "id": "AzureActiveDirectory",
                        "properties": {
                            "changeNumber": week["tag_changeNumber"],
                            "addressPrefixes": week["addressPrefixes"],
                        },
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize("aggregate", [False, True], ids=["exact", "aggregated"])
@pytest.mark.parametrize("cloud", ["Public", "AzureGovernment", "China"])
def test_replay_history(
    settings: Settings, store: EmulatorStore, tmp_path: Path, cloud: str, aggregate: bool
) -> None:
    """Each weekly set is reached in one write and verified; unchanged weeks make no write."""
    configured = settings.model_copy(update={"azure_cloud": cloud, "aggregate": aggregate})
    store.seed_rule("Office VPN", cidrs=["198.51.100.0/24"])
    history = weeks(cloud)
    assert len(history) >= 10
    for week in history:
        writes_before = store.write_count()
        outcome = run_once(configured, RunOptions(source_file=str(feed_file(tmp_path, week))))
        assert outcome.status == "applied", (week["file_date"], outcome.error)
        assert store.write_count() - writes_before == 1, week["file_date"]
        assert outcome.requests == 3
        expected = build_desired(
            week["addressPrefixes"], families=["ipv4", "ipv6"], collapse=aggregate
        )
        rule = owned_rule(store)
        assert rule is not None
        assert stored_networks(rule) == {str(n) for n in expected}, week["file_date"]
        assert len(rule["cidrs"]) == len(expected)  # no duplicates
        again = run_once(configured, RunOptions(source_file=str(feed_file(tmp_path, week))))
        assert again.status == "in_sync" and again.writes == 0
    assert store.enforcement_flips == 0
    office = next(r for r in store.snapshot() if r["name"] == "Office VPN")
    assert [c["cidr"] for c in office["cidrs"]] == ["198.51.100.0/24"]
