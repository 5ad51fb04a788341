"""wide-area issuance through the network: home endpoints, home provisions, issuer notices

Revision ID: 0007
Revises: reg0002
Create Date: 2026-11-24 00:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jumin.db

revision: str = "0007"
down_revision: str | Sequence[str] | None = "reg0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "certificate_wide_area_notices",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("issuer_lg_code", sa.String(length=6), nullable=False),
        sa.Column("home_lg_code", sa.String(length=6), nullable=False),
        sa.Column("issue_number", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_wide_area_notices")),
        sa.UniqueConstraint("issue_number", name=op.f("uq_certificate_wide_area_notices_issue_number")),
    )
    op.create_index(
        "ix_certificate_wide_area_notices_pending",
        "certificate_wide_area_notices",
        ["issuer_lg_code", "delivered_at"],
        unique=False,
    )
    op.create_table(
        "certificate_wide_area_provisions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("home_lg_code", sa.String(length=6), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("issuer_lg_code", sa.String(length=6), nullable=False),
        sa.Column("clerk", sa.String(length=128), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("person_ids", sa.String(length=400), nullable=False),
        sa.Column("form", sa.String(length=16), nullable=False),
        sa.Column("items", sa.String(length=400), nullable=False),
        sa.Column("provided_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issue_number", sa.String(length=32), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("issued_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fee_yen", sa.Integer(), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("document_sha256", sa.String(length=64), nullable=True),
        sa.Column("notified_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_wide_area_provisions")),
        sa.UniqueConstraint("issue_number", name=op.f("uq_certificate_wide_area_provisions_issue_number")),
        sa.UniqueConstraint("request_id", name=op.f("uq_certificate_wide_area_provisions_request_id")),
    )
    op.create_index(
        "ix_certificate_wide_area_provisions_home",
        "certificate_wide_area_provisions",
        ["home_lg_code", "provided_at"],
        unique=False,
    )
    op.create_table(
        "national_municipality_endpoints",
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("prefecture_code", sa.String(length=2), nullable=False),
        sa.Column("url", sa.String(length=300), nullable=False),
        sa.Column("registered_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lg_code", name=op.f("pk_national_municipality_endpoints")),
    )


def downgrade() -> None:
    op.drop_table("national_municipality_endpoints")
    op.drop_index("ix_certificate_wide_area_provisions_home", table_name="certificate_wide_area_provisions")
    op.drop_table("certificate_wide_area_provisions")
    op.drop_index("ix_certificate_wide_area_notices_pending", table_name="certificate_wide_area_notices")
    op.drop_table("certificate_wide_area_notices")
