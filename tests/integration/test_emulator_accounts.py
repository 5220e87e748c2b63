"""One emulator serving several accounts over loopback: the real client on each, and latency."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from allowlist_sync.dbt import Connection, DbtClient
from allowlist_sync.emulator import DEFAULT_TOKEN, EmulatorServer, EmulatorStore
from allowlist_sync.errors import AuthError
from tests.cli import cli_env
from tests.emulated import BOTH_MODES

A, B = 4242, 5151
B_TOKEN = "dbtc_account_b_token_5151"
OWNED = "owned"
AUTH = {"Authorization": f"Token {DEFAULT_TOKEN}"}


def client_for(server: EmulatorServer, account: int, token: str = DEFAULT_TOKEN) -> DbtClient:
    """The project's client for one account of the emulator."""
    connection = Connection(host_url=server.url, account_id=account, token=SecretStr(token))
    return DbtClient.connect(connection, owned_rule_name=OWNED)


def rules_path(account: int) -> str:
    return f"/api/v3/accounts/{account}/ip-restrictions/"


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll until `condition()` holds (at most 5 s); how long it took is never asserted."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


@pytest.fixture
def two(emulator_mode: str) -> Iterator[EmulatorServer]:
    """An emulator serving A (the emulator's token) and B (its own token)."""
    store = EmulatorStore(accounts={A: None, B: B_TOKEN}, strict=emulator_mode == "strict")
    with EmulatorServer(store, quiet=True) as server:
        yield server


@BOTH_MODES
def test_the_client_lists_and_creates_rules_on_each_of_two_accounts(
    two: EmulatorServer,
) -> None:
    """DbtClient.connect on A and on B of one emulator sees and writes each account alone."""
    two.store.account(B).seed_rule("Office", cidrs=["198.51.100.0/24"])
    with client_for(two, A) as on_a, client_for(two, B, B_TOKEN) as on_b:
        assert on_a.list_rules() == []
        assert [r.name for r in on_b.list_rules()] == ["Office"]
        made_a = on_a.create_owned_rule(
            cidrs=["20.190.128.0/18"], description="d", rule_set_enabled=False
        )
        made_b = on_b.create_owned_rule(
            cidrs=["40.126.0.0/18"], description="d", rule_set_enabled=False
        )
        assert [r.name for r in on_a.list_rules()] == [OWNED]
        assert [r.name for r in on_b.list_rules()] == ["Office", OWNED]
    assert (made_a.rule.id, made_b.rule.id) == (1, 2)  # each account counts its own ids
    assert [c["cidr"] for c in two.store.snapshot(A)[0]["cidrs"]] == ["20.190.128.0/18"]
    assert [c["cidr"] for c in two.store.snapshot(B)[1]["cidrs"]] == ["40.126.0.0/18"]
    assert (two.store.write_count(A), two.store.write_count(B)) == (1, 1)
    assert {r.account_id for r in two.store.requests} == {A, B}


@BOTH_MODES
def test_a_token_of_one_account_is_refused_by_the_other(two: EmulatorServer) -> None:
    """The client with A's token on B (and B's on A) gets the platform's 401: AuthError."""
    with client_for(two, B) as wrong, pytest.raises(AuthError):
        wrong.list_rules()
    with client_for(two, A, B_TOKEN) as wrong, pytest.raises(AuthError):
        wrong.list_rules()
    assert two.store.snapshot(A) == two.store.snapshot(B) == []


def test_control_requests_over_http_address_one_account() -> None:
    """`?account=` on the control API seeds, reads and resets the account it names."""
    with (
        EmulatorServer(EmulatorStore(accounts=[A, B]), quiet=True) as server,
        httpx.Client(base_url=server.url, trust_env=False, timeout=5) as control,
    ):
        made = control.post("/_emulator/rules", params={"account": B}, json={"name": "b"})
        assert made.status_code == 201
        assert control.get("/_emulator/state").json()["rules"] == []
        state_b = control.get("/_emulator/state", params={"account": B}).json()
        assert [r["name"] for r in state_b["rules"]] == ["b"]
        missing = control.get("/_emulator/state", params={"account": 9})
        assert missing.status_code == 404
        assert "account 9 is not served" in missing.json()["status"]["developer_message"]


def test_concurrent_requests_wait_out_the_latency_side_by_side() -> None:
    """Eight clients against a 60 s latency are all in flight at once, control calls still
    answer at once, and stopping the server cuts every wait short (the requests fail)."""
    store = EmulatorStore(latency=60)
    server = EmulatorServer(store, quiet=True).start()
    # One client shared by the threads (httpx clients are thread-safe): a connection each.
    shared = httpx.Client(base_url=server.url, headers=AUTH, trust_env=False, timeout=30)
    failures: list[BaseException] = []

    def request() -> None:
        try:
            shared.get(rules_path(1))
        except httpx.TransportError as exc:
            failures.append(exc)

    workers = [threading.Thread(target=request) for _ in range(8)]
    try:
        for worker in workers:
            worker.start()
        wait_for(lambda: store.in_flight == 8)
        with httpx.Client(base_url=server.url, trust_env=False, timeout=5) as control:
            state = control.get("/_emulator/state").json()  # not delayed
        assert (state["latency"], store.peak_in_flight) == (60.0, 8)
    finally:
        server.stop()
        for worker in workers:
            worker.join(timeout=5)
        shared.close()
    assert len(failures) == 8
    assert [(r.status, r.processed) for r in store.requests] == [(None, False)] * 8


def test_a_short_latency_answers_normally() -> None:
    """With a small latency every request is processed and answered as without one."""
    with (
        EmulatorServer(EmulatorStore(), latency=0.01, quiet=True) as server,
        httpx.Client(base_url=server.url, headers=AUTH, trust_env=False, timeout=5) as c,
    ):
        assert c.get(rules_path(1)).status_code == 200
        assert server.store.latency == 0.01
    assert [(r.status, r.processed) for r in server.store.requests] == [(200, True)]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics are POSIX")
def test_the_command_serves_several_accounts_with_a_delay() -> None:
    """`allowlist-sync emulator --account-id A --account-id B:TOKEN --delay ...` exports A,
    names B, says what each holds (warning about A, which locks the caller out), and serves
    both, B with its own token only."""
    command = [
        sys.executable, "-m", "allowlist_sync", "emulator", "--port", "0",
        "--account-id", str(A), "--account-id", f"{B}:{B_TOKEN}", "--delay", "0.01",
        "--rule", f"{B}:Office=198.51.100.0/24", "--enforce-account", str(B),
        "--caller-ip", "198.51.100.7", "--enforce-account", str(A),
    ]  # fmt: skip
    with subprocess.Popen(
        command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            banner = [proc.stdout.readline().rstrip("\n") for _ in range(4)]
            status = [proc.stderr.readline().rstrip("\n") for _ in range(6)]
            url = banner[0].removeprefix("export DBT_CLOUD_HOST_URL=")
            assert banner[1:] == [
                f"export DBT_CLOUD_ACCOUNT_ID={A}",
                f"export DBT_CLOUD_TOKEN={DEFAULT_TOKEN}",
                f"# also served, same host: accounts {B} (its own token)",
            ]
            assert B_TOKEN not in "".join(banner)
            assert status[1:] == [
                f"emulator: account {A}: no rules; enforcement on; caller 198.51.100.7",
                f"emulator: warning: account {A}: enforcement is on and no allow rule holds the"
                " caller 198.51.100.7: every API request will be refused (403)",
                f"emulator: account {B}: allow rule 'Office' (1 CIDR); enforcement on;"
                " caller 198.51.100.7",
                "emulator: every /api/ request waits 0.01 s (--delay)",
                "emulator: paste the lines printed above into another terminal to try it",
            ]
            with httpx.Client(base_url=url, trust_env=False, timeout=5) as c:
                on_b = {"Authorization": f"Token {B_TOKEN}"}
                assert c.get(rules_path(A), headers=AUTH).status_code == 403  # locked out
                assert c.get(rules_path(B), headers=on_b).json()["data"][0]["name"] == "Office"
                assert c.get(rules_path(B), headers=AUTH).status_code == 401
                assert c.get("/_emulator/state").json()["latency"] == 0.01
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
