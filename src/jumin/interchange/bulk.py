"""Set-based writes for bulk work: identifiers reserved in one go, rows loaded in one go.

On PostgreSQL rows go through COPY (psycopg's ``copy``) into a temporary staging table
and from there into the real table with one INSERT ... SELECT, so the real table sees a
single set-based statement and its constraints are checked once per load. On SQLite
(one writer at a time, no COPY) rows go in with executemany.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session

from jumin.db import Base

__all__ = ["BulkLoader"]

_SQLITE_CHUNK = 5_000


class BulkLoader:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self._staged: set[str] = set()

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
        stage = self.stage(table, columns, (tuple(r[c] for c in columns) for r in rows))
        names = ", ".join(f'"{c}"' for c in columns)
        self.session.execute(text(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{stage}"'))  # noqa: S608
        # DELETE, not TRUNCATE: a truncate gives the table a new file each time, which costs
        # more than deleting the few thousand rows of one municipality.
        self.session.execute(text(f'DELETE FROM "{stage}"'))  # noqa: S608

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

    def stage(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        """COPY ``rows`` into this table's staging twin (PostgreSQL only); returns its name."""
        stage = f"stage_{table.name}"
        connection = self.session.connection()
        # Checked once per loader (one transaction): a rolled-back transaction takes a table it
        # created with it, so the connection's memory of it cannot be trusted across transactions.
        if stage not in self._staged:
            # Kept for the connection's life, emptied after each load (and by a rollback): not
            # ON COMMIT DELETE ROWS, which would truncate every such table at every commit.
            connection.exec_driver_sql(
                f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS)'
            )
            self._staged.add(stage)
        raw: Any = connection.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cursor, cursor.copy(f'COPY "{stage}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
        return stage


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)
