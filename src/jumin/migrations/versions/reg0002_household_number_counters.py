"""household number counters (one row per municipality, taken under its lock); events caused by others

Revision ID: reg0002
Revises: 0006
Create Date: 2026-11-23 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reg0002"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "household_number_counters",
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("last_no", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("lg_code", name=op.f("pk_household_number_counters")),
    )
    with op.batch_alter_table("registry_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caused_by_event_id", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_registry_events_caused_by_event_id", ["caused_by_event_id"], unique=False)
    # Numbers already given out stay taken: each counter starts at its municipality's highest.
    op.execute(
        "INSERT INTO household_number_counters (lg_code, last_no) "
        "SELECT lg_code, MAX(CAST(household_no AS INTEGER)) FROM households GROUP BY lg_code"
    )


def downgrade() -> None:
    with op.batch_alter_table("registry_events", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_events_caused_by_event_id")
        batch_op.drop_column("caused_by_event_id")
    op.drop_table("household_number_counters")
