"""the register's JSON documents stored deflated (records, changes, outbox and inbox payloads)

Rows already stored are converted to their UTF-8 bytes and read back as they are; only
rows written from now on are compressed (jumin.db.CompressedText).

Revision ID: store0001
Revises: reg0004
Create Date: 2026-12-06 19:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "store0001"
down_revision: str | Sequence[str] | None = "reg0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("person_versions", "record_json"),
    ("registry_event_changes", "change_json"),
    ("registry_outbox", "payload"),
    ("national_inbox", "payload"),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, column in COLUMNS:
        if postgresql:
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE bytea USING convert_to({column}, 'UTF8')"
            )
        else:
            # SQLite keeps each value as it was stored (text stays text, and reads back as such).
            with op.batch_alter_table(table) as batch:
                batch.alter_column(column, type_=sa.LargeBinary(), existing_nullable=False)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, column in COLUMNS:
        if postgresql:
            # Compressed rows cannot be turned back into text inside the database.
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE text USING convert_from({column}, 'UTF8')"
            )
        else:
            with op.batch_alter_table(table) as batch:
                batch.alter_column(column, type_=sa.Text(), existing_nullable=False)
