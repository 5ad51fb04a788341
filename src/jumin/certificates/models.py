"""Tables of certificate issuance: the ledger, protection orders, kiosk PINs, counters,
and the tasks each agency may make official requests for.

The issuance ledger is append-only: a row is written when a certificate is issued and
never changed, so the statistics and the verification page read exactly what happened.
It holds the persons' ids, never copies of their records: the PDF's content can be
proven by its hash without the system keeping a second copy of personal data. Free text
from people (requester names, reasons) is stored as given and never written to a log.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class CertificateIssuance(Base):
    __tablename__ = "certificate_issuances"
    __table_args__ = (
        Index("ix_certificate_issuances_lg_issued", "lg_code", "issued_at"),
        Index("ix_certificate_issuances_home_issued", "home_lg_code", "issued_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    issue_number: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    # Who issued (whose mayor certifies) and whose register the persons are in: the two
    # differ for 広域交付.
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    home_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    document_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    form: Mapped[str] = mapped_column(String(16), nullable=False)
    items: Mapped[str] = mapped_column(String(400), nullable=False)
    requester_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    requester_name: Mapped[str] = mapped_column(String(200), nullable=False)
    requester_person_id: Mapped[int | None] = mapped_column(BigInteger)
    requester_organisation: Mapped[str | None] = mapped_column(String(32))
    authority: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    task_code: Mapped[str | None] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    actor_id: Mapped[str] = mapped_column(String(128), nullable=False)
    actor_organisation: Mapped[str] = mapped_column(String(32), nullable=False)
    fee_yen: Mapped[int] = mapped_column(Integer, nullable=False)
    page_count: Mapped[int] = mapped_column(Integer, nullable=False)
    issue_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    # The date whose register the certificate prints (基準日); None: the issue date.
    as_of: Mapped[dt.date | None] = mapped_column(Date)
    document_sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    # Keyed hash of the printed verification code: a database reader cannot make links.
    verification_code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    signer_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)


class CertificateIssuancePerson(Base):
    __tablename__ = "certificate_issuance_persons"
    __table_args__ = (UniqueConstraint("issuance_id", "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    issuance_id: Mapped[int] = mapped_column(ForeignKey("certificate_issuances.id"), nullable=False)
    person_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)


class CertificateCounter(Base):
    """The last issue number per municipality and year; one row locked per issuance."""

    __tablename__ = "certificate_counters"

    lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False)


class ProtectionOrder(Base):
    """支援措置: registered for one person; ended, never deleted."""

    __tablename__ = "protection_orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    person_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    registered_by: Mapped[str] = mapped_column(String(128), nullable=False)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(128))


class ProtectionOrderParty(Base):
    __tablename__ = "protection_order_parties"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("protection_orders.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    resident_code: Mapped[str | None] = mapped_column(String(11))
    organisation_code: Mapped[str | None] = mapped_column(String(32))


class ResidentPin(Base):
    """The 4-digit PIN a resident set at the window for kiosk issuance (argon2id hash)."""

    __tablename__ = "resident_pins"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    person_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    pin_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    set_by: Mapped[str] = mapped_column(String(128), nullable=False)


class OfficialRequestGrant(Base):
    """A task for which a municipality accepts an agency's 公用請求; revoked, never deleted."""

    __tablename__ = "certificate_official_grants"
    __table_args__ = (UniqueConstraint("lg_code", "agency_code", "task_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    agency_code: Mapped[str] = mapped_column(String(32), nullable=False)  # the agency's organisation code
    task_code: Mapped[str] = mapped_column(String(64), nullable=False)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    granted_by: Mapped[str] = mapped_column(String(128), nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(128))
