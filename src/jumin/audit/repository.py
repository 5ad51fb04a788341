from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from jumin.audit.domain import GENESIS_HASH
from jumin.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry


def lane_names(organisation_code: str, lanes: int) -> list[str]:
    """Lane 0 keeps the organisation's bare code, so a quiet organisation has one chain."""
    return [organisation_code] + [f"{organisation_code}/{k}" for k in range(1, lanes)]


def lock_free_lane(session: Session, organisation_code: str, lanes: int) -> AuditChainHead:
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
    return session.execute(
        select(AuditChainHead)
        .where(AuditChainHead.chain == names[time.monotonic_ns() % len(names)])
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _first_free_lane(session: Session, names: list[str]) -> AuditChainHead | None:
    return session.execute(
        select(AuditChainHead)
        .where(AuditChainHead.chain.in_(names))
        .order_by(AuditChainHead.chain)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _lock_single_chain(session: Session, chain: str) -> AuditChainHead:
    """Inserting the head with ON CONFLICT DO NOTHING first means two transactions that
    start a new chain at once both end up waiting on the same row instead of one failing."""
    session.execute(
        sqlite_insert(AuditChainHead)
        .values(chain=chain, last_seq=0, last_hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    return session.execute(
        select(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def heads(session: Session) -> Sequence[AuditChainHead]:
    return session.execute(select(AuditChainHead).order_by(AuditChainHead.chain)).scalars().all()


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
