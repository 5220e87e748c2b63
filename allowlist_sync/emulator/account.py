"""The emulated account's data: rules, their CIDRs, the rule set's enforcement, rendered as JSON.

`Account` holds the state and the few operations every endpoint shares (find, add, render,
is this IP allowed). It knows nothing of HTTP, requests or locking: the store holds one lock
around every use. Networks are compared as IPv6, IPv4 mapped into `::ffff:0:0/96`, as the real
server's computed `cidr_ipv6` column suggests it does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_ACCOUNT_ID = 1
RULE_SET_ID = 1
SERVICE_TOKEN_ID = 1
ALLOW = 1
DENY = 2
ACTIVE = 1
DELETED = 2
# Rule and CIDR ids come from different ranges so a client that mixes them up gets a
# 404 or a failed CIDR instead of silently touching the wrong object.
FIRST_RULE_ID = 1
FIRST_CIDR_ID = 1001

Network = ipaddress.IPv6Network


def now() -> str:
    """The timestamp stored in `created_at` / `updated_at`."""
    return datetime.now(UTC).isoformat()


def mapped_network(text: str) -> Network | None:
    """The network a CIDR string denotes, IPv4 as IPv4-mapped IPv6; None if not an IP/network."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if isinstance(net, ipaddress.IPv4Network):
        return ipaddress.IPv6Network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
    return net


def mapped_address(text: str) -> ipaddress.IPv6Address | None:
    """An IP address, IPv4 as IPv4-mapped IPv6; None if not an address."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{addr}")
    return addr


def cidr_ipv6(network: Network) -> str:
    """The `cidr_ipv6` string the server computes, e.g. `::ffff:52.45.144.63/128`."""
    mapped = network.network_address.ipv4_mapped
    if mapped is not None and network.prefixlen >= 96:
        return f"::ffff:{mapped}/{network.prefixlen}"
    return str(network)


@dataclass
class StoredCidr:
    """One CIDR of a rule, with the string exactly as it was sent."""

    id: int
    rule_id: int
    cidr: str
    network: Network
    state: int
    created_at: str
    updated_at: str


@dataclass
class StoredRule:
    """One rule; deleted CIDRs stay in `cidrs` with state 2, as the real API keeps them."""

    id: int
    name: str
    type: int
    description: str
    state: int
    created_at: str
    updated_at: str
    cidrs: list[StoredCidr] = field(default_factory=list)

    def active_cidrs(self) -> list[StoredCidr]:
        """The CIDRs in force (state 1)."""
        return [c for c in self.cidrs if c.state == ACTIVE]


class Account:
    """Rules, CIDRs and the account-wide enforcement flag of one emulated account."""

    def __init__(self, account_id: int = DEFAULT_ACCOUNT_ID, *, enforce: bool = False) -> None:
        self.account_id = account_id
        self.initial_enforce = enforce  # what reset() restores
        self.reset()

    def reset(self) -> None:
        """No rules, ids from the start, enforcement as constructed, no flips counted."""
        stamp = now()
        self.rules: dict[int, StoredRule] = {}
        self.next_rule_id = FIRST_RULE_ID
        self.next_cidr_id = FIRST_CIDR_ID
        self.enabled = self.initial_enforce
        self.rule_set_created_at = stamp
        self.rule_set_updated_at = stamp
        self.flips = 0

    def set_enabled(self, enabled: bool, *, by_request: bool) -> None:
        """Set enforcement; an API request that changes it counts as a flip."""
        if enabled != self.enabled:
            self.enabled = enabled
            self.rule_set_updated_at = now()
            if by_request:
                self.flips += 1

    def active_rules(self) -> list[StoredRule]:
        """Active rules ordered by id."""
        return [r for _, r in sorted(self.rules.items()) if r.state == ACTIVE]

    def find_rule(self, rule_id: int | None) -> StoredRule | None:
        """The active rule with this id, or None."""
        rule = self.rules.get(rule_id if rule_id is not None else -1)
        return rule if rule is not None and rule.state == ACTIVE else None

    def new_rule(self, name: str, rule_type: int, description: str) -> StoredRule:
        """Store an empty active rule under the next rule id."""
        stamp = now()
        rule = StoredRule(self.next_rule_id, name, rule_type, description, ACTIVE, stamp, stamp)
        self.rules[rule.id] = rule
        self.next_rule_id += 1
        return rule

    def add_cidr(self, rule: StoredRule, text: str, network: Network) -> StoredCidr:
        """Append an active CIDR to `rule` under the next CIDR id."""
        stamp = now()
        cidr = StoredCidr(self.next_cidr_id, rule.id, text, network, ACTIVE, stamp, stamp)
        rule.cidrs.append(cidr)
        self.next_cidr_id += 1
        return cidr

    def is_allowed(self, ip: str, exclude_rule_id: int | None = None) -> bool:
        """Whether `ip` is in an active allow rule's CIDR and in no active deny rule's CIDR."""
        addr = mapped_address(ip)
        if addr is None:
            return False
        allowed = False
        for rule in self.active_rules():
            if rule.id == exclude_rule_id:
                continue
            if any(addr in c.network for c in rule.active_cidrs()):
                if rule.type == DENY:
                    return False
                allowed = True
        return allowed

    def rule_json(self, rule: StoredRule) -> dict[str, Any]:
        """A rule as the API renders it (active CIDRs only)."""
        return {
            "id": rule.id,
            "name": rule.name,
            "type": rule.type,
            "state": rule.state,
            "ip_restriction_rule_set_id": RULE_SET_ID,
            "rule_set_enabled": self.enabled,
            "account_id": self.account_id,
            "description": rule.description,
            "enabled_for_service_tokens": True,
            "created_by_id": None,
            "created_by_service_token_id": SERVICE_TOKEN_ID,
            "created_at": rule.created_at,
            "updated_at": rule.updated_at,
            "cidrs": [
                {
                    "id": c.id,
                    "state": c.state,
                    "ip_restriction_rule_id": rule.id,
                    "enabled": True,
                    "cidr": c.cidr,
                    "cidr_ipv6": cidr_ipv6(c.network),
                    "created_at": c.created_at,
                    "updated_at": c.updated_at,
                }
                for c in rule.active_cidrs()
            ],
        }

    def rule_set_json(self) -> dict[str, Any]:
        """The account's rule set as the API renders it."""
        return {
            "id": RULE_SET_ID,
            "account_id": self.account_id,
            "state": ACTIVE,
            "enabled": self.enabled,
            "enabled_for_service_tokens": True,
            "created_at": self.rule_set_created_at,
            "updated_at": self.rule_set_updated_at,
        }
