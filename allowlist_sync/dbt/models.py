"""Typed views of the dbt Admin API's IP-restriction responses (only the fields this job reads)."""

from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass


class RuleType(IntEnum):
    ALLOW = 1
    DENY = 2


class State(IntEnum):
    ACTIVE = 1
    DELETED = 2


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="ignore"))
class Cidr:
    """One stored CIDR entry of a rule; `cidr` is exactly the string that was sent.

    A slotted dataclass, not a model: an account may list hundreds of thousands of entries, and
    each model instance costs several times the memory.
    """

    cidr: str
    id: int | None = None
    state: int = State.ACTIVE
    enabled: bool = True


class Rule(_Model):
    """An IP-restriction rule as the API returns it."""

    id: int
    name: str
    type: int
    state: int = State.ACTIVE
    ip_restriction_rule_set_id: int | None = None
    rule_set_enabled: bool = False
    account_id: int | None = None
    description: str | None = None
    cidrs: list[Cidr] = Field(default_factory=list)

    @property
    def active_cidrs(self) -> list[Cidr]:
        """Stored CIDRs that are in force (the API may echo deleted ones with state 2)."""
        return [c for c in self.cidrs if c.state == State.ACTIVE]

    @property
    def is_active(self) -> bool:
        return self.state == State.ACTIVE


class Pagination(_Model):
    count: int
    total_count: int


class WriteResult(_Model):
    """What a create or update reported: the rule as saved, and the CIDRs it did not save."""

    rule: Rule
    failed_cidrs: list[str] = Field(default_factory=list)
    cidrs_already_exists: list[str] = Field(default_factory=list)
