"""Normalisation, families, aggregation and exclusion of IP networks."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allowlist_sync.cidrs import (
    aggregate,
    build_desired,
    filter_families,
    parse_network,
    sorted_networks,
    subtract,
)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def test_bare_ipv4_is_a_slash_32() -> None:
    """A stored bare IPv4 address means the /32 network."""
    assert parse_network("52.45.144.63") == net("52.45.144.63/32")


def test_bare_ipv6_is_a_slash_128() -> None:
    """A stored bare IPv6 address means the /128 network."""
    assert parse_network("2603:1006:2000::1") == net("2603:1006:2000::1/128")


def test_host_bits_are_cleared() -> None:
    """A CIDR with host bits set names the network it lies in."""
    assert parse_network("1.6.7.10/24") == net("1.6.7.0/24")


def test_whitespace_is_ignored() -> None:
    """Surrounding whitespace in a stored CIDR does not make it a different network."""
    assert parse_network(" 10.0.0.0/8\n") == net("10.0.0.0/8")


@pytest.mark.parametrize("text", ["", "not-an-ip", "300.1.1.1", "10.0.0.0/33", "::/129"])
def test_invalid_text_is_rejected(text: str) -> None:
    """Anything that is not an address or network raises ValueError."""
    with pytest.raises(ValueError, match=r".+"):
        parse_network(text)


def test_filter_families() -> None:
    """Only the chosen address families remain."""
    nets = [net("10.0.0.0/8"), net("2603:1006:2000::/48")]
    assert filter_families(nets, ["ipv4"]) == [net("10.0.0.0/8")]
    assert filter_families(nets, ["ipv6"]) == [net("2603:1006:2000::/48")]
    assert filter_families(nets, ["ipv4", "ipv6"]) == nets


def test_aggregate_merges_adjacent_and_nested() -> None:
    """Adjacent halves merge, nested networks disappear into their parent, families stay apart."""
    nets = [
        net("10.0.0.0/25"),
        net("10.0.0.128/25"),
        net("10.0.0.7/32"),
        net("2001:db8::/33"),
        net("2001:db8:8000::/33"),
    ]
    assert aggregate(nets) == [net("10.0.0.0/24"), net("2001:db8::/32")]


def test_subtract_splits_around_an_exclusion() -> None:
    """Excluding a /26 from a /24 leaves the other three quarters."""
    result = sorted_networks(subtract([net("10.0.0.0/24")], [net("10.0.0.64/26")]))
    assert result == [net("10.0.0.0/26"), net("10.0.0.128/25")]


def test_subtract_drops_a_network_inside_an_exclusion() -> None:
    """A network wholly inside an excluded range is gone."""
    assert subtract([net("10.0.0.0/24")], [net("10.0.0.0/16")]) == []


def test_subtract_ignores_other_families() -> None:
    """An IPv6 exclusion never touches IPv4 networks."""
    assert subtract([net("10.0.0.0/24")], [net("::/0")]) == [net("10.0.0.0/24")]


def test_build_desired_combines_everything() -> None:
    """Prefixes plus extras, less exclusions, in the chosen families, aggregated and sorted."""
    desired = build_desired(
        ["10.0.0.0/25", "10.0.0.128/25", "2603:1006:2000::/48", "20.190.128.5"],
        families=["ipv4"],
        extra=["192.0.2.1"],
        exclude=["20.190.128.5/32"],
    )
    assert desired == (net("10.0.0.0/24"), net("192.0.2.1/32"))


def test_build_desired_without_aggregation_keeps_each_prefix() -> None:
    """With aggregation off, adjacent prefixes stay separate (duplicates still collapse)."""
    desired = build_desired(
        ["10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/25"], families=["ipv4", "ipv6"], collapse=False
    )
    assert desired == (net("10.0.0.0/25"), net("10.0.0.128/25"))


v4_networks = st.builds(
    lambda addr, plen: ipaddress.ip_network((addr, plen), strict=False),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=8, max_value=32),
)


@given(st.lists(v4_networks, max_size=40))
def test_aggregate_covers_exactly_the_same_addresses(nets: list[ipaddress.IPv4Network]) -> None:
    """Aggregation never adds or loses an address, and its result has no overlaps."""
    merged = aggregate(nets)
    for n in nets:
        assert any(n.subnet_of(m) for m in merged)
    for m in merged:
        # every merged network is made only of input addresses
        assert sum(x.num_addresses for x in aggregate([n for n in nets if n.subnet_of(m)])) == (
            m.num_addresses
        )
    for a in merged:
        assert sum(1 for b in merged if a.overlaps(b)) == 1
