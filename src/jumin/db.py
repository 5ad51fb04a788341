"""Engine, sessions, the shared metadata and migrations.

The entry point owns the transaction (DESIGN.md): an HTTP request, a CLI command or a
worker opens one unit of work with :func:`unit_of_work`, services only flush, and the
unit commits when the use case returns or rolls back on any error.
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    any_,
    create_engine,
    event,
    literal,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from jumin.config import get_settings

# Stable constraint names so that migrations written on SQLite apply on PostgreSQL too.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend.

    SQLite drops the offset; reading back a naive value would change what the audit
    chain hashes, so values are normalised to UTC on the way in and made aware again on
    the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# The preset dictionary of CompressedText's format 1: the register's JSON documents as they
# are written (a record in canonical form, a change, an outbox and an inbox payload), so
# that key names and common values cost a back-reference even in a 500-byte value. It is
# part of the stored format: never edit it; a better one is format 2, beside it.
_DICTIONARY_1 = (
    '{"data": {"items": []}, "tag": "item_correction"}'
    '{"data": {"reason": "move_out"}, "tag": "removal"}{"data": {"reason": "death"}, "tag": "removal"}'
    '"foreign":{"alias":null,"alias_history":[],"alias_kana":null,"became_foreign_resident_on":"20'
    '","category":"mid_to_long_term","name_alphabet":"","nationality":"","period_of_stay":null,'
    '"residence_card_number":"","status_of_residence":"永住者","stay_expires_on":null},'
    '"resident_kind":"foreign","foreign": {"alias": null, "alias_history": [], "alias_kana": null, '
    '"became_foreign_resident_on": "20", "category": "mid_to_long_term", "name_alphabet": "", '
    '"nationality": "", "period_of_stay": null, "residence_card_number": "", '
    '"status_of_residence": "", "stay_expires_on": null}, "resident_kind": "foreign", '
    '{"alias_kana": null, "became_resident_on": "20", "change_kind": "move_in", "effective_on": "20", '
    '"identity": {"address": "番地 ", "address_lg_code": "", "birth_date": "19", '
    '"individual_number": "enc:v1.", "name": "　", "name_kana": "　", "removal_reason": null, '
    '"resident_code": "", "resident_kind": "japanese", "sex": "female", "status": "live"}}'
    '{"address": {"katagaki": "", "lg_code": "", "line": "番地の"}, "address_set_on": "20", '
    '"became_resident_on": "20", "birth_date": "19", "change_kind": "birth", "effective_on": "20", '
    '"family_name": "", "family_name_kana": "", "foreign": null, "given_name": "", "given_name_kana": "", '
    '"hittousha": "　", "honseki": "県市町番地", "household_id": , "identity": {"address": "番地の ", '
    '"address_lg_code": "", "birth_date": "19", "individual_number": "enc:v1.", "name": "　", '
    '"name_kana": "　", "removal_reason": null, "resident_code": "", "resident_kind": "japanese", '
    '"sex": "male", "status": "live"}, "individual_number": "enc:v1.", "lg_code": "", "notified_on": "20", '
    '"old_surname": null, "old_surname_kana": null, "planned_move_out": null, "prefecture_code": "", '
    '"previous_address": "県郡村番地の", "relationship": "子", "removal_reason": null, "removed_on": null, '
    '"resident_code": "", "resident_kind": "japanese", "sex": "female", "status": "live"}'
    '{"data": {"record": {"address": {"katagaki": "マンション", "lg_code": "", "line": "番地の"}, '
    '"address_set_on": "20", "became_resident_on": "20", "birth_date": "19", "family_name": "", '
    '"family_name_kana": "", "foreign": null, "given_name": "", "given_name_kana": "", "hittousha": "　", '
    '"honseki": "県市町番地", "household_id": , "individual_number": "enc:v1.", "notified_on": "20", '
    '"old_surname": null, "old_surname_kana": null, "planned_move_out": null, '
    '"previous_address": "県市番地", '
    '"relationship": "妻", "removal_reason": null, "removed_on": null, "resident_code": "", '
    '"resident_kind": "japanese", "sex": "male", "status": "live"}}, "tag": "registration"}'
    '{"address":{"katagaki":"ハイツ","lg_code":"","line":"番地の"},"address_set_on":"20",'
    '"became_resident_on":"20","birth_date":"19","family_name":"","family_name_kana":"","foreign":null,'
    '"given_name":"","given_name_kana":"","hittousha":"　","honseki":"県市町番地","household_id":,'
    '"individual_number":null,"notified_on":"20","old_surname":null,"old_surname_kana":null,'
    '"planned_move_out":null,"previous_address":"県市町番地の","relationship":"世帯主",'
    '"removal_reason":null,"removed_on":null,"resident_code":"","resident_kind":"japanese",'
    '"sex":"male","status":"live"}'
).encode()
_FORMAT_1 = b"\x01"
# Deflate without a zlib header (the format byte says what it is), the fastest level: the
# dictionary does most of the work on values this short.
_WBITS = -15
_PRIMED_1 = zlib.compressobj(1, zlib.DEFLATED, _WBITS, zdict=_DICTIONARY_1)


def compress_text(value: str) -> bytes:
    """``value`` deflated with the preset dictionary, behind the format byte."""
    deflater = _PRIMED_1.copy()  # the dictionary is primed once; a copy is cheaper than priming
    return _FORMAT_1 + deflater.compress(value.encode()) + deflater.flush()


def expand_text(stored: bytes | str) -> str:
    """What :func:`compress_text` was given; plain UTF-8 (rows from before compression) as it is."""
    if isinstance(stored, str):  # SQLite rows written while the column was TEXT
        return stored
    if stored[:1] == _FORMAT_1:
        inflater = zlib.decompressobj(_WBITS, zdict=_DICTIONARY_1)
        return (inflater.decompress(stored[1:]) + inflater.flush()).decode()
    # Converted in place by the migration (convert_to): JSON never starts with the format byte.
    return bytes(stored).decode()


class CompressedText(TypeDecorator[str]):
    """Text stored deflated, read back as text.

    For the register's JSON documents (a person's record, each change, each message to
    and from the network): together they were 40% of the databases, and at 500 to 1,400
    bytes each they are too short for PostgreSQL's own compression, which only starts
    on rows over 2 kB. Nothing queries inside them: what queries need is copied out into
    columns of its own.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else compress_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else expand_text(value)


# Under every backend's bound-parameter limit (SQLite's was 999 before 3.32).
_IN_LIST_LIMIT = 900


def is_one_of(session: Session, column: Any, values: Sequence[Any]) -> list[ColumnElement[bool]]:
    """Conditions that together select the rows whose ``column`` is among ``values``.

    Run one statement per condition and merge what they find. On PostgreSQL that is one
    statement whatever the count, with the values as one typed array (a bulk import asks
    about 20,000 keys at once, and an IN list of that many is compiled anew every time);
    elsewhere, IN lists of at most 900 values. No values, no conditions.
    """
    if not values:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(literal(list(values), ARRAY(column.type)))]
    return [column.in_(values[i : i + _IN_LIST_LIMIT]) for i in range(0, len(values), _IN_LIST_LIMIT)]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; busy_timeout turns lock contention between
    # the server and a CLI command into a short wait instead of an error.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; let
    # SQLAlchemy emit BEGIN itself (the recipe in SQLAlchemy's SQLite dialect docs).
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE: take the write lock up front. A deferred transaction that read first and
    # then writes after another connection committed fails at once with "database is
    # locked" (a stale WAL snapshot cannot be upgraded, and busy_timeout does not apply);
    # taking the lock at BEGIN turns every such collision into a short wait. Concurrent
    # writers are the normal case in `jumin serve`, where the relay thread writes beside
    # the clerks' requests.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # hide_parameters: SQL errors must never carry personal data into logs.
    engine = create_engine(url, pool_size=10, max_overflow=20, hide_parameters=True)
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle(engine.dialect))
    return engine


# A pooled connection left unused this long is tested with a round trip before use
# (SQLAlchemy's pre-ping, for idle ones only). Pinging on every checkout cost each request
# one more round trip than its work; a connection handed back moments ago has just
# proved itself, and if the server went away since, the first failing statement makes
# SQLAlchemy invalidate the whole pool anyway.
IDLE_BEFORE_PING_SECONDS = 2.0
_CHECKED_IN_AT = "jumin_checked_in_at"


def _note_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _ping_if_idle(dialect: Dialect) -> Callable[[Any, ConnectionPoolEntry, Any], None]:
    def ping(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        # A new connection has no check-in time (the record's info goes with its connection).
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_BEFORE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # As pre-ping does: the server probably restarted, so every pooled
                # connection is suspect; the pool reconnects and retries.
                raise InvalidatePoolError() from exc
            raise

    return ping


@cache
def default_engine() -> Engine:
    return make_engine(get_settings().database_url)


@cache
def national_engine() -> Engine:
    """The national network's database; only the national side and its client use it."""
    return make_engine(get_settings().national_database_url)


@cache
def _session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction for one use case: commit on return, roll back on any error."""
    session = _session_factory(engine or default_engine())()
    try:
        yield session
        session.commit()
    except BaseException as exc:
        finish_failed(session, exc)
        raise
    finally:
        session.close()


def finish_failed(session: Session, exc: BaseException) -> None:
    """Roll back, except for refusals that must leave their audit trace (see DomainError)."""
    if getattr(exc, "commits_recorded_work", False):
        session.commit()
    else:
        session.rollback()


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "jumin:migrations")
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    """Bring a database to ``revision`` by running the migrations (never create_all).

    "heads", not "head": features that grow independently (certificates, cards, agencies)
    keep their migrations on branches of their own from a shared base, and all of them
    apply.
    """
    cfg = alembic_config(url)
    engine = make_engine(url or get_settings().database_url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    engine.dispose()


def upgrade_connection(connection: Any, revision: str = "heads") -> None:
    """Run the migrations on an open connection (the test suite uses this)."""
    cfg = alembic_config(str(connection.engine.url.render_as_string(hide_password=False)))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)
