#!/usr/bin/env python3
"""A run over 8 dbt accounts against a run over 1, side by side, each account a WAN away.

    python benchmarks/fleet_scale.py [FEED] [--reps 5] [--latency 0.15] [--concurrency 4]
                                     [--out benchmarks/results]

One emulator serves 8 accounts and answers every `/api/` request after `--latency` seconds (a
real account is a round trip away). A config file holds two sources, Azure service tags (`file =`
FEED: the real Public file in ../shared when present, else the bundled snapshot) and Okta's
ranges (`file =` the bundled snapshot, two cells), and 8 targets using both; a second file
holds the first target alone. `allowlist-sync sync --config FILE` runs as its own process
(spawned by spawn.py, so its peak RSS is its own), alternating 1 and 8 targets, each a first run
(the rule created: list + create + list) then a steady run (in sync: one list).

Reported: the wall-time and peak-RSS ratios of 8 targets to 1 (goals <= 2.5x and <= 1.3x), the
`source_loaded` events of each run (each source once), and each target's requests, which must
equal the one-target run's. `run.py` runs this too; alone, it exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from allowlist_sync.emulator import EmulatorServer, EmulatorStore  # noqa: E402

TOKEN = "dbtc_benchmark_token"  # the emulator's, not a real one
TOKEN_ENV = "BENCH_DBT_TOKEN"
ACCOUNTS = tuple(range(5001, 5009))
RULE_NAME = "allowlist-sync: SCIM"
OKTA_FEED = ROOT / "allowlist_sync/data/okta_ip_ranges_20220307.json"
OKTA_CELLS = ("us_cell_1", "emea_cell_1")
SHARED_FEED = ROOT.parent / "shared/reference/service-tags/ServiceTags_Public_20251028.json"
BUNDLED_FEED = ROOT / "allowlist_sync/data/ServiceTags_Public_20251028.trimmed.json"
SOURCES = ("entra", "okta")
PHASES = {"first": ("applied", 3), "steady": ("in_sync", 1)}  # status, requests per target

GOALS = {"wall_ratio": 2.5, "peak_rss_ratio": 1.3}


def config_text(url: str, feed: Path, accounts: tuple[int, ...], concurrency: int) -> str:
    """A config file: the two sources and one target per account, all fed by both."""
    lines = [
        f"concurrency = {concurrency}",
        "",
        "[sources.entra]",
        'type = "azure-service-tags"',
        f"file = {json.dumps(str(feed))}",
        "",
        "[sources.okta]",
        'type = "okta-ip-ranges"',
        f"file = {json.dumps(str(OKTA_FEED))}",
        f"cells = {json.dumps(list(OKTA_CELLS))}",
    ]
    for account in accounts:
        lines += [
            "",
            "[[targets]]",
            f'name = "account-{account}"',
            f"account_id = {account}",
            f'host_url = "{url}"',
            f'token_env = "{TOKEN_ENV}"',
            f'rule_name = "{RULE_NAME}"',
            'sources = ["entra", "okta"]',
        ]
    return "\n".join(lines) + "\n"


def fleet_env(base: dict[str, str], cache_dir: Path) -> dict[str, str]:
    """The process environment of a fleet run: JSON logs at info, the token by its variable,
    no target variable (those are refused beside a config file), and a cache folder of its own
    (its run lock would otherwise be shared with any other run on the machine)."""
    env = {k: v for k, v in base.items() if not k.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_"))}
    env.update(
        {
            TOKEN_ENV: TOKEN,
            "ALLOWLIST_SYNC_LOG_FORMAT": "json",
            "ALLOWLIST_SYNC_LOG_LEVEL": "info",
            "ALLOWLIST_SYNC_CACHE_DIR": str(cache_dir),
        }
    )
    return env


@dataclass
class Run:
    """One measured process: its cost, and what it did (events, requests per account)."""

    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    code: int
    status: str | None
    sources_loaded: dict[str, int]
    requests: dict[int, int]
    writes: dict[int, int]


@dataclass
class Samples:
    """Every run of one size and phase (1 or 8 targets; first or steady)."""

    runs: list[Run] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians of time, the highest peak RSS, and what every run did (the set of values)."""
        return {
            "median_ms": round(statistics.median(r.seconds for r in self.runs) * 1000, 1),
            "median_cpu_ms": round(statistics.median(r.cpu_seconds for r in self.runs) * 1000, 1),
            "peak_rss_mib": round(max(r.peak_rss_mib for r in self.runs), 1),
            "exit_codes": sorted({r.code for r in self.runs}),
            "statuses": sorted({str(r.status) for r in self.runs}),
            "sources_loaded": _same(r.sources_loaded for r in self.runs),
            "requests_per_target": _same(tuple(sorted(r.requests.values())) for r in self.runs),
            "writes_per_target": _same(tuple(sorted(r.writes.values())) for r in self.runs),
            "targets": _same(len(r.requests) for r in self.runs),
        }


def _same(values: Any) -> Any:
    """The value every run had, or the list of the differing values."""
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen[0] if len(seen) == 1 else seen


def measure(config: Path, env: dict[str, str], store: EmulatorStore, log: Path) -> Run:
    """Run `sync --config` once as its own process; its cost, events and requests."""
    before = len(store.requests)
    argv = [sys.executable, "-m", "allowlist_sync", "sync", "--config", str(config)]
    spawner = [sys.executable, "-S", str(ROOT / "benchmarks/spawn.py"), "--stderr", str(log)]
    out = subprocess.run([*spawner, *argv], env=env, capture_output=True, text=True, check=True)
    measured = json.loads(out.stdout)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    loaded = Counter(e["source"] for e in events if e.get("event") == "source_loaded")
    finished = [e for e in events if e.get("event") == "fleet_finished"]
    records = store.requests[before:]
    return Run(
        seconds=measured["seconds"],
        cpu_seconds=measured["cpu_seconds"],
        peak_rss_mib=measured["peak_rss_mib"],
        code=measured["code"],
        status=finished[0]["status"] if len(finished) == 1 else None,
        sources_loaded={name: loaded[name] for name in SOURCES},
        requests=dict(Counter(r.account_id for r in records if r.account_id is not None)),
        writes=dict(Counter(r.account_id for r in records if r.is_write and r.account_id)),
    )


def fleet_scale(
    feed: Path,
    base_env: dict[str, str],
    reps: int,
    *,
    latency: float = 0.15,
    concurrency: int = 4,
) -> dict[str, Any]:
    """1 target against 8, first and steady runs, alternating; summaries and ratios."""
    store = EmulatorStore(accounts=list(ACCOUNTS), token=TOKEN, latency=latency)
    samples = {(size, phase): Samples() for size in (1, 8) for phase in PHASES}
    with EmulatorServer(store, quiet=True) as emulator, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = fleet_env(base_env, folder / "cache")
        configs = {}
        for size in (1, 8):
            configs[size] = folder / f"fleet-{size}.toml"
            text = config_text(emulator.url, feed, ACCOUNTS[:size], concurrency)
            configs[size].write_text(text, encoding="utf-8")
        log = folder / "stderr.jsonl"
        for size in (1, 8):  # warm the page cache and the bytecode cache once
            store.reset()
            measure(configs[size], env, store, log)
        for rep in range(reps):
            for size in (1, 8) if rep % 2 == 0 else (8, 1):  # drift hits both sizes alike
                store.reset()
                for phase in PHASES:
                    samples[size, phase].runs.append(measure(configs[size], env, store, log))
        peak_in_flight = store.peak_in_flight
    result: dict[str, Any] = {
        "latency_s": latency,
        "concurrency": concurrency,
        "reps": reps,
        "feed": feed.name,
        "okta_cells": list(OKTA_CELLS),
        "peak_in_flight": peak_in_flight,
    }
    for phase in PHASES:
        one, eight = samples[1, phase].summary(), samples[8, phase].summary()
        result[phase] = {
            "1_target": one,
            "8_targets": eight,
            "wall_ratio": round(eight["median_ms"] / one["median_ms"], 3),
            "peak_rss_ratio": round(eight["peak_rss_mib"] / one["peak_rss_mib"], 3),
            "cpu_ratio": round(eight["median_cpu_ms"] / one["median_cpu_ms"], 3),
        }
    return result


def fleet_verdicts(report: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, goal, met) for each fleet goal."""
    rows = []
    once = {name: 1 for name in SOURCES}
    for phase, (status, requests) in PHASES.items():
        data = report[phase]
        one, eight = data["1_target"], data["8_targets"]
        wall, rss = data["wall_ratio"], data["peak_rss_ratio"]
        rows += [
            (
                f"8 targets / 1, {phase} run: wall time",
                f"{wall}x ({eight['median_ms']:.0f} / {one['median_ms']:.0f} ms)",
                f"<= {GOALS['wall_ratio']}x",
                wall <= GOALS["wall_ratio"],
            ),
            (
                f"8 targets / 1, {phase} run: peak RSS",
                f"{rss}x ({eight['peak_rss_mib']} / {one['peak_rss_mib']} MiB)",
                f"<= {GOALS['peak_rss_ratio']}x",
                rss <= GOALS["peak_rss_ratio"],
            ),
        ]
        for size, row in (("1 target", one), ("8 targets", eight)):
            count = 1 if size == "1 target" else 8
            rows += [
                (
                    f"{size}, {phase} run: status / sources loaded",
                    f"{row['statuses']} / {row['sources_loaded']}",
                    f"['{status}'] / each once",
                    row["statuses"] == [status]
                    and row["exit_codes"] == [0]
                    and row["sources_loaded"] == once,
                ),
                (
                    f"{size}, {phase} run: requests per target",
                    str(row["requests_per_target"]),
                    f"{requests} each (as one target alone)",
                    row["requests_per_target"] == (requests,) * count
                    and row["requests_per_target"][0] == one["requests_per_target"][0],
                ),
            ]
    return rows


def fleet_markdown(report: dict[str, Any]) -> str:
    """The fleet goals and the measured runs as Markdown tables."""
    lines = [
        f"# Fleet: 8 accounts vs 1, {report['latency_s']} s per request, concurrency "
        f"{report['concurrency']} ({report['feed']} + Okta {', '.join(report['okta_cells'])}, "
        f"{report['reps']} reps, medians)",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
    ]
    for what, measured, goal, met in fleet_verdicts(report):
        lines.append(f"| {what} | {measured} | {goal} | {'yes' if met else 'NO'} |")
    lines += [
        "",
        "| run | median ms | median CPU ms | peak RSS MiB | requests per target |",
        "|---|---|---|---|---|",
    ]
    for phase in PHASES:
        for size in ("1_target", "8_targets"):
            row = report[phase][size]
            lines.append(
                f"| {phase}, {size.replace('_', ' ')} | {row['median_ms']} | "
                f"{row['median_cpu_ms']} | {row['peak_rss_mib']} | {row['requests_per_target']} |"
            )
        lines.append(f"| {phase}: CPU 8 / 1 | | {report[phase]['cpu_ratio']}x | | |")
    lines.append(f"\nmost requests in flight at once: {report['peak_in_flight']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = SHARED_FEED if SHARED_FEED.exists() else BUNDLED_FEED
    parser.add_argument("feed", nargs="?", type=Path, default=default)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    report = fleet_scale(
        args.feed.resolve(),
        base,
        args.reps,
        latency=args.latency,
        concurrency=args.concurrency,
    )
    report["targets"] = [
        {"what": w, "measured": m, "goal": g, "met": ok} for w, m, g, ok in fleet_verdicts(report)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet.json").write_text(json.dumps(report, indent=2) + "\n")
    text = fleet_markdown(report)
    (args.out / "fleet.md").write_text(text)
    print(text)
    return 0 if all(t["met"] for t in report["targets"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
