"""Rule writes (create and update): what each CIDR item does, what is stored, what is answered.

The platform's documented quirks live here: updates are additive, a CIDR is removed only by
`{id, cidr, state: 2}`, a write succeeds (200) when at least one CIDR changed and lists the rest
in `extra.failed_cidrs` / `extra.cidrs_already_exists`, a write where nothing could change is
refused (409 when everything already exists, else 400) and stores nothing, the same network
may not be in an allow and a deny rule, and `rule_set_enabled` on any rule write sets
enforcement for the whole account.

Where the spec is silent the lenient mode (the default) gives the forgiving answer; the strict
mode gives the stricter one a real server may well give (docs/emulator.md lists the five).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from allowlist_sync.emulator.account import (
    ACTIVE,
    ALLOW,
    DELETED,
    DENY,
    Account,
    Network,
    StoredCidr,
    StoredRule,
    mapped_network,
    now,
)
from allowlist_sync.emulator.envelope import Response, error_response, success_status
from allowlist_sync.emulator.schema import RuleBody, parse_rule_body


@dataclass
class CidrChanges:
    """How one write's CIDR items were judged, before anything is stored."""

    added: list[tuple[str, Network]] = field(default_factory=list)
    removed: list[StoredCidr] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    already_exists: list[str] = field(default_factory=list)
    #: Strict only: ids of removals whose CIDR was removed before (a replayed removal).
    replayed_removals: list[int] = field(default_factory=list)
    attempted: int = 0  # items that asked for a change, successful or not

    @property
    def changes_anything(self) -> bool:
        """Whether storing these changes alters the rule."""
        return bool(self.added or self.removed)


@dataclass(frozen=True)
class WriteEffect:
    """What the last successful write changed, so a `store_other` fault can undo part of it."""

    rule: StoredRule
    added: list[StoredCidr]
    removed: list[StoredCidr]

    def undo_one(self) -> None:
        """Store something other than what was sent: drop the last addition, else keep the
        first removal."""
        stamp = now()
        if self.added:
            self.added[-1].state = DELETED
            self.added[-1].updated_at = stamp
        elif self.removed:
            self.removed[0].state = ACTIVE
            self.removed[0].updated_at = stamp


def create_rule(
    account: Account, data: Any, *, strict: bool
) -> tuple[Response, WriteEffect | None]:
    """POST ip-restrictions/: store a new rule unless nothing in it could be saved."""
    parsed = parse_rule_body(data, account_id=account.account_id, update_id=None)
    probe = StoredRule(0, parsed.name, parsed.type, "", ACTIVE, "", "")
    changes = judge_cidrs(account, probe, parsed, strict=strict)
    refused = refusal(changes)
    if refused is not None:
        if strict:
            account.set_enabled(parsed.rule_set_enabled, by_request=True)
        return refused, None
    rule = account.new_rule(parsed.name, parsed.type, parsed.description or "")
    added = [account.add_cidr(rule, text, net) for text, net in changes.added]
    account.set_enabled(parsed.rule_set_enabled, by_request=True)
    # The spec documents 200 for a create (not 201).
    return write_response(account, rule, changes), WriteEffect(rule, added, [])


def update_rule(
    account: Account, rule: StoredRule, data: Any, *, strict: bool
) -> tuple[Response, WriteEffect | None]:
    """PUT ip-restrictions/{id}: additive update; removals only by id and state 2."""
    parsed = parse_rule_body(data, account_id=account.account_id, update_id=rule.id)
    # Additions are checked against the type the rule will have after this update.
    changes = judge_cidrs(account, replace(rule, type=parsed.type), parsed, strict=strict)
    refused = refusal(changes)
    if refused is not None:
        if strict:
            account.set_enabled(parsed.rule_set_enabled, by_request=True)
        return refused, None
    stamp = now()
    rule.name = parsed.name
    rule.type = parsed.type
    if parsed.description is not None:
        rule.description = parsed.description
    for cidr in changes.removed:
        cidr.state = DELETED
        cidr.updated_at = stamp
    added = [account.add_cidr(rule, text, net) for text, net in changes.added]
    rule.updated_at = stamp
    account.set_enabled(parsed.rule_set_enabled, by_request=True)
    return write_response(account, rule, changes), WriteEffect(rule, added, changes.removed)


def judge_cidrs(account: Account, rule: StoredRule, body: RuleBody, *, strict: bool) -> CidrChanges:
    """Sort a body's CIDR items into added, removed, failed and already existing."""
    changes = CidrChanges()
    by_id = {c.id: c for c in rule.cidrs}
    for item in body.cidrs:
        if item.id is None:
            continue
        existing = by_id.get(item.id)
        if existing is None:
            changes.attempted += 1
            changes.failed.append(item.cidr)
        elif item.state == DELETED and existing.state == ACTIVE:
            changes.attempted += 1
            changes.removed.append(existing)
        elif item.state == DELETED:
            # Lenient: re-removing is a no-op, so a replayed PUT does not fail on it.
            if strict:
                changes.replayed_removals.append(item.id)
        elif strict:
            # Lenient: a known id with state 1 asks for nothing; strict: it is re-sent.
            changes.attempted += 1
            if existing.state == ACTIVE:
                changes.already_exists.append(item.cidr)
            else:
                changes.failed.append(item.cidr)
    # Lenient: removals apply first, so a body that removes a CIDR and adds it again re-adds
    # it. Strict: additions are judged against the rule as it was before this write.
    removed_ids = set() if strict else {c.id for c in changes.removed}
    active = [c for c in rule.active_cidrs() if c.id not in removed_ids]
    # Lenient: one network, however spelled, exists once; strict: strings are compared.
    present: set[object] = {c.cidr if strict else c.network for c in active}
    other_type = DENY if rule.type == ALLOW else ALLOW
    conflicting = {
        c.network
        for r in account.active_rules()
        if r.type == other_type and r.id != rule.id
        for c in r.active_cidrs()
    }
    for item in body.cidrs:
        if item.id is not None:
            continue
        changes.attempted += 1
        if item.state == DELETED:
            changes.failed.append(item.cidr)  # cannot remove a CIDR without its id
            continue
        net = mapped_network(item.cidr)
        key = item.cidr if strict else net
        if net is None:
            changes.failed.append(item.cidr)
        elif key in present:
            changes.already_exists.append(item.cidr)
        elif net in conflicting:
            # "The second entry fails to save": allow and deny may not share a network.
            changes.failed.append(item.cidr)
        else:
            present.add(key)
            changes.added.append((item.cidr, net))
    return changes


def refusal(changes: CidrChanges) -> Response | None:
    """The error for a write that must store nothing, or None when it may proceed."""
    if changes.replayed_removals:
        ids = ", ".join(str(i) for i in changes.replayed_removals)
        return error_response(
            400, "Invalid request.", f"cidrs: CIDR id(s) {ids} were already removed"
        )
    if changes.attempted == 0 or changes.changes_anything:
        return None
    extra = {"failed_cidrs": changes.failed, "cidrs_already_exists": changes.already_exists}
    if not changes.failed:
        return error_response(
            409,
            "CIDR(s) already exists",
            "Every submitted CIDR already exists in this rule; nothing was saved",
            extra=extra,
        )
    return error_response(400, "Invalid IP range", "No submitted CIDR could be saved", extra=extra)


def write_response(account: Account, rule: StoredRule, changes: CidrChanges) -> Response:
    """The observed answer to a successful write: `{status, data, extra, error_code}`."""
    return Response(
        200,
        {
            "status": success_status(),
            "data": account.rule_json(rule),
            "extra": {
                "failed_cidrs": changes.failed,
                "cidrs_already_exists": changes.already_exists,
            },
            "error_code": None,
        },
    )
