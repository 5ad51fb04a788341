"""Queries of the register's replication side: delivering the outbox, expected arrivals, digests.

Apart from ``repository.py`` so that the relay's queries sit with the relay (relay.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jumin.db import is_one_of
from jumin.registry.arrival_models import ExpectedArrival
from jumin.registry.models import OutboxMessage, Person, PersonVersion


def mark_delivered(session: Session, keys: Collection[str], at: dt.datetime) -> int:
    """Mark the messages with these keys delivered; those already marked keep their first time."""
    marked = 0
    for keys_match in is_one_of(session, OutboxMessage.idempotency_key, list(keys)):
        result = session.execute(
            update(OutboxMessage)
            .where(keys_match, OutboxMessage.delivered_at.is_(None))
            .values(delivered_at=at)
            .execution_options(synchronize_session=False)
        )
        marked += int(getattr(result, "rowcount", 0) or 0)
    return marked


def outbox_lg_codes(session: Session) -> list[str]:
    return list(
        session.execute(select(OutboxMessage.lg_code).distinct().order_by(OutboxMessage.lg_code)).scalars()
    )


def undelivered_count(session: Session, lg_code: str | None = None) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
    if lg_code is not None:
        query = query.where(OutboxMessage.lg_code == lg_code)
    return int(session.execute(query).scalar_one())


def arrival_cursor(session: Session, lg_code: str) -> int:
    found = session.execute(
        select(func.max(ExpectedArrival.notice_id)).where(ExpectedArrival.lg_code == lg_code)
    ).scalar_one()
    return int(found or 0)


def stored_notice_ids(session: Session, lg_code: str, notice_ids: Collection[int]) -> set[int]:
    return set(
        session.execute(
            select(ExpectedArrival.notice_id).where(
                ExpectedArrival.lg_code == lg_code, ExpectedArrival.notice_id.in_(list(notice_ids))
            )
        ).scalars()
    )


def add_arrivals(session: Session, rows: Sequence[ExpectedArrival]) -> None:
    session.add_all(rows)
    session.flush()


def arrivals(session: Session, lg_code: str, *, limit: int, offset: int) -> Sequence[ExpectedArrival]:
    return (
        session.execute(
            select(ExpectedArrival)
            .where(ExpectedArrival.lg_code == lg_code)
            .order_by(ExpectedArrival.planned_on, ExpectedArrival.id)
            .limit(limit)
            .offset(offset)
        )
        .scalars()
        .all()
    )


def registered_since(
    session: Session, lg_code: str, resident_codes: Collection[str]
) -> dict[str, dt.datetime]:
    """For each code, the latest time a record with it was created in this municipality."""
    if not resident_codes:
        return {}
    rows = session.execute(
        select(Person.resident_code, func.max(Person.created_at))
        .where(Person.lg_code == lg_code, Person.resident_code.in_(list(resident_codes)))
        .group_by(Person.resident_code)
    ).all()
    return {code: created for code, created in rows}


def latest_versions(session: Session, lg_code: str) -> list[tuple[Person, PersonVersion]]:
    """Every record of the municipality with its current last version (records voided entirely have none)."""
    rows = session.execute(
        select(Person, PersonVersion)
        .join(PersonVersion, PersonVersion.person_id == Person.id)
        .where(Person.lg_code == lg_code, PersonVersion.superseded_at.is_(None))
        .order_by(Person.id, PersonVersion.valid_from, PersonVersion.id)
    ).all()
    last: dict[int, tuple[Person, PersonVersion]] = {}
    for person, version in rows:
        last[person.id] = (person, version)
    return list(last.values())


def person_lg_codes(session: Session) -> list[str]:
    return list(session.execute(select(Person.lg_code).distinct().order_by(Person.lg_code)).scalars())


def arrivals_by_ids(session: Session, lg_code: str, ids: Collection[int]) -> dict[int, ExpectedArrival]:
    if not ids:
        return {}
    rows = session.execute(
        select(ExpectedArrival).where(ExpectedArrival.lg_code == lg_code, ExpectedArrival.id.in_(list(ids)))
    ).scalars()
    return {r.id: r for r in rows}


def arrivals_from(
    session: Session, lg_code: str, *, origin_lg_code: str, planned_on: dt.date
) -> Sequence[ExpectedArrival]:
    """The arrivals announced by one origin for one planned date: a household moves together."""
    return (
        session.execute(
            select(ExpectedArrival)
            .where(
                ExpectedArrival.lg_code == lg_code,
                ExpectedArrival.origin_lg_code == origin_lg_code,
                ExpectedArrival.planned_on == planned_on,
            )
            .order_by(ExpectedArrival.id)
        )
        .scalars()
        .all()
    )
