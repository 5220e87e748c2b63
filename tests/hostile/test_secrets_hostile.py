"""Hostile secrets: a token or URL carrying a secret never reaches stdout, stderr or the target."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from tests.emulated import TOKEN
from tests.fakes.download_center import DownloadCenter
from tests.feeds import PUBLIC_FEED
from tests.inprocess import Result, run_main

#: Pieces that must never be printed: each half of a broken token, a signature, a password.
LINE_ONE = "dbtc_first_line_a1b2c3"
LINE_TWO = "second_line_d4e5f6"
SIGNATURE = "SIGsecret_9f8e7d6c5b4a"
PASSWORD = "hunter2_pw_secret"

#: A file date the freshness check accepts (the bundled file itself is from 2025).
RECENT = f"{datetime.now(UTC) - timedelta(days=1):%Y%m%d}"


def assert_clean(result: Result, *secrets: str) -> None:
    """No secret in either stream, and no traceback."""
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr
    assert "Traceback" not in result.stderr


def assert_untouched(store: EmulatorStore) -> None:
    """Nothing was written to the emulated account."""
    assert store.write_count() == 0
    assert store.snapshot() == []


def one_json(result: Result) -> dict[str, object]:
    """stdout holds exactly one JSON object."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


def token_file(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "token"
    path.write_bytes(content)
    return str(path)


SYNC = ("sync", "--dry-run", "--output", "json", "--source-file", str(PUBLIC_FEED))


@pytest.mark.parametrize(
    "content",
    [
        f"{LINE_ONE}\n{LINE_TWO}\n".encode(),
        f"{LINE_ONE}\x00{LINE_TWO}".encode(),
        f"{LINE_ONE} {LINE_TWO}".encode(),
        f"{LINE_ONE}\t{LINE_TWO}\r\n".encode(),
        f"{LINE_ONE}\u00e9{LINE_TWO}".encode(),
        f"{LINE_ONE}\n\n".encode() + LINE_TWO.encode(),
    ],
    ids=["two-lines", "nul", "space", "tab", "non-ascii", "blank-line"],
)
@pytest.mark.parametrize("command", ["sync", "check"])
def test_broken_token_file_is_refused_without_echo(
    content: bytes,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A token file holding whitespace, control or non-ASCII characters is exit 78 naming the
    variable, the file and the position, never the token."""
    args = SYNC if command == "sync" else ("check", "--output", "json")
    result = run_main(
        monkeypatch,
        capsys,
        emulator,
        *args,
        DBT_CLOUD_TOKEN="",
        DBT_CLOUD_TOKEN_FILE=token_file(tmp_path, content),
    )
    assert result.code == 78
    assert_clean(result, LINE_ONE, LINE_TWO, "first_line", "second_line")
    assert_untouched(store)
    assert store.requests == []
    out = one_json(result)
    assert "DBT_CLOUD_TOKEN_FILE" in result.stdout and "character" in result.stdout
    assert out["ok" if command == "check" else "status"] in (False, "failed")


@pytest.mark.parametrize("value", [f"{LINE_ONE}\n{LINE_TWO}", f"{LINE_ONE} {LINE_TWO}"])
def test_broken_token_variable_is_refused_without_echo(
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """DBT_CLOUD_TOKEN with a newline or a space inside is exit 78 naming the position only."""
    result = run_main(monkeypatch, capsys, emulator, *SYNC, DBT_CLOUD_TOKEN=value)
    assert result.code == 78
    assert_clean(result, LINE_ONE, LINE_TWO, "first_line", "second_line")
    assert_untouched(store)
    error = one_json(result)["error"]
    assert isinstance(error, dict)
    assert error["kind"] == "config"
    assert "DBT_CLOUD_TOKEN: character 23" in error["message"]


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbf" + TOKEN.encode(),
        TOKEN.encode() + b"\r\n",
        b"\xef\xbb\xbf" + TOKEN.encode() + b"\n",
    ],
    ids=["bom", "crlf", "bom-lf"],
)
def test_token_file_bom_and_one_line_end_are_stripped(
    content: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A token file saved with a BOM or a CRLF line end works: both are stripped."""
    result = run_main(
        monkeypatch,
        capsys,
        emulator,
        *SYNC,
        DBT_CLOUD_TOKEN="",
        DBT_CLOUD_TOKEN_FILE=token_file(tmp_path, content),
    )
    assert result.code == 0, result.stderr
    assert one_json(result)["status"] == "changes_pending"
    assert_clean(result, TOKEN)
    assert_untouched(store)


def test_undecodable_token_file_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A token file that is not UTF-8 is exit 78 naming the position, with no traceback."""
    content = LINE_ONE.encode() + b"\xff" + LINE_TWO.encode()
    result = run_main(
        monkeypatch,
        capsys,
        emulator,
        *SYNC,
        DBT_CLOUD_TOKEN="",
        DBT_CLOUD_TOKEN_FILE=token_file(tmp_path, content),
    )
    assert result.code == 78
    assert_clean(result, LINE_ONE, LINE_TWO)
    assert_untouched(store)
    assert "character 23" in result.stdout


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("DBT_CLOUD_HOST_URL", f"https://admin:{PASSWORD}@cloud.getdbt.com"),
        ("DBT_CLOUD_HOST_URL", f"https://{PASSWORD}@cloud.getdbt.com"),
        ("ALLOWLIST_SYNC_SOURCE_URL", f"https://u:{PASSWORD}@example.com/f.json"),
        ("ALLOWLIST_SYNC_WEBHOOK_URL", f"https://u:{PASSWORD}@hooks.example.com/x"),
        ("ALLOWLIST_SYNC_PUSHGATEWAY_URL", f"https://u:{PASSWORD}@push.example.com"),
        ("ALLOWLIST_SYNC_AZURE_DETAILS_URL", f"https://{PASSWORD}@example.com/d"),
        ("ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE", f"https://{PASSWORD}@example.com/d"),
    ],
)
@pytest.mark.parametrize("command", ["sync", "check"])
def test_url_with_user_info_is_refused_without_echo(
    name: str,
    url: str,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """Any configured URL carrying `user:password@` (or `user@`) is exit 78 and never printed."""
    args = SYNC if command == "sync" else ("check", "--output", "json")
    result = run_main(monkeypatch, capsys, emulator, *args, **{name: url})
    assert result.code == 78
    assert_clean(result, PASSWORD)
    assert_untouched(store)
    assert f"{name}: " in result.stdout and "user" in result.stdout
    one_json(result)


def test_source_url_flag_with_user_info_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """`--source-url` with credentials in it is exit 78 and never printed."""
    url = f"https://u:{PASSWORD}@example.com/f.json"
    result = run_main(
        monkeypatch, capsys, emulator, "sync", "--output", "json", "--source-url", url
    )
    assert result.code == 78
    assert_clean(result, PASSWORD)
    assert_untouched(store)
    assert "--source-url" in one_json(result)["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("output", ["json", "text"])
def test_signed_source_url_query_is_never_printed(
    how: str,
    output: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """A signed mirror URL's query is shown as `?<redacted>` in logs, the plan and JSON."""
    with DownloadCenter() as center:
        center.files[RECENT] = PUBLIC_FEED.read_bytes()
        url = center.file_url(RECENT) + f"?sv=2024-11-04&se=2030&sig={SIGNATURE}#frag{SIGNATURE}"
        if how == "flag":
            result = run_main(
                monkeypatch,
                capsys,
                emulator,
                "sync",
                "--dry-run",
                "--output",
                output,
                "--source-url",
                url,
            )
        else:
            result = run_main(
                monkeypatch,
                capsys,
                emulator,
                "sync",
                "--dry-run",
                "--output",
                output,
                ALLOWLIST_SYNC_SOURCE_URL=url,
            )
        assert [r.status for r in center.requests] == [200], "the feed was fetched, query and all"
    assert result.code == 0, result.stderr
    assert_clean(result, SIGNATURE, "2024-11-04")
    assert_untouched(store)
    shown = result.stdout + result.stderr
    assert f"ServiceTags_Public_{RECENT}.json?<redacted>" in shown
    if output == "json":
        source = one_json(result)["source"]
        assert isinstance(source, dict)
        assert source["url"].endswith(f"ServiceTags_Public_{RECENT}.json?<redacted>#<redacted>")


def test_check_shows_urls_without_query(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
    store: EmulatorStore,
) -> None:
    """`check` prints the source, Pushgateway and webhook URLs with the query as `?<redacted>`."""
    with DownloadCenter() as center:  # `check` fetches the feed: a loopback mirror, signed
        center.files[RECENT] = PUBLIC_FEED.read_bytes()
        source = center.file_url(RECENT)
        env = {
            "ALLOWLIST_SYNC_SOURCE_URL": f"{source}?sig={SIGNATURE}",
            "ALLOWLIST_SYNC_PUSHGATEWAY_URL": f"https://push.example.com/?token={SIGNATURE}",
            "ALLOWLIST_SYNC_WEBHOOK_URL": f"https://hooks.example.com/x?code={SIGNATURE}",
        }
        for output in ("json", "text"):
            result = run_main(monkeypatch, capsys, emulator, "check", "--output", output, **env)
            assert result.code == 0, result.stderr
            assert_clean(result, SIGNATURE)
            assert f"{source}?<redacted>" in result.stdout
            assert "https://push.example.com/?<redacted>" in result.stdout
    assert_untouched(store)


def test_outcome_json_is_redacted_for_every_consumer() -> None:
    """The Outcome object behind JSON output, /readyz and the webhook carries no URL query."""
    from allowlist_sync.azure.feed import SourceInfo
    from allowlist_sync.logs import register_url
    from allowlist_sync.outcome import Outcome

    url = f"https://mirror.example.com/ServiceTags_Public_20251028.json?sig={SIGNATURE}"
    register_url(url)
    outcome = Outcome(status="failed", dry_run=False, source=SourceInfo(kind="url", location=url))
    data = outcome.to_json()
    assert SIGNATURE not in json.dumps(data)
    assert data["source"]["url"].endswith(".json?<redacted>")
