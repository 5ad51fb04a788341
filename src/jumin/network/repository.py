"""Every query of the national codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jumin.db import is_one_of
from jumin.network.models import NationalIndividualNumber, NationalResidentCode


def allocated_among(session: Session, codes: Iterable[str]) -> set[str]:
    """Which of ``codes`` are already allocated."""
    found: set[str] = set()
    for among in is_one_of(session, NationalResidentCode.code, list(codes)):
        found.update(session.execute(select(NationalResidentCode.code).where(among)).scalars())
    return found


def add_resident_codes(session: Session, rows: Iterable[NationalResidentCode]) -> None:
    session.add_all(rows)
    session.flush()


def resident_code(session: Session, code: str, *, for_update: bool = False) -> NationalResidentCode | None:
    query = select(NationalResidentCode).where(NationalResidentCode.code == code)
    if for_update:
        # Serialises issuance and change for one person: the second request waits and
        # then sees the number the first one issued.
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def codes_allocated_to(session: Session, lg_code: str) -> list[str]:
    return list(
        session.execute(
            select(NationalResidentCode.code)
            .where(NationalResidentCode.allocated_to_lg_code == lg_code)
            .order_by(NationalResidentCode.code)
        ).scalars()
    )


def current_number(session: Session, resident_code: str) -> NationalIndividualNumber | None:
    return session.execute(
        select(NationalIndividualNumber).where(
            NationalIndividualNumber.resident_code == resident_code,
            NationalIndividualNumber.superseded_at.is_(None),
        )
    ).scalar_one_or_none()


def highest_counter(session: Session, resident_code: str) -> int | None:
    return session.execute(
        select(func.max(NationalIndividualNumber.derivation_counter)).where(
            NationalIndividualNumber.resident_code == resident_code
        )
    ).scalar_one()


def number_by_hash(session: Session, number_hash: str) -> NationalIndividualNumber | None:
    return session.execute(
        select(NationalIndividualNumber).where(NationalIndividualNumber.number_hash == number_hash)
    ).scalar_one_or_none()


def hash_exists(session: Session, number_hash: str) -> bool:
    return (
        session.execute(
            select(NationalIndividualNumber.id).where(NationalIndividualNumber.number_hash == number_hash)
        ).first()
        is not None
    )


def add_number(session: Session, row: NationalIndividualNumber) -> None:
    session.add(row)
    session.flush()


def supersede(session: Session, row: NationalIndividualNumber, at: dt.datetime) -> None:
    row.superseded_at = at
    # Flushed on its own, before the new row: the partial unique index allows only one
    # current number per person at any moment, including mid-flush.
    session.flush()
