"""Guards against the emulator: each refusal exits 3 with its numbers and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import ExitCode
from allowlist_sync.outcome import Outcome
from allowlist_sync.sync import RunOptions, run_once
from tests.cli import cli_env, run_cli
from tests.emulated import owned_rule, stored_networks
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc, write_feed

PUBLISHED = aad_prefixes(feed_doc())


def run(settings: Settings, feed: Path = PUBLIC_FEED, **options: bool) -> Outcome:
    return run_once(settings, RunOptions(source_file=str(feed), **options))


def assert_refused(
    outcome: Outcome, store: EmulatorStore, guard: str, *numbers: str, writes: int = 0
) -> None:
    assert outcome.status == "refused"
    assert outcome.exit_code() == ExitCode.REFUSED
    assert getattr(outcome.error, "guard", "ownership") == guard
    for number in numbers:
        assert number in str(outcome.error)
    assert store.write_count() == writes


def test_empty_tag_in_the_feed_fails_before_the_api(
    settings: Settings, store: EmulatorStore, tmp_path: Path
) -> None:
    """A feed whose tag is empty is a feed error (exit 1); the API is never called."""
    outcome = run(settings, write_feed(tmp_path / "f.json", []))
    assert outcome.exit_code() == ExitCode.FAILED and "empty address prefix list" in str(
        outcome.error
    )
    assert store.requests == []


def test_empty_desired_set_is_refused_even_with_force(
    settings: Settings, store: EmulatorStore
) -> None:
    """Exclusions that leave nothing are refused, --force or not."""
    store.seed_rule(settings.rule_name, cidrs=PUBLISHED)
    emptied = settings.model_copy(update={"exclude_cidrs": ["0.0.0.0/0", "::/0"]})
    assert_refused(run(emptied, force=True), store, "empty_desired", "0 CIDRs")
    assert stored_networks(owned_rule(store)) == set(PUBLISHED)  # type: ignore[arg-type]


def test_tiny_feed_is_refused(settings: Settings, store: EmulatorStore, tmp_path: Path) -> None:
    """A feed with 3 prefixes is refused against the floor of 10."""
    outcome = run(settings, write_feed(tmp_path / "f.json", PUBLISHED[:3]))
    assert_refused(outcome, store, "min_prefixes", "3 CIDRs", "MIN_PREFIXES=10")


def test_half_removal_refused_then_forced(
    settings: Settings, store: EmulatorStore, tmp_path: Path
) -> None:
    """Removing 50% of the rule is refused; with --force it is applied."""
    run(settings)
    half = write_feed(tmp_path / "f.json", PUBLISHED[: len(PUBLISHED) // 2])
    outcome = run(settings, half)
    assert_refused(outcome, store, "max_delete", "removes 108 of 216", "(50%)", writes=1)
    assert stored_networks(owned_rule(store)) == set(PUBLISHED)  # type: ignore[arg-type]
    store_writes = store.write_count()
    forced = run(settings, half, force=True)
    assert forced.status == "applied" and store.write_count() == store_writes + 1
    assert stored_networks(owned_rule(store)) == set(PUBLISHED[:108])  # type: ignore[arg-type]


def test_add_only_mode_never_removes(
    settings: Settings, store: EmulatorStore, tmp_path: Path
) -> None:
    """In add-only mode a shrinking feed removes nothing but still adds."""
    run(settings)
    add_only = settings.model_copy(update={"mode": "add-only"})
    outcome = run(add_only, write_feed(tmp_path / "f.json", [*PUBLISHED[100:], "20.20.64.0/19"]))
    assert outcome.status == "applied" and outcome.plan is not None and not outcome.plan.remove
    assert stored_networks(owned_rule(store)) == {*PUBLISHED, "20.20.64.0/19"}  # type: ignore[arg-type]


def test_deny_rule_with_the_owned_name_is_refused(settings: Settings, store: EmulatorStore) -> None:
    """A deny rule carrying the owned name is never adopted."""
    store.seed_rule(settings.rule_name, type=2, cidrs=["192.0.2.0/24"])
    assert_refused(run(settings), store, "ownership", "is a deny rule")


def test_duplicate_owned_names_are_refused(settings: Settings, store: EmulatorStore) -> None:
    """Two active rules with the owned name stop the run; neither is touched."""
    first = store.seed_rule(settings.rule_name, cidrs=["192.0.2.0/24"])
    second = store.seed_rule(settings.rule_name, cidrs=["198.51.100.0/24"])
    assert_refused(run(settings), store, "ownership", "2 active rules", f"ids {first}, {second}")


def test_lockout_refused_when_the_caller_depends_on_the_owned_rule(
    settings: Settings, store: EmulatorStore
) -> None:
    """With enforcement on and the caller allowed only by the owned rule, removals are refused."""
    store.seed_rule(settings.rule_name, cidrs=[*PUBLISHED, "192.0.2.0/24"])
    store.set_enforcement(True)
    store.caller_ip = "192.0.2.10"
    outcome = run(settings)
    assert_refused(outcome, store, "lockout", "lock this job", "--allow-lockout-risk")
    validate = [r for r in store.requests if "validate" in r.path]
    assert len(validate) == 1 and validate[0].path.endswith(f"/validate/{outcome.rule_id}")


def test_lockout_check_passes_when_another_rule_allows_the_caller(
    settings: Settings, store: EmulatorStore
) -> None:
    """When another rule allows the caller, removals from the owned rule proceed."""
    store.seed_rule(settings.rule_name, cidrs=[*PUBLISHED, "192.0.2.0/24"])
    store.seed_rule("Job egress", cidrs=["192.0.2.10"])
    store.set_enforcement(True)
    store.caller_ip = "192.0.2.10"
    outcome = run(settings)
    assert outcome.status == "applied"
    assert stored_networks(owned_rule(store)) == set(PUBLISHED)  # type: ignore[arg-type]
    assert store.enforcement_flips == 0


def test_lockout_override_is_explicit(settings: Settings, store: EmulatorStore) -> None:
    """--allow-lockout-risk lets the removal through; the job then finds itself locked out."""
    store.seed_rule(settings.rule_name, cidrs=[*PUBLISHED, "192.0.2.0/24"])
    store.set_enforcement(True)
    store.caller_ip = "192.0.2.10"
    outcome = run(settings, allow_lockout_risk=True)
    assert store.write_count() == 1
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.kind == "access_denied"


def test_caller_already_blocked_gets_a_clear_message(
    settings: Settings, store: EmulatorStore
) -> None:
    """A job whose address is already blocked is told so (403 account_access_denied)."""
    store.seed_rule("Office VPN", cidrs=["198.51.100.0/24"])
    store.set_enforcement(True)
    store.caller_ip = "203.0.113.50"
    outcome = run(settings)
    assert outcome.exit_code() == ExitCode.AUTH
    assert "account_access_denied" in str(outcome.error)
    assert "block the address this job calls from" in str(outcome.error)


def test_refusal_through_the_cli_exits_3(
    emulator: EmulatorServer, store: EmulatorStore, tmp_path: Path
) -> None:
    """The CLI prints the plan, then the refusal with its numbers, and exits 3."""
    feed = write_feed(tmp_path / "f.json", PUBLISHED[:3])
    result = run_cli("sync", "--source-file", str(feed), env=cli_env(emulator))
    assert result.code == 3
    assert "Plan: create the rule with 3" in result.stdout
    assert "Refused: refused: the desired set has 3 CIDRs" not in result.stdout
    assert "Refused: the desired set has 3 CIDRs" in result.stdout
    assert "Nothing was written." in result.stdout
    assert store.write_count() == 0


@pytest.mark.parametrize("flag", ["--force", "--allow-lockout-risk"])
def test_overrides_are_logged_loudly(
    emulator: EmulatorServer, store: EmulatorStore, tmp_path: Path, flag: str
) -> None:
    """Each override leaves a warning event naming the guard and the flag."""
    store.seed_rule(store_rule_name(), cidrs=[*PUBLISHED, "192.0.2.0/24"])
    store.set_enforcement(True)
    store.caller_ip = "192.0.2.10"
    feed = write_feed(tmp_path / "f.json", PUBLISHED[:100] if flag == "--force" else PUBLISHED)
    args = ["sync", "--dry-run", "--source-file", str(feed), flag]
    if flag == "--force":
        args.append("--allow-lockout-risk")
    result = run_cli(*args, env=cli_env(emulator))
    assert f'"flag": "{flag}"' in result.stderr
    assert '"level": "warning"' in result.stderr and '"event": "guard_overridden"' in result.stderr


def store_rule_name() -> str:
    from allowlist_sync.config import DEFAULT_RULE_NAME

    return DEFAULT_RULE_NAME
