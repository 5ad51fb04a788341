"""Set-based writes for bulk work: identifiers reserved in one go, rows loaded in one go.

On PostgreSQL rows go straight into their table through COPY (psycopg's ``copy``). On
SQLite (one writer at a time, no COPY) they go in with executemany.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Engine, Table, func, select, text
from sqlalchemy.orm import Session

from jumin.db import Base, CompressedText

__all__ = ["BulkLoader", "analyze", "reclaim_updated_rows"]

_SQLITE_CHUNK = 5_000


class BulkLoader:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    @property
    def postgresql(self) -> bool:
        return self.dialect == "postgresql"

    def reserve_ids(self, model: type[Base], count: int) -> list[int]:
        """``count`` new primary keys for ``model``'s table (its ``id`` column), never handed out again."""
        table = _table(model)
        if count == 0:
            return []
        if self.postgresql:
            rows = self.session.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": table.name, "n": count},
            ).scalars()
            return [int(r) for r in rows]
        # SQLite: the unit of work began IMMEDIATE, so nobody else writes until it ends.
        highest = self.session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
        start = int(highest) + 1
        return list(range(start, start + count))

    def insert(self, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
        table = _table(model)
        if not rows:
            return
        if not self.postgresql:
            self._sqlite_insert(table, rows)
            return
        columns = list(rows[0].keys())
        # COPY bypasses SQLAlchemy's types: what a column type does to a value on its way
        # in (CompressedText deflates it) is done here, the rest goes in as psycopg adapts it.
        converted = [
            (i, cast(CompressedText, table.c[c].type).process_bind_param)
            for i, c in enumerate(columns)
            if isinstance(table.c[c].type, CompressedText)
        ]
        if not converted:
            self.copy(table, columns, (tuple(r[c] for c in columns) for r in rows))
            return
        dialect = self.session.get_bind().dialect

        def values(row: Mapping[str, Any]) -> list[Any]:
            out = [row[c] for c in columns]
            for i, convert in converted:
                out[i] = convert(out[i], dialect)
            return out

        self.copy(table, columns, (values(r) for r in rows))

    def _sqlite_insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """executemany on the driver, each value passed through its column type's bind processor.

        The same conversion SQLAlchemy applies (UTCDateTime to naive UTC text, dates to ISO
        text), without building a parameter dictionary per row.
        """
        columns = list(rows[0].keys())
        dialect = self.session.get_bind().dialect
        processors = [table.c[c].type.bind_processor(dialect) for c in columns]
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'  # noqa: S608
        converted = [(i, proc) for i, proc in enumerate(processors) if proc is not None]

        def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
            out = [row[c] for c in columns]
            for i, proc in converted:
                if out[i] is not None:
                    out[i] = proc(out[i])
            return tuple(out)

        raw: Any = self.session.connection().connection.driver_connection
        cursor = raw.cursor()
        try:
            for i in range(0, len(rows), _SQLITE_CHUNK):
                cursor.executemany(sql, [values(r) for r in rows[i : i + _SQLITE_CHUNK]])
        finally:
            cursor.close()

    def copy(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """COPY ``rows`` straight into ``table`` (PostgreSQL only).

        Straight in, not through a staging table and INSERT ... SELECT: the rows would be
        written twice, and COPY checks the same constraints and fires the same triggers.
        """
        raw: Any = self.session.connection().connection.driver_connection
        names = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)


def analyze(session: Session, models: Iterable[type[Base]]) -> None:
    """ANALYZE these tables (PostgreSQL only): tables filled from empty by COPY outrun autovacuum.

    Plans made while a table was nearly empty (psycopg prepares repeated statements) go on
    scanning it whole for every check that follows; ANALYZE also invalidates them.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for model in models:
        session.execute(text(f'ANALYZE "{_table(model).name}"'))


def reclaim_updated_rows(engine: Engine, models: Iterable[type[Base]]) -> None:
    """Make the space of rows a bulk job has just updated reusable by the rows it writes next
    (PostgreSQL only).

    Marking a bulk import's outbox delivered rewrites every row (MVCC), so without this
    the table ends up twice its size: autovacuum does not keep up with a table filled by
    COPY. Only the pages changed since the last run are read (the visibility map skips
    the rest); the indexes are left to autovacuum (INDEX_CLEANUP OFF: the dead rows'
    space is freed, only their line pointers wait), which keeps each call cheap however
    large the table has grown. SKIP_LOCKED: when another worker is already reclaiming,
    its run serves both.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for model in models:
            conn.execute(text(f'VACUUM (INDEX_CLEANUP OFF, SKIP_LOCKED) "{_table(model).name}"'))


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)
