"""certificates: the 基準日 (as_of) of an issuance; the tasks agencies may make official requests for

Revision ID: cert0002
Revises: cert0001
Create Date: 2026-11-23 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jumin.db

revision: str = "cert0002"
down_revision: str | Sequence[str] | None = "cert0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("certificate_issuances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("as_of", sa.Date(), nullable=True))
    op.create_table(
        "certificate_official_grants",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("task_code", sa.String(length=64), nullable=False),
        sa.Column("granted_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", jumin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_official_grants")),
        sa.UniqueConstraint(
            "lg_code",
            "agency_code",
            "task_code",
            name=op.f("uq_certificate_official_grants_lg_code_agency_code_task_code"),
        ),
    )


def downgrade() -> None:
    op.drop_table("certificate_official_grants")
    with op.batch_alter_table("certificate_issuances", schema=None) as batch_op:
        batch_op.drop_column("as_of")
