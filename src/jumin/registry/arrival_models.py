"""Expected arrivals: 転出証明書情報 collected from the national network before the person comes.

Kept apart from ``models.py`` because the relay alone writes them; the register's own
tables do not depend on them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class ExpectedArrival(Base):
    """One person announced by their origin municipality's 転出 to this municipality.

    ``notice_id`` is the national notice's id: unique per destination, so collecting the
    same notice twice (a relay killed after storing, before moving on) stores it once,
    and the highest one is where the next collection resumes.
    """

    __tablename__ = "registry_expected_arrivals"
    __table_args__ = (
        UniqueConstraint("lg_code", "notice_id"),
        Index("ix_registry_expected_arrivals_resident_code", "lg_code", "resident_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    notice_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    origin_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    name_kana: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[str] = mapped_column(String(8), nullable=False)
    planned_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    origin_address: Mapped[str] = mapped_column(String(300), nullable=False)
    # The whole 転出証明書情報 as received, its 個人番号 sealed with the municipal data key.
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    # When the origin recorded the 転出: a record created here after it is the arrival.
    announced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
