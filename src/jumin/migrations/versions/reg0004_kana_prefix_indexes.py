"""kana search by prefix uses an index on PostgreSQL (text_pattern_ops, current versions only)

Revision ID: reg0004
Revises: reg0003
Create Date: 2026-11-23 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reg0004"
down_revision: str | Sequence[str] | None = "reg0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT = sa.text("superseded_at IS NULL")


def upgrade() -> None:
    op.drop_index("ix_person_versions_search_kana", table_name="person_versions")
    op.create_index(
        "ix_person_versions_kana_prefix",
        "person_versions",
        ["lg_code", "search_kana"],
        postgresql_ops={"search_kana": "text_pattern_ops"},
        postgresql_where=CURRENT,
        sqlite_where=CURRENT,
    )
    if op.get_bind().dialect.name == "postgresql":
        # search_kana is "name kana[ alias kana]"; the alias is matched by prefix too.
        op.execute(
            "CREATE INDEX ix_person_versions_alias_kana_prefix ON person_versions "
            "(lg_code, split_part(search_kana, ' ', 2) text_pattern_ops) WHERE superseded_at IS NULL"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_person_versions_alias_kana_prefix")
    op.drop_index("ix_person_versions_kana_prefix", table_name="person_versions")
    op.create_index("ix_person_versions_search_kana", "person_versions", ["lg_code", "search_kana"])
