"""Every query of the agency side. The identity store is read here, never written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    MetaData,
    Select,
    String,
    Table,
    TextualSelect,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from jumin.db import UTCDateTime
from jumin.network.agencies.models import (
    AccessLogEntry,
    AgencyClientRecord,
    AgencyCode,
    BatchJob,
    BatchRowError,
    Extraction,
    FeedSubscription,
    TaskGrant,
    WebhookDelivery,
)
from jumin.network.identity.models import IdentityHistory, IdentityRecord

# Below every backend's bound-parameter limit (SQLite's was 999 before 3.32).
IN_CHUNK = 900
ALL_PREFECTURES = tuple(f"{n:02d}" for n in range(1, 48))


def _chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _insert_ignoring_duplicates(
    session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(model)
    session.execute(stmt.on_conflict_do_nothing(index_elements=keys), rows)


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- clients and grants ---------------------------------------------------------------------------


def client(session: Session, client_id: str) -> AgencyClientRecord | None:
    return session.get(AgencyClientRecord, client_id)


def add(session: Session, row: Any) -> None:
    session.add(row)
    session.flush()


def grant(session: Session, client_id: str, task_code: str) -> TaskGrant | None:
    return session.execute(
        select(TaskGrant).where(TaskGrant.client_id == client_id, TaskGrant.task_code == task_code)
    ).scalar_one_or_none()


_HOLDS_GRANT = select(TaskGrant.id).where(
    TaskGrant.client_id == bindparam("client_id"),
    TaskGrant.task_code == bindparam("task_code"),
    TaskGrant.revoked_at.is_(None),
)


def holds_grant(session: Session, client_id: str, task_code: str) -> bool:
    """True when the client holds the task now: asked of the database on every request, so
    that a revocation committed anywhere (another process, the console) counts at once."""
    found = session.execute(_HOLDS_GRANT, {"client_id": client_id, "task_code": task_code}).first()
    return found is not None


def grants_of(session: Session, client_id: str) -> Sequence[TaskGrant]:
    return (
        session.execute(
            select(TaskGrant).where(TaskGrant.client_id == client_id).order_by(TaskGrant.task_code)
        )
        .scalars()
        .all()
    )


def organisation_holds_any(session: Session, organisation_code: str, task_codes: Iterable[str]) -> bool:
    """True when some client of the organisation holds one of the tasks now."""
    codes = list(task_codes)
    if not codes:
        return False
    return (
        session.execute(
            select(TaskGrant.id)
            .join(AgencyClientRecord, AgencyClientRecord.client_id == TaskGrant.client_id)
            .where(
                AgencyClientRecord.organisation_code == organisation_code,
                TaskGrant.task_code.in_(codes),
                TaskGrant.revoked_at.is_(None),
            )
            .limit(1)
        ).first()
        is not None
    )


# --- the identity store ---------------------------------------------------------------------------


# The single-code lookup, built once: an IN list is rendered anew at every execution.
_IDENTITY_BY_CODE = select(IdentityRecord).where(IdentityRecord.resident_code == bindparam("code"))


def identities_by_codes(session: Session, codes: Sequence[str]) -> list[IdentityRecord]:
    if len(codes) == 1:
        return list(session.execute(_IDENTITY_BY_CODE, {"code": codes[0]}).scalars())
    found: list[IdentityRecord] = []
    for chunk in _chunks(list(codes)):
        found.extend(
            session.execute(select(IdentityRecord).where(IdentityRecord.resident_code.in_(chunk))).scalars()
        )
    return found


def identities_by_ids(session: Session, ids: Iterable[int]) -> list[IdentityRecord]:
    found: list[IdentityRecord] = []
    for chunk in _chunks(sorted(set(ids))):
        found.extend(session.execute(select(IdentityRecord).where(IdentityRecord.id.in_(chunk))).scalars())
    return found


PERSON_COLUMNS = (
    IdentityRecord.id,
    IdentityRecord.resident_code,
    IdentityRecord.prefecture_code,
    IdentityRecord.status,
    IdentityRecord.removal_reason,
    IdentityRecord.name,
    IdentityRecord.name_kana,
    IdentityRecord.birth_date,
    IdentityRecord.sex,
    IdentityRecord.address_lg_code,
    IdentityRecord.address,
    IdentityRecord.individual_number_encrypted,
    IdentityRecord.change_kind,
    IdentityRecord.changed_on,
)


def identity_rows_by_ids(session: Session, ids: Iterable[int]) -> list[Any]:
    """What a person's view needs of these identities, as plain rows (no ORM objects to build)."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    if _on_postgresql(session):
        return list(
            session.execute(
                select(*PERSON_COLUMNS).where(
                    IdentityRecord.id == any_(bindparam("ids", wanted, type_=ARRAY(BigInteger)))
                )
            )
        )
    found: list[Any] = []
    for chunk in _chunks(wanted):
        found.extend(session.execute(select(*PERSON_COLUMNS).where(IdentityRecord.id.in_(chunk))))
    return found


def identity_by_number_hash(session: Session, number_hash: str) -> IdentityRecord | None:
    return session.execute(
        select(IdentityRecord).where(IdentityRecord.individual_number_hash == number_hash)
    ).scalar_one_or_none()


def identity_ids_by_past_codes(session: Session, codes: Sequence[str]) -> dict[str, int]:
    """Identities that once held these 住民票コード (a code changed since)."""
    found: dict[str, int] = {}
    for chunk in _chunks(list(codes)):
        for code, identity_id in session.execute(
            select(IdentityHistory.resident_code, IdentityHistory.identity_id)
            .where(IdentityHistory.resident_code.in_(chunk))
            .order_by(IdentityHistory.id)
        ):
            found[code] = identity_id
    return found


CANDIDATE_COLUMNS = (
    IdentityRecord.id,
    IdentityRecord.prefecture_code,
    IdentityRecord.search_kana,
    IdentityRecord.birth_date,
    IdentityRecord.sex,
    IdentityRecord.address_lg_code,
    IdentityRecord.address,
)


def candidates_by_reading(session: Session, readings: Sequence[str], *, limit: int) -> Sequence[Any]:
    """People whose reading is one of ``readings``, any birth date.

    The prefecture list leads the condition so that the (prefecture, reading, birth date)
    index serves it on every backend: one index probe per prefecture and reading.
    """
    if not readings:
        return []
    return session.execute(
        select(*CANDIDATE_COLUMNS)
        .where(
            IdentityRecord.prefecture_code.in_(ALL_PREFECTURES),
            IdentityRecord.search_kana.in_(sorted(set(readings))),
        )
        .limit(limit)
    ).all()


_KEY_BUCKETS = (16, 128, 1024)
_NO_MATCH = {"k": "", "b": dt.date(1, 1, 1), "s": ""}  # pads a key list; matches nobody


@cache
def _joined_on_keys(kind: str, size: int) -> TextualSelect:
    """``national_identities`` joined to ``size`` keys given as a VALUES list.

    Written as text with numbered parameters, one statement per bucket size: an IN list
    per column would make the planners probe every combination of the values (SQLite, and
    PostgreSQL before 17), and the statement is compiled once per size instead of per
    chunk (compiling 2,000 bound values cost more than running the query).
    """
    table = IdentityRecord.__tablename__
    columns = ", ".join(f"n.{c.key}" for c in CANDIDATE_COLUMNS)
    if kind == "reading":
        key_columns, typed = ("k", "b"), {"b": Date()}
        on = "n.search_kana = keys.k AND n.birth_date = keys.b"
        where = " WHERE n.prefecture_code IN (" + ", ".join(f"'{p}'" for p in ALL_PREFECTURES) + ")"
    else:
        key_columns, typed = ("b", "s"), {"b": Date()}
        on = "n.birth_date = keys.b AND n.sex = keys.s"
        where = ""
    rows = ", ".join("(" + ", ".join(f":{c}{i}" for c in key_columns) + ")" for i in range(size))
    # Only names from the model and constants go into the text; every value is bound.
    sql = (
        f"WITH keys({', '.join(key_columns)}) AS (VALUES {rows}) "  # noqa: S608
        f"SELECT {columns} FROM keys JOIN {table} n ON {on}{where} LIMIT :row_limit"
    )
    return (
        text(sql)
        .bindparams(
            *[bindparam(f"{c}{i}", type_=typed[c]) for c in key_columns if c in typed for i in range(size)]
        )
        .columns(*CANDIDATE_COLUMNS)
    )


@cache
def _joined_on_arrays(kind: str) -> TextualSelect:
    """PostgreSQL: ``national_identities`` joined to the keys given as arrays (unnest).

    The whole chunk's keys travel as one array per column: one statement, two parameters.
    The lateral subquery (OFFSET 0 keeps the planner from flattening it) makes the join one
    index probe per key: as a plain join, the planner, which cannot see into the arrays,
    hashes the whole store instead.
    """
    table = IdentityRecord.__tablename__
    columns = ", ".join(f"n.{c.key}" for c in CANDIDATE_COLUMNS)
    if kind == "reading":
        keys = "unnest(CAST(:k AS text[]), CAST(:b AS date[])) AS keys(k, b)"
        on = "n.search_kana = keys.k AND n.birth_date = keys.b AND n.prefecture_code IN ("
        on += ", ".join(f"'{p}'" for p in ALL_PREFECTURES) + ")"
    else:
        keys = "unnest(CAST(:b AS date[]), CAST(:s AS text[])) AS keys(b, s)"
        on = "n.birth_date = keys.b AND n.sex = keys.s"
    # Only names from the model and constants go into the text; every value is bound.
    sql = (
        f"SELECT {columns} FROM {keys} CROSS JOIN LATERAL "  # noqa: S608
        f"(SELECT {columns} FROM {table} n WHERE {on} OFFSET 0) n LIMIT :row_limit"
    )
    return text(sql).columns(*CANDIDATE_COLUMNS)


def _by_keys(session: Session, kind: str, keys: list[dict[str, Any]], limit: int) -> list[Any]:
    if not keys:
        return []
    if _on_postgresql(session):
        params: dict[str, Any] = {c: [key[c] for key in keys] for c in keys[0]}
        params["row_limit"] = limit
        return list(session.execute(_joined_on_arrays(kind), params).all())
    found: list[Any] = []
    largest = _KEY_BUCKETS[-1]
    for i in range(0, len(keys), largest):
        part = keys[i : i + largest]
        size = next(b for b in _KEY_BUCKETS if b >= len(part))
        part += [_NO_MATCH] * (size - len(part))
        bound: dict[str, Any] = {"row_limit": limit}
        for n, key in enumerate(part):
            for c, v in key.items():
                bound[f"{c}{n}"] = v
        found.extend(session.execute(_joined_on_keys(kind, size), bound).all())
    return found


def candidates_by_reading_and_birth(
    session: Session, pairs: Sequence[tuple[str, dt.date]], *, limit: int
) -> Sequence[Any]:
    """People with one of the (reading, birth date) pairs: one index probe per pair and prefecture."""
    keys = [{"k": k, "b": b} for k, b in sorted(set(pairs))]
    return _by_keys(session, "reading", keys, limit)


def candidates_by_birth_and_sex(
    session: Session, pairs: Sequence[tuple[dt.date, str]], *, limit: int
) -> Sequence[Any]:
    """People born on one of the dates with the given sex (the birth date/sex index)."""
    keys = [{"b": b, "s": sx} for b, sx in sorted(set(pairs))]
    return _by_keys(session, "birth", keys, limit)


def history_of(session: Session, identity_id: int) -> Sequence[IdentityHistory]:
    return (
        session.execute(
            select(IdentityHistory)
            .where(IdentityHistory.identity_id == identity_id)
            .order_by(IdentityHistory.valid_from, IdentityHistory.id)
        )
        .scalars()
        .all()
    )


def _valid_on(h: Any, on: dt.date) -> Any:
    return and_(h.valid_from <= on, or_(h.valid_to.is_(None), h.valid_to > on))


def history_as_of(session: Session, identity_id: int, on: dt.date) -> IdentityHistory | None:
    """The version in force on ``on``; of overlapping versions, the one recorded last."""
    return (
        session.execute(
            select(IdentityHistory)
            .where(IdentityHistory.identity_id == identity_id, _valid_on(IdentityHistory, on))
            .order_by(IdentityHistory.id.desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def last_history_id(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(IdentityHistory.id), 0))).scalar_one())


def feed_page(
    session: Session,
    *,
    organisation_code: str,
    change_kinds: Sequence[str],
    after: int,
    limit: int,
) -> Sequence[Any]:
    """History rows after the cursor, of the given kinds, for persons the agency holds a code for.

    Rows still settling are returned too: the caller stops the page at the first of them.
    """
    return session.execute(
        select(IdentityHistory, AgencyCode.agency_code)
        .join(
            AgencyCode,
            and_(
                AgencyCode.identity_id == IdentityHistory.identity_id,
                AgencyCode.organisation_code == organisation_code,
            ),
        )
        .where(
            IdentityHistory.id > after,
            IdentityHistory.change_kind.in_(change_kinds),
        )
        .order_by(IdentityHistory.id)
        .limit(limit)
    ).all()


_staging = MetaData()
# The residents an extraction hands out, fixed once: the files are written from it and the
# access log is filled from it, so both name the same persons whatever commits meanwhile
# (PostgreSQL's READ COMMITTED gives each statement its own snapshot).
EXTRACTION_STAGE = Table(
    "jumin_extraction_stage",
    _staging,
    Column("identity_id", BigInteger, nullable=False),
    Column("prefecture_code", String(2), nullable=False),
    Column("lg_code", String(6), nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("name", String(200), nullable=False),
    Column("name_kana", String(200)),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(8), nullable=False),
    Column("address_lg_code", String(6), nullable=False),
    Column("address", String(300), nullable=False),
    prefixes=["TEMPORARY"],
)


def _residents_on_query(
    *,
    prefecture_code: str,
    on: dt.date,
    lg_codes: Sequence[str],
    born_from: dt.date | None = None,
    born_until: dt.date | None = None,
) -> Select[*tuple[Any, ...]]:
    newer = aliased(IdentityHistory)
    h = IdentityHistory
    query: Select[*tuple[Any, ...]] = select(
        h.identity_id,
        h.prefecture_code,
        h.lg_code,
        h.resident_code,
        h.name,
        h.name_kana,
        h.birth_date,
        h.sex,
        h.address_lg_code,
        h.address,
    ).where(
        h.prefecture_code == prefecture_code,
        _valid_on(h, on),
        h.status == "live",
        ~exists().where(newer.identity_id == h.identity_id, newer.id > h.id, _valid_on(newer, on)),
    )
    if lg_codes:
        query = query.where(h.lg_code.in_(list(lg_codes)))
    if born_from is not None or born_until is not None:
        in_range = and_(
            true() if born_from is None else h.birth_date >= born_from,
            true() if born_until is None else h.birth_date <= born_until,
        )
        # Someone born after the date stays in, so that computing their age fails as before.
        query = query.where(or_(in_range, h.birth_date > on))
    return query


def stage_residents_on(
    session: Session,
    *,
    prefecture_code: str,
    on: dt.date,
    lg_codes: Sequence[str],
    born_from: dt.date | None,
    born_until: dt.date | None,
) -> int:
    """Fix the extraction's residents in a temporary table (one statement: one snapshot)."""
    conn = session.connection()
    EXTRACTION_STAGE.drop(conn, checkfirst=True)
    EXTRACTION_STAGE.create(conn)
    query = _residents_on_query(
        prefecture_code=prefecture_code, on=on, lg_codes=lg_codes, born_from=born_from, born_until=born_until
    )
    stage = insert(EXTRACTION_STAGE).from_select(list(EXTRACTION_STAGE.c.keys()), query)
    if not _on_postgresql(session):
        return int(getattr(conn.execute(stage, execution_options={"preserve_rowcount": True}), "rowcount", 0))
    # "No newer version on the date" is one identity-index probe per resident of the
    # prefecture; the planner would rather hash every version of every prefecture (the
    # whole store, ten times the rows). Only for this statement: the settings come back.
    joins = ("enable_hashjoin", "enable_mergejoin")
    before = conn.execute(
        text("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
    ).one()
    for name in joins:
        conn.execute(text("SELECT set_config(:name, 'off', true)"), {"name": name})
    result = conn.execute(stage, execution_options={"preserve_rowcount": True})
    for name, value in zip(joins, before, strict=True):
        conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    return int(getattr(result, "rowcount", 0))


def staged_residents(session: Session, *, page: int) -> Iterator[list[tuple[Any, ...]]]:
    """The staged residents in file order, ``page`` at a time (a server-side cursor on PostgreSQL)."""
    s = EXTRACTION_STAGE.c
    result = session.connection().execute(
        select(*EXTRACTION_STAGE.c).order_by(s.lg_code, s.resident_code),
        execution_options={"stream_results": True, "yield_per": page},
    )
    for part in result.partitions():
        yield [tuple(r) for r in part]


def log_staged_residents(session: Session, values: dict[str, Any]) -> int:
    """One access-log row per staged resident, written inside the database; the stage is dropped."""
    s = EXTRACTION_STAGE.c
    conn = session.connection()
    columns = ["identity_id", "resident_code", "prefecture_code", *values]
    query = select(
        s.identity_id,
        s.resident_code,
        s.prefecture_code,
        *[literal(v, AccessLogEntry.__table__.c[k].type).label(k) for k, v in values.items()],
    )
    result = conn.execute(
        insert(AccessLogEntry).from_select(columns, query), execution_options={"preserve_rowcount": True}
    )
    EXTRACTION_STAGE.drop(conn)
    return int(getattr(result, "rowcount", 0))


# --- agency codes ---------------------------------------------------------------------------------


_AGENCY_CODES_FROM_ARRAYS = text(
    f"INSERT INTO {AgencyCode.__tablename__} (organisation_code, identity_id, agency_code, issued_at) "  # noqa: S608
    "SELECT :organisation_code, i, c, :issued_at FROM unnest(CAST(:ids AS bigint[]), CAST(:codes AS text[])) "
    "AS t(i, c) ON CONFLICT (organisation_code, identity_id) DO NOTHING"
).bindparams(bindparam("issued_at", type_=AgencyCode.__table__.c.issued_at.type))


def add_agency_codes(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    organisations = {r["organisation_code"] for r in rows}
    issued = {r["issued_at"] for r in rows}
    if _on_postgresql(session) and len(organisations) == 1 and len(issued) == 1:
        # One statement for the whole set instead of a statement per 500 rows.
        session.execute(
            _AGENCY_CODES_FROM_ARRAYS,
            {
                "organisation_code": organisations.pop(),
                "issued_at": issued.pop(),
                "ids": [r["identity_id"] for r in rows],
                "codes": [r["agency_code"] for r in rows],
            },
        )
        return
    for i in range(0, len(rows), 500):
        _insert_ignoring_duplicates(
            session, AgencyCode, rows[i : i + 500], ["organisation_code", "identity_id"]
        )


def identity_for_agency_code(session: Session, organisation_code: str, agency_code: str) -> int | None:
    return session.execute(
        select(AgencyCode.identity_id).where(
            AgencyCode.organisation_code == organisation_code, AgencyCode.agency_code == agency_code
        )
    ).scalar_one_or_none()


# --- access log -----------------------------------------------------------------------------------


_ACCESS_COLUMNS = tuple(c for c in AccessLogEntry.__table__.c if c.key != "id")


_ARRAY_TYPES = {"identity_id": "bigint", "audit_entry_id": "bigint", "accessed_at": "timestamptz"}


@cache
def _access_rows_from_arrays(varying: tuple[str, ...]) -> Any:
    """INSERT … SELECT FROM unnest: one array per column that varies, a scalar for the rest."""
    names = [c.key for c in _ACCESS_COLUMNS]
    arrays = ", ".join(f"CAST(:{n} AS {_ARRAY_TYPES.get(n, 'text')}[])" for n in varying)
    values = ", ".join(
        f"t.{n}" if n in varying else f"CAST(:{n} AS {_ARRAY_TYPES.get(n, 'text')})" for n in names
    )
    return text(
        f"INSERT INTO {AccessLogEntry.__tablename__} ({', '.join(names)}) "  # noqa: S608
        f"SELECT {values} FROM unnest({arrays}) AS t({', '.join(varying)})"
    )


def add_access_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if _on_postgresql(session) and len(rows) > 1:
        # One statement for the whole set instead of a round trip per row.
        dialect = session.get_bind().dialect
        stamp = UTCDateTime()
        params: dict[str, Any] = {}
        varying: list[str] = []
        for c in _ACCESS_COLUMNS:
            values = [r[c.key] for r in rows]
            if c.key == "accessed_at":
                values = [stamp.process_bind_param(v, dialect) for v in values]
            if all(v == values[0] for v in values):
                params[c.key] = values[0]
            else:
                params[c.key] = values
                varying.append(c.key)
        if not varying:
            varying.append("identity_id")
            params["identity_id"] = [r["identity_id"] for r in rows]
        session.execute(_access_rows_from_arrays(tuple(varying)), params)
        return
    for i in range(0, len(rows), 1000):
        session.execute(insert(AccessLogEntry), rows[i : i + 1000])


_LOOKUP_CODE_COLUMNS = ("organisation_code", "identity_id", "agency_code", "issued_at")
_LOOKUP_ACCESS_COLUMNS = (
    "identity_id",
    "resident_code",
    "prefecture_code",
    "accessed_at",
    "organisation_code",
    "actor_kind",
    "actor_id",
    "task_code",
    "purpose",
    "query_kind",
    "audit_entry_id",
)
# An interactive lookup's agency code and access-log row in one round trip (PostgreSQL),
# built once with placeholders: the code's parameters are prefixed "code_".
_ONE_CODE_AND_ACCESS_ROW = (
    insert(AccessLogEntry)
    .values({c: bindparam(c) for c in _LOOKUP_ACCESS_COLUMNS})
    .add_cte(
        pg_insert(AgencyCode)
        .values({c: bindparam(f"code_{c}") for c in _LOOKUP_CODE_COLUMNS})
        .on_conflict_do_nothing(index_elements=["organisation_code", "identity_id"])
        .cte("codes")
    )
)


# The same agency code and access-log row as WITH items of the audit entry's own statement
# (audit.service.Attachment), reading the entry's id from it: one round trip for all three.
ATTACHED_CODE_AND_ACCESS_ROW = """
    , attached_code AS (
        INSERT INTO network_agency_codes (organisation_code, identity_id, agency_code, issued_at)
        VALUES (:code_organisation_code, :code_identity_id, :code_agency_code, :code_issued_at)
        ON CONFLICT (organisation_code, identity_id) DO NOTHING
    ), attached_access AS (
        INSERT INTO network_access_log (
            identity_id, resident_code, prefecture_code, accessed_at, organisation_code,
            actor_kind, actor_id, task_code, purpose, query_kind, audit_entry_id
        )
        SELECT :access_identity_id, :access_resident_code, :access_prefecture_code,
               :access_accessed_at, :access_organisation_code, :access_actor_kind,
               :access_actor_id, :access_task_code, :access_purpose, :access_query_kind, entry.id
        FROM entry
    )"""


def attached_code_and_access_params(code_row: dict[str, Any], access_row: dict[str, Any]) -> dict[str, Any]:
    return {
        **{f"code_{c}": code_row[c] for c in _LOOKUP_CODE_COLUMNS},
        **{f"access_{c}": access_row[c] for c in _LOOKUP_ACCESS_COLUMNS if c != "audit_entry_id"},
    }


def add_codes_and_access_rows(
    session: Session, code_rows: list[dict[str, Any]], access_rows: list[dict[str, Any]]
) -> None:
    """Agency codes (duplicates ignored) and access-log rows; one statement on PostgreSQL
    for the one person of an interactive lookup, the two inserts otherwise."""
    if len(code_rows) == 1 and len(access_rows) == 1 and session.get_bind().dialect.name == "postgresql":
        code = code_rows[0]
        session.execute(
            _ONE_CODE_AND_ACCESS_ROW,
            {**access_rows[0], **{f"code_{c}": code[c] for c in _LOOKUP_CODE_COLUMNS}},
        )
        return
    add_agency_codes(session, code_rows)
    add_access_rows(session, access_rows)


def access_log(
    session: Session, identity_ids: Sequence[int], *, limit: int, before_id: int | None
) -> Sequence[AccessLogEntry]:
    query = select(AccessLogEntry).where(AccessLogEntry.identity_id.in_(list(identity_ids)))
    if before_id is not None:
        query = query.where(AccessLogEntry.id < before_id)
    return session.execute(query.order_by(AccessLogEntry.id.desc()).limit(limit)).scalars().all()


# --- batches --------------------------------------------------------------------------------------


def batch(session: Session, job_id: str, *, for_update: bool = False) -> BatchJob | None:
    query = select(BatchJob).where(BatchJob.id == job_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def claim_batch(
    session: Session, job_id: str, *, from_status: Sequence[str], to_status: str, now: dt.datetime
) -> bool:
    """Move a job to ``to_status`` only if it is in one of ``from_status``: one worker wins."""
    result = session.execute(
        update(BatchJob)
        .where(BatchJob.id == job_id, BatchJob.status.in_(list(from_status)))
        .values(status=to_status, started_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def batches_in(session: Session, statuses: Sequence[str]) -> list[str]:
    return list(
        session.execute(
            select(BatchJob.id).where(BatchJob.status.in_(list(statuses))).order_by(BatchJob.created_at)
        ).scalars()
    )


def batches_of(session: Session, client_id: str, task_code: str, *, limit: int) -> Sequence[BatchJob]:
    return (
        session.execute(
            select(BatchJob)
            .where(BatchJob.client_id == client_id, BatchJob.task_code == task_code)
            .order_by(BatchJob.created_at.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )


def add_row_errors(session: Session, job_id: str, errors: Iterable[tuple[int, str | None, str]]) -> None:
    rows = [
        {"job_id": job_id, "line": line, "field": f, "reason": reason[:500]} for line, f, reason in errors
    ]
    for i in range(0, len(rows), 1000):
        session.execute(insert(BatchRowError), rows[i : i + 1000])


def clear_row_errors(session: Session, job_id: str) -> None:
    session.execute(
        delete(BatchRowError)
        .where(BatchRowError.job_id == job_id)
        .execution_options(synchronize_session=False)
    )


def row_errors(session: Session, job_id: str, *, after_line: int, limit: int) -> Sequence[BatchRowError]:
    return (
        session.execute(
            select(BatchRowError)
            .where(BatchRowError.job_id == job_id, BatchRowError.line > after_line)
            .order_by(BatchRowError.line)
            .limit(limit)
        )
        .scalars()
        .all()
    )


def bad_lines(session: Session, job_id: str) -> Iterator[int]:
    """Line numbers of a job's bad rows, ascending, in pages."""
    after = 0
    while True:
        page = list(
            session.execute(
                select(BatchRowError.line)
                .where(BatchRowError.job_id == job_id, BatchRowError.line > after)
                .order_by(BatchRowError.line)
                .limit(10_000)
            ).scalars()
        )
        if not page:
            return
        yield from page
        after = page[-1]


# --- feed subscriptions and webhooks --------------------------------------------------------------


def subscription(session: Session, client_id: str, task_code: str) -> FeedSubscription | None:
    return session.execute(
        select(FeedSubscription).where(
            FeedSubscription.client_id == client_id, FeedSubscription.task_code == task_code
        )
    ).scalar_one_or_none()


def subscription_by_id(
    session: Session, subscription_id: str, *, for_update: bool = False
) -> FeedSubscription | None:
    query = select(FeedSubscription).where(FeedSubscription.id == subscription_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def remove(session: Session, row: Any) -> None:
    session.delete(row)
    session.flush()


def due_webhooks(session: Session, now: dt.datetime) -> list[str]:
    return list(
        session.execute(
            select(FeedSubscription.id)
            .where(
                FeedSubscription.webhook_url.is_not(None),
                or_(
                    FeedSubscription.webhook_next_attempt_at.is_(None),
                    FeedSubscription.webhook_next_attempt_at <= now,
                ),
            )
            .order_by(FeedSubscription.id)
        ).scalars()
    )


def deliveries(session: Session, subscription_id: str, *, limit: int) -> Sequence[WebhookDelivery]:
    return (
        session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )


def delete_deliveries(session: Session, subscription_id: str) -> None:
    session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .execution_options(synchronize_session=False)
    )


# --- extractions ----------------------------------------------------------------------------------


def extraction(session: Session, extraction_id: str, *, for_update: bool = False) -> Extraction | None:
    query = select(Extraction).where(Extraction.id == extraction_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def extractions(session: Session, *, prefecture_code: str | None, limit: int) -> Sequence[Extraction]:
    query = select(Extraction)
    if prefecture_code is not None:
        query = query.where(Extraction.prefecture_code == prefecture_code)
    return session.execute(query.order_by(Extraction.requested_at.desc()).limit(limit)).scalars().all()


def extractions_in(session: Session, statuses: Sequence[str]) -> list[str]:
    return list(
        session.execute(
            select(Extraction.id)
            .where(Extraction.status.in_(list(statuses)))
            .order_by(Extraction.requested_at)
        ).scalars()
    )
