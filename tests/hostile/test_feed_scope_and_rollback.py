"""A tampered or rolled-back feed never widens or rolls back the rule (feed_scope, rollback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.record import read_record
from tests.emulated import RULE_NAME, TOKEN, owned_rule
from tests.feeds import PUBLIC_FEED, aad_prefixes, feed_doc
from tests.inprocess import Result, run_main

PUBLISHED = aad_prefixes(feed_doc())
HISTORY = Path(__file__).parents[1] / "data" / "AzureActiveDirectory-history.distinct.jsonl"


def sync(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    feed: Path,
    *flags: str,
) -> Result:
    """`allowlist-sync sync --output json --source-file FEED` in this process."""
    args = ("sync", "--output", "json", "--source-file", str(feed), *flags)
    return run_main(monkeypatch, capsys, emulator, *args)


def write_doc(path: Path, prefixes: list[str], change_number: int | None = None) -> Path:
    """The real Public file with the tag's prefixes (and optionally its changeNumber) replaced."""
    doc = feed_doc()
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    entry["properties"]["addressPrefixes"] = prefixes
    if change_number is not None:
        doc["changeNumber"] = change_number
    path.write_text(json.dumps(doc))
    return path


def assert_refused(result: Result, guard_words: str) -> dict[str, object]:
    """Exit 3, one JSON object naming the refusal, and no token anywhere."""
    assert result.code == 3, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "refused" and out["error"]["kind"] == "refused"
    assert guard_words in out["error"]["message"]
    assert TOKEN not in result.stdout + result.stderr
    return out  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "hostile",
    ["0.0.0.0/0", "::/0", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "::ffff:0:0/96",
     "20.0.0.0/8", "2603::/16", "192.168.1.0/24", "::ffff:20.190.128.0/114", "2002:1406::/32"],
)  # fmt: skip
def test_an_out_of_scope_prefix_creates_nothing_even_with_force(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
    hostile: str,
) -> None:
    """A feed holding a non-global or over-broad prefix is refused (feed_scope), --force or not."""
    feed = write_doc(tmp_path / "feed.json", [*PUBLISHED, hostile])
    for flags in ((), ("--force",)):
        result = sync(monkeypatch, capsys, emulator, feed, *flags)
        out = assert_refused(result, "looks tampered with")
        assert hostile in str(out["error"])
    assert store.requests == [] and owned_rule(store) is None


def test_an_out_of_scope_prefix_never_reaches_an_existing_rule(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
) -> None:
    """`::/0` and an IPv4 /0 added to the feed of an existing rule are refused, --force included."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED)
    before = store.snapshot()
    feed = write_doc(tmp_path / "feed.json", [*PUBLISHED, "::/0", "0.0.0.0/0"])
    result = sync(monkeypatch, capsys, emulator, feed, "--force", "--allow-lockout-risk")
    assert_refused(result, "2 prefix(es)")
    assert store.write_count() == 0 and store.snapshot() == before


def test_the_scope_limits_are_settings(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
) -> None:
    """A /17 passes the default /16 limit and is refused when the limit is raised to /18."""
    feed = write_doc(tmp_path / "feed.json", [*PUBLISHED, "40.64.0.0/17"])
    monkeypatch.setenv("ALLOWLIST_SYNC_MIN_PREFIX_LENGTH_IPV4", "18")
    args = ("sync", "--dry-run", "--output", "json", "--source-file", str(feed))
    refused = run_main(
        monkeypatch, capsys, emulator, *args, ALLOWLIST_SYNC_MIN_PREFIX_LENGTH_IPV4="18"
    )
    assert_refused(refused, "40.64.0.0/17 is broader than /18")
    fine = run_main(monkeypatch, capsys, emulator, *args)
    assert fine.code == 0 and json.loads(fine.stdout)["status"] == "changes_pending"


def history(cloud: str, change_number: int) -> list[str]:
    """The AzureActiveDirectory prefixes of a real weekly file from the bundled history."""
    for line in HISTORY.read_text().splitlines():
        entry = json.loads(line)
        if entry["cloud"] == cloud and entry["changeNumber"] == change_number:
            return list(entry["addressPrefixes"])
    raise AssertionError(f"no {cloud} {change_number} in the history")


def test_a_rolled_back_feed_is_refused_and_force_applies_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
) -> None:
    """After applying changeNumber 375, a real file with 364 is refused (rollback); --force wins."""
    applied = sync(monkeypatch, capsys, emulator, PUBLIC_FEED)
    assert applied.code == 0 and json.loads(applied.stdout)["status"] == "applied"
    rule = owned_rule(store)
    assert rule is not None
    record = read_record(rule["description"])
    assert record is not None and (record.cloud, record.change_number) == ("Public", 375)

    old = write_doc(tmp_path / "ServiceTags_Public_20250728.json", history("Public", 364), 364)
    writes = store.write_count()
    refused = sync(monkeypatch, capsys, emulator, old)
    assert_refused(refused, "older than changeNumber 375")
    assert store.write_count() == writes

    forced = sync(monkeypatch, capsys, emulator, old, "--force")
    assert forced.code == 0 and json.loads(forced.stdout)["status"] == "applied"
    rule = owned_rule(store)
    assert rule is not None
    assert read_record(rule["description"]) == type(record)("Public", 364, "20250728")


def test_an_equal_change_number_and_another_cloud_are_fine(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
) -> None:
    """The same changeNumber with other prefixes applies; a record of another cloud is no bar."""
    assert sync(monkeypatch, capsys, emulator, PUBLIC_FEED).code == 0
    same = write_doc(tmp_path / "same.json", PUBLISHED[:-1], 375)
    result = sync(monkeypatch, capsys, emulator, same)
    assert result.code == 0 and json.loads(result.stdout)["status"] == "applied"


def test_a_persons_description_is_kept_beside_the_record(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """Writing the record keeps the text a person wrote and replaces only the older record."""
    store.seed_rule(
        RULE_NAME,
        cidrs=PUBLISHED[:-1],
        description="Owned by IAM team [allowlist-sync applied: Public changeNumber=300]",
    )
    assert sync(monkeypatch, capsys, emulator, PUBLIC_FEED).code == 0
    rule = owned_rule(store)
    assert rule is not None
    # The bundled file's name carries no plain date (`.trimmed.json`), so none is recorded.
    assert rule["description"] == (
        "Owned by IAM team [allowlist-sync applied: Public changeNumber=375]"
    )


def test_a_rule_without_a_record_takes_any_feed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
    tmp_path: Path,
) -> None:
    """With no record on the rule (made by hand, or by an older version) nothing is refused."""
    store.seed_rule(RULE_NAME, cidrs=PUBLISHED, description="hand made")
    old = write_doc(tmp_path / "old.json", history("Public", 364), 364)
    result = sync(monkeypatch, capsys, emulator, old)
    assert result.code == 0 and json.loads(result.stdout)["status"] == "applied"
