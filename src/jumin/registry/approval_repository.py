"""Every query of approval requests (registry/approvals)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jumin.registry.approval_models import ApprovalRequest


def add(session: Session, row: ApprovalRequest) -> ApprovalRequest:
    session.add(row)
    session.flush()
    return row


def get(session: Session, request_id: int) -> ApprovalRequest | None:
    return session.get(ApprovalRequest, request_id)


def listed(
    session: Session,
    *,
    lg_code: str,
    statuses: Sequence[str] = (),
    drafted_by: str | None = None,
    person_id: int | None = None,
    limit: int = 100,
) -> Sequence[ApprovalRequest]:
    query = select(ApprovalRequest).where(ApprovalRequest.lg_code == lg_code)
    if statuses:
        query = query.where(ApprovalRequest.status.in_(list(statuses)))
    if drafted_by is not None:
        query = query.where(ApprovalRequest.drafted_by == drafted_by)
    if person_id is not None:
        # person_ids is stored ",12,15,": one LIKE finds a person's requests.
        query = query.where(ApprovalRequest.person_ids.like(f"%,{int(person_id)},%"))
    return session.execute(query.order_by(ApprovalRequest.id.desc()).limit(limit)).scalars().all()


def move(
    session: Session,
    request_id: int,
    *,
    revision: int,
    status_from: str,
    status_to: str,
    actor_id: str,
    at: dt.datetime,
    note: str | None,
) -> bool:
    """Compare-and-set of the decision: true for the one caller who moved this revision.

    Of two supervisors deciding at once, PostgreSQL makes the second wait for the first
    and then match no row; SQLite's writers are serialised.
    """
    result = session.execute(
        update(ApprovalRequest)
        .where(
            ApprovalRequest.id == request_id,
            ApprovalRequest.revision == revision,
            ApprovalRequest.status == status_from,
        )
        .values(
            status=status_to,
            revision=revision + 1,
            decided_by=actor_id,
            decided_at=at,
            decision_note=note,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
