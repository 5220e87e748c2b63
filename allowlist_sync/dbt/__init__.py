"""The dbt platform side: a narrow Admin API client, its models, and reading an account's rules.

Takes plain values (`Connection`), never the process-wide settings, so one run can build a
client per account.
"""

from allowlist_sync.dbt.client import DbtClient
from allowlist_sync.dbt.connection import Connection
from allowlist_sync.dbt.models import Cidr, Pagination, Rule, RuleType, State, WriteResult
from allowlist_sync.dbt.rules import (
    deny_conflicts,
    find_owned_rule,
    owned_candidates,
    rule_set_enabled,
)

__all__ = [
    "Cidr",
    "Connection",
    "DbtClient",
    "Pagination",
    "Rule",
    "RuleType",
    "State",
    "WriteResult",
    "deny_conflicts",
    "find_owned_rule",
    "owned_candidates",
    "rule_set_enabled",
]
