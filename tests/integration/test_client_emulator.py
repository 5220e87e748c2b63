"""The real client against the project's emulator over a loopback socket."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import AuthError, ConflictError, NotFoundError
from tests.emulated import ACCOUNT_ID, BOTH_MODES, TOKEN

pytestmark = BOTH_MODES
OWNED = "owned"


def make_client(server: EmulatorServer, token: str = TOKEN, account: int = ACCOUNT_ID) -> DbtClient:
    return DbtClient(
        host_url=server.url, account_id=account, token=SecretStr(token), owned_rule_name=OWNED
    )


def test_pagination_across_pages(emulator_mode: str) -> None:
    """All rules are read when the server pages them two at a time."""
    strict = emulator_mode == "strict"
    store = EmulatorStore(account_id=ACCOUNT_ID, token=TOKEN, max_page_size=2, strict=strict)
    for i in range(5):
        store.seed_rule(f"rule {i}", cidrs=[f"10.{i}.0.0/16"])
    with EmulatorServer(store, quiet=True) as server, make_client(server) as client:
        rules = client.list_rules()
    assert [r.name for r in rules] == [f"rule {i}" for i in range(5)]
    lists = [r for r in store.requests if r.method == "GET"]
    assert [r.query["offset"] for r in lists] == ["0", "2", "4"]


def test_create_then_update_then_remove_by_id(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """The owned rule is created, extended additively, and shrunk by id and state 2."""
    with make_client(emulator) as client:
        created = client.create_owned_rule(
            cidrs=["20.190.128.0/18", "52.45.144.63"], description="d", rule_set_enabled=False
        )
        assert [c.cidr for c in created.rule.cidrs] == ["20.190.128.0/18", "52.45.144.63"]
        updated = client.update_owned_rule(created.rule, add=["40.126.0.0/18"], remove=[])
        assert len(updated.rule.cidrs) == 3  # additive: nothing omitted was removed
        bare_ip = next(c for c in updated.rule.cidrs if c.cidr == "52.45.144.63")
        shrunk = client.update_owned_rule(updated.rule, add=[], remove=[bare_ip])
    assert sorted(c.cidr for c in shrunk.rule.cidrs) == ["20.190.128.0/18", "40.126.0.0/18"]
    assert store.enforcement_flips == 0


def test_partial_failure_is_reported(emulator: EmulatorServer, store: EmulatorStore) -> None:
    """CIDRs the platform refuses come back in failed_cidrs while the rest are saved."""
    store.seed_rule("blocked", type=2, cidrs=["192.0.2.0/24"])
    with make_client(emulator) as client:
        result = client.create_owned_rule(
            cidrs=["10.0.0.0/8", "192.0.2.0/24"], description="d", rule_set_enabled=False
        )
        again = client.update_owned_rule(
            result.rule, add=["10.0.0.0/8", "172.16.0.0/12"], remove=[]
        )
    assert result.failed_cidrs == ["192.0.2.0/24"]
    assert [c.cidr for c in result.rule.cidrs] == ["10.0.0.0/8"]
    assert again.cidrs_already_exists == ["10.0.0.0/8"]


def test_all_existing_is_a_conflict(emulator: EmulatorServer) -> None:
    """Submitting only CIDRs that already exist is a 409 ConflictError."""
    with make_client(emulator) as client:
        rule = client.create_owned_rule(
            cidrs=["10.0.0.0/8"], description="d", rule_set_enabled=False
        ).rule
        with pytest.raises(ConflictError, match="already exists"):
            client.update_owned_rule(rule, add=["10.0.0.0/8"], remove=[])


def test_bad_token_and_wrong_account(emulator: EmulatorServer) -> None:
    """A wrong token is a 401 AuthError; a wrong account a 404 NotFoundError."""
    with make_client(emulator, token="dbtc_wrong_token_000") as client, pytest.raises(AuthError):
        client.list_rules()
    with make_client(emulator, account=ACCOUNT_ID + 1) as client, pytest.raises(NotFoundError):
        client.list_rules()


@pytest.mark.parametrize("enveloped", [False, True], ids=["bare-spec", "enveloped"])
def test_validate_is_read_in_either_shape(
    emulator: EmulatorServer, store: EmulatorStore, enveloped: bool
) -> None:
    """caller_allowed reads the spec's bare validate answer and an enveloped one alike."""
    store.validate_enveloped = enveloped
    office = store.seed_rule("office", cidrs=["127.0.0.0/8"])
    with make_client(emulator) as client:
        assert client.caller_allowed(1) is True
        assert client.caller_allowed(1, without_rule_id=office) is False
    assert [r.status for r in store.requests] == [200, 200]


def test_create_answered_200_as_the_spec_says(
    emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """The emulator answers a create 200 (the spec), and the client takes the rule from it."""
    with make_client(emulator) as client:
        created = client.create_owned_rule(
            cidrs=["10.0.0.0/8"], description="d", rule_set_enabled=False
        )
    assert [(r.method, r.status) for r in store.requests] == [("POST", 200)]
    assert created.rule.id == store.snapshot()[0]["id"]
