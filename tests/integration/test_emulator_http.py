"""Integration tests of the emulator over a real loopback socket, using plain httpx."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from allowlist_sync.emulator import (
    DEFAULT_TOKEN,
    EmulatorServer,
    EmulatorStore,
    Fault,
    serve_forever,
)

RULES = "/api/v3/accounts/1/ip-restrictions/"
AUTH = {"Authorization": f"Token {DEFAULT_TOKEN}"}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def rule_body(cidrs: list[str], **extra: Any) -> dict[str, Any]:
    items = [{"cidr": c} for c in cidrs]
    base = {"name": "azure-ad", "type": 1, "rule_set_enabled": False, "account_id": 1}
    return {**base, "cidrs": items, **extra}


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorStore(max_page_size=2), quiet=True) as srv:
        yield srv


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[httpx.Client]:
    # trust_env=False: never route loopback traffic through a proxy from the environment.
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5, trust_env=False) as c:
        yield c


def test_url_is_loopback_with_the_bound_port(server: EmulatorServer) -> None:
    """The server binds 127.0.0.1 on an ephemeral port and reports it in .url."""
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.port > 0


def test_create_then_list_across_pages(client: httpx.Client, server: EmulatorServer) -> None:
    """Rules created over HTTP are listed in pages of max_page_size with total_count."""
    for i in range(3):
        response = client.post(RULES, json=rule_body([f"10.0.{i}.0/24", f"10.1.{i}.1"]))
        assert response.status_code == 200
    seen: list[dict[str, Any]] = []
    while True:
        page = client.get(RULES, params={"limit": 100, "offset": len(seen)}).json()
        seen += page["data"]
        assert page["extra"]["pagination"]["count"] <= 2
        if len(seen) >= page["extra"]["pagination"]["total_count"]:
            break
    assert [c["cidr"] for r in seen for c in r["cidrs"]] == [
        "10.0.0.0/24",
        "10.1.0.1",
        "10.0.1.0/24",
        "10.1.1.1",
        "10.0.2.0/24",
        "10.1.2.1",
    ]
    assert server.store.write_count() == 3


def test_put_and_delete_over_http(client: httpx.Client) -> None:
    """PUT answers the enveloped rule and DELETE answers 204 with an empty body."""
    rule = client.post(RULES, json=rule_body(["10.0.0.0/24"])).json()["data"]
    updated = client.put(
        f"{RULES}{rule['id']}", json=rule_body(["10.0.1.0/24"], id=rule["id"])
    ).json()
    assert updated["status"]["code"] == 200
    assert [c["cidr"] for c in updated["data"]["cidrs"]] == ["10.0.0.0/24", "10.0.1.0/24"]
    deleted = client.delete(f"{RULES}{rule['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get(f"{RULES}{rule['id']}").status_code == 404


def test_missing_token_is_401_and_the_token_is_never_echoed(server: EmulatorServer) -> None:
    """Requests without a valid token get the 401 envelope that contains no token."""
    with httpx.Client(base_url=server.url, trust_env=False) as anonymous:
        response = anonymous.get(RULES)
        assert response.status_code == 401
        assert response.json()["status"]["user_message"] == "Invalid token."
        wrong = anonymous.get(RULES, headers={"Authorization": "Bearer secret-wrong"})
        assert wrong.status_code == 401
        assert "secret-wrong" not in wrong.text
        assert DEFAULT_TOKEN not in wrong.text


def test_unknown_path_and_method_get_json_envelopes(client: httpx.Client) -> None:
    """Unknown paths answer a 404 envelope and unsupported methods a 405 envelope."""
    missing = client.get("/api/v3/accounts/1/nothing/")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json()["status"]["is_success"] is False
    patched = client.patch(RULES, json={})
    assert patched.status_code == 405
    assert patched.json()["status"]["code"] == 405
    odd = client.request("PROPFIND", RULES)
    assert odd.status_code == 501
    assert odd.json()["status"]["is_success"] is False


def test_drop_before_raises_a_protocol_error_and_writes_nothing(
    client: httpx.Client, server: EmulatorServer
) -> None:
    """drop_before closes the connection unanswered, so httpx raises, and nothing is stored."""
    server.store.add_fault(Fault(action="drop_before", method="POST"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(RULES, json=rule_body(["10.0.0.0/24"]))
    assert server.store.snapshot() == []
    assert server.store.write_count() == 0
    assert client.get(RULES).status_code == 200  # the client recovers on a new connection


def test_drop_after_is_an_ambiguous_write(client: httpx.Client, server: EmulatorServer) -> None:
    """drop_after applies the write and then closes the connection unanswered."""
    server.store.add_fault(Fault(action="drop_after", method="POST"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(RULES, json=rule_body(["10.0.0.0/24"]))
    assert [r["name"] for r in server.store.snapshot()] == ["azure-ad"]
    assert server.store.write_count() == 1


def test_status_fault_with_retry_after(client: httpx.Client, server: EmulatorServer) -> None:
    """A status fault answers its code, the error envelope and the Retry-After header."""
    server.store.add_fault(Fault(action="status", status=429, retry_after="3", times=2))
    for _ in range(2):
        response = client.get(RULES)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.json()["status"]["user_message"] == "Too Many Requests"
    assert client.get(RULES).status_code == 200


def test_delay_after_times_out_the_client_but_applies_the_write(
    client: httpx.Client, server: EmulatorServer
) -> None:
    """A delay_after longer than the client's timeout yields a read timeout after the write."""
    server.store.add_fault(Fault(action="delay_after", method="POST", seconds=1.0))
    with pytest.raises(httpx.ReadTimeout):
        client.post(RULES, json=rule_body(["10.0.0.0/24"]), timeout=0.2)
    assert len(server.store.snapshot()) == 1


def test_delay_before_answers_late(client: httpx.Client, server: EmulatorServer) -> None:
    """delay_before holds the request for `seconds` and then answers normally."""
    server.store.add_fault(Fault(action="delay_before", seconds=0.2))
    start = time.monotonic()
    assert client.get(RULES).status_code == 200
    assert time.monotonic() - start >= 0.19


def test_stop_is_prompt_with_a_delayed_request_pending() -> None:
    """stop() returns within a second while a request sleeps in a long delay, which then fails."""
    store = EmulatorStore()
    store.add_fault(Fault(action="delay_before", seconds=30))
    server = EmulatorServer(store, quiet=True).start()
    errors: list[BaseException] = []

    def request() -> None:
        try:
            with httpx.Client(base_url=server.url, headers=AUTH, trust_env=False) as c:
                c.get(RULES, timeout=10)
        except httpx.TransportError as exc:
            errors.append(exc)

    worker = threading.Thread(target=request)
    worker.start()
    time.sleep(0.2)  # let the request reach its delay (it is logged only after it)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.0
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert len(errors) == 1


def test_stop_closes_idle_keep_alive_connections(server: EmulatorServer) -> None:
    """After stop(), a pooled keep-alive connection no longer gets answers."""
    with httpx.Client(base_url=server.url, headers=AUTH, trust_env=False, timeout=2) as c:
        assert c.get(RULES).status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            c.get(RULES)


def test_enforcement_via_control_api(client: httpx.Client, server: EmulatorServer) -> None:
    """Seeding rules, setting the caller and enforcing via /_emulator gives a 403 when blocked."""
    control = httpx.Client(base_url=server.url, trust_env=False)
    with control:
        seeded = control.post(
            "/_emulator/rules", json={"name": "office", "type": 1, "cidrs": ["198.51.100.0/24"]}
        )
        assert seeded.status_code == 201
        assert control.post("/_emulator/caller", json={"ip": "203.0.113.7"}).status_code == 200
        assert control.post("/_emulator/enforcement", json={"enabled": True}).status_code == 200
        blocked = client.get(RULES)
        assert blocked.status_code == 403
        assert blocked.json()["data"]["account_access_denied"] is True
        valid = control.post("/_emulator/caller", json={"ip": "198.51.100.1"})
        assert valid.status_code == 200
        assert client.get(RULES).status_code == 200
        check = client.get("/api/v3/accounts/1/ip-restrictions-set/1/validate/").json()
        assert check == {"is_valid_for_admin": True}
        assert control.post("/_emulator/caller", json={"ip": None}).status_code == 200
        # Back to the socket peer, 127.0.0.1, which no rule allows.
        assert client.get(RULES).status_code == 403


def test_control_api_faults_requests_state_and_reset(
    client: httpx.Client, server: EmulatorServer
) -> None:
    """Faults posted to /_emulator/faults apply; the log and state are readable; reset clears."""
    with httpx.Client(base_url=server.url, trust_env=False) as control:
        faults = [{"action": "status", "status": 503, "method": "GET"}]
        assert control.post("/_emulator/faults", json=faults).status_code == 200
        assert client.get(RULES).status_code == 503
        assert client.get(RULES, params={"limit": "1"}).status_code == 200
        log = control.get("/_emulator/requests").json()["requests"]
        assert [(r["status"], r["fault"], r["query"]) for r in log] == [
            (503, "status", {}),
            (200, None, {"limit": "1"}),
        ]
        state = control.get("/_emulator/state").json()
        assert state["rules"] == []
        assert state["rule_set_enabled"] is False
        assert state["enforcement_flips"] == 0
        assert control.post("/_emulator/reset").status_code == 200
        assert control.get("/_emulator/requests").json()["requests"] == []


def test_request_log_lines_name_method_path_status_and_never_the_token() -> None:
    """A non-quiet server logs one line per request with method, path and status, no token."""
    log = io.StringIO()
    with (
        EmulatorServer(EmulatorStore(), log=log) as server,
        httpx.Client(base_url=server.url, headers=AUTH, trust_env=False) as c,
    ):
        c.get(RULES)
        c.get(RULES, headers={"Authorization": "Token leaked?"})
    lines = log.getvalue().splitlines()
    assert lines == [f"emulator: GET {RULES} -> 200", f"emulator: GET {RULES} -> 401"]
    assert DEFAULT_TOKEN not in log.getvalue()
    assert "leaked" not in log.getvalue()


def test_serve_forever_in_a_thread_prints_the_environment() -> None:
    """serve_forever prints the three export lines, serves, and returns when stop is set."""
    out = io.StringIO()
    stop = threading.Event()
    worker = threading.Thread(
        target=serve_forever, kwargs={"out": out, "quiet": True, "stop": stop}, daemon=True
    )
    worker.start()
    deadline = time.monotonic() + 5
    while out.getvalue().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("export DBT_CLOUD_HOST_URL=http://127.0.0.1:")
    assert lines[1:3] == [
        "export DBT_CLOUD_ACCOUNT_ID=1",
        f"export DBT_CLOUD_TOKEN={DEFAULT_TOKEN}",
    ]
    url = lines[0].split("=", 1)[1]
    with httpx.Client(base_url=url, headers=AUTH, trust_env=False) as c:
        assert c.get(RULES).status_code == 200
    stop.set()
    worker.join(timeout=2)
    assert not worker.is_alive()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics are POSIX")
def test_serve_forever_process_exits_on_sigterm() -> None:
    """The blocking entry point serves the printed URL and exits cleanly on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), *sys.path])}
    code = (
        "from allowlist_sync.emulator import serve_forever;"
        "serve_forever(port=0, account_id=7, token='t0k', quiet=True)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline().strip() for _ in range(3)]
            assert lines[1:] == ["export DBT_CLOUD_ACCOUNT_ID=7", "export DBT_CLOUD_TOKEN=t0k"]
            url = lines[0].removeprefix("export DBT_CLOUD_HOST_URL=")
            with httpx.Client(base_url=url, trust_env=False) as c:
                ok = c.get(
                    "/api/v3/accounts/7/ip-restrictions/", headers={"Authorization": "Token t0k"}
                )
                assert ok.status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
