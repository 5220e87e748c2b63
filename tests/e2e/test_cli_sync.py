"""`allowlist-sync sync` as a real process against the emulator on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from tests.cli import cli_env, log_events, run_cli
from tests.emulated import TOKEN, owned_rule, stored_networks
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc, write_feed

PUBLISHED = aad_prefixes(feed_doc())


def sync(emulator: EmulatorServer, *args: str, **env: str) -> object:
    return run_cli("sync", *args, env=cli_env(emulator, **env))


def test_dry_run_prints_the_plan_and_writes_nothing(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """A dry run prints + lines and a summary like terraform plan, and writes nothing."""
    result = run_cli("sync", "--dry-run", "--source-file", str(PUBLIC_FEED), env=cli_env(emulator))
    assert result.code == 0, result.stderr
    assert f"  + {PUBLISHED[0]}\n" in result.stdout
    assert f"Plan: create the rule with {len(PUBLISHED)}, remove 0, keep 0." in result.stdout
    assert "Dry run: nothing was written." in result.stdout
    assert store.write_count() == 0


def test_detailed_exitcode_signals_pending_changes(emulator: EmulatorServer) -> None:
    """--detailed-exitcode exits 2 while changes are pending, 0 once in sync."""
    args = ("sync", "--dry-run", "--detailed-exitcode", "--source-file", str(PUBLIC_FEED))
    assert run_cli(*args, env=cli_env(emulator)).code == 2
    assert run_cli("sync", "--source-file", str(PUBLIC_FEED), env=cli_env(emulator)).code == 0
    assert run_cli(*args, env=cli_env(emulator)).code == 0


def test_apply_then_steady_state_then_change(
    emulator: EmulatorServer, store: EmulatorStore, tmp_path: Path
) -> None:
    """Apply creates the rule; a re-run writes nothing; a changed feed converges in one write."""
    other = store.seed_rule("Office VPN", cidrs=["198.51.100.0/24"])
    other_before = next(r for r in store.snapshot() if r["id"] == other)
    env = cli_env(emulator)

    first = run_cli("sync", "--output", "json", "--source-file", str(PUBLIC_FEED), env=env)
    assert first.code == 0, first.stderr
    out = first.json()
    assert out["status"] == "applied" and out["dry_run"] is False
    assert out["rule"]["created"] is True and out["rule"]["name"] == owned_rule(store)["name"]
    assert sorted(out["add"]) == sorted(PUBLISHED) and out["remove"] == []
    assert out["source"]["kind"] == "file" and out["source"]["changeNumber"] == 375
    assert out["source"]["cloud"] == "Public" and out["source"]["file"] == str(PUBLIC_FEED)
    assert store.write_count() == 1

    second = run_cli("sync", "--output", "json", "--source-file", str(PUBLIC_FEED), env=env)
    assert second.json()["status"] == "in_sync" and store.write_count() == 1

    changed = [*PUBLISHED[1:], "20.20.64.0/19"]
    feed = write_feed(tmp_path / "ServiceTags_Public_20251104.json", changed)
    third = run_cli("sync", "--output", "json", "--source-file", str(feed), env=env)
    out = third.json()
    assert out["status"] == "applied" and out["add"] == ["20.20.64.0/19"]
    assert out["remove"] == [PUBLISHED[0]] and out["source"]["fileDate"] == "20251104"
    assert store.write_count() == 2
    assert stored_networks(owned_rule(store)) == set(changed)
    assert next(r for r in store.snapshot() if r["id"] == other) == other_before
    assert store.enforcement_flips == 0 and store.rule_set_enabled is False


def test_logs_are_json_events_on_stderr_only(emulator: EmulatorServer) -> None:
    """stdout holds only the JSON object; stderr holds one event per step and a summary."""
    result = run_cli(
        "sync",
        "--output",
        "json",
        "--dry-run",
        "--source-file",
        str(PUBLIC_FEED),
        env=cli_env(emulator),
    )
    json.loads(result.stdout)  # exactly one object, nothing else
    events = [e["event"] for e in log_events(result.stderr)]
    assert events == ["source_loaded", "desired_set", "current_rule", "plan", "run_finished"]


def test_source_from_stdin(emulator: EmulatorServer) -> None:
    """`--source-file -` reads the feed from standard input."""
    result = run_cli(
        "sync",
        "--dry-run",
        "--output",
        "json",
        "--source-file",
        "-",
        env=cli_env(emulator),
        stdin=PUBLIC_FEED.read_bytes(),
    )
    assert result.json()["source"]["file"] == "<stdin>"
    assert result.json()["status"] == "changes_pending"


def test_bad_token_exits_77_with_a_clear_message(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """A refused token exits 77 (retrying cannot help), names where it came from, writes nothing."""
    env = cli_env(emulator, DBT_CLOUD_TOKEN="dbtc_not_the_right_token")
    result = run_cli("sync", "--output", "json", "--source-file", str(PUBLIC_FEED), env=env)
    assert result.code == 77
    out = result.json()
    assert out["status"] == "failed" and out["error"]["kind"] == "auth"
    assert "the service token was refused (401)" in out["error"]["message"]
    assert "check the token in DBT_CLOUD_TOKEN" in out["error"]["message"]
    assert store.write_count() == 0
    assert "dbtc_not_the_right_token" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>Access Denied</body></html>", "got an HTML page"),
        (PUBLIC_FEED.read_bytes()[:1000], "not valid JSON"),
        (
            json.dumps({"changeNumber": 1, "cloud": "Public", "values": []}).encode(),
            "'AzureActiveDirectory' is not in the file",
        ),
    ],
)
def test_bad_feed_exits_1_and_never_touches_the_target(
    emulator: EmulatorServer, store: EmulatorStore, tmp_path: Path, body: bytes, message: str
) -> None:
    """A broken feed exits 1 naming the file and the problem; the API is not even called."""
    feed = tmp_path / "feed.json"
    feed.write_bytes(body)
    result = run_cli("sync", "--source-file", str(feed), env=cli_env(emulator))
    assert result.code == 1
    errors = [e for e in log_events(result.stderr) if e["event"] == "run_failed"]
    assert len(errors) == 1 and message in errors[0]["error"] and str(feed) in errors[0]["error"]
    assert store.requests == []


def test_missing_source_file_names_it(emulator: EmulatorServer, tmp_path: Path) -> None:
    """An unreadable source file is a one-line error naming it."""
    result = run_cli(
        "sync",
        "--output",
        "json",
        "--source-file",
        str(tmp_path / "nope.json"),
        env=cli_env(emulator),
    )
    assert result.code == 1
    assert result.json()["error"]["message"].endswith(
        "nope.json: cannot read the file: No such file or directory"
    )


def test_bad_configuration_exits_78(emulator: EmulatorServer) -> None:
    """Invalid configuration exits 78 with the variable named, before any request."""
    env = cli_env(emulator, ALLOWLIST_SYNC_IP_FAMILIES="ipv5")
    result = run_cli("sync", "--output", "json", "--source-file", str(PUBLIC_FEED), env=env)
    assert result.code == 78
    assert result.json()["error"]["kind"] == "config"
    assert "ALLOWLIST_SYNC_IP_FAMILIES" in result.json()["error"]["message"]


def test_missing_account_exits_78() -> None:
    """Without DBT_CLOUD_ACCOUNT_ID the run stops with exit 78 naming it."""
    result = run_cli("sync", "--source-file", str(PUBLIC_FEED), env=cli_env(DBT_CLOUD_TOKEN=TOKEN))
    assert result.code == 78
    assert "DBT_CLOUD_ACCOUNT_ID: is required" in result.stderr


def test_bad_usage_exits_64() -> None:
    """Unknown flags and a missing command exit 64, the documented usage code."""
    assert run_cli("sync", "--bogus", env=cli_env()).code == 64
    assert run_cli(env=cli_env()).code == 64
    both = run_cli("sync", "--source-file", "a", "--source-url", "https://x", env=cli_env())
    assert both.code == 64 and "not allowed with argument" in both.stderr


def test_token_never_appears_in_any_output(emulator: EmulatorServer, store: EmulatorStore) -> None:
    """Even at debug level, through errors and a full apply, the token is never printed."""
    store.seed_rule("Office VPN", cidrs=["198.51.100.0/24"])
    env = cli_env(emulator, ALLOWLIST_SYNC_LOG_LEVEL="debug")
    outputs = [
        run_cli("sync", "--source-file", str(PUBLIC_FEED), env=env),
        run_cli("sync", "--output", "json", "--source-file", str(PUBLIC_FEED), env=env),
        run_cli(
            "sync",
            "--source-file",
            str(PUBLIC_FEED),
            env=cli_env(
                emulator,
                ALLOWLIST_SYNC_LOG_LEVEL="debug",
                DBT_CLOUD_HOST_URL=emulator.url + "/wrong",
            ),
        ),
        run_cli(
            "sync",
            "--source-file",
            str(PUBLIC_FEED),
            env=cli_env(emulator, ALLOWLIST_SYNC_MODE=TOKEN),
        ),
    ]
    for result in outputs:
        assert TOKEN not in result.stdout and TOKEN not in result.stderr


def test_version_and_help() -> None:
    """--version prints the version; --help lists the commands and exit codes."""
    version = run_cli("--version", env=cli_env())
    assert version.code == 0 and version.stdout.startswith("allowlist-sync ")
    help_text = run_cli("--help", env=cli_env())
    assert (
        help_text.code == 0
        and "sync" in help_text.stdout
        and "78 bad configuration" in help_text.stdout
    )


def test_demo_runs_the_whole_job() -> None:
    """`allowlist-sync demo` runs dry-run, apply and a no-op over two targets, offline."""
    result = run_cli("demo", env=cli_env())
    assert result.code == 0, result.stderr
    assert "=== target prod: account 12345, rule 'allowlist-sync: SCIM' ===" in result.stdout
    assert "=== target sandbox: account 67890, rule 'allowlist-sync: SCIM' ===" in result.stdout
    assert "Plan: add 5, remove 2, keep 240." in result.stdout
    assert "Applied: 5 added, 2 removed; verified 245 CIDRs" in result.stdout
    assert "No changes. The rule holds exactly the desired 29 CIDRs." in result.stdout
    assert result.stdout.rstrip().endswith(
        "Other rules untouched: Office VPN (prod); enforcement still off in both accounts."
    )


def test_an_unexpected_error_is_one_redacted_event(tmp_path: Path) -> None:
    """A bug surfaces as an `internal_error` event with exit 1, the token scrubbed from it."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        "import allowlist_sync.sync as pipeline\n"
        "from allowlist_sync.cli import main\n"
        "def broken(*args, **kwargs):\n"
        f"    raise RuntimeError('boom near {TOKEN}')\n"
        "pipeline.run_once = broken\n"
        "sys.exit(main(['sync', '--dry-run', '--source-file', sys.argv[1]]))\n"
    )
    env = cli_env(
        DBT_CLOUD_HOST_URL="http://127.0.0.1:9", DBT_CLOUD_ACCOUNT_ID="1", DBT_CLOUD_TOKEN=TOKEN
    )
    proc = subprocess.run(
        [sys.executable, str(probe), str(PUBLIC_FEED)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    events = [e for e in log_events(proc.stderr) if e["event"] == "internal_error"]
    assert len(events) == 1 and "boom near [REDACTED]" in events[0]["exception"]
    assert TOKEN not in proc.stderr + proc.stdout


def test_text_output_says_what_cannot_be_stored(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """A published CIDR held by a deny rule is named in the text output, with exit 1."""
    store.seed_rule("Blocked", type=2, cidrs=[PUBLISHED[0]])
    result = run_cli("sync", "--source-file", str(PUBLIC_FEED), env=cli_env(emulator))
    assert result.code == 1
    assert f"Applied in part: created rule 2 with {len(PUBLISHED) - 1} CIDRs" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        f"FAILED: cidrs_rejected: the platform cannot store 1 published CIDR(s): {PUBLISHED[0]}"
    )
    assert "Warning: 1 published CIDR(s) are held by deny rules" in result.stdout
