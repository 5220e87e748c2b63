"""Unit tests of an emulator serving several accounts: each its own rules, token, faults, log."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

import pytest

from allowlist_sync.emulator import DEFAULT_TOKEN, EmulatorStore, Fault, Response

A, B = 4242, 5151
OTHER_TOKEN = "dbtc_account_b_token"
AUTH = {"Authorization": f"Token {DEFAULT_TOKEN}"}
PEER = "127.0.0.1"


def rules_path(account: int | str) -> str:
    return f"/api/v3/accounts/{account}/ip-restrictions/"


def call(
    store: EmulatorStore,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    token: str | None = DEFAULT_TOKEN,
) -> Response:
    raw = None if body is None else json.dumps(body).encode()
    headers = {} if token is None else {"Authorization": f"Token {token}"}
    return store.handle(method, path, query or {}, headers, raw, PEER)


def control(
    store: EmulatorStore, method: str, name: str, body: Any = None, **query: str
) -> Response:
    return call(store, method, f"/_emulator/{name}", body, query=query, token=None)


def body_of(response: Response) -> Any:
    assert response.body is not None
    return response.body


def create(account: int, cidrs: list[str], name: str = "owned") -> dict[str, Any]:
    items = [{"cidr": c} for c in cidrs]
    return {
        "name": name,
        "type": 1,
        "rule_set_enabled": False,
        "account_id": account,
        "cidrs": items,
    }


@pytest.fixture
def two() -> EmulatorStore:
    """An emulator serving A (the first, the default) and B, both taking the default token."""
    return EmulatorStore(accounts=[A, B])


# ------------------------------------------------------------------------------ construction


def test_the_one_account_constructor_serves_one_account() -> None:
    """`EmulatorStore(account_id=N)` serves N alone, as before several accounts existed."""
    store = EmulatorStore(account_id=77)
    assert store.accounts == [77]
    assert store.account_id == 77
    assert EmulatorStore().accounts == [1]


def test_the_first_of_several_accounts_is_the_default(two: EmulatorStore) -> None:
    """The first account listed is `account_id`, and what the one-account API means."""
    assert two.accounts == [A, B]
    assert two.account_id == A
    two.seed_rule("office", cidrs=["10.0.0.0/8"])
    assert [r["account_id"] for r in two.snapshot()] == [A]
    assert two.snapshot(B) == []


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"accounts": []}, "at least one account"),
        ({"accounts": [A, A]}, "4242 is listed twice"),
        ({"accounts": [0]}, "account ids are whole numbers from 1"),
        ({"accounts": [True]}, "account ids are whole numbers from 1"),
        ({"accounts": {A: ""}}, "token of account 4242 must not be empty"),
        ({"accounts": [A, B], "account_id": B}, "account_id must be the first of accounts"),
    ],
)
def test_bad_account_lists_are_refused(kwargs: dict[str, Any], problem: str) -> None:
    """An empty list, a duplicate, a non-positive id, an empty token or a clash: ValueError."""
    with pytest.raises(ValueError, match=problem):
        EmulatorStore(**kwargs)


# ------------------------------------------------------------------------------ the API


def test_two_accounts_hold_separate_rules_and_id_counters(two: EmulatorStore) -> None:
    """A rule created in one account is not in the other, and each counts ids from the start."""
    made_a = body_of(call(two, "POST", rules_path(A), create(A, ["10.0.0.0/8"])))["data"]
    made_b = body_of(call(two, "POST", rules_path(B), create(B, ["192.0.2.0/24"], "b")))["data"]
    assert (made_a["id"], made_a["cidrs"][0]["id"]) == (1, 1001)
    assert (made_b["id"], made_b["cidrs"][0]["id"]) == (1, 1001)
    assert made_b["account_id"] == B
    listed_a = body_of(call(two, "GET", rules_path(A)))["data"]
    listed_b = body_of(call(two, "GET", rules_path(B)))["data"]
    assert [r["name"] for r in listed_a] == ["owned"]
    assert [r["name"] for r in listed_b] == ["b"]
    assert [r["name"] for r in two.snapshot(B)] == ["b"]


def test_a_body_naming_the_other_account_is_refused(two: EmulatorStore) -> None:
    """A create for B whose body says account_id A is a 400, as for one account."""
    assert call(two, "POST", rules_path(B), create(A, ["10.0.0.0/8"])).status == 400
    assert two.snapshot(A) == two.snapshot(B) == []


def test_enforcement_is_per_account(two: EmulatorStore) -> None:
    """Enforcement turned on in B refuses the caller there (403) and nowhere else."""
    two.account(B).set_enforcement(True)
    assert call(two, "GET", rules_path(A)).status == 200
    refused = call(two, "GET", rules_path(B))
    assert refused.status == 403
    assert body_of(refused)["data"]["account_access_denied"] is True
    assert (two.rule_set_enabled, two.account(B).rule_set_enabled) == (False, True)


def test_an_enforcement_flip_is_counted_in_its_own_account(two: EmulatorStore) -> None:
    """A rule write that turns enforcement on in B counts a flip in B, not in A."""
    body = {**create(B, ["127.0.0.0/8"]), "rule_set_enabled": True}
    assert call(two, "POST", rules_path(B), body).status == 200
    assert (two.enforcement_flips, two.account(B).enforcement_flips) == (0, 1)


def test_an_account_with_its_own_token_refuses_the_others() -> None:
    """A token is good for its own account only: A's is 401 for B, B's is 401 for A."""
    store = EmulatorStore(accounts={A: None, B: OTHER_TOKEN})
    assert call(store, "GET", rules_path(A)).status == 200
    assert call(store, "GET", rules_path(B)).status == 401
    assert call(store, "GET", rules_path(B), token=OTHER_TOKEN).status == 200
    assert call(store, "GET", rules_path(A), token=OTHER_TOKEN).status == 401
    assert OTHER_TOKEN not in json.dumps(body_of(call(store, "GET", rules_path(A))))


@pytest.mark.parametrize("account", ["9999", "abc", "0"])
def test_an_account_not_served_is_404_with_a_known_token(two: EmulatorStore, account: str) -> None:
    """A path naming an account the emulator does not serve answers 404, as for one account."""
    response = call(two, "GET", rules_path(account))
    assert response.status == 404
    assert body_of(response)["status"]["developer_message"] == f"Account {account} not found"


def test_an_account_not_served_with_an_unknown_token_is_401() -> None:
    """The token is checked first: one no served account takes is 401 wherever it points."""
    store = EmulatorStore(accounts={A: None, B: OTHER_TOKEN})
    assert call(store, "GET", rules_path(9999), token="dbtc_nobody").status == 401
    assert call(store, "GET", rules_path(9999), token=OTHER_TOKEN).status == 404


def test_an_account_not_served_is_gated_by_the_token_owners_enforcement() -> None:
    """Like the real platform, the token's own account's IP restrictions apply first (403)."""
    store = EmulatorStore(accounts={A: None, B: OTHER_TOKEN})
    store.account(B).set_enforcement(True)
    assert call(store, "GET", rules_path(9999), token=OTHER_TOKEN).status == 403
    assert call(store, "GET", rules_path(9999)).status == 404


# ------------------------------------------------------------------------------ log, faults


def test_the_request_log_names_each_requests_account(two: EmulatorStore) -> None:
    """Every record carries the account id its path names, so tests can count per account."""
    call(two, "GET", rules_path(A))
    call(two, "POST", rules_path(B), create(B, ["10.0.0.0/8"]))
    call(two, "GET", rules_path(B))
    call(two, "GET", rules_path(9999))
    assert [r.account_id for r in two.requests] == [A, B, B, 9999]
    assert [r.method for r in two.account(B).requests] == ["POST", "GET"]
    assert (two.write_count(A), two.write_count(B), two.write_count()) == (0, 1, 1)
    assert two.requests[0].to_dict()["account_id"] == A


def test_a_fault_given_to_one_account_breaks_only_its_requests(two: EmulatorStore) -> None:
    """B's fault leaves A's requests alone; the one-account `add_fault` means the first account."""
    two.account(B).add_fault(Fault(action="status", status=502, method="GET"))
    assert call(two, "GET", rules_path(A)).status == 200
    assert call(two, "GET", rules_path(B)).status == 502
    two.add_fault(Fault(action="status", status=503))
    assert two.account(B).faults == []
    assert call(two, "GET", rules_path(B)).status == 200
    assert call(two, "GET", rules_path(A)).status == 503


def test_resetting_one_account_leaves_the_other(two: EmulatorStore) -> None:
    """`account(B).reset()` empties B only; `reset()` returns every account and the log."""
    two.seed_rule("a", cidrs=["10.0.0.0/8"])
    two.account(B).seed_rule("b", cidrs=["10.0.0.0/8"])
    call(two, "GET", rules_path(B))
    two.account(B).reset()
    assert (len(two.snapshot(A)), len(two.snapshot(B)), len(two.requests)) == (1, 0, 1)
    two.reset()
    assert (two.snapshot(A), two.requests) == ([], [])


def test_an_unknown_account_is_a_lookup_error(two: EmulatorStore) -> None:
    """Asking the store for an account it does not serve names the id and what is served."""
    with pytest.raises(LookupError, match=r"account 9 is not served \(served: 4242, 5151\)"):
        two.account(9)
    with pytest.raises(LookupError):
        two.snapshot(9)


# ------------------------------------------------------------------------------ control API


def test_control_endpoints_take_an_account_parameter(two: EmulatorStore) -> None:
    """rules, enforcement, faults, state and reset act on `?account=`, else the first account."""
    seeded = control(two, "POST", "rules", {"name": "b", "cidrs": ["10.0.0.0/8"]}, account=str(B))
    assert seeded.status == 201
    assert body_of(seeded)["data"]["account_id"] == B
    assert control(two, "POST", "enforcement", {"enabled": True}, account=str(B)).status == 200
    fault = {"action": "status", "status": 500}
    assert control(two, "POST", "faults", fault, account=str(B)).status == 200
    state_b = body_of(control(two, "GET", "state", account=str(B)))
    state_a = body_of(control(two, "GET", "state"))
    assert (state_b["account_id"], state_a["account_id"]) == (B, A)
    assert [r["name"] for r in state_b["rules"]] == ["b"]
    assert (state_b["rule_set_enabled"], state_a["rule_set_enabled"]) == (True, False)
    assert (len(state_b["faults"]), state_a["faults"]) == (1, [])
    assert state_a["accounts"] == [A, B]
    assert body_of(control(two, "GET", "faults", account=str(B)))["faults"][0]["status"] == 500
    assert body_of(control(two, "DELETE", "faults", account=str(B)))["faults"] == []
    reset_b = body_of(control(two, "POST", "reset", account=str(B)))
    assert (reset_b["account_id"], reset_b["rules"]) == (B, [])


def test_the_control_request_log_can_be_read_per_account(two: EmulatorStore) -> None:
    """GET requests lists every request; with `?account=` only that account's."""
    call(two, "GET", rules_path(A))
    call(two, "GET", rules_path(B))
    every = body_of(control(two, "GET", "requests"))["requests"]
    only_b = body_of(control(two, "GET", "requests", account=str(B)))["requests"]
    assert [r["account_id"] for r in every] == [A, B]
    assert [r["account_id"] for r in only_b] == [B]


@pytest.mark.parametrize(
    ("method", "name", "body", "account", "status"),
    [
        ("GET", "state", None, "9999", 404),
        ("POST", "rules", {"name": "x"}, "9999", 404),
        ("GET", "state", None, "abc", 400),
        ("GET", "state", None, "", 400),
        ("GET", "requests", None, "-1", 400),
        ("POST", "caller", {"ip": None}, str(B), 400),
        ("POST", "strict", {"strict": True}, str(A), 400),
        ("POST", "latency", {"seconds": 0}, str(A), 400),
    ],
)
def test_a_bad_account_parameter_is_refused(
    two: EmulatorStore, method: str, name: str, body: Any, account: str, status: int
) -> None:
    """An account not served is 404, not an id is 400, and emulator-wide settings refuse one."""
    response = control(two, method, name, body, account=account)
    assert response.status == status
    assert body_of(response)["status"]["is_success"] is False
    assert two.snapshot(A) == two.snapshot(B) == []
    assert (two.caller_ip, two.strict) == (None, False)


# ------------------------------------------------------------------------------ latency


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True, "1"])
def test_a_bad_latency_is_refused(bad: Any) -> None:
    """Latency is a finite number of seconds from 0: anything else is a ValueError."""
    with pytest.raises(ValueError, match="latency"):
        EmulatorStore(latency=bad)
    store = EmulatorStore()
    with pytest.raises(ValueError, match="latency"):
        store.latency = bad
    assert store.latency == 0.0


def test_the_latency_can_be_read_and_set_over_the_control_api() -> None:
    """POST /_emulator/latency sets the delay, state shows it, a bad value is 400."""
    store = EmulatorStore()
    assert body_of(control(store, "POST", "latency", {"seconds": 0.25})) == {"seconds": 0.25}
    assert store.latency == 0.25
    assert body_of(control(store, "GET", "state"))["latency"] == 0.25
    for bad in ({"seconds": -1}, {"seconds": "1"}, {"seconds": None}, {}, [1]):
        assert control(store, "POST", "latency", bad).status == 400
    assert store.latency == 0.25


def _wait_for(condition: Any) -> None:
    """Poll until `condition()` holds (at most 5 s); the wait itself is not what a test asserts."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def test_latency_holds_api_requests_but_not_the_lock_nor_control_requests() -> None:
    """A request waiting out the latency holds no lock: control calls and state still answer."""
    store = EmulatorStore(latency=60)
    answers: list[Response] = []
    worker = threading.Thread(target=lambda: answers.append(call(store, "GET", rules_path(1))))
    worker.start()
    _wait_for(lambda: store.in_flight == 1)
    assert control(store, "POST", "rules", {"name": "meanwhile"}).status == 201
    assert store.snapshot()[0]["name"] == "meanwhile"
    assert store.requests == []  # still waiting: not processed, not logged yet
    store.wake_sleepers()  # what the server does on stop
    worker.join(timeout=5)
    assert answers[0].drop is True
    assert [(r.status, r.processed) for r in store.requests] == [(None, False)]
    assert store.in_flight == 0


def test_concurrent_delayed_requests_are_in_flight_at_once() -> None:
    """Eight requests waiting out the latency wait side by side: the store counts 8 at once."""
    store = EmulatorStore(latency=60)
    workers = [threading.Thread(target=call, args=(store, "GET", rules_path(1))) for _ in range(8)]
    for worker in workers:
        worker.start()
    _wait_for(lambda: store.in_flight == 8)
    assert store.peak_in_flight == 8
    store.wake_sleepers()
    for worker in workers:
        worker.join(timeout=5)
    assert store.in_flight == 0
    assert store.peak_in_flight == 8


def test_no_latency_answers_at_once_and_counts_one_in_flight() -> None:
    """Latency 0 (the default) never waits; a lone request peaks at one in flight."""
    store = EmulatorStore()
    assert call(store, "GET", rules_path(1)).status == 200
    assert (store.latency, store.in_flight, store.peak_in_flight) == (0.0, 0, 1)
    assert control(store, "GET", "state").status == 200
    assert store.peak_in_flight == 1  # control requests are not counted
