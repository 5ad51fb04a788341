"""Tables of the card service and JPKI, held in the national database (J-LIS runs both).

Tables about a resident carry ``prefecture_code``, the national store's distribution
column (DESIGN.md "Scale"), so that a card, its chip, its certificates and its
consents live on the same partition as the person's 本人確認情報.

A person is found by ``identity_id``, the id of their row in the national identity
store, which stays theirs for life. ``resident_code`` is the 住民票コード the row was
written under: a 住民票コードの変更 does not rewrite it, and the services never look a
person up by it (a certificate reaches its person through its card).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class CardApplication(Base):
    """交付申請: the four facts as the identity store held them when the application was made."""

    __tablename__ = "card_applications"
    __table_args__ = (Index("ix_card_applications_queue", "status", "express", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    application_no: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    identity_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    express: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    express_reason: Mapped[str | None] = mapped_column(String(32))
    due_on: Mapped[dt.date | None] = mapped_column(Date)
    photo_ref: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    name_kana: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[str] = mapped_column(String(8), nullable=False)
    address: Mapped[str] = mapped_column(String(300), nullable=False)
    resident_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    stay_ends_on: Mapped[dt.date | None] = mapped_column(Date)
    previous_card_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    applied_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    applied_by: Mapped[str] = mapped_column(String(64), nullable=False)
    produced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Card(Base):
    """One physical card: what is printed on it and where it is in its life."""

    __tablename__ = "cards"
    __table_args__ = (
        Index("ix_cards_status", "status", "id"),
        Index("ix_cards_valid_until", "valid_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    card_number: Mapped[str] = mapped_column(String(12), nullable=False, unique=True)
    application_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    identity_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    name_kana: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[str] = mapped_column(String(8), nullable=False)
    address: Mapped[str] = mapped_column(String(300), nullable=False)
    resident_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    stay_ends_on: Mapped[dt.date | None] = mapped_column(Date)
    has_photo: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    production_batch: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    produced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    setup_batch: Mapped[str | None] = mapped_column(String(32))
    setup_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    handed_over_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    handed_over_by: Mapped[str | None] = mapped_column(String(64))
    identity_check: Mapped[str | None] = mapped_column(String(200))
    issued_on: Mapped[dt.date | None] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    suspension_secret_hash: Mapped[str | None] = mapped_column(String(200))
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))


class CardChip(Base):
    """The software chip of a card, sealed (see card.chip); the try counters in the clear."""

    __tablename__ = "card_chips"

    card_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    wrapped_secret: Mapped[str] = mapped_column(String(300), nullable=False)
    sealed: Mapped[str] = mapped_column(Text, nullable=False)
    public_keys: Mapped[str] = mapped_column(Text, nullable=False)
    signing_tries_left: Mapped[int] = mapped_column(Integer, nullable=False)
    auth_tries_left: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class CardWorkItem(Base):
    """A card that pre-issuance setup could not match: the municipality's work list."""

    __tablename__ = "card_work_items"
    __table_args__ = (Index("ix_card_work_items_open", "lg_code", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    card_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    batch_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolution: Mapped[str | None] = mapped_column(String(32))


class CardNotice(Base):
    """Renewal notices (有効期限通知書) and application forms, each with its 申請書ID."""

    __tablename__ = "card_notices"
    __table_args__ = (UniqueConstraint("card_id", "kind", "expires_on"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    form_id: Mapped[str | None] = mapped_column(String(23), unique=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    identity_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    card_id: Mapped[int | None] = mapped_column(BigInteger)
    expires_on: Mapped[dt.date | None] = mapped_column(Date)
    mailing_name: Mapped[str | None] = mapped_column(String(200))
    mailing_address: Mapped[str | None] = mapped_column(String(300))
    batch_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class JpkiAuthority(Base):
    """A JPKI CA: its certificate, and its private key encrypted under the JPKI passphrase."""

    __tablename__ = "jpki_authorities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    parent_id: Mapped[int | None] = mapped_column(Integer)
    certificate_pem: Mapped[str] = mapped_column(Text, nullable=False)
    key_encrypted_pem: Mapped[str] = mapped_column(Text, nullable=False)
    # SHA-1 of the CA's name and public key: what an OCSP request names its issuer by.
    name_hash: Mapped[str] = mapped_column(String(40), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    crl_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    crl_dirty: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class JpkiCrl(Base):
    __tablename__ = "jpki_crls"
    __table_args__ = (UniqueConstraint("authority_id", "crl_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    authority_id: Mapped[int] = mapped_column(Integer, nullable=False)
    crl_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class JpkiCertificate(Base):
    """An issued end-entity certificate; a signing one keeps the four facts it carries."""

    __tablename__ = "jpki_certificates"
    __table_args__ = (
        Index("ix_jpki_certificates_status", "authority_id", "status"),
        Index("ix_jpki_certificates_resident", "resident_code", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)  # hex
    authority_id: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    card_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    valid_until: Mapped[dt.date] = mapped_column(Date, nullable=False)
    der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(String(300))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    hold_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))


class CardLoginChallenge(Base):
    __tablename__ = "card_login_challenges"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ResidentSession(Base):
    """A resident's session from a card login; only the token's SHA-256 is kept."""

    __tablename__ = "card_resident_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    card_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    certificate_serial: Mapped[str] = mapped_column(String(40), nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CardCursor(Base):
    """How far a batch consumer has read another table (the identity history sweeper)."""

    __tablename__ = "card_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class VerifierBusiness(Base):
    """A business registered as a 署名検証者 for the four-facts update service."""

    __tablename__ = "card_verifier_businesses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    # Encrypted with the data key ring: the webhook HMAC needs the secret itself.
    webhook_secret_encrypted: Mapped[str] = mapped_column(String(300), nullable=False)
    api_key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class FourFactsConsent(Base):
    __tablename__ = "card_four_facts_consents"
    __table_args__ = (Index("ix_card_four_facts_consents_resident", "resident_code", "withdrawn_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    business_id: Mapped[int] = mapped_column(Integer, nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    identity_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    scope: Mapped[str] = mapped_column(String(64), nullable=False)
    consented_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    # The signing certificate the business holds from the resident: how it knows them.
    certificate_serial: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class FourFactsProvision(Base):
    """New four facts owed to one business; the id is the business's pull cursor."""

    __tablename__ = "card_four_facts_provisions"
    __table_args__ = (
        Index("ix_card_four_facts_provisions_business", "business_id", "id"),
        Index("ix_card_four_facts_provisions_due", "delivered_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    business_id: Mapped[int] = mapped_column(Integer, nullable=False)
    consent_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    certificate_serial: Mapped[str] = mapped_column(String(40), nullable=False)
    changed_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    payload_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    given_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
