"""Tables of the agency side of the national network (all in the national database).

These tables are keyed by agency, client or job, not by person, so unlike the identity
store they carry no ``prefecture_code`` distribution column; the access log carries it
because it is read per person.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime
from jumin.network.identity.models import IdentityRecord

BigId = BigInteger().with_variant(Integer(), "sqlite")

# The four-facts matcher's second candidate path (same birth date and sex, any reading)
# needs this index on the identity store; it belongs to the matcher, so it is declared
# here, beside the code that relies on it, and created by migration 0005.
Index(
    "ix_national_identities_birth_sex",
    IdentityRecord.__table__.c.birth_date,
    IdentityRecord.__table__.c.sex,
)


class AgencyClientRecord(Base):
    """An agency client registered on the national side, and the agency it acts for."""

    __tablename__ = "network_agency_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_code: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class TaskGrant(Base):
    """A statutory task a client may perform; a revoked grant is kept with its date."""

    __tablename__ = "network_agency_task_grants"
    __table_args__ = (UniqueConstraint("client_id", "task_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("network_agency_clients.client_id"), nullable=False)
    task_code: Mapped[str] = mapped_column(String(64), nullable=False)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    granted_by: Mapped[str] = mapped_column(String(64), nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AgencyCode(Base):
    """A 機関別符号 handed to an agency, kept so that the agency's code finds the person again.

    The code itself is derived (domain.derive_agency_code); this row is the reverse index.
    """

    __tablename__ = "network_agency_codes"
    __table_args__ = (UniqueConstraint("organisation_code", "agency_code"),)

    organisation_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    identity_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(32), nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class AccessLogEntry(Base):
    """One person's data handed to one caller: what the resident's access log lists.

    Interactive lookups also write one audit entry per person; bulk reads (batches, feed
    pages, extractions) write one audit entry whose detail carries the count and a
    SHA-256 over the sorted resident codes, which these rows reproduce.
    """

    __tablename__ = "network_access_log"
    __table_args__ = (Index("ix_network_access_log_identity", "identity_id", "accessed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    identity_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    accessed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    organisation_code: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_id: Mapped[str] = mapped_column(String(128), nullable=False)
    task_code: Mapped[str] = mapped_column(String(64), nullable=False)
    purpose: Mapped[str] = mapped_column(String(500), nullable=False)
    query_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    audit_entry_id: Mapped[int] = mapped_column(BigInteger, nullable=False)


class BatchJob(Base):
    """A batch verification: the uploaded file, its progress and its result file."""

    __tablename__ = "network_batch_jobs"
    __table_args__ = (Index("ix_network_batch_jobs_client", "client_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    organisation_code: Mapped[str] = mapped_column(String(32), nullable=False)
    task_code: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    on_error: Mapped[str] = mapped_column(String(16), nullable=False)
    encoding: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    upload_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bad_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    matched: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    ambiguous: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    partial: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    not_found: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    result_sha256: Mapped[str | None] = mapped_column(String(64))
    failure: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BatchRowError(Base):
    """A bad row of a batch: its line number (the header is line 1), column and reason."""

    __tablename__ = "network_batch_errors"

    job_id: Mapped[str] = mapped_column(ForeignKey("network_batch_jobs.id"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), nullable=False)


class FeedSubscription(Base):
    """Which change events a client follows for one task, and its optional webhook."""

    __tablename__ = "network_feed_subscriptions"
    __table_args__ = (UniqueConstraint("client_id", "task_code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    organisation_code: Mapped[str] = mapped_column(String(32), nullable=False)
    task_code: Mapped[str] = mapped_column(String(64), nullable=False)
    events: Mapped[str] = mapped_column(String(300), nullable=False)  # comma-separated FeedEvent
    start_cursor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(String(300))
    webhook_cursor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    webhook_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    webhook_next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One attempt to deliver a page of events to a webhook, successful or not."""

    __tablename__ = "network_webhook_deliveries"
    __table_args__ = (Index("ix_network_webhook_deliveries_subscription", "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("network_feed_subscriptions.id"), nullable=False)
    delivery_id: Mapped[str] = mapped_column(String(32), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    after_cursor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_cursor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    events: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # delivered / failed
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Extraction(Base):
    """A prefecture's request for its residents as of a date, its approval and its files."""

    __tablename__ = "network_extractions"
    __table_args__ = (Index("ix_network_extractions_prefecture", "prefecture_code", "requested_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    organisation_code: Mapped[str] = mapped_column(String(32), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    reference_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    lg_codes: Mapped[str] = mapped_column(String(2000), nullable=False)  # comma-separated, or empty
    min_age: Mapped[int | None] = mapped_column(Integer)
    max_age: Mapped[int | None] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    csv_sha256: Mapped[str | None] = mapped_column(String(64))
    parquet_sha256: Mapped[str | None] = mapped_column(String(64))
    failure: Mapped[str | None] = mapped_column(Text)
