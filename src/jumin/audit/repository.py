from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from jumin.audit.domain import GENESIS_HASH
from jumin.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry


def lock_head(session: Session, chain: str) -> AuditChainHead:
    """The chain's head row, locked until the transaction ends.

    Inserting the head with ON CONFLICT DO NOTHING first means two transactions that
    start a new chain at once both end up waiting on the same row instead of one failing.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(AuditChainHead)
        .values(chain=chain, last_seq=0, last_hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    head = session.execute(
        select(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    return head


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
