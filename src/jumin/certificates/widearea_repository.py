"""Queries of 広域交付 on the municipal side (widearea_models)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.certificates.widearea_models import WideAreaNotice, WideAreaProvision


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def provision(session: Session, request_id: str, *, lock: bool = False) -> WideAreaProvision | None:
    query = select(WideAreaProvision).where(WideAreaProvision.request_id == request_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def provision_by_number(session: Session, issue_number: str) -> WideAreaProvision | None:
    return session.scalars(
        select(WideAreaProvision).where(WideAreaProvision.issue_number == issue_number)
    ).one_or_none()


def provisions(
    session: Session, home_lg_code: str, *, limit: int, offset: int
) -> Sequence[WideAreaProvision]:
    return session.scalars(
        select(WideAreaProvision)
        .where(WideAreaProvision.home_lg_code == home_lg_code)
        .order_by(WideAreaProvision.provided_at.desc(), WideAreaProvision.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()


def pending_notices(
    session: Session, lg_codes: Collection[str] | None, limit: int
) -> Sequence[WideAreaNotice]:
    query = select(WideAreaNotice).where(WideAreaNotice.delivered_at.is_(None))
    if lg_codes is not None:
        query = query.where(WideAreaNotice.issuer_lg_code.in_(list(lg_codes)))
    return session.scalars(query.order_by(WideAreaNotice.id).limit(limit)).all()


def notice(session: Session, notice_id: int) -> WideAreaNotice | None:
    return session.get(WideAreaNotice, notice_id)


def undelivered_count(session: Session, lg_code: str | None = None) -> int:
    query = select(WideAreaNotice.id).where(WideAreaNotice.delivered_at.is_(None))
    if lg_code is not None:
        query = query.where(WideAreaNotice.issuer_lg_code == lg_code)
    return len(session.scalars(query).all())


def mark(
    session: Session, row: WideAreaNotice, *, delivered_at: dt.datetime | None, error: str | None
) -> None:
    row.attempts += 1
    row.delivered_at = delivered_at
    row.last_error = error
    session.flush()
