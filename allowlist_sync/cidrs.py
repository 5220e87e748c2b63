"""IP networks: parse and normalise, filter by family, aggregate, subtract exclusions.

Both sides of the diff go through `parse_network`, so a stored bare IP (`52.45.144.63`) equals the
published `52.45.144.63/32`, and host bits are cleared (`1.6.7.10/24` is `1.6.7.0/24`). Networks
are compared as values, never as strings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network

Network = IPv4Network | IPv6Network

_FAMILY_VERSION = {"ipv4": 4, "ipv6": 6}


def parse_network(text: str) -> Network:
    """The network a CIDR or bare address stands for; raises ValueError when it is neither."""
    return ipaddress.ip_network(text.strip(), strict=False)


def network_or_none(text: str) -> Network | None:
    """`parse_network`, with None for a stored string that is not a network at all."""
    try:
        return parse_network(text)
    except ValueError:
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
