"""Every query of the register."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Integer, Select, and_, cast, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from jumin.registry.models import (
    Household,
    HouseholdNumberCounter,
    OutboxMessage,
    Person,
    PersonVersion,
    RegistryEvent,
    RegistryEventChange,
    ResidentCodePool,
)


def person(session: Session, person_id: int) -> Person | None:
    return session.get(Person, person_id)


def live_person_by_resident_code(session: Session, resident_code: str) -> Person | None:
    return session.execute(
        select(Person).where(Person.resident_code == resident_code, Person.lifecycle == "live")
    ).scalar_one_or_none()


def persons_by_resident_code(session: Session, resident_code: str) -> Sequence[Person]:
    return (
        session.execute(select(Person).where(Person.resident_code == resident_code).order_by(Person.id))
        .scalars()
        .all()
    )


def bump_person_version(session: Session, person_id: int, expected: int) -> bool:
    """Compare-and-set: true when the caller edited the version that is current.

    A conditional UPDATE is atomic on every backend: of two concurrent editors naming the
    same version, PostgreSQL makes the second wait for the first and then match no row.
    """
    result = session.execute(
        update(Person)
        .where(Person.id == person_id, Person.version == expected)
        .values(version=Person.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def bump_household_version(session: Session, household_id: int, expected: int) -> bool:
    result = session.execute(
        update(Household)
        .where(Household.id == household_id, Household.version == expected)
        .values(version=Household.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def household(session: Session, household_id: int) -> Household | None:
    return session.get(Household, household_id)


def next_household_no(session: Session, lg_code: str) -> int:
    """The next household number of a municipality, taken under the counter row's lock."""
    taken = _advance_household_counter(session, lg_code)
    if taken is not None:
        return taken
    # The municipality's first number under the counter: start after the highest one in use
    # (households imported or founded before the counter existed). A concurrent first taker
    # makes this insert a no-op, and the UPDATE below then waits for its row lock.
    highest = session.execute(
        select(func.max(cast(Household.household_no, Integer))).where(Household.lg_code == lg_code)
    ).scalar_one()
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    session.execute(
        insert(HouseholdNumberCounter)
        .values(lg_code=lg_code, last_no=int(highest or 0))
        .on_conflict_do_nothing(index_elements=["lg_code"])
    )
    taken = _advance_household_counter(session, lg_code)
    assert taken is not None
    return taken


def _advance_household_counter(session: Session, lg_code: str) -> int | None:
    number = session.execute(
        update(HouseholdNumberCounter)
        .where(HouseholdNumberCounter.lg_code == lg_code)
        .values(last_no=HouseholdNumberCounter.last_no + 1)
        .returning(HouseholdNumberCounter.last_no)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return None if number is None else int(number)


def events_caused_by(session: Session, event_id: int) -> Sequence[RegistryEvent]:
    return (
        session.execute(
            select(RegistryEvent)
            .where(RegistryEvent.caused_by_event_id == event_id)
            .order_by(RegistryEvent.id)
        )
        .scalars()
        .all()
    )


def changes_of(session: Session, person_id: int) -> Sequence[tuple[RegistryEventChange, RegistryEvent]]:
    """Every change of a person from events that stand (not cancelled), in recording order."""
    rows = session.execute(
        select(RegistryEventChange, RegistryEvent)
        .join(RegistryEvent, RegistryEvent.id == RegistryEventChange.event_id)
        .where(RegistryEventChange.person_id == person_id, RegistryEvent.cancelled_by_event_id.is_(None))
        .order_by(RegistryEventChange.event_id, RegistryEventChange.id)
    ).all()
    return [(r[0], r[1]) for r in rows]


def current_versions(session: Session, person_id: int) -> Sequence[PersonVersion]:
    return (
        session.execute(
            select(PersonVersion)
            .where(PersonVersion.person_id == person_id, PersonVersion.superseded_at.is_(None))
            .order_by(PersonVersion.valid_from)
        )
        .scalars()
        .all()
    )


def _known_at(query: Select[PersonVersion], known_at: dt.datetime | None) -> Select[PersonVersion]:
    if known_at is None:
        return query.where(PersonVersion.superseded_at.is_(None))
    return query.where(
        PersonVersion.recorded_at <= known_at,
        or_(PersonVersion.superseded_at.is_(None), PersonVersion.superseded_at > known_at),
    )


def _valid_on(on: dt.date) -> ColumnElement[bool]:
    return and_(
        PersonVersion.valid_from <= on, or_(PersonVersion.valid_to.is_(None), PersonVersion.valid_to > on)
    )


def version_on(
    session: Session, person_id: int, on: dt.date, known_at: dt.datetime | None = None
) -> PersonVersion | None:
    query = select(PersonVersion).where(PersonVersion.person_id == person_id, _valid_on(on))
    return session.execute(
        _known_at(query, known_at).order_by(PersonVersion.id.desc()).limit(1)
    ).scalar_one_or_none()


def all_versions(session: Session, person_id: int) -> Sequence[PersonVersion]:
    return (
        session.execute(
            select(PersonVersion)
            .where(PersonVersion.person_id == person_id)
            .order_by(PersonVersion.recorded_at, PersonVersion.valid_from, PersonVersion.id)
        )
        .scalars()
        .all()
    )


def household_versions_on(
    session: Session, household_id: int, on: dt.date, known_at: dt.datetime | None = None
) -> Sequence[PersonVersion]:
    query = select(PersonVersion).where(PersonVersion.household_id == household_id, _valid_on(on))
    return session.execute(_known_at(query, known_at).order_by(PersonVersion.person_id)).scalars().all()


def household_version_dates(session: Session, household_id: int, since: dt.date) -> list[dt.date]:
    """Every date from ``since`` on where a member's version of this household begins or ends."""
    rows = session.execute(
        select(PersonVersion.valid_from, PersonVersion.valid_to).where(
            PersonVersion.household_id == household_id, PersonVersion.superseded_at.is_(None)
        )
    ).all()
    dates = {since}
    for start, end in rows:
        for d in (start, end):
            if d is not None and d >= since:
                dates.add(d)
    return sorted(dates)


def events_of_person(session: Session, person_id: int) -> Sequence[RegistryEvent]:
    touched = select(RegistryEventChange.event_id).where(RegistryEventChange.person_id == person_id)
    return (
        session.execute(
            select(RegistryEvent)
            .where(or_(RegistryEvent.id.in_(touched), RegistryEvent.cancels_event_id.in_(touched)))
            .order_by(RegistryEvent.id)
        )
        .scalars()
        .all()
    )


def event(session: Session, event_id: int) -> RegistryEvent | None:
    return session.get(RegistryEvent, event_id)


def persons_of_event(session: Session, event_id: int) -> list[int]:
    return sorted(
        set(
            session.execute(
                select(RegistryEventChange.person_id).where(RegistryEventChange.event_id == event_id)
            ).scalars()
        )
    )


def _kana_prefix_match(session: Session, prefix: str) -> ColumnElement[bool]:
    """search_kana ("name kana[ alias kana]") whose name or alias starts with ``prefix``.

    On PostgreSQL as a byte-order range (text_pattern_ops' ~>=~ and ~<~), which the
    indexes of reg0004 serve even in a prepared statement's generic plan, where a
    ``LIKE :p || '%'`` cannot use them (psycopg prepares statements run repeatedly).
    The range [prefix, prefix with its last character incremented) holds exactly the
    strings that start with prefix, since UTF-8 keeps code point order. A prefix ending in
    the last code point has no such bound and is matched with LIKE, as on SQLite.
    """
    name = PersonVersion.search_kana
    following = ord(prefix[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are no characters: UTF-8 goes on at U+E000
        following = 0xE000
    if session.get_bind().dialect.name == "postgresql":
        # Literal arguments: an index on an expression only serves the same expression,
        # and split_part(search_kana, $1, $2) is not split_part(search_kana, ' ', 2).
        alias = func.split_part(name, literal_column("' '"), literal_column("2"))
        if following <= 0x10FFFF:
            upper = prefix[:-1] + chr(following)
            return or_(
                and_(name.op("~>=~")(prefix), name.op("~<~")(upper)),
                and_(alias.op("~>=~")(prefix), alias.op("~<~")(upper)),
            )
    else:
        alias = func.substr(name, func.instr(name, " ") + 1)
    return or_(
        name.startswith(prefix, autoescape=True),
        and_(name.contains(" ", autoescape=True), alias.startswith(prefix, autoescape=True)),
    )


def search(
    session: Session,
    *,
    lg_code: str,
    on: dt.date,
    resident_code: str | None,
    kana_prefix: str | None,
    birth_date: dt.date | None,
    address_prefix: str | None,
    include_removed: bool,
    limit: int,
    offset: int,
) -> tuple[int, Sequence[tuple[PersonVersion, Person]]]:
    """One page of current versions and their persons (two queries, whatever the page size)."""
    query = select(PersonVersion).where(
        PersonVersion.lg_code == lg_code,
        PersonVersion.superseded_at.is_(None),
        _valid_on(on),
    )
    if resident_code:
        query = query.where(PersonVersion.resident_code == resident_code)
    if kana_prefix:
        query = query.where(_kana_prefix_match(session, kana_prefix))
    if birth_date:
        query = query.where(PersonVersion.birth_date == birth_date)
    if address_prefix:
        query = query.where(PersonVersion.address_line.startswith(address_prefix, autoescape=True))
    if not include_removed:
        query = query.where(PersonVersion.status == "live")
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    page = session.execute(
        query.add_columns(Person)
        .join(Person, and_(Person.id == PersonVersion.person_id, Person.lg_code == lg_code))
        .order_by(PersonVersion.search_kana, PersonVersion.person_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return int(total), [(version, person) for version, person in page]


def take_pooled_code(session: Session, lg_code: str, now: dt.datetime) -> str | None:
    row = session.execute(
        select(ResidentCodePool)
        .where(ResidentCodePool.lg_code == lg_code, ResidentCodePool.used_at.is_(None))
        .order_by(ResidentCodePool.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if row is None:
        return None
    row.used_at = now
    return row.code


def outbox(
    session: Session, *, lg_code: str | None, undelivered_only: bool, after_id: int, limit: int
) -> Sequence[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.id > after_id)
    if lg_code is not None:
        query = query.where(OutboxMessage.lg_code == lg_code)
    if undelivered_only:
        query = query.where(OutboxMessage.delivered_at.is_(None))
    return session.execute(query.order_by(OutboxMessage.id).limit(limit)).scalars().all()


def outbox_of_person(session: Session, person_id: int) -> Sequence[OutboxMessage]:
    return (
        session.execute(
            select(OutboxMessage).where(OutboxMessage.person_id == person_id).order_by(OutboxMessage.seq)
        )
        .scalars()
        .all()
    )


def all_person_ids(session: Session, lg_code: str | None = None) -> list[int]:
    query = select(Person.id)
    if lg_code is not None:
        query = query.where(Person.lg_code == lg_code)
    return list(session.execute(query.order_by(Person.id)).scalars())
