"""approval requests (a clerk's draft of a supervisor-only event); the window's signed PDFs kept for hand-over

Revision ID: reg0003
Revises: reg0002
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jumin.db

revision: str = "reg0003"
down_revision: str | Sequence[str] | None = "reg0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "registry_approval_requests",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("person_ids", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("drafted_by", sa.String(length=128), nullable=False),
        sa.Column("drafted_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resubmitted_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stale_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_approval_requests")),
    )
    op.create_index(
        "ix_registry_approval_requests_lg_status", "registry_approval_requests", ["lg_code", "status"]
    )
    op.create_table(
        "certificate_handovers",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("actor_id", sa.String(length=128), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("issue_number", sa.String(length=32), nullable=True),
        sa.Column("pdf_sealed", sa.Text(), nullable=True),
        sa.Column("created_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("erased_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_handovers")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_certificate_handovers_token_hash")),
    )
    op.create_index("ix_certificate_handovers_lg_expires", "certificate_handovers", ["lg_code", "expires_at"])
    op.create_index(
        op.f("ix_certificate_handovers_issue_number"), "certificate_handovers", ["issue_number"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_certificate_handovers_issue_number"), table_name="certificate_handovers")
    op.drop_index("ix_certificate_handovers_lg_expires", table_name="certificate_handovers")
    op.drop_table("certificate_handovers")
    op.drop_index("ix_registry_approval_requests_lg_status", table_name="registry_approval_requests")
    op.drop_table("registry_approval_requests")
