"""IP networks: parse and normalise, filter by family, aggregate, subtract exclusions.

Both sides of the diff go through `parse_network`, so a stored bare IP (`52.45.144.63`) equals the
published `52.45.144.63/32`, and host bits are cleared (`1.6.7.10/24` is `1.6.7.0/24`). Networks
are compared as values, never as strings.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network

Network = IPv4Network | IPv6Network

_FAMILY_VERSION = {"ipv4": 4, "ipv6": 6}


def parse_network(text: str) -> Network:
    """The network a CIDR or bare address stands for; raises ValueError when it is neither."""
    return _parse(text)


#: The same strings are parsed again and again: each target of a fleet run parses its sources'
#: prefixes and its rule's CIDRs for the desired set, the plan and the verify. Networks are
#: immutable, so one parse serves them all (a failed parse is not cached).
@functools.lru_cache(maxsize=16384)
def _parse(text: str) -> Network:
    return ipaddress.ip_network(text.strip(), strict=False)


def network_or_none(text: str) -> Network | None:
    """`parse_network`, with None for a stored string that is not a network at all."""
    try:
        return parse_network(text)
    except ValueError:
        return None


#: Blocks that are never a provider's public egress (the IANA special-purpose registries' entries
#: that are not globally reachable, plus every IPv6 form that embeds an IPv4 address). A published
#: network may not overlap any of them, not even in part.
NOT_GLOBAL: tuple[Network, ...] = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip
#: IPv6 forms that carry an IPv4 address inside (mapped, compatible, NAT64, 6to4, Teredo, SIIT):
#: through them an IPv6 entry can stand for any IPv4 range, so none is accepted.
IPV4_EMBEDDING: tuple[IPv6Network, ...] = tuple(
    IPv6Network(text)
    for text in (
        "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
        "2001::/32", "2002::/16",
    )
)  # fmt: skip
#: IPv6 global unicast is allocated only from 2000::/3; inside it, these are not global.
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_V6_NOT_GLOBAL = tuple(
    IPv6Network(text) for text in ("2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16")
)


def scope_problem(network: Network, *, min_prefix_v4: int, min_prefix_v6: int) -> str | None:
    """Why `network` may not be allowlisted from a published feed, or None when it may.

    It must be globally routable unicast as a whole (no part of it in a special-purpose block,
    no IPv6 form that embeds IPv4) and no broader than the family's minimum prefix length.
    """
    if isinstance(network, IPv6Network):
        if any(network.overlaps(block) for block in IPV4_EMBEDDING):
            return "is an IPv6 form that embeds IPv4 addresses"
        inside = network.subnet_of(_V6_GLOBAL_UNICAST)
        if not inside or any(network.overlaps(block) for block in _V6_NOT_GLOBAL):
            return "is not globally routable unicast"
        minimum = min_prefix_v6
    else:
        if any(network.overlaps(block) for block in NOT_GLOBAL):
            return "is not globally routable unicast"
        minimum = min_prefix_v4
    if network.prefixlen < minimum:
        return f"is broader than /{minimum}"
    return None


def sort_key(network: Network) -> tuple[int, int, int]:
    """IPv4 before IPv6, then by address, then by prefix length."""
    return (network.version, int(network.network_address), network.prefixlen)


def sorted_networks(networks: Iterable[Network]) -> list[Network]:
    """Networks in a stable, human order."""
    return sorted(networks, key=sort_key)


def filter_families(networks: Iterable[Network], families: Sequence[str]) -> list[Network]:
    """Only the networks of the given families (`ipv4`, `ipv6`)."""
    versions = {_FAMILY_VERSION[f] for f in families}
    return [n for n in networks if n.version in versions]


def aggregate(networks: Iterable[Network]) -> list[Network]:
    """The fewest networks covering exactly the same addresses (adjacent and nested merged)."""
    items = list(networks)
    v4 = [n for n in items if isinstance(n, IPv4Network)]
    v6 = [n for n in items if isinstance(n, IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def subtract(networks: Iterable[Network], excluded: Sequence[Network]) -> list[Network]:
    """`networks` less every address in `excluded` (a network is split around an exclusion)."""
    result: list[Network] = []
    pending = list(networks)
    while pending:
        net = pending.pop()
        for ex in excluded:
            if ex.version != net.version or not net.overlaps(ex):
                continue
            if net.subnet_of(ex):  # type: ignore[arg-type]
                break
            pending.extend(net.address_exclude(ex))  # type: ignore[arg-type]
            break
        else:
            result.append(net)
    return result


def build_desired(
    prefixes: Iterable[str],
    *,
    families: Sequence[str],
    extra: Sequence[str] = (),
    exclude: Sequence[str] = (),
    collapse: bool = True,
) -> tuple[Network, ...]:
    """The desired set: published prefixes plus extras, less exclusions, in chosen families."""
    networks = {parse_network(p) for p in (*prefixes, *extra)}
    kept = filter_families(networks, families)
    if exclude:
        kept = subtract(kept, [parse_network(e) for e in exclude])
    if collapse:
        kept = aggregate(kept)
    return tuple(sorted_networks(set(kept)))
