#!/usr/bin/env python3
"""What one run of allowlist-sync costs, measured side by side with baselines.

    python benchmarks/run.py [FEED] [--reps 9] [--fleet-reps 5] [--latency 0.15]
                             [--out benchmarks/results]

FEED defaults to the real 4.1 MB Public file in ../shared when present, else the trimmed copy
in tests/data. Everything talks to the project's emulator on loopback; nothing leaves the machine.
Whole-process runs alternate (ours, floor, jq, ours, ...) so drift hits all three alike; the
report gives medians and the ratios, and marks each target met or the measured gap. Last, the
fleet scenario (`fleet_scale.py`: 8 accounts against 1, each `--latency` seconds away). The exit
code is 1 when any target is missed, naming them on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from allowlist_sync import logs  # noqa: E402
from allowlist_sync.azure.feed import SourceInfo, parse_feed  # noqa: E402
from allowlist_sync.cidrs import build_desired  # noqa: E402
from allowlist_sync.config import load_settings  # noqa: E402
from allowlist_sync.dbt.client import DbtClient  # noqa: E402
from allowlist_sync.emulator import EmulatorServer, EmulatorStore  # noqa: E402
from allowlist_sync.plan import compute_plan  # noqa: E402
from allowlist_sync.sync import RunOptions, run_once  # noqa: E402
from benchmarks.fleet_scale import fleet_markdown, fleet_scale, fleet_verdicts  # noqa: E402

TOKEN = "dbtc_benchmark_token"  # the emulator's, not a real one
ACCOUNT = 1
SHARED_FEED = ROOT.parent / "shared/reference/service-tags/ServiceTags_Public_20251028.json"
TRIMMED_FEED = ROOT / "tests/data/ServiceTags_Public_20251028.trimmed.json"
JQ_FILTER = '.values[] | select(.name=="AzureActiveDirectory")'
HEAVY = ("httpx", "pydantic", "apscheduler", "structlog", "tenacity", "prometheus_client")

TARGETS = {
    "parse_filter_ms": 30.0,
    "dry_run_vs_floor": 1.25,
    "dry_run_peak_rss_mib": 64.0,
    "serve_idle_peak_rss_mib": 64.0,
}


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def run_process(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit code of one process, spawned by spawn.py."""
    spawner = [sys.executable, "-S", str(ROOT / "benchmarks/spawn.py"), *argv]
    out = subprocess.run(spawner, env=env, capture_output=True, text=True, check=True).stdout
    measured = json.loads(out)
    return measured["seconds"], measured["peak_rss_mib"], measured["code"]


def whole_process(feed: Path, env: dict[str, str], reps: int) -> dict[str, Any]:
    """Dry-run versus the floor script versus jq, alternating, medians and ratios."""
    commands: dict[str, list[str]] = {
        "allowlist-sync sync --dry-run": [
            sys.executable,
            "-m",
            "allowlist_sync",
            "sync",
            "--dry-run",
            "--source-file",
            str(feed),
        ],
        "floor.py": [sys.executable, str(ROOT / "benchmarks/floor.py"), str(feed)],
    }
    jq = shutil.which("jq")
    if jq:
        commands["jq"] = [jq, JQ_FILTER, str(feed)]
    times: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache once
        run_process(argv, env)
    for _ in range(reps):
        for name, argv in commands.items():
            elapsed, peak, code = run_process(argv, env)
            if code != 0:
                raise SystemExit(f"{name} exited {code}")
            times[name].append(elapsed)
            rss[name].append(peak)
    result: dict[str, Any] = {
        name: {"median_ms": median_ms(times[name]), "peak_rss_mib": round(max(rss[name]), 1)}
        for name in commands
    }
    ours = statistics.median(times["allowlist-sync sync --dry-run"])
    result["ratio_vs_floor"] = round(ours / statistics.median(times["floor.py"]), 3)
    if jq:
        result["ratio_vs_jq"] = round(ours / statistics.median(times["jq"]), 3)
    return result


def in_process_steps(feed: Path, url: str, reps: int) -> dict[str, float]:
    """Median milliseconds of each pipeline step, so the slow one is visible."""
    import orjson

    settings = load_settings(account_id=ACCOUNT, token=TOKEN, host_url=url)
    body = feed.read_bytes()
    source = SourceInfo(kind="file", location=str(feed))
    parsed = parse_feed(body, source=source, tags=settings.service_tags)
    desired = build_desired(parsed.all_prefixes(), families=settings.ip_families)
    steps: dict[str, Callable[[], object]] = {
        "read_file": feed.read_bytes,
        "json_parse_only": lambda: orjson.loads(body),
        "parse_filter_validate": lambda: parse_feed(
            body, source=source, tags=settings.service_tags
        ),
        "normalise_aggregate": lambda: build_desired(
            parsed.all_prefixes(), families=settings.ip_families
        ),
    }
    client = DbtClient(
        host_url=url,
        account_id=ACCOUNT,
        token=settings.service_token(),
        owned_rule_name=settings.rule_name,
    )
    rules = client.list_rules()
    current = next((r for r in rules if r.name == settings.rule_name), None)
    steps["current_state_read"] = client.list_rules
    steps["plan"] = lambda: compute_plan(desired, current, rule_name=settings.rule_name)
    out = {}
    for name, step in steps.items():
        samples = []
        for _ in range(reps):
            started = time.perf_counter()
            step()
            samples.append(time.perf_counter() - started)
        out[name] = median_ms(samples)
    client.close()
    out["parse_filter_ms"] = round(out["read_file"] + out["parse_filter_validate"], 2)
    return out


def startup(env: dict[str, str], reps: int) -> dict[str, Any]:
    """Start-up time of --version and --help, and which heavy modules each imports."""
    out: dict[str, Any] = {}
    for flag in ("--version", "--help"):
        argv = [sys.executable, "-m", "allowlist_sync", flag]
        samples = [run_process(argv, env)[0] for _ in range(reps)]
        probe = (
            f"import sys, runpy; sys.argv = ['allowlist-sync', {flag!r}]\n"
            "try:\n    runpy.run_module('allowlist_sync', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
        )
        loaded = (
            subprocess.run(
                [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
            )
            .stderr.strip()
            .splitlines()[-1]
        )
        out[flag] = {"median_ms": median_ms(samples), "heavy_modules": loaded}
    return out


def requests_per_run(feed: Path, url: str, store: EmulatorStore) -> dict[str, Any]:
    """API requests and writes of a first run, a steady-state run and a one-change run."""
    settings = load_settings(account_id=ACCOUNT, token=TOKEN, host_url=url)
    store.reset()
    scenarios: dict[str, Any] = {}
    first = run_once(settings, RunOptions(source_file=str(feed)))
    scenarios["first_run"] = {"requests": first.requests, "writes": first.writes}
    steady = run_once(settings, RunOptions(source_file=str(feed)))
    scenarios["steady_state"] = {"requests": steady.requests, "writes": steady.writes}
    rule = next(r for r in store.snapshot() if r["name"] == settings.rule_name)
    store.reset()
    store.seed_rule(settings.rule_name, cidrs=[c["cidr"] for c in rule["cidrs"][1:]])
    change = run_once(settings, RunOptions(source_file=str(feed)))
    scenarios["one_change"] = {"requests": change.requests, "writes": change.writes}
    return scenarios


def serve_idle_rss(env: dict[str, str], feed: Path) -> float | None:
    """Peak RSS (MiB) of `allowlist-sync serve` after its start-up run, idle."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve_env = {
        **env,
        "ALLOWLIST_SYNC_HEALTH_HOST": "127.0.0.1",
        "ALLOWLIST_SYNC_HEALTH_PORT": str(port),
        "ALLOWLIST_SYNC_SOURCE_FILE": str(feed),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "allowlist_sync", "serve"],
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        if proc.poll() is not None:
            return None
        time.sleep(2)  # let the start-up run finish and settle
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        return round(int(hwm.split()[1]) / 1024, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def verdicts(report: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, met) for each target."""
    rows = []
    steps = report["in_process_ms"]
    rows.append(
        (
            "parse + filter of the file, in-process",
            f"{steps['parse_filter_ms']} ms",
            f"< {TARGETS['parse_filter_ms']:g} ms",
            steps["parse_filter_ms"] < TARGETS["parse_filter_ms"],
        )
    )
    ratio = report["whole_process"]["ratio_vs_floor"]
    rows.append(
        (
            "whole-process dry-run / floor.py",
            f"{ratio}x",
            f"<= {TARGETS['dry_run_vs_floor']}x",
            ratio <= TARGETS["dry_run_vs_floor"],
        )
    )
    rss = report["whole_process"]["allowlist-sync sync --dry-run"]["peak_rss_mib"]
    rows.append(
        ("peak RSS of a dry-run", f"{rss} MiB", "<= 64 MiB", rss <= TARGETS["dry_run_peak_rss_mib"])
    )
    idle = report["serve_idle_peak_rss_mib"]
    rows.append(
        (
            "peak RSS of idle serve",
            f"{idle} MiB" if idle else "not measured",
            "<= 64 MiB",
            idle is not None and idle <= TARGETS["serve_idle_peak_rss_mib"],
        )
    )
    for flag in ("--version", "--help"):
        heavy = report["startup"][flag]["heavy_modules"]
        rows.append((f"{flag} imports no heavy module", heavy, "[]", heavy == "[]"))
    req = report["requests"]
    rows.append(
        (
            "steady state: requests / writes",
            f"{req['steady_state']['requests']} / {req['steady_state']['writes']}",
            "1 / 0",
            req["steady_state"] == {"requests": 1, "writes": 0},
        )
    )
    rows.append(
        (
            "one change: requests / writes",
            f"{req['one_change']['requests']} / {req['one_change']['writes']}",
            "3 / 1 (list, write, verify)",
            req["one_change"] == {"requests": 3, "writes": 1},
        )
    )
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# allowlist-sync benchmark ({report['feed_name']}, {report['reps']} reps, medians)",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
    ]
    for what, measured, goal, met in verdicts(report):
        lines.append(f"| {what} | {measured} | {goal} | {'yes' if met else 'NO'} |")
    wp = report["whole_process"]
    lines += ["", "| whole process | median ms | peak RSS MiB |", "|---|---|---|"]
    for name, row in wp.items():
        if isinstance(row, dict):
            lines.append(f"| {name} | {row['median_ms']} | {row['peak_rss_mib']} |")
    lines.append(
        f"\nratio vs floor: {wp['ratio_vs_floor']}x; ratio vs jq: {wp.get('ratio_vs_jq', 'n/a')}x"
    )
    lines += ["", "| in-process step | median ms |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["in_process_ms"].items()]
    lines += ["", "| start-up | median ms |", "|---|---|"]
    lines += [f"| {k} | {v['median_ms']} |" for k, v in report["startup"].items()]
    lines += ["", "| API scenario | requests | writes |", "|---|---|---|"]
    lines += [f"| {k} | {v['requests']} | {v['writes']} |" for k, v in report["requests"].items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = SHARED_FEED if SHARED_FEED.exists() else TRIMMED_FEED
    parser.add_argument("feed", nargs="?", type=Path, default=default)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--fleet-reps", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.15, help="fleet: seconds per request")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    logs.configure(level="warning", fmt="console")
    store = EmulatorStore(account_id=ACCOUNT, token=TOKEN)
    # An installed package runs from bytecode: let the warm-up runs write it rather than compile
    # every module in every measured process (PYTHONDONTWRITEBYTECODE=1 would).
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with EmulatorServer(store, quiet=True) as emulator, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in base.items() if not k.startswith(("ALLOWLIST_SYNC_", "DBT_CLOUD_"))}
        env.update(
            {
                "DBT_CLOUD_HOST_URL": emulator.url,
                "DBT_CLOUD_ACCOUNT_ID": str(ACCOUNT),
                "DBT_CLOUD_TOKEN": TOKEN,
                "ALLOWLIST_SYNC_LOG_LEVEL": "warning",
                # A run lock of our own: another run on the machine must not hold ours up.
                "ALLOWLIST_SYNC_CACHE_DIR": str(Path(tmp) / "cache"),
            }
        )
        report: dict[str, Any] = {
            "feed": str(args.feed),
            "feed_name": args.feed.name,
            "reps": args.reps,
            "python": sys.version.split()[0],
        }
        report["requests"] = requests_per_run(args.feed, emulator.url, store)  # leaves the rule
        report["whole_process"] = whole_process(args.feed, env, args.reps)
        report["in_process_ms"] = in_process_steps(args.feed, emulator.url, args.reps * 3)
        report["startup"] = startup(env, args.reps)
        report["serve_idle_peak_rss_mib"] = serve_idle_rss(env, args.feed)
    report["fleet"] = fleet_scale(args.feed.resolve(), base, args.fleet_reps, latency=args.latency)
    rows = verdicts(report) + fleet_verdicts(report["fleet"])
    report["targets"] = [{"what": w, "measured": m, "goal": g, "met": ok} for w, m, g, ok in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report) + "\n" + fleet_markdown(report["fleet"])
    (args.out / "report.md").write_text(text)
    print(text)
    missed = [t["what"] for t in report["targets"] if not t["met"]]
    if missed:
        print(f"missed {len(missed)} target(s): {'; '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
