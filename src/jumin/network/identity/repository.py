"""Every query of the national identity store and its inbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from jumin.db import is_one_of
from jumin.network.identity.domain import STATUS_VOID
from jumin.network.identity.models import (
    EnvelopeNonce,
    ForwardedNotice,
    IdentityHistory,
    IdentityRecord,
    InboxMessage,
    MunicipalityKey,
    SourceSequence,
)


def municipality_key(session: Session, lg_code: str) -> MunicipalityKey | None:
    return session.get(MunicipalityKey, lg_code)


def municipality_keys(session: Session) -> Sequence[MunicipalityKey]:
    return session.execute(select(MunicipalityKey).order_by(MunicipalityKey.lg_code)).scalars().all()


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def nonce_seen(session: Session, nonce: str) -> bool:
    return session.get(EnvelopeNonce, nonce) is not None


def forget_nonces_before(session: Session, before: dt.datetime) -> None:
    session.execute(delete(EnvelopeNonce).where(EnvelopeNonce.received_at < before))


def inbox_keys_among(session: Session, keys: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for among in is_one_of(session, InboxMessage.idempotency_key, list(keys)):
        found.update(session.execute(select(InboxMessage.idempotency_key).where(among)).scalars())
    return found


def inbox_at(session: Session, source_lg_code: str, source_person_id: int, seq: int) -> InboxMessage | None:
    return session.execute(
        select(InboxMessage).where(
            InboxMessage.source_lg_code == source_lg_code,
            InboxMessage.source_person_id == source_person_id,
            InboxMessage.seq == seq,
        )
    ).scalar_one_or_none()


def inbox_message(session: Session, inbox_id: int) -> InboxMessage | None:
    return session.get(InboxMessage, inbox_id)


def source_sequence(
    session: Session, source_lg_code: str, source_person_id: int, *, for_update: bool = False
) -> SourceSequence | None:
    query = select(SourceSequence).where(
        SourceSequence.source_lg_code == source_lg_code,
        SourceSequence.source_person_id == source_person_id,
    )
    if for_update:
        # One record's messages are applied by one request at a time: two batches that
        # both carry the next message of the same record queue here.
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def sources_of(session: Session, identity_id: int) -> Sequence[SourceSequence]:
    return (
        session.execute(select(SourceSequence).where(SourceSequence.identity_id == identity_id))
        .scalars()
        .all()
    )


def identity(session: Session, identity_id: int, *, for_update: bool = False) -> IdentityRecord | None:
    query = select(IdentityRecord).where(IdentityRecord.id == identity_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def identity_by_code(
    session: Session, resident_code: str, *, for_update: bool = False
) -> IdentityRecord | None:
    query = select(IdentityRecord).where(IdentityRecord.resident_code == resident_code)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def identity_by_number_hash(session: Session, number_hash: str) -> IdentityRecord | None:
    return session.execute(
        select(IdentityRecord)
        .where(IdentityRecord.individual_number_hash == number_hash)
        .order_by(IdentityRecord.id)
        .limit(1)
    ).scalar_one_or_none()


def timeline(session: Session, identity_id: int) -> Sequence[tuple[IdentityHistory, InboxMessage]]:
    rows = session.execute(
        select(IdentityHistory, InboxMessage)
        .join(InboxMessage, InboxMessage.id == IdentityHistory.inbox_id)
        .where(IdentityHistory.identity_id == identity_id)
        .order_by(IdentityHistory.id)
    ).all()
    return [(h, m) for h, m in rows]


def _holding_source() -> Any:
    return (SourceSequence.source_lg_code == IdentityRecord.source_lg_code) & (
        SourceSequence.source_person_id == IdentityRecord.source_person_id
    )


def identities_of(session: Session, lg_code: str) -> Sequence[tuple[IdentityRecord, dt.date | None]]:
    """The identities held under ``lg_code``, with the day the holding record began."""
    rows = session.execute(
        select(IdentityRecord, SourceSequence.started_on)
        .outerjoin(SourceSequence, _holding_source())
        .where(IdentityRecord.lg_code == lg_code, IdentityRecord.status != STATUS_VOID)
        .order_by(IdentityRecord.id)
    ).all()
    return [(r, started_on) for r, started_on in rows]


def holders(session: Session, resident_codes: Iterable[str]) -> dict[str, tuple[str, dt.date | None]]:
    """Who holds each code now: the holding municipality and the day its record began."""
    found: dict[str, tuple[str, dt.date | None]] = {}
    for among in is_one_of(session, IdentityRecord.resident_code, list(resident_codes)):
        rows = session.execute(
            select(IdentityRecord.resident_code, IdentityRecord.lg_code, SourceSequence.started_on)
            .outerjoin(SourceSequence, _holding_source())
            .where(among, IdentityRecord.status != STATUS_VOID)
        ).all()
        for code, lg_code, started_on in rows:
            found[code] = (lg_code, started_on)
    return found


def notices_for(
    session: Session, destination_lg_code: str, after_id: int, limit: int
) -> Sequence[ForwardedNotice]:
    return (
        session.execute(
            select(ForwardedNotice)
            .where(ForwardedNotice.destination_lg_code == destination_lg_code, ForwardedNotice.id > after_id)
            .order_by(ForwardedNotice.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )


def count_pending(session: Session, source_lg_code: str | None = None) -> int:
    query = select(func.count()).select_from(InboxMessage).where(InboxMessage.applied_at.is_(None))
    if source_lg_code is not None:
        query = query.where(InboxMessage.source_lg_code == source_lg_code)
    return int(session.execute(query).scalar_one())
