"""`allowlist-sync check` as a preflight, against the emulator in each state an admin meets.

Every test runs the real command in-process against the emulator on loopback and, where the
feed must be reachable, a fake Download Center serving a file published yesterday. Each checks
the verdict, the exit code, the check that decided it, and that nothing was written.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allowlist_sync.cidrs import Network
from allowlist_sync.commands.preflight import (
    Preflight,
    caller_message,
    check_caller,
)
from allowlist_sync.dbt.models import Cidr, Rule
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.emulator.faults import Fault
from allowlist_sync.errors import UnsafePlanError
from allowlist_sync.guards import Limits, Overlap, adoption_candidates, check_lockout
from allowlist_sync.plan import Plan
from tests.emulated import RULE_NAME
from tests.fakes.download_center import DownloadCenter, day, feed_body, tag_prefixes
from tests.feeds import PUBLIC_FEED, write_feed
from tests.inprocess import Result, run_main

BODY = feed_body()
PUBLISHED = tag_prefixes(BODY)
YESTERDAY = day(1)
JOB_IP = "203.0.113.7"
OFFICE = "Office VPN"


@pytest.fixture
def center() -> Iterator[DownloadCenter]:
    """The fake Download Center serving a real (trimmed) file published yesterday."""
    with DownloadCenter() as fake:
        fake.files[YESTERDAY] = BODY
        yield fake


def check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    center: DownloadCenter | None,
    *args: str,
    **env: str,
) -> Result:
    """`allowlist-sync check ARGS`, discovering the feed at `center` (None: the dead default)."""
    where = center.env() if center is not None else {}
    return run_main(monkeypatch, capsys, emulator, "check", *args, **{**where, **env})


def report_of(result: Result) -> dict[str, Any]:
    """The one JSON object of `check --output json`."""
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def assert_read_only(store: EmulatorStore) -> None:
    """The check sent only GET requests."""
    assert {r.method for r in store.requests} <= {"GET"}
    assert store.write_count() == 0


def test_every_check_passes_and_the_verdict_comes_first(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """A reachable feed, a readable account and no overlap: PASSED on the first line, exit 0."""
    owned = store.seed_rule(RULE_NAME, cidrs=PUBLISHED[:5])
    store.seed_rule(OFFICE, cidrs=["198.51.100.0/24"])
    result = check(monkeypatch, capsys, emulator, center)
    assert result.code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Preflight: PASSED")
    assert f"owned rule {RULE_NAME!r} (id {owned})" in result.stdout
    assert f"dated {YESTERDAY[:4]}-{YESTERDAY[4:6]}-{YESTERDAY[6:]}" in result.stdout
    assert "write permission: unknown (only a write proves it" in result.stdout
    table = result.stdout[result.stdout.index("Rules in account") :]
    assert f"{owned}" in table and "(owned)" in table and repr(OFFICE) in table
    assert_read_only(store)


def test_json_reports_every_check_with_ok(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """`--output json` is one object whose checks each carry `ok`, with the feed's date."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[:5])
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 0, result.stderr
    report = report_of(result)
    assert report["ok"] is True and report["verdict"] == "passed" and report["failed"] == []
    for name in report["checks"]:
        assert "ok" in report[name], name
    assert report["checks"] == [
        "config",
        "api",
        "write",
        "rules",
        "enforcement",
        "caller",
        "feed",
    ]
    assert report["write"] == {
        "ok": None,
        "permission": "unknown",
        "message": report["write"]["message"],
    }
    assert report["feed"]["file_date"] == YESTERDAY
    assert report["feed"]["source"]["kind"] in ("details_page", "date_probe")
    assert report["feed"]["desired"] == len(PUBLISHED)
    assert [r["name"] for r in report["rules"]["rules"]] == [RULE_NAME]
    assert report["rules"]["rules"][0]["owned"] is True


def test_read_only_token_passes_reads_and_write_stays_unknown(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """A token whose writes would get 403 passes every read; write permission is reported
    unknown and no write is tried to find out (the 403 fault on writes is never taken)."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[:5])
    # The emulator has no permission model: a read-only token is a 403 on every write path.
    store.add_fault(Fault(method="POST", action="status", status=403, times=5))
    store.add_fault(Fault(method="PUT", action="status", status=403, times=5))
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 0, result.stderr
    report = report_of(result)
    assert report["api"]["ok"] is True and report["write"]["ok"] is None
    assert "only a write proves it" in report["write"]["message"]
    assert "77" in report["write"]["message"]
    assert [f.method for f in store.faults] == ["POST", "PUT"], "no write was attempted"
    assert_read_only(store)


def test_enforcement_on_and_another_rule_lets_the_job_in(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """With enforcement on, the platform's validate answer without the owned rule is asked and
    a yes passes the caller check."""
    owned = store.seed_rule(RULE_NAME, cidrs=[*PUBLISHED[:5], f"{JOB_IP}/32"])
    store.seed_rule(OFFICE, cidrs=["203.0.113.0/24"])
    store.caller_ip = JOB_IP
    store.set_enforcement(True)
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 0, result.stderr
    report = report_of(result)
    assert report["enforcement"]["ok"] is True and report["enforcement"]["enabled"] is True
    caller = report["caller"]
    assert caller["ok"] is True and caller["allowed"] is True
    assert caller["without_rule_id"] == owned
    validates = [r.path for r in store.requests if "validate" in r.path]
    assert validates == [f"/api/v3/accounts/4242/ip-restrictions-set/1/validate/{owned}"]
    assert_read_only(store)


def test_enforcement_on_and_only_the_owned_rule_lets_the_job_in(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """With enforcement on and the job let in only by the owned rule, the caller check fails
    (exit 1) and says the lock-out guard would refuse removals and what to do."""
    store.seed_rule(RULE_NAME, cidrs=[*PUBLISHED[:5], f"{JOB_IP}/32"])
    store.seed_rule(OFFICE, cidrs=["198.51.100.0/24"])
    store.caller_ip = JOB_IP
    store.set_enforcement(True)
    result = check(monkeypatch, capsys, emulator, center)
    assert result.code == 1, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("Preflight: FAILED") and "caller" in first
    assert "lock-out guard" in result.stdout and "another allow rule" in result.stdout
    assert_read_only(store)


def test_enforcement_on_without_an_owned_rule_asks_without_exclusion(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """With no owned rule yet, validate is asked for the whole rule set (nothing to leave out)."""
    store.seed_rule(OFFICE, cidrs=["203.0.113.0/24"])
    store.caller_ip = JOB_IP
    store.set_enforcement(True)
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 0, result.stderr
    caller = report_of(result)["caller"]
    assert caller["ok"] is True and caller["without_rule_id"] is None
    validates = [r.path for r in store.requests if "validate" in r.path]
    assert validates == ["/api/v3/accounts/4242/ip-restrictions-set/1/validate/"]


def test_enforcement_off_passes_and_says_what_enabling_it_would_mean(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """Enforcement off: the caller check passes, but the answer is still shown for later."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[:5])
    store.caller_ip = JOB_IP
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 0, result.stderr
    caller = report_of(result)["caller"]
    assert caller["ok"] is True and caller["allowed"] is False
    assert "if enforcement is turned on" in caller["message"]


def test_blocked_caller_exits_77(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """Enforcement on and no rule letting the job in: the read is refused (access_denied, 77),
    the API checks are skipped and the feed is still checked."""
    store.seed_rule(OFFICE, cidrs=["198.51.100.0/24"])
    store.caller_ip = JOB_IP
    store.set_enforcement(True)
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 77, result.stderr
    report = report_of(result)
    assert report["api"]["error"]["kind"] == "access_denied"
    assert report["rules"]["ok"] is None and "skipped" in report["rules"]
    assert report["caller"]["ok"] is None
    assert report["feed"]["ok"] is True
    assert report["failed"] == ["api"]


def test_adoption_candidate_is_named(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """A hand-made allow rule holding half or more of the desired set, with no owned rule yet,
    fails the rules check naming it, how much it holds and both ways on."""
    half = (len(PUBLISHED) + 1) // 2
    hand_made = store.seed_rule("Entra 2024", cidrs=[*PUBLISHED[:half], "198.51.100.7/32"])
    store.seed_rule(OFFICE, cidrs=PUBLISHED[half : half + 2])
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 1, result.stderr
    report = report_of(result)
    assert report["failed"] == ["rules"]
    candidate = report["rules"]["adoption_candidate"]
    assert candidate == {
        "id": hand_made,
        "name": "Entra 2024",
        "holds": half,
        "desired": len(PUBLISHED),
    }
    marked = {r["id"]: r["adoption_candidate"] for r in report["rules"]["rules"]}
    assert marked[hand_made] is True and list(marked.values()).count(True) == 1
    text = check(monkeypatch, capsys, emulator, center)
    assert text.code == 1
    assert f"'Entra 2024' (id {hand_made}) holds {half} of the {len(PUBLISHED)}" in text.stdout
    assert "ALLOWLIST_SYNC_RULE_NAME='Entra 2024'" in text.stdout and "--force" in text.stdout
    assert "adoption candidate" in text.stdout[text.stdout.index("Rules in account") :]
    assert_read_only(store)


def test_adopted_rule_is_no_candidate(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """Once ALLOWLIST_SYNC_RULE_NAME names the hand-made rule, it is the owned one: check passes."""
    store.seed_rule("Entra 2024", cidrs=PUBLISHED)
    result = check(
        monkeypatch,
        capsys,
        emulator,
        center,
        "--output",
        "json",
        ALLOWLIST_SYNC_RULE_NAME="Entra 2024",
    )
    assert result.code == 0, result.stderr
    rules = report_of(result)["rules"]
    assert rules["adoption_candidate"] is None and rules["rules"][0]["owned"] is True


def test_feed_unreachable_fails_the_feed_check_only(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """Discovery pointed at a dead loopback port fails the feed check (exit 1); the API checks
    still run and the adoption check says it could not be judged."""
    store.seed_rule(OFFICE, cidrs=["198.51.100.0/24"])
    result = check(monkeypatch, capsys, emulator, None, "--output", "json")
    assert result.code == 1, result.stderr
    report = report_of(result)
    assert report["failed"] == ["feed"]
    assert report["feed"]["error"]["kind"] == "feed"
    assert report["api"]["ok"] is True and report["rules"]["ok"] is True
    assert "unknown" in report["rules"]["message"]
    text = check(monkeypatch, capsys, emulator, None)
    assert text.stdout.splitlines()[0].startswith("Preflight: FAILED (feed)")
    assert "127.0.0.1:9" in text.stdout


def test_two_rules_with_the_owned_name_fail_the_rules_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """Two active rules named as the owned one: the rules check fails with the ownership error."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[:2])
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[2:4])
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 1, result.stderr
    report = report_of(result)
    assert report["failed"] == ["rules"]
    assert report["rules"]["error"]["kind"] == "ownership"
    assert report["caller"]["ok"] is None


def test_deny_rule_holding_published_ranges_fails_the_rules_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """A deny rule holding a published range means sync would end failed: the check says so."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[:5])
    store.seed_rule("Blocked", type=2, cidrs=[PUBLISHED[0]])
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 1, result.stderr
    rules = report_of(result)["rules"]
    assert rules["ok"] is False and rules["deny_conflicts"] == 1
    assert "deny" in rules["message"]


def test_hostile_rule_names_are_printed_escaped(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """A rule name with a newline or a terminal escape cannot forge lines or colours in the
    text report."""
    name = "x\nPreflight: PASSED\x1b[2J"
    store.seed_rule(name, cidrs=["198.51.100.0/24"])
    result = check(monkeypatch, capsys, emulator, center)
    lines = result.stdout.splitlines()
    assert "\x1b" not in result.stdout and repr(name) in result.stdout
    assert not any(line.lstrip().startswith("Preflight") for line in lines[1:])


def test_many_rules_are_listed_in_full_in_json_and_bounded_in_text(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """An account with many rules keeps the text table short and the JSON complete."""
    for number in range(60):
        store.seed_rule(f"rule {number}", cidrs=[f"198.51.{number}.0/24"])
    result = check(monkeypatch, capsys, emulator, center)
    assert result.code == 0, result.stderr
    assert "and 20 more (--output json lists every rule)" in result.stdout
    report = report_of(check(monkeypatch, capsys, emulator, center, "--output", "json"))
    assert len(report["rules"]["rules"]) == 60


def rule(rule_id: int, cidrs: list[str], *, name: str = "hand-made", type: int = 1) -> Rule:
    """A rule as the client reads it."""
    return Rule(
        id=rule_id, name=name, type=type, cidrs=[Cidr(cidr=c, id=i) for i, c in enumerate(cidrs)]
    )


def test_adoption_needs_half_of_the_desired_set() -> None:
    """Exactly half is a candidate, one less is not; deny rules and the owned name never are."""
    desired = tuple(ipaddress.ip_network(f"192.0.2.{4 * i}/30") for i in range(10))
    texts = [str(n) for n in desired]

    def candidates(rules: list[Rule], wanted: tuple[Network, ...] = desired) -> list[Overlap]:
        return adoption_candidates(wanted, rules, owned_name=RULE_NAME, limits=Limits())

    assert [c.rule_id for c in candidates([rule(1, texts[:5])])] == [1]
    assert candidates([rule(1, texts[:4])]) == []
    assert candidates([rule(1, texts, type=2)]) == []
    assert candidates([rule(1, texts, name=RULE_NAME)]) == []
    assert candidates([rule(1, texts)], ()) == []
    # Stored forms are compared as networks: a bare address or host bits set still count.
    loose = ["192.0.2.1/30", "192.0.2.4/30", "192.0.2.9/30", "192.0.2.12/30", "192.0.2.16/30"]
    best = candidates([rule(1, loose), rule(2, texts[:6]), rule(3, ["not a network", *texts[:5]])])
    assert [(c.rule_id, c.held) for c in best] == [(2, 6), (1, 5), (3, 5)]


def test_lockout_refusal_points_to_check() -> None:
    """The lock-out refusal cannot name the address at risk (validate answers a boolean only),
    so it points to `allowlist-sync check` for the rules that let the job in."""
    plan = Plan(
        rule_id=7,
        rule_name=RULE_NAME,
        desired=(ipaddress.ip_network("192.0.2.0/24"),),
        current_count=1,
        remove=(Cidr(cidr="198.51.100.0/24", id=3),),
    )
    with pytest.raises(UnsafePlanError, match="allowlist-sync check"):
        check_lockout(plan, enforcement=True, allowed_without_rule=False, allow_risk=False)


def test_a_failing_validate_answer_fails_the_caller_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """A validate question the platform does not answer fails the caller check (exit 1), the
    other checks still pass."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED[:5])
    store.set_enforcement(True)
    store.caller_ip = "127.0.0.1"
    store.seed_rule(OFFICE, cidrs=["127.0.0.0/8"])
    store.add_fault(Fault(path_regex="/validate/", action="status", status=404))
    result = check(monkeypatch, capsys, emulator, center, "--output", "json")
    assert result.code == 1, result.stderr
    report = report_of(result)
    assert report["failed"] == ["caller"]
    assert report["caller"]["error"]["kind"] == "not_found"


def test_a_feed_the_scope_guard_refuses_fails_the_feed_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
) -> None:
    """A feed holding 0.0.0.0/0 fails the feed check as sync's scope guard would refuse it."""
    feed = write_feed(tmp_path / "ServiceTags_Public_20251028.json", [*PUBLISHED, "0.0.0.0/0"])
    result = check(
        monkeypatch,
        capsys,
        emulator,
        None,
        "--output",
        "json",
        ALLOWLIST_SYNC_SOURCE_FILE=str(feed),
    )
    assert result.code == 1, result.stderr
    report = report_of(result)
    assert report["failed"] == ["feed"] and report["feed"]["error"]["kind"] == "refused"
    assert "0.0.0.0/0" in report["feed"]["message"]
    assert str(feed) in report["feed"]["looked_in"]


@pytest.mark.parametrize(
    ("allowed", "enforced", "owned_id", "says"),
    [
        (True, True, 7, "let in by a rule other than the owned one (id 7)"),
        (True, False, None, "enforcement is off: it matters once it is turned on"),
        (False, True, 7, "let in only by the owned rule (id 7): the lock-out guard will refuse"),
        (False, False, 7, "if enforcement is turned on, the lock-out guard refuses"),
        (False, True, None, "its answers disagree"),
    ],
)
def test_caller_message_says_what_the_answer_means(
    allowed: bool, enforced: bool, owned_id: int | None, says: str
) -> None:
    """Each validate answer, with enforcement on or off, is explained for the lock-out guard."""
    assert says in caller_message(allowed, enforced, owned_id)


def test_enforced_rules_without_a_rule_set_id_fail_the_caller_check() -> None:
    """Rules that carry no rule set id cannot be asked about while enforcement is on: a failed
    check, and no request sent."""
    result = Preflight()
    result.checks["enforcement"] = {"ok": True, "enabled": True, "message": "on"}
    client: Any = object()  # any request would raise AttributeError
    check_caller(client, [rule(1, ["198.51.100.0/24"])], 1, result)
    assert result.checks["caller"]["ok"] is False
    assert "ip_restriction_rule_set_id" in result.checks["caller"]["message"]
    result.checks["enforcement"]["enabled"] = False
    check_caller(client, [rule(1, ["198.51.100.0/24"])], 1, result)
    assert result.checks["caller"]["ok"] is True


def test_source_flags_check_the_feed_sync_will_be_given(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    center: DownloadCenter,
) -> None:
    """`--source-file` and `--source-url` are checked instead of discovery, as `sync` takes them;
    a bad URL is a configuration error (78) before any request."""
    by_file = check(
        monkeypatch, capsys, emulator, None, "--output", "json", "--source-file", str(PUBLIC_FEED)
    )
    assert by_file.code == 0, by_file.stderr
    assert report_of(by_file)["feed"]["source"]["kind"] == "file"
    by_url = check(
        monkeypatch,
        capsys,
        emulator,
        None,
        "--output",
        "json",
        "--source-url",
        center.file_url(YESTERDAY),
    )
    assert by_url.code == 0, by_url.stderr
    assert report_of(by_url)["feed"]["file_date"] == YESTERDAY
    gone = check(monkeypatch, capsys, emulator, None, "--source-file", "/nonexistent/feed.json")
    assert gone.code == 1 and "looked in: --source-file /nonexistent/feed.json" in gone.stdout
    requests = len(store.requests)
    bad = check(monkeypatch, capsys, emulator, None, "--output", "json", "--source-url", "ftp://x")
    assert bad.code == 78 and "--source-url" in report_of(bad)["config"]["error"]["message"]
    assert len(store.requests) == requests
