"""Adopt, don't duplicate: a hand-made rule holding most of the ranges is named, never doubled."""

from __future__ import annotations

import json
import re

import pytest

from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import ExitCode, UnsafePlanError
from allowlist_sync.outcome import Outcome
from allowlist_sync.record import read_record
from allowlist_sync.sync import RunOptions, run_once
from tests.emulated import owned_rule, stored_networks
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc
from tests.inprocess import run_main

PUBLISHED = aad_prefixes(feed_doc())
MANUAL = "Entra ranges (by hand)"
PERSON_TEXT = "Kept by Ana for SCIM; ask #it-security before editing"


def run(settings: Settings, **options: bool) -> Outcome:
    return run_once(settings, RunOptions(source_file=str(PUBLIC_FEED), **options))


def seed_manual(store: EmulatorStore, cidrs: list[str], name: str = MANUAL) -> int:
    return store.seed_rule(name, cidrs=cidrs, description=PERSON_TEXT)


def test_a_rule_holding_most_of_the_set_is_refused_naming_it(
    settings: Settings, store: EmulatorStore
) -> None:
    """With no owned rule, an allow rule holding >= half the set refuses the run and names it."""
    manual = seed_manual(store, PUBLISHED[:150])
    outcome = run(settings)
    assert outcome.status == "refused" and outcome.exit_code() == ExitCode.REFUSED
    error = outcome.error
    assert isinstance(error, UnsafePlanError) and error.guard == "overlap"
    message = str(error)
    for part in (
        repr(MANUAL),
        f"id {manual}",
        f"150 of the {len(PUBLISHED)} desired CIDRs (69%)",
        f"ALLOWLIST_SYNC_RULE_NAME={MANUAL!r}",
        "--force",
    ):
        assert part in message
    assert error.details["rule_id"] == manual and error.details["held"] == 150
    assert store.write_count() == 0 and [r["id"] for r in store.snapshot()] == [manual]


def test_the_overlap_refusal_exits_3_on_a_dry_run_too(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """`sync --dry-run` shows the plan, then refuses it (exit 3) naming the rule to adopt."""
    manual = seed_manual(store, PUBLISHED)
    result = run_main(
        monkeypatch, capsys, emulator, "sync", "--dry-run", "--source-file", str(PUBLIC_FEED)
    )
    assert result.code == ExitCode.REFUSED
    assert "Plan: create the rule with" in result.stdout
    assert f"Refused: rule {MANUAL!r} (id {manual}) already holds" in result.stdout
    assert store.write_count() == 0


def test_adopting_the_rule_by_name_keeps_the_persons_text_and_adds_the_marker(
    settings: Settings, store: EmulatorStore
) -> None:
    """Named by ALLOWLIST_SYNC_RULE_NAME, the rule is synced; its description keeps its text."""
    manual = seed_manual(store, [*PUBLISHED[:200], "198.51.100.7/32"])
    adopted = settings.model_copy(update={"rule_name": MANUAL})
    outcome = run(adopted)
    assert outcome.status == "applied" and outcome.rule_id == manual
    assert outcome.plan is not None and [c.cidr for c in outcome.plan.remove] == ["198.51.100.7/32"]
    rule = owned_rule(store, MANUAL)
    assert rule is not None and stored_networks(rule) == set(PUBLISHED)
    description = rule["description"]
    assert description.startswith(PERSON_TEXT + " [allowlist-sync applied: Public changeNumber=")
    record = read_record(description)
    assert record is not None and record.change_number == feed_doc()["changeNumber"]
    assert len(store.snapshot()) == 1
    again = run(adopted)
    assert again.status == "in_sync" and store.write_count() == 1


def test_force_creates_a_separate_rule_and_leaves_the_other_alone(
    settings: Settings, store: EmulatorStore
) -> None:
    """`--force` creates the job's own rule beside the hand-made one, which is not touched."""
    manual = seed_manual(store, PUBLISHED[:150])
    before = [r for r in store.snapshot() if r["id"] == manual]
    outcome = run(settings, force=True)
    assert outcome.status == "applied" and outcome.rule_id not in (None, manual)
    assert [r for r in store.snapshot() if r["id"] == manual] == before
    assert stored_networks(owned_rule(store)) == set(PUBLISHED)  # type: ignore[arg-type]


def test_a_rule_holding_under_half_does_not_stop_the_create(
    settings: Settings, store: EmulatorStore
) -> None:
    """An allow rule holding fewer than half the desired CIDRs is no adoption candidate."""
    seed_manual(store, PUBLISHED[:100])
    outcome = run(settings)
    assert outcome.status == "applied" and outcome.plan is not None
    assert outcome.plan.creates_rule


def test_an_existing_owned_rule_is_never_refused_for_overlap(
    settings: Settings, store: EmulatorStore
) -> None:
    """Once the job owns its rule, another rule holding the same ranges is no concern of it."""
    seed_manual(store, PUBLISHED)
    store.seed_rule(settings.rule_name, cidrs=PUBLISHED[:200])
    outcome = run(settings)
    assert outcome.status == "applied" and outcome.error is None


def test_an_allow_everything_rule_is_no_adoption_candidate(
    settings: Settings, store: EmulatorStore
) -> None:
    """A rule holding 0.0.0.0/0 and ::/0 covers every range but is not a copy of the set."""
    seed_manual(store, ["0.0.0.0/0", "::/0"], name="temporary: everyone")
    assert run(settings).status == "applied"


def test_a_deny_rule_is_no_adoption_candidate(settings: Settings, store: EmulatorStore) -> None:
    """A deny rule holding some of the ranges is reported as a conflict, not offered to adopt."""
    store.seed_rule("blocked", type=2, cidrs=[PUBLISHED[0]])
    outcome = run(settings)
    assert outcome.error is None and outcome.failed_cidrs == (PUBLISHED[0],)


def test_the_largest_of_several_candidates_is_named(
    settings: Settings, store: EmulatorStore
) -> None:
    """With two candidates, the refusal names the one holding more and counts the other."""
    seed_manual(store, PUBLISHED[:120], name="old copy")
    bigger = seed_manual(store, PUBLISHED[:210], name="newer copy")
    outcome = run(settings)
    message = str(outcome.error)
    assert f"'newer copy' (id {bigger})" in message
    assert "1 other rule also holds half or more" in message


def test_a_hostile_rule_name_is_quoted_on_one_line(
    settings: Settings, store: EmulatorStore
) -> None:
    """A candidate name with a line break or escape codes stays quoted in a one-line message."""
    seed_manual(store, PUBLISHED, name="x\n\x1b[31mFAKE: ok\x1b[0m" + "y" * 300)
    message = str(run(settings).error)
    assert "\n" not in message and "\x1b" not in message
    assert len(message) < 900


ADOPT_ENV = {
    "ALLOWLIST_SYNC_RULE_NAME": MANUAL,
    "ALLOWLIST_SYNC_EXCLUDE_CIDRS": PUBLISHED[5],
    "ALLOWLIST_SYNC_EXTRA_CIDRS": "93.184.216.34/32",
}


def seed_adoptable(store: EmulatorStore) -> None:
    """A hand-made rule with a partner IP in it, an office rule letting the caller in, enforced."""
    seed_manual(store, [*PUBLISHED, "198.51.100.7/32"])
    store.seed_rule("Office", cidrs=["192.0.2.0/24"])
    store.set_enforcement(True)
    store.caller_ip = "192.0.2.10"


def test_an_adopted_rules_plan_says_why_each_line_is_there(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """The partner IP is `not published`, the excluded range `excluded`, the extra named."""
    seed_adoptable(store)
    result = run_main(
        monkeypatch, capsys, emulator, "sync", "--dry-run", "--source-file", str(PUBLIC_FEED),
        **ADOPT_ENV,
    )  # fmt: skip
    assert result.code == ExitCode.OK, result.stdout
    out = result.stdout
    assert "Enforcement: on; lock-out check: this job's address is let in by another rule\n" in out
    assert re.search(r"\n  - 198\.51\.100\.7/32  \(id \d+, not published\)\n", out)
    excluded = re.escape(PUBLISHED[5])
    assert re.search(
        rf"\n  - {excluded}  \(id \d+, excluded by ALLOWLIST_SYNC_EXCLUDE_CIDRS\)\n", out
    )
    assert "\n  + 93.184.216.34/32  (extra: ALLOWLIST_SYNC_EXTRA_CIDRS)\n" in out
    assert store.write_count() == 0


def test_the_json_plan_carries_the_same_reasons(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """`--output json` keeps the `add`/`remove` string lists and adds the reasons beside them."""
    seed_adoptable(store)
    result = run_main(
        monkeypatch, capsys, emulator,
        "sync", "--dry-run", "--output", "json", "--source-file", str(PUBLIC_FEED),
        **ADOPT_ENV,
    )  # fmt: skip
    data = json.loads(result.stdout)
    assert data["add"] == ["93.184.216.34/32"]
    assert sorted(data["remove"]) == sorted(["198.51.100.7/32", PUBLISHED[5]])
    assert data["add_reasons"] == [
        {"cidr": "93.184.216.34/32", "reason": "extra", "by": "ALLOWLIST_SYNC_EXTRA_CIDRS"}
    ]
    reasons = {r["cidr"]: (r["reason"], r["by"]) for r in data["remove_reasons"]}
    assert reasons == {
        "198.51.100.7/32": ("not_published", None),
        PUBLISHED[5]: ("excluded", "ALLOWLIST_SYNC_EXCLUDE_CIDRS"),
    }
    assert data["lockout_check"] == {"caller_allowed_without_owned_rule": True}
