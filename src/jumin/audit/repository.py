from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import LargeBinary, String, TextClause, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from jumin.audit.domain import GENESIS_HASH
from jumin.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry
from jumin.db import UTCDateTime


class Head(NamedTuple):
    chain: str
    last_seq: int
    last_hash: str


class Appended(NamedTuple):
    """Where an entry landed: its id and its place in the chain the database chose."""

    id: int
    chain: str
    seq: int
    prev_hash: str
    entry_hash: str


_HEAD_COLUMNS = (AuditChainHead.chain, AuditChainHead.last_seq, AuditChainHead.last_hash)


def lane_names(organisation_code: str, lanes: int) -> list[str]:
    """Lane 0 keeps the organisation's bare code, so a quiet organisation has one chain."""
    return [organisation_code] + [f"{organisation_code}/{k}" for k in range(1, lanes)]


def lock_free_lane(session: Session, organisation_code: str, lanes: int) -> Head:
    """The head of one of the organisation's chains, locked until the transaction ends.

    A head stays locked until commit, so with a single chain every audited transaction of
    an organisation would wait for the previous one's commit. Instead the first head no
    other transaction holds is taken (``SKIP LOCKED``); a head this transaction already
    holds is never skipped, so its later entries tend to follow on the same chain. Only a
    transaction that holds no head yet ever waits (when every lane is busy), so two
    waiting transactions can never be waiting on each other.
    """
    names = lane_names(organisation_code, lanes)
    if session.get_bind().dialect.name != "postgresql":
        # SQLite has one writer at a time: lanes would only spread one sequence thin.
        return _lock_single_chain(session, names[0])
    free = _first_free_lane(session, names)
    if free is not None:
        return free
    # The lanes do not exist yet, or every one is busy. Missing heads are created in a
    # transaction of their own, committed at once: created inside this one, they would
    # stay locked until it ends and every other transaction would wait on them.
    with session.get_bind().engine.begin() as own:
        own.execute(
            pg_insert(AuditChainHead)
            .values([{"chain": n, "last_seq": 0, "last_hash": GENESIS_HASH} for n in names])
            .on_conflict_do_nothing(index_elements=["chain"])
        )
    free = _first_free_lane(session, names)
    if free is not None:
        return free
    # Every lane is busy: wait for one, chosen by the clock so that waiters spread out.
    return _head(
        session.execute(
            select(*_HEAD_COLUMNS)
            .where(AuditChainHead.chain == names[time.monotonic_ns() % len(names)])
            .with_for_update()
        ).one()
    )


def _head(row: Any) -> Head:
    return Head(row[0], row[1], row[2])


def _first_free_lane(session: Session, names: list[str]) -> Head | None:
    row = session.execute(
        select(*_HEAD_COLUMNS)
        .where(AuditChainHead.chain.in_(names))
        .order_by(AuditChainHead.chain)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    return None if row is None else _head(row)


def _lock_single_chain(session: Session, chain: str) -> Head:
    """Inserting the head with ON CONFLICT DO NOTHING first means two transactions that
    start a new chain at once both end up waiting on the same row instead of one failing."""
    session.execute(
        sqlite_insert(AuditChainHead)
        .values(chain=chain, last_seq=0, last_hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    return _head(
        session.execute(select(*_HEAD_COLUMNS).where(AuditChainHead.chain == chain).with_for_update()).one()
    )


_APPEND_WITH = """
    WITH lane AS (
        SELECT chain, last_seq, last_hash FROM audit_chain_heads
        WHERE chain = ANY(:lanes)
        ORDER BY chain
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ), placed AS (
        SELECT chain, last_seq + 1 AS seq, last_hash AS prev_hash,
               encode(sha256(
                   convert_to('["' || chain || '",' || (last_seq + 1)::text || ',', 'UTF8')
                   || :body
                   || convert_to(',"' || last_hash || '"]', 'UTF8')
               ), 'hex') AS entry_hash
        FROM lane
    ), moved AS (
        UPDATE audit_chain_heads AS h SET last_seq = placed.seq, last_hash = placed.entry_hash
        FROM placed WHERE h.chain = placed.chain
    ), entry AS (
        INSERT INTO audit_entries (
            chain, seq, occurred_at, request_id, actor_kind, actor_id, organisation_code, action,
            target_kind, target_id, purpose, outcome, detail, prev_hash, entry_hash
        )
        SELECT chain, seq, :occurred_at, :request_id, :actor_kind, :actor_id, :organisation_code,
               :action, :target_kind, :target_id, :purpose, :outcome, :detail, prev_hash, entry_hash
        FROM placed
        RETURNING id, chain, seq, prev_hash, entry_hash
    )"""
_APPEND_RETURNING = """
    SELECT id, chain, seq, prev_hash, entry_hash FROM entry
    """


@lru_cache(maxsize=64)
def _append_statement(attached_sql: str) -> TextClause:
    """The append with another feature's WITH items (``attached_sql``), built once per text."""
    return text(_APPEND_WITH + attached_sql + _APPEND_RETURNING).bindparams(
        bindparam("lanes", type_=ARRAY(String)),
        bindparam("body", type_=LargeBinary),
        bindparam("occurred_at", type_=UTCDateTime),
    )


def append_to_free_lane(
    session: Session,
    names: list[str],
    body: bytes,
    values: dict[str, Any],
    *,
    attached_sql: str = "",
    attached_params: Mapping[str, Any] | None = None,
) -> Appended | None:
    """The entry appended to the first free lane of ``names`` (PostgreSQL only).

    One round trip for the whole append: take the first lane no other transaction holds,
    hash the entry in its place, insert it and move the head. The statement builds the
    same canonical bytes as EntryContent.canonical() from the body the caller computed
    (canonical_body) and the lane's own name, sequence and hash; the caller recomputes
    the hash from what comes back and refuses a mismatch. The CTE with FOR UPDATE is
    evaluated once (PostgreSQL never inlines a CTE with a locking clause).

    ``attached_sql`` adds WITH items of the caller's (each starting with a comma) that
    run in the same statement and may read ``entry.id``; with no free lane they do not run.

    None when no lane is free or the lanes do not exist yet: nothing was written, and the
    caller takes the slower way (:func:`lock_free_lane`).
    """
    params = {"lanes": names, "body": body, **values, **(attached_params or {})}
    row = session.execute(_append_statement(attached_sql), params).first()
    return None if row is None else Appended(row[0], row[1], row[2], row[3], row[4])


def append(session: Session, values: dict[str, Any]) -> int:
    """Insert an entry whose head the caller holds locked, and move the head to it."""
    entry_id: int = session.execute(insert(AuditEntry).values(values).returning(AuditEntry.id)).scalar_one()
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.chain == values["chain"])
        .values(last_seq=values["seq"], last_hash=values["entry_hash"])
    )
    return entry_id


def add_checkpoint(session: Session, values: dict[str, Any]) -> None:
    session.execute(insert(AuditCheckpoint).values(values))


def heads(session: Session) -> Sequence[AuditChainHead]:
    return (
        session.execute(
            select(AuditChainHead)
            .order_by(AuditChainHead.chain)
            # The heads move by Core UPDATE (append): never trust a copy already in the session.
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )


def chains_with_entries(session: Session) -> list[str]:
    return list(session.execute(select(AuditEntry.chain).distinct()).scalars())


def entries_in_order(session: Session, chain: str, batch: int = 5000) -> Iterator[AuditEntry]:
    """All entries of a chain by sequence, fetched in pages to keep memory flat."""
    last = 0
    while True:
        rows = (
            session.execute(
                select(AuditEntry)
                .where(AuditEntry.chain == chain, AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def checkpoints(session: Session, chain: str) -> Sequence[AuditCheckpoint]:
    return (
        session.execute(
            select(AuditCheckpoint).where(AuditCheckpoint.chain == chain).order_by(AuditCheckpoint.seq)
        )
        .scalars()
        .all()
    )


def search(
    session: Session,
    *,
    organisation_code: str | None,
    target_kind: str | None,
    target_id: str | None,
    action: str | None,
    since: dt.datetime | None,
    limit: int,
    before_id: int | None,
) -> Sequence[AuditEntry]:
    query = select(AuditEntry)
    if organisation_code is not None:
        query = query.where(AuditEntry.organisation_code == organisation_code)
    if target_kind is not None:
        query = query.where(AuditEntry.target_kind == target_kind)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.occurred_at >= since)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return session.execute(query.order_by(AuditEntry.id.desc()).limit(limit)).scalars().all()
