"""Tables of 広域交付 on the municipal side: what the home provided, what the issuer must report.

``certificate_wide_area_provisions`` is the home municipality's record of every record
copy asked of its register by another municipality: who asked (municipality and clerk),
for whom, which items, and, once the issuer reports it, the issue number, date, fee and
hash of the copy. The request id is unique, so a replayed request is refused.

``certificate_wide_area_notices`` is the issuer's outbox of those reports: written in the
issuance's own transaction, so a copy can never be issued without the home being told;
the relay delivers it through the national network and marks it delivered.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class WideAreaProvision(Base):
    __tablename__ = "certificate_wide_area_provisions"
    __table_args__ = (Index("ix_certificate_wide_area_provisions_home", "home_lg_code", "provided_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    home_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    request_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    issuer_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    clerk: Mapped[str] = mapped_column(String(128), nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    person_ids: Mapped[str] = mapped_column(String(400), nullable=False)  # "12,13,14", print order
    form: Mapped[str] = mapped_column(String(16), nullable=False)
    items: Mapped[str] = mapped_column(String(400), nullable=False)
    provided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    # Filled when the issuer reports the copy (IssuedNotice).
    issue_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    issue_date: Mapped[dt.date | None] = mapped_column(Date)
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    fee_yen: Mapped[int | None] = mapped_column(Integer)
    page_count: Mapped[int | None] = mapped_column(Integer)
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WideAreaNotice(Base):
    __tablename__ = "certificate_wide_area_notices"
    __table_args__ = (Index("ix_certificate_wide_area_notices_pending", "issuer_lg_code", "delivered_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    issuer_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    home_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    issue_number: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # IssuedNotice.as_json
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
