"""Every query of certificate issuance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.certificates.models import (
    CertificateCounter,
    CertificateIssuance,
    CertificateIssuancePerson,
    OfficialRequestGrant,
    ProtectionOrder,
    ProtectionOrderParty,
    ResidentPin,
)


def next_sequence(session: Session, lg_code: str, year: int) -> int:
    """The next issue sequence of a municipality's year; the row stays locked until commit.

    UPDATE first: on PostgreSQL it takes the row lock, so concurrent issuances queue on it
    and never share a number; SQLite serialises writers anyway. The first issuance of a
    year inserts the row, inside a savepoint in case another one inserted it first.
    """
    for _ in range(2):
        result = session.execute(
            update(CertificateCounter)
            .where(CertificateCounter.lg_code == lg_code, CertificateCounter.year == year)
            .values(last_seq=CertificateCounter.last_seq + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            return int(
                session.execute(
                    select(CertificateCounter.last_seq).where(
                        CertificateCounter.lg_code == lg_code, CertificateCounter.year == year
                    )
                ).scalar_one()
            )
        try:
            with session.begin_nested():
                session.add(CertificateCounter(lg_code=lg_code, year=year, last_seq=1))
            return 1
        except IntegrityError:
            continue
    raise RuntimeError("could not allocate a certificate issue number")


def add_issuance(session: Session, issuance: CertificateIssuance, person_ids: Sequence[int]) -> None:
    session.add(issuance)
    session.flush()
    for position, person_id in enumerate(person_ids, start=1):
        session.add(
            CertificateIssuancePerson(issuance_id=issuance.id, person_id=person_id, position=position)
        )
    session.flush()


def issuance_by_number(session: Session, issue_number: str) -> CertificateIssuance | None:
    return session.execute(
        select(CertificateIssuance).where(CertificateIssuance.issue_number == issue_number)
    ).scalar_one_or_none()


def issuance_by_hash(session: Session, sha256: str) -> CertificateIssuance | None:
    return session.execute(
        select(CertificateIssuance).where(CertificateIssuance.document_sha256 == sha256).limit(1)
    ).scalar_one_or_none()


def persons_of(session: Session, issuance_id: int) -> list[int]:
    return list(
        session.execute(
            select(CertificateIssuancePerson.person_id)
            .where(CertificateIssuancePerson.issuance_id == issuance_id)
            .order_by(CertificateIssuancePerson.position)
        ).scalars()
    )


def persons_of_many(session: Session, issuance_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {i: [] for i in issuance_ids}
    if not issuance_ids:
        return found
    rows = session.execute(
        select(CertificateIssuancePerson.issuance_id, CertificateIssuancePerson.person_id)
        .where(CertificateIssuancePerson.issuance_id.in_(issuance_ids))
        .order_by(CertificateIssuancePerson.issuance_id, CertificateIssuancePerson.position)
    ).all()
    for issuance_id, person_id in rows:
        found[issuance_id].append(person_id)
    return found


def issuances(
    session: Session,
    *,
    lg_code: str,
    since: dt.date | None,
    until: dt.date | None,
    channel: str | None,
    limit: int,
    offset: int,
) -> tuple[int, Sequence[CertificateIssuance]]:
    """Issuances by a municipality, or about its residents (広域交付 elsewhere), newest first."""
    query = select(CertificateIssuance).where(
        (CertificateIssuance.lg_code == lg_code) | (CertificateIssuance.home_lg_code == lg_code)
    )
    if since is not None:
        query = query.where(CertificateIssuance.issue_date >= since)
    if until is not None:
        query = query.where(CertificateIssuance.issue_date <= until)
    if channel is not None:
        query = query.where(CertificateIssuance.channel == channel)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = (
        session.execute(query.order_by(CertificateIssuance.id.desc()).limit(limit).offset(offset))
        .scalars()
        .all()
    )
    return int(total), rows


def statistics(
    session: Session, *, lg_code: str, since: dt.date | None, until: dt.date | None
) -> Sequence[tuple[str, str, int, int]]:
    """(channel, document kind, count, fees) of what a municipality issued."""
    query = select(
        CertificateIssuance.channel,
        CertificateIssuance.document_kind,
        func.count(),
        func.coalesce(func.sum(CertificateIssuance.fee_yen), 0),
    ).where(CertificateIssuance.lg_code == lg_code)
    if since is not None:
        query = query.where(CertificateIssuance.issue_date >= since)
    if until is not None:
        query = query.where(CertificateIssuance.issue_date <= until)
    rows = session.execute(
        query.group_by(CertificateIssuance.channel, CertificateIssuance.document_kind).order_by(
            CertificateIssuance.channel, CertificateIssuance.document_kind
        )
    ).all()
    return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


# ---------------------------------------------------------------------------
# Protection orders


def add_order(session: Session, order: ProtectionOrder, parties: Sequence[ProtectionOrderParty]) -> None:
    session.add(order)
    session.flush()
    for party in parties:
        party.order_id = order.id
        session.add(party)
    session.flush()


def order(session: Session, order_id: int) -> ProtectionOrder | None:
    return session.get(ProtectionOrder, order_id)


def orders_for(
    session: Session, *, person_ids: Sequence[int] | None = None, lg_code: str | None = None
) -> list[tuple[ProtectionOrder, list[ProtectionOrderParty]]]:
    query = select(ProtectionOrder)
    if person_ids is not None:
        query = query.where(ProtectionOrder.person_id.in_(person_ids))
    if lg_code is not None:
        query = query.where(ProtectionOrder.lg_code == lg_code)
    orders = session.execute(query.order_by(ProtectionOrder.id)).scalars().all()
    if not orders:
        return []
    parties = session.execute(
        select(ProtectionOrderParty)
        .where(ProtectionOrderParty.order_id.in_([o.id for o in orders]))
        .order_by(ProtectionOrderParty.id)
    ).scalars()
    by_order: dict[int, list[ProtectionOrderParty]] = {o.id: [] for o in orders}
    for party in parties:
        by_order[party.order_id].append(party)
    return [(o, by_order[o.id]) for o in orders]


# ---------------------------------------------------------------------------
# Kiosk PINs


def pin_for(session: Session, person_id: int, *, lock: bool = False) -> ResidentPin | None:
    query = select(ResidentPin).where(ResidentPin.person_id == person_id)
    if lock:
        # Two kiosks trying PINs at once must each see the other's failure count.
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def add_pin(session: Session, pin: ResidentPin) -> None:
    session.add(pin)
    session.flush()


# ---------------------------------------------------------------------------
# Official-request grants


def official_grant(
    session: Session, *, lg_code: str, agency_code: str, task_code: str, lock: bool = False
) -> OfficialRequestGrant | None:
    query = select(OfficialRequestGrant).where(
        OfficialRequestGrant.lg_code == lg_code,
        OfficialRequestGrant.agency_code == agency_code,
        OfficialRequestGrant.task_code == task_code,
    )
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def official_grants(
    session: Session, *, lg_code: str, agency_code: str | None = None
) -> Sequence[OfficialRequestGrant]:
    query = select(OfficialRequestGrant).where(OfficialRequestGrant.lg_code == lg_code)
    if agency_code is not None:
        query = query.where(OfficialRequestGrant.agency_code == agency_code)
    return (
        session.execute(query.order_by(OfficialRequestGrant.agency_code, OfficialRequestGrant.task_code))
        .scalars()
        .all()
    )


def add_official_grant(session: Session, grant: OfficialRequestGrant) -> None:
    session.add(grant)
    session.flush()
