"""Writing and verifying the audit log.

``record`` is called by every use case that reads or changes personal data, inside the
caller's transaction: if the use case rolls back, so does its audit entry, and an
action that commits always has one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy.orm import Session

from jumin.audit import repository
from jumin.audit.domain import (
    GENESIS_HASH,
    Actor,
    AuditAction,
    ChainProblem,
    EntryContent,
    Outcome,
    VerificationReport,
    checkpoint_message,
    plain_json_string,
)
from jumin.audit.models import AuditEntry
from jumin.config import get_settings
from jumin.db import utcnow
from jumin.keys import SigningKey, load_or_create_ed25519
from jumin.request_context import current_request_id

AUDIT_KEY_NAME = "audit-checkpoint"


def _signing_key() -> SigningKey:
    return load_or_create_ed25519(AUDIT_KEY_NAME)


@lru_cache(maxsize=4096)
def _lane_names(organisation_code: str, lanes: int) -> list[str]:
    """The lanes of an organisation, named once per process (the list is never changed)."""
    return repository.lane_names(organisation_code, lanes)


@dataclass(frozen=True, slots=True)
class Attachment:
    """Another feature's rows that point at the entry, written with it.

    On PostgreSQL ``sql`` (WITH items, each starting with a comma, reading the new
    entry's id as ``entry.id``; bind parameters ``params``, named apart from the entry's
    own) runs in the append's single statement. Where the entry is appended the slower
    way, ``write`` is called with the entry's id instead.
    """

    sql: str
    params: Mapping[str, Any]
    write: Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    """An entry just written: its id (access-log rows point to it) and its place in its chain."""

    id: int
    chain: str
    seq: int
    entry_hash: str


def record(
    session: Session,
    *,
    actor: Actor,
    action: AuditAction,
    target_kind: str,
    target_id: str,
    purpose: str = "",
    outcome: Outcome = Outcome.SUCCESS,
    detail: str = "",
    now: dt.datetime | None = None,
    attach: Attachment | None = None,
) -> RecordedEntry:
    # The use case's pending changes go out first, as the ORM's autoflush sent them before.
    session.flush()
    settings = get_settings()
    # Each organisation has its own chains: appends from different bodies never meet.
    names = _lane_names(actor.organisation_code, settings.audit_chain_lanes)
    content = EntryContent(
        chain="",
        seq=0,
        occurred_at=now or utcnow(),
        request_id=current_request_id(),
        actor_kind=actor.kind.value,
        actor_id=actor.actor_id,
        organisation_code=actor.organisation_code,
        action=action.value,
        target_kind=target_kind,
        target_id=target_id,
        purpose=purpose,
        outcome=outcome.value,
        detail=detail,
        prev_hash="",
    )
    values = {
        "occurred_at": content.occurred_at,
        "request_id": content.request_id,
        "actor_kind": content.actor_kind,
        "actor_id": content.actor_id,
        "organisation_code": content.organisation_code,
        "action": content.action,
        "target_kind": content.target_kind,
        "target_id": content.target_id,
        "purpose": content.purpose,
        "outcome": content.outcome,
        "detail": content.detail,
    }
    appended = None
    if session.get_bind().dialect.name == "postgresql" and plain_json_string(names[0]):
        appended = repository.append_to_free_lane(
            session,
            names,
            content.canonical_body(),
            values,
            attached_sql=attach.sql if attach else "",
            attached_params=attach.params if attach else None,
        )
    if appended is not None:
        placed = replace(content, chain=appended.chain, seq=appended.seq, prev_hash=appended.prev_hash)
        if placed.digest() != appended.entry_hash:
            # The database's canonical form differs from the verifier's: an entry written
            # now would fail `jumin audit verify`, so none is (the transaction fails).
            raise RuntimeError(f"audit entry hashed differently by the database (chain {appended.chain})")
        entry = RecordedEntry(appended.id, appended.chain, appended.seq, appended.entry_hash)
    else:
        head = repository.lock_free_lane(session, actor.organisation_code, settings.audit_chain_lanes)
        placed = replace(content, chain=head.chain, seq=head.last_seq + 1, prev_hash=head.last_hash)
        entry_hash = placed.digest()
        entry_id = repository.append(
            session,
            {
                **values,
                "chain": placed.chain,
                "seq": placed.seq,
                "prev_hash": placed.prev_hash,
                "entry_hash": entry_hash,
            },
        )
        entry = RecordedEntry(entry_id, placed.chain, placed.seq, entry_hash)
        if attach is not None:
            attach.write(entry_id)
    if entry.seq % settings.audit_checkpoint_every == 0:
        key = _signing_key()
        repository.add_checkpoint(
            session,
            {
                "chain": entry.chain,
                "seq": entry.seq,
                "entry_hash": entry.entry_hash,
                "signed_at": content.occurred_at,
                "key_id": key.key_id,
                "signature": key.private_key.sign(
                    checkpoint_message(entry.chain, entry.seq, entry.entry_hash)
                ).hex(),
            },
        )
    return entry


def _content_of(entry: AuditEntry) -> EntryContent:
    return EntryContent(
        chain=entry.chain,
        seq=entry.seq,
        occurred_at=entry.occurred_at,
        request_id=entry.request_id,
        actor_kind=entry.actor_kind,
        actor_id=entry.actor_id,
        organisation_code=entry.organisation_code,
        action=entry.action,
        target_kind=entry.target_kind,
        target_id=entry.target_id,
        purpose=entry.purpose,
        outcome=entry.outcome,
        detail=entry.detail,
        prev_hash=entry.prev_hash,
    )


def verify(session: Session) -> VerificationReport:
    """Walk every chain and report each place where it is not what was written."""
    key = _signing_key()
    problems: list[ChainProblem] = []
    heads = {h.chain: h for h in repository.heads(session)}
    chains = sorted(set(heads) | set(repository.chains_with_entries(session)))
    total_entries = 0
    total_checkpoints = 0
    for chain in chains:
        hashes: dict[int, str] = {}
        expected_seq = 1
        prev_hash = GENESIS_HASH
        for entry in repository.entries_in_order(session, chain):
            total_entries += 1
            if entry.seq != expected_seq:
                problems.append(ChainProblem(chain, expected_seq, None, f"entry {expected_seq} is missing"))
            elif entry.prev_hash != prev_hash:
                problems.append(ChainProblem(chain, entry.seq, entry.id, "previous hash does not match"))
            elif _content_of(entry).digest() != entry.entry_hash:
                problems.append(ChainProblem(chain, entry.seq, entry.id, "content does not match its hash"))
            hashes[entry.seq] = entry.entry_hash
            expected_seq = entry.seq + 1
            prev_hash = entry.entry_hash
        head = heads.get(chain)
        last_seq = expected_seq - 1
        if head is None:
            problems.append(ChainProblem(chain, last_seq, None, "chain head is missing"))
        elif head.last_seq != last_seq or head.last_hash != prev_hash:
            problems.append(
                ChainProblem(
                    chain,
                    head.last_seq,
                    None,
                    "chain ends before its recorded head"
                    if head.last_seq > last_seq
                    else "chain head does not match the last entry",
                )
            )
        for checkpoint in repository.checkpoints(session, chain):
            total_checkpoints += 1
            try:
                key.public_key.verify(
                    bytes.fromhex(checkpoint.signature),
                    checkpoint_message(chain, checkpoint.seq, checkpoint.entry_hash),
                )
            except (InvalidSignature, ValueError):
                problems.append(ChainProblem(chain, checkpoint.seq, None, "checkpoint signature is invalid"))
                continue
            if hashes.get(checkpoint.seq) != checkpoint.entry_hash:
                problems.append(
                    ChainProblem(chain, checkpoint.seq, None, "entry differs from its signed checkpoint")
                )
    problems.sort(key=lambda p: (p.chain, p.seq))
    return VerificationReport(
        chains=len(chains),
        entries=total_entries,
        checkpoints=total_checkpoints,
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class AuditView:
    id: int
    chain: str
    seq: int
    occurred_at: dt.datetime
    request_id: str
    actor_kind: str
    actor_id: str
    organisation_code: str
    action: str
    target_kind: str
    target_id: str
    purpose: str
    outcome: str
    detail: str
    entry_hash: str


def search(
    session: Session,
    *,
    viewer: Actor,
    organisation_code: str | None,
    target_kind: str | None = None,
    target_id: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> Sequence[AuditView]:
    """Audit entries for an auditor; reading the audit log is itself audited."""
    rows = repository.search(
        session,
        organisation_code=organisation_code,
        target_kind=target_kind,
        target_id=target_id,
        action=action,
        since=since,
        limit=limit,
        before_id=before_id,
    )
    record(
        session,
        actor=viewer,
        action=AuditAction.AUDIT_VIEWED,
        target_kind="audit_log",
        target_id=organisation_code or "*",
        detail=f"rows={len(rows)}",
    )
    return [
        AuditView(
            id=r.id,
            chain=r.chain,
            seq=r.seq,
            occurred_at=r.occurred_at,
            request_id=r.request_id,
            actor_kind=r.actor_kind,
            actor_id=r.actor_id,
            organisation_code=r.organisation_code,
            action=r.action,
            target_kind=r.target_kind,
            target_id=r.target_id,
            purpose=r.purpose,
            outcome=r.outcome,
            detail=r.detail,
            entry_hash=r.entry_hash,
        )
        for r in rows
    ]
