"""The emulator's strict mode: where the spec is silent, the stricter answer a real server may give.

Each behaviour is pinned in both modes, so the lenient default stays as it was and the strict
switch changes exactly the five documented points.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from allowlist_sync.emulator import EmulatorServer, EmulatorStore, Fault
from tests.unit.test_emulator_store import BASE, RULES, body_of, call, cidr_strings, put, rule_body

MODES = pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])


def only_rule(store: EmulatorStore) -> dict[str, Any]:
    (rule,) = store.snapshot()
    return rule


@MODES
def test_same_network_spelled_twice(strict: bool) -> None:
    """Lenient: `x` and `x/32` are one network; strict: strings are compared, both are stored."""
    store = EmulatorStore(strict=strict)
    response = call(store, "POST", RULES, rule_body(["192.0.2.1", "192.0.2.1/32"]))
    assert response.status == 200
    extra = body_of(response)["extra"]
    if strict:
        assert extra["cidrs_already_exists"] == []
        assert cidr_strings(only_rule(store)) == ["192.0.2.1", "192.0.2.1/32"]
    else:
        assert extra["cidrs_already_exists"] == ["192.0.2.1/32"]
        assert cidr_strings(only_rule(store)) == ["192.0.2.1"]


@MODES
def test_same_string_twice_is_always_already_existing(strict: bool) -> None:
    """The very same string sent again is 'already exists' in both modes."""
    store = EmulatorStore(strict=strict)
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    response = put(store, rule_id, ["10.0.0.0/24"])
    assert response.status == 409
    assert body_of(response)["extra"]["cidrs_already_exists"] == ["10.0.0.0/24"]


@MODES
def test_replayed_removal(strict: bool) -> None:
    """Lenient: re-removing a removed CIDR is a no-op; strict: the whole PUT is a 400."""
    store = EmulatorStore(strict=strict)
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24", "10.0.1.0/24"])
    old = only_rule(store)["cidrs"][0]
    removal = {"id": old["id"], "cidr": old["cidr"], "state": 2}
    assert put(store, rule_id, [removal]).status == 200
    before = store.snapshot()
    replayed = put(store, rule_id, [removal, "10.0.2.0/24"])
    if strict:
        assert replayed.status == 400
        body = body_of(replayed)
        assert body["status"]["is_success"] is False
        assert str(old["id"]) in body["status"]["developer_message"]
        assert "extra" not in body  # not a list of refused CIDRs: the request itself is refused
        assert store.snapshot() == before
    else:
        assert replayed.status == 200
        assert cidr_strings(only_rule(store)) == ["10.0.1.0/24", "10.0.2.0/24"]


@MODES
def test_existing_cidr_resent_with_its_id(strict: bool) -> None:
    """Lenient: `{id, cidr, state: 1}` is ignored; strict: it counts as 'already exists'."""
    store = EmulatorStore(strict=strict)
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    kept = only_rule(store)["cidrs"][0]
    item = {"id": kept["id"], "cidr": kept["cidr"], "state": 1}
    with_addition = put(store, rule_id, [item, "10.0.1.0/24"])
    assert with_addition.status == 200
    expected_existing = ["10.0.0.0/24"] if strict else []
    assert body_of(with_addition)["extra"]["cidrs_already_exists"] == expected_existing
    alone = put(store, rule_id, [item])
    assert alone.status == (409 if strict else 200)


@MODES
def test_remove_and_re_add_in_one_put(strict: bool) -> None:
    """Lenient: removals go first, so the network is re-added; strict: judged against the rule
    as it was, the addition 'already exists' while the removal applies, so the network is gone."""
    store = EmulatorStore(strict=strict)
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24", "10.0.1.0/24"])
    old = only_rule(store)["cidrs"][0]
    response = put(
        store, rule_id, [{"id": old["id"], "cidr": old["cidr"], "state": 2}, old["cidr"]]
    )
    assert response.status == 200
    if strict:
        assert body_of(response)["extra"]["cidrs_already_exists"] == ["10.0.0.0/24"]
        assert cidr_strings(only_rule(store)) == ["10.0.1.0/24"]
    else:
        assert cidr_strings(only_rule(store)) == ["10.0.1.0/24", "10.0.0.0/24"]


@MODES
def test_refused_write_and_rule_set_enabled(strict: bool) -> None:
    """Lenient: a refused write changes nothing; strict: its rule_set_enabled still flips."""
    store = EmulatorStore(strict=strict)
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24", "127.0.0.1"])  # the caller
    refused = put(store, rule_id, ["10.0.0.0/24"], enabled=True)
    assert refused.status == 409
    assert store.rule_set_enabled is strict
    assert store.enforcement_flips == int(strict)
    invalid = call(store, "POST", RULES, rule_body(["nope"], enabled=False))
    assert invalid.status == 400
    assert store.rule_set_enabled is False
    assert store.enforcement_flips == 2 * int(strict)
    assert cidr_strings(only_rule(store)) == ["10.0.0.0/24", "127.0.0.1"]


def test_malformed_body_never_flips_even_when_strict() -> None:
    """A body that fails the schema is refused before anything, strict or not."""
    store = EmulatorStore(strict=True)
    body = {**rule_body(["10.0.0.0/24"], enabled=True), "type": 9}
    assert call(store, "POST", RULES, body).status == 400
    assert store.rule_set_enabled is False and store.enforcement_flips == 0


@MODES
def test_allow_and_deny_conflict_by_network_in_both_modes(strict: bool) -> None:
    """A network held by a deny rule fails however it is spelled, strict or not."""
    store = EmulatorStore(strict=strict)
    store.seed_rule("deny", type=2, cidrs=["198.51.100.7"])
    response = call(store, "POST", RULES, rule_body(["198.51.100.7/32", "192.0.2.0/24"]))
    assert body_of(response)["extra"]["failed_cidrs"] == ["198.51.100.7/32"]


# ----------------------------------------------------------------------------- the switch


def test_strict_is_off_by_default_and_settable() -> None:
    """The store is lenient unless told; `strict` can be changed at any time."""
    store = EmulatorStore()
    assert store.strict is False
    store.strict = True
    assert store.state()["strict"] is True


def test_strict_survives_reset() -> None:
    """reset empties the account but keeps the mode, like the page size."""
    store = EmulatorStore(strict=True)
    store.seed_rule("r")
    store.reset()
    assert store.strict is True and store.snapshot() == []


def test_strict_through_the_control_api() -> None:
    """POST /_emulator/strict switches the mode and answers it; bad bodies are 400."""
    store = EmulatorStore()
    on = call(store, "POST", "/_emulator/strict", {"strict": True}, headers={})
    assert on.status == 200 and body_of(on) == {"strict": True}
    assert store.strict is True
    assert body_of(call(store, "GET", "/_emulator/state", headers={}))["strict"] is True
    for bad in ({"strict": "yes"}, {}, [], b"nope"):
        response = call(store, "POST", "/_emulator/strict", bad, headers={})
        assert response.status == 400
    assert store.strict is True
    assert call(store, "GET", "/_emulator/strict", headers={}).status == 405


def test_emulator_server_takes_strict() -> None:
    """EmulatorServer(strict=...) sets the mode of the store it serves."""
    assert EmulatorServer(strict=True).store.strict is True
    assert EmulatorServer().store.strict is False
    given = EmulatorStore()
    assert EmulatorServer(given, strict=True).store is given
    assert given.strict is True
    kept = EmulatorStore(strict=True)
    assert EmulatorServer(kept).store.strict is True


def test_strict_over_http() -> None:
    """Over a socket, the control API switches a running emulator into strict mode."""
    with (
        EmulatorServer(quiet=True) as server,
        httpx.Client(base_url=server.url, trust_env=False) as control,
    ):
        assert control.post("/_emulator/strict", json={"strict": True}).json() == {"strict": True}
        assert server.store.strict is True


# ----------------------------------------------------------------------------- store_other


def test_store_other_answers_what_was_sent_but_drops_one_cidr() -> None:
    """Under store_other a create is answered with every CIDR, yet one is not stored."""
    store = EmulatorStore()
    store.add_fault(Fault(action="store_other", method="POST"))
    response = call(store, "POST", RULES, rule_body(["10.0.0.0/24", "10.0.1.0/24"]))
    assert response.status == 200
    assert cidr_strings(body_of(response)["data"]) == ["10.0.0.0/24", "10.0.1.0/24"]
    assert cidr_strings(only_rule(store)) == ["10.0.0.0/24"]
    assert store.requests[-1].fault == "store_other"
    assert store.faults == []


def test_store_other_on_a_removal_keeps_the_removed_cidr() -> None:
    """A PUT that only removes is answered as applied, yet the CIDR stays stored."""
    store = EmulatorStore()
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24", "10.0.1.0/24"])
    old = only_rule(store)["cidrs"][0]
    store.add_fault(Fault(action="store_other", method="PUT"))
    response = put(store, rule_id, [{"id": old["id"], "cidr": old["cidr"], "state": 2}])
    assert cidr_strings(body_of(response)["data"]) == ["10.0.1.0/24"]
    assert cidr_strings(only_rule(store)) == ["10.0.0.0/24", "10.0.1.0/24"]


def test_store_other_is_kept_for_a_write() -> None:
    """Reads and refused writes do not use up a store_other fault; the next real write does."""
    store = EmulatorStore()
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    store.add_fault(Fault(action="store_other"))
    assert call(store, "GET", RULES).status == 200
    assert call(store, "GET", f"{BASE}/ip-restrictions-set/1/validate/").status == 200
    assert put(store, rule_id, ["10.0.0.0/24"]).status == 409
    assert len(store.faults) == 1
    assert put(store, rule_id, ["10.0.1.0/24"]).status == 200
    assert store.faults == []
    assert cidr_strings(only_rule(store)) == ["10.0.0.0/24"]


def test_store_other_through_the_control_api() -> None:
    """The control API accepts the store_other action like any other fault."""
    store = EmulatorStore()
    fault = {"action": "store_other", "method": "PUT"}
    response = call(store, "POST", "/_emulator/faults", fault, headers={})
    assert response.status == 200
    assert json.loads(json.dumps(body_of(response)))["faults"][0]["action"] == "store_other"


def test_store_other_with_drop_after_on_the_same_write() -> None:
    """A write hit by drop_after and store_other is stored short and unanswered; both logged."""
    store = EmulatorStore()
    store.add_fault(Fault(action="drop_after", method="POST"))
    store.add_fault(Fault(action="store_other", method="POST"))
    response = call(store, "POST", RULES, rule_body(["10.0.0.0/24"]))
    assert response.drop is True
    assert cidr_strings(only_rule(store)) == []
    assert store.requests[-1].fault == "drop_after+store_other"


def test_store_other_times_two_and_a_status_fault_first() -> None:
    """A write refused by a status fault is not processed, so store_other waits for the next."""
    store = EmulatorStore()
    rule_id = store.seed_rule("azure-ad", cidrs=["10.0.0.0/24"])
    store.add_fault(Fault(action="status", status=503, method="PUT"))
    store.add_fault(Fault(action="store_other", method="PUT", times=2))
    assert put(store, rule_id, ["10.0.1.0/24"]).status == 503
    assert store.faults[0].times == 2
    assert put(store, rule_id, ["10.0.1.0/24"]).status == 200
    assert put(store, rule_id, ["10.0.2.0/24", "10.0.3.0/24"]).status == 200
    assert store.faults == []
    assert cidr_strings(only_rule(store)) == ["10.0.0.0/24", "10.0.2.0/24"]
