"""Tables of the municipal register.

``person_versions`` is bitemporal: ``valid_from``/``valid_to`` say when a fact was true
(異動年月日), ``recorded_at``/``superseded_at`` say when the register said so. A correction
never updates a version; it supersedes it and inserts the right one.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, CompressedText, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Household(Base):
    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("lg_code", "household_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    household_no: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class HouseholdNumberCounter(Base):
    """The last household number given out in a municipality.

    Taking the next number is one UPDATE on this row: its row lock makes two clerks who
    found households at once wait for each other instead of both computing the same number.
    """

    __tablename__ = "household_number_counters"

    lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    last_no: Mapped[int] = mapped_column(Integer, nullable=False)


class Person(Base):
    """One resident record (住民票) of one municipality, across all its versions.

    ``lifecycle`` is ``live`` until a move-out is recorded (``moving_out``) or the record
    is closed (``removed``). At most one live record per resident code exists in the
    whole deployment: the partial unique index enforces it even against a race.
    """

    __tablename__ = "persons"
    __table_args__ = (
        Index(
            "uq_persons_live_resident_code",
            "resident_code",
            unique=True,
            postgresql_where=text("lifecycle = 'live'"),
            sqlite_where=text("lifecycle = 'live'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False, index=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    lifecycle: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    outbox_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    identity_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class PersonVersion(Base):
    __tablename__ = "person_versions"
    __table_args__ = (
        Index("ix_person_versions_person_current", "person_id", "superseded_at", "valid_from"),
        # Kana search is a prefix match on current versions: text_pattern_ops lets
        # PostgreSQL use the index for LIKE 'prefix%' whatever the database's collation.
        Index(
            "ix_person_versions_kana_prefix",
            "lg_code",
            "search_kana",
            postgresql_ops={"search_kana": "text_pattern_ops"},
            postgresql_where=text("superseded_at IS NULL"),
            sqlite_where=text("superseded_at IS NULL"),
        ),
        # search_kana is "name kana[ alias kana]": the alias is matched by prefix too.
        Index(
            "ix_person_versions_alias_kana_prefix",
            "lg_code",
            func.split_part(text("search_kana"), " ", 2),
            postgresql_ops={"split_part": "text_pattern_ops"},
            postgresql_where=text("superseded_at IS NULL"),
        ).ddl_if(dialect="postgresql"),
        Index("ix_person_versions_household", "household_id", "superseded_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), nullable=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    valid_from: Mapped[dt.date] = mapped_column(Date, nullable=False)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    event_id: Mapped[int] = mapped_column(ForeignKey("registry_events.id"), nullable=False)
    # The record without its 個人番号, which lives only in the encrypted column beside it.
    record_json: Mapped[str] = mapped_column(CompressedText, nullable=False)
    individual_number_encrypted: Mapped[str | None] = mapped_column(String(200))
    individual_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # Search columns, copied out of the record so that queries need no JSON.
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    search_kana: Mapped[str] = mapped_column(String(200), nullable=False)
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    address_line: Mapped[str] = mapped_column(String(300), nullable=False)
    household_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)


class RegistryEvent(Base):
    """One 異動 as notified and recorded; append-only except for ``cancelled_by``."""

    __tablename__ = "registry_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    effective_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    notified_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    recorded_by: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    late: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cancels_event_id: Mapped[int | None] = mapped_column(ForeignKey("registry_events.id"))
    cancelled_by_event_id: Mapped[int | None] = mapped_column(BigInteger)
    # An event recorded because of another, in another municipality (the origin's 転入通知
    # confirmation of a move-in): cancelling the cause withdraws it too.
    caused_by_event_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)


class RegistryEventChange(Base):
    __tablename__ = "registry_event_changes"
    __table_args__ = (Index("ix_registry_event_changes_person", "person_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("registry_events.id"), nullable=False, index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), nullable=False)
    effective_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    change_json: Mapped[str] = mapped_column(CompressedText, nullable=False)


class ResidentCodePool(Base):
    """住民票コード handed to this municipality by the national network, not yet used."""

    __tablename__ = "resident_code_pool"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False, index=True)
    code: Mapped[str] = mapped_column(String(11), nullable=False, unique=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """A message to the national network, written in the event's own transaction."""

    __tablename__ = "registry_outbox"
    __table_args__ = (
        UniqueConstraint("person_id", "seq"),
        Index("ix_registry_outbox_undelivered", "lg_code", "delivered_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    destination_lg_code: Mapped[str | None] = mapped_column(String(6))
    idempotency_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    payload: Mapped[str] = mapped_column(CompressedText, nullable=False)
    event_id: Mapped[int] = mapped_column(ForeignKey("registry_events.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
