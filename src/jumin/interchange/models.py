"""The interchange's own tables in the municipal database.

The register itself (registry.models) has no place for what a migration brings along
from another system: the 宛名番号 other municipal systems link by, the ledger of what was
imported, and the 個人番号カード as the municipal record system knows it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class AtenaNumber(Base):
    """宛名番号: the number a record is known by in the interchange files (and in other systems)."""

    __tablename__ = "interchange_atena_numbers"
    __table_args__ = (UniqueConstraint("lg_code", "atena_no"),)

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True, autoincrement=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    atena_no: Mapped[str] = mapped_column(String(15), nullable=False)


class ImportLedger(Base):
    """One municipality imported from one set of files: the digest makes a re-run a no-op."""

    __tablename__ = "interchange_imports"
    __table_args__ = (UniqueConstraint("lg_code", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False, index=True)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    persons: Mapped[int] = mapped_column(Integer, nullable=False)
    households: Mapped[int] = mapped_column(Integer, nullable=False)
    events: Mapped[int] = mapped_column(Integer, nullable=False)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)


class CardRecord(Base):
    """個人番号カードの交付記録 of a resident, with the dates of its two electronic certificates."""

    __tablename__ = "interchange_cards"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True, autoincrement=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False, index=True)
    card_status: Mapped[str] = mapped_column(String(16), nullable=False)
    card_issued_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    card_valid_until: Mapped[dt.date] = mapped_column(Date, nullable=False)
    signing_cert_issued_on: Mapped[dt.date | None] = mapped_column(Date)
    signing_cert_valid_until: Mapped[dt.date | None] = mapped_column(Date)
    auth_cert_issued_on: Mapped[dt.date | None] = mapped_column(Date)
    auth_cert_valid_until: Mapped[dt.date | None] = mapped_column(Date)
    name_romaji: Mapped[str | None] = mapped_column(String(100))
