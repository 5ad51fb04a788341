"""card: link applications, cards, notices and four-facts consents to the national identity id

A 住民票コードの変更 gives the person a new code; the identity store keeps the same row
(``national_identities.id``) and writes a history row under the new code. Card-side
rows were found by the code at issue and lost the person after a change; they now carry
the identity id. Existing rows are linked by their code: the identity that holds it now,
else the one whose history shows it (a code changed before this revision).

Revision ID: card0002
Revises: card0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "card0002"
down_revision: str | Sequence[str] | None = "card0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("card_applications", "cards", "card_notices", "card_four_facts_consents")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("identity_id", sa.BigInteger(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_identity_id"), ["identity_id"], unique=False)
        # Table names come from the constant above, never from input.
        op.execute(
            f"UPDATE {table} SET identity_id = COALESCE("  # noqa: S608
            f"(SELECT i.id FROM national_identities i WHERE i.resident_code = {table}.resident_code), "
            f"(SELECT MAX(h.identity_id) FROM national_identity_history h "
            f"WHERE h.resident_code = {table}.resident_code)) "
            "WHERE identity_id IS NULL"
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_identity_id"))
            batch_op.drop_column("identity_id")
