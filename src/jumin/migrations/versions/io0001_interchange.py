"""interchange: 宛名番号, the import ledger and card records

Revision ID: io0001
Revises: 0006
Create Date: 2026-11-23 04:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import jumin.db

revision: str = "io0001"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "interchange_atena_numbers",
        sa.Column("person_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("atena_no", sa.String(length=15), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_interchange_atena_numbers_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_interchange_atena_numbers")),
        sa.UniqueConstraint(
            "lg_code", "atena_no", name=op.f("uq_interchange_atena_numbers_lg_code_atena_no")
        ),
    )
    op.create_table(
        "interchange_imports",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("imported_at", jumin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interchange_imports")),
        sa.UniqueConstraint("lg_code", "digest", name=op.f("uq_interchange_imports_lg_code_digest")),
    )
    with op.batch_alter_table("interchange_imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interchange_imports_lg_code"), ["lg_code"], unique=False)
    op.create_table(
        "interchange_cards",
        sa.Column("person_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("card_status", sa.String(length=16), nullable=False),
        sa.Column("card_issued_on", sa.Date(), nullable=False),
        sa.Column("card_valid_until", sa.Date(), nullable=False),
        sa.Column("signing_cert_issued_on", sa.Date(), nullable=True),
        sa.Column("signing_cert_valid_until", sa.Date(), nullable=True),
        sa.Column("auth_cert_issued_on", sa.Date(), nullable=True),
        sa.Column("auth_cert_valid_until", sa.Date(), nullable=True),
        sa.Column("name_romaji", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_interchange_cards_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_interchange_cards")),
    )
    with op.batch_alter_table("interchange_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interchange_cards_lg_code"), ["lg_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("interchange_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interchange_cards_lg_code"))
    op.drop_table("interchange_cards")
    with op.batch_alter_table("interchange_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interchange_imports_lg_code"))
    op.drop_table("interchange_imports")
    op.drop_table("interchange_atena_numbers")
