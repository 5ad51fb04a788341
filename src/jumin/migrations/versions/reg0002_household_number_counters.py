"""household number counters: one row per municipality, taken under its lock

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
    # Numbers already given out stay taken: each counter starts at its municipality's highest.
    op.execute(
        "INSERT INTO household_number_counters (lg_code, last_no) "
        "SELECT lg_code, MAX(CAST(household_no AS INTEGER)) FROM households GROUP BY lg_code"
    )


def downgrade() -> None:
    op.drop_table("household_number_counters")
