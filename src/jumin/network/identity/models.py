"""Tables of the national identity store.

Every table carries ``prefecture_code`` (2 digits): the distribution column when the
store is partitioned by prefecture, and the column prefecture staff are filtered on.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, CompressedText, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class IdentityRecord(Base):
    """A person's current 本人確認情報, one row per 住民票コード held now."""

    __tablename__ = "national_identities"
    __table_args__ = (
        Index("ix_national_identities_four_facts", "prefecture_code", "search_kana", "birth_date"),
        Index("ix_national_identities_lg", "lg_code", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, unique=True)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # live / removed
    removal_reason: Mapped[str | None] = mapped_column(String(32))
    resident_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    name_kana: Mapped[str | None] = mapped_column(String(200))
    search_kana: Mapped[str] = mapped_column(String(200), nullable=False)
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[str] = mapped_column(String(8), nullable=False)
    address_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    address: Mapped[str] = mapped_column(String(300), nullable=False)
    individual_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    individual_number_encrypted: Mapped[str | None] = mapped_column(String(200))
    change_kind: Mapped[str] = mapped_column(String(40), nullable=False)
    changed_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    # Where the latest change came from: the municipal record and its outbox sequence.
    source_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    source_person_id: Mapped[int] = mapped_column(BigInteger, nullable=False)


class IdentityHistory(Base):
    """Every version of a person's 本人確認情報, effective from ``valid_from``."""

    __tablename__ = "national_identity_history"
    __table_args__ = (
        Index("ix_national_identity_history_code", "resident_code", "valid_from"),
        Index("ix_national_identity_history_pref_date", "prefecture_code", "valid_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    identity_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    valid_from: Mapped[dt.date] = mapped_column(Date, nullable=False)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    removal_reason: Mapped[str | None] = mapped_column(String(32))
    resident_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    name_kana: Mapped[str | None] = mapped_column(String(200))
    search_kana: Mapped[str] = mapped_column(String(200), nullable=False)
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[str] = mapped_column(String(8), nullable=False)
    address_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    address: Mapped[str] = mapped_column(String(300), nullable=False)
    individual_number_hash: Mapped[str | None] = mapped_column(String(64))
    change_kind: Mapped[str] = mapped_column(String(40), nullable=False)
    inbox_id: Mapped[int] = mapped_column(BigInteger, nullable=False)


class InboxMessage(Base):
    """A change message as received: kept whole, applied in per-person order.

    ``applied_at`` is empty while the message waits for an earlier sequence number of
    the same source record; duplicates never get a row (the idempotency key is unique).
    """

    __tablename__ = "national_inbox"
    __table_args__ = (
        UniqueConstraint("source_lg_code", "source_person_id", "seq"),
        Index("ix_national_inbox_pending", "applied_at", "source_lg_code", "source_person_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    source_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    source_person_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    destination_lg_code: Mapped[str | None] = mapped_column(String(6))
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    payload: Mapped[str] = mapped_column(CompressedText, nullable=False)  # 個人番号 sealed, as sent
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SourceSequence(Base):
    """The last sequence number applied per municipal record: what the next must follow.

    It also says which national identity the record feeds, when the record began (its
    rank among the person's records: core.replication.record_rank) and whether the
    municipality has voided it (every event that created it was cancelled).
    """

    __tablename__ = "national_source_sequences"
    __table_args__ = (Index("ix_national_source_sequences_identity", "identity_id"),)

    source_lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    source_person_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    identity_id: Mapped[int | None] = mapped_column(BigInteger)
    started_on: Mapped[dt.date | None] = mapped_column(Date)
    void: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())


class MunicipalityKey(Base):
    """A municipality's Ed25519 public key; the inbox accepts only what it signed."""

    __tablename__ = "national_municipality_keys"

    lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text, nullable=False)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)


class ForwardedNotice(Base):
    """転出証明書情報 waiting for its destination municipality to collect it."""

    __tablename__ = "national_forwarded_notices"
    __table_args__ = (Index("ix_national_forwarded_notices_dest", "destination_lg_code", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inbox_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    destination_lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class EnvelopeNonce(Base):
    """Nonces of signed envelopes seen recently: the same envelope is never accepted twice.

    Rows older than twice the allowed clock skew can go: an envelope that old is refused
    for its timestamp before its nonce is looked at.
    """

    __tablename__ = "national_envelope_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
