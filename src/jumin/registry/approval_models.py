"""Approval requests: a clerk's draft of a supervisor-only event, waiting for a supervisor.

Kept apart from ``models.py``: the register's own tables do not depend on them, and the
event, once approved, is an ordinary row of ``registry_events``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class ApprovalRequest(Base):
    """One drafted event (職権修正, 誤記修正, 職権消除, 取消し) and its decision.

    ``payload`` is the event's request as the API takes it, sealed with the municipal
    data key: it holds the corrected values (names, birth dates, 本籍) of a person.
    ``revision`` grows with every resubmission and decision; a decision is taken only on
    the revision the supervisor read, so two supervisors cannot both decide.
    """

    __tablename__ = "registry_approval_requests"
    __table_args__ = (Index("ix_registry_approval_requests_lg_status", "lg_code", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    slug: Mapped[str] = mapped_column(String(40), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    # The persons the event touches, ",12,15,": to list a record's requests with one LIKE.
    person_ids: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    drafted_by: Mapped[str] = mapped_column(String(128), nullable=False)
    drafted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    resubmitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When an approval was refused because a record had changed since the draft.
    stale_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
