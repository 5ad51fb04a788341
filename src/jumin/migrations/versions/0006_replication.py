"""replication: source record ranks, envelope nonces, expected arrivals

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 02:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jumin.db

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("national_source_sequences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("started_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("void", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index("ix_national_source_sequences_identity", ["identity_id"], unique=False)

    op.create_table(
        "national_envelope_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("prefecture_code", sa.String(length=2), nullable=False),
        sa.Column("sent_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_national_envelope_nonces")),
    )
    with op.batch_alter_table("national_envelope_nonces", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_national_envelope_nonces_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "registry_expected_arrivals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("origin_lg_code", sa.String(length=6), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_kana", sa.String(length=200), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(length=8), nullable=False),
        sa.Column("planned_on", sa.Date(), nullable=False),
        sa.Column("origin_address", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("announced_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_expected_arrivals")),
        sa.UniqueConstraint(
            "lg_code", "notice_id", name=op.f("uq_registry_expected_arrivals_lg_code_notice_id")
        ),
    )
    with op.batch_alter_table("registry_expected_arrivals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_registry_expected_arrivals_resident_code", ["lg_code", "resident_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_expected_arrivals", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_expected_arrivals_resident_code")
    op.drop_table("registry_expected_arrivals")
    with op.batch_alter_table("national_envelope_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_national_envelope_nonces_received_at"))
    op.drop_table("national_envelope_nonces")
    with op.batch_alter_table("national_source_sequences", schema=None) as batch_op:
        batch_op.drop_index("ix_national_source_sequences_identity")
        batch_op.drop_column("void")
        batch_op.drop_column("started_on")
        batch_op.drop_column("identity_id")
