"""Two clerks edit the same record at once: one wins, the other gets 409 and changes nothing.

These tests need committed data and real concurrent transactions, so they do not use the
rolled-back ``db`` fixture: each builds its own migrated databases (municipal and
national), commits a household through a unit of work, and then runs two units of work
in two threads. On PostgreSQL the loser's compare-and-set UPDATE waits on the winner's
row lock and, once the winner commits, matches no row; on SQLite the loser waits on the
database's write lock. The interleaving is forced, not hoped for: the winner records and
holds its transaction open until the loser is seen waiting, then commits.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from jumin.accounts.domain import Role
from jumin.app import create_app
from jumin.audit.domain import Actor, ActorKind, AuditAction
from jumin.audit.models import AuditEntry
from jumin.db import make_engine, unit_of_work
from jumin.network_client import InProcessNetworkClient
from jumin.registry import repository, service
from jumin.registry.domain import RELATIONSHIP_HEAD, EventKind, EventOutcome, StaleVersion
from jumin.registry.models import OutboxMessage, Person, PersonVersion, RegistryEvent
from jumin.registry.schemas import AddressInput, MoveInRequest, MoveWithinRequest, PersonInput, PersonRef
from tests import factories
from tests.conftest import BACKENDS, fresh_database_url

CHIYODA = "131016"
WAIT = 20.0  # seconds: far longer than any step here takes, short enough to fail a hang


def today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()


@dataclass
class Databases:
    municipal: Engine
    national: Engine
    network: InProcessNetworkClient

    def clerk(self, actor_id: str) -> service.RegistryContext:
        return service.RegistryContext(
            actor=Actor(kind=ActorKind.STAFF, actor_id=actor_id, organisation_code=CHIYODA),
            lg_code=CHIYODA,
            network=self.network,
        )


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """Fresh, migrated, committed databases of their own (siblings of the test database on PostgreSQL)."""
    municipal = make_engine(fresh_database_url(request.param, tmp_path, "concurrency"))
    national = make_engine(fresh_database_url(request.param, tmp_path, "concurrency_national"))
    try:
        yield Databases(municipal, national, InProcessNetworkClient(lambda: unit_of_work(national)))
    finally:
        municipal.dispose()
        national.dispose()


def _household(dbs: Databases) -> tuple[int, int]:
    """A couple moved in from abroad 30 days ago, committed; returns (person_id, version)."""
    on = today() - dt.timedelta(days=30)
    with unit_of_work(dbs.municipal) as session:
        outcome = service.move_in(
            session,
            ctx=dbs.clerk("setup"),
            request=MoveInRequest(
                effective_on=on,
                notified_on=on,
                address=AddressInput(line="千代田一丁目1番1号"),
                previous_address="アメリカ合衆国",
                members=[
                    PersonInput(
                        family_name="山田",
                        given_name="太郎",
                        family_name_kana="ヤマダ",
                        given_name_kana="タロウ",
                        birth_date=dt.date(1980, 4, 1),
                        sex="male",
                        relationship=RELATIONSHIP_HEAD,
                    ),
                    PersonInput(
                        family_name="山田",
                        given_name="花子",
                        birth_date=dt.date(1982, 6, 15),
                        sex="female",
                        relationship="妻",
                    ),
                ],
            ),
            kind=EventKind.MOVE_IN_FROM_ABROAD,
        )
    with Session(dbs.municipal) as session:
        version = session.execute(
            select(Person.version).where(Person.id == outcome.person_ids[0])
        ).scalar_one()
    return outcome.person_ids[0], version


Work = Callable[[Session, service.RegistryContext], EventOutcome]


def move_within(person_id: int, version: int, line: str) -> Work:
    """A 転居 of one person, naming the version the clerk saw."""

    def work(session: Session, ctx: service.RegistryContext) -> EventOutcome:
        return service.move_within(
            session,
            ctx=ctx,
            request=MoveWithinRequest(
                effective_on=today() - dt.timedelta(days=2),
                persons=[PersonRef(person_id=person_id, version=version)],
                address=AddressInput(line=line),
            ),
        )

    return work


def arrival_from_abroad(given_name: str) -> Work:
    """A 国外転入 of one person founding a new household."""

    def work(session: Session, ctx: service.RegistryContext) -> EventOutcome:
        on = today() - dt.timedelta(days=3)
        return service.move_in(
            session,
            ctx=ctx,
            request=MoveInRequest(
                effective_on=on,
                notified_on=on,
                address=AddressInput(line="神田一丁目1番"),
                previous_address="大韓民国",
                members=[
                    PersonInput(
                        family_name="田中",
                        given_name=given_name,
                        birth_date=dt.date(1990, 1, 1),
                        sex="female",
                        relationship=RELATIONSHIP_HEAD,
                    )
                ],
            ),
            kind=EventKind.MOVE_IN_FROM_ABROAD,
        )

    return work


class ClerkAtWork(threading.Thread):
    """One clerk's unit of work in its own session: record, then commit when told to (or at once)."""

    def __init__(
        self,
        dbs: Databases,
        work: Work,
        *,
        name: str,
        hold: bool,
        start_together: threading.Barrier | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.dbs = dbs
        self.work = work
        self.recorded = threading.Event()  # the event is recorded, not yet committed (or it failed)
        self.release = threading.Event()  # commit now
        if not hold:
            self.release.set()
        self.start_together = start_together
        self.outcome: EventOutcome | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        session = Session(self.dbs.municipal, expire_on_commit=False)
        try:
            if self.start_together is not None:
                self.start_together.wait(WAIT)
            outcome = self.work(session, self.dbs.clerk(self.name))
            session.flush()
            self.recorded.set()
            if not self.release.wait(WAIT):
                raise TimeoutError("never told to commit")
            session.commit()
            self.outcome = outcome
        except BaseException as exc:  # reported to the test, which asserts on it
            session.rollback()
            self.error = exc
        finally:
            self.recorded.set()
            session.close()


def _watch_for_work(engine: Engine, thread_name: str) -> threading.Event:
    """Set when the named thread sends its first statement to the database."""
    sent = threading.Event()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name == thread_name:
            sent.set()

    event.listen(engine, "before_cursor_execute", before)
    return sent


def _lock_waiters(engine: Engine) -> int:
    """PostgreSQL: how many sessions of this database wait on a lock right now."""
    with engine.connect() as conn:
        count: int = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return count


def _wait_until_blocked(engine: Engine, working: threading.Event, loser: ClerkAtWork) -> None:
    """Return once the loser is seen waiting for the winner's transaction.

    PostgreSQL: its compare-and-set UPDATE waits on the winner's row lock (visible in
    pg_stat_activity). SQLite: its BEGIN IMMEDIATE waits on the write lock (busy_timeout);
    SQLite shows no waiters, so the loser must still be running a moment after it began.
    """
    assert working.wait(WAIT), f"the second clerk never reached the database: {loser.error!r}"
    if engine.dialect.name == "postgresql":
        deadline = time.monotonic() + WAIT
        while _lock_waiters(engine) == 0:
            assert loser.is_alive(), f"the second clerk finished without waiting: {loser.error!r}"
            assert time.monotonic() < deadline, "the second clerk never waited on the first one's locks"
            time.sleep(0.02)
    else:
        time.sleep(0.5)
    assert loser.is_alive(), f"the second clerk did not wait for the first: {loser.error!r}"
    assert not loser.recorded.is_set()


def test_two_clerks_same_version_one_wins_the_other_gets_stale_version(databases: Databases) -> None:
    person_id, version = _household(databases)
    first = ClerkAtWork(
        databases, move_within(person_id, version, "九段南一丁目2番"), name="clerk-a", hold=True
    )
    second = ClerkAtWork(
        databases, move_within(person_id, version, "神田神保町二丁目3番"), name="clerk-b", hold=False
    )
    working = _watch_for_work(databases.municipal, "clerk-b")

    first.start()
    assert first.recorded.wait(WAIT)
    assert first.error is None, repr(first.error)
    second.start()  # same version, while the first clerk's transaction is still open
    _wait_until_blocked(databases.municipal, working, second)
    first.release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert not first.is_alive()
    assert not second.is_alive()

    assert first.error is None, repr(first.error)
    assert first.outcome is not None
    assert second.outcome is None
    assert isinstance(second.error, StaleVersion), repr(second.error)
    assert second.error.status == 409
    assert second.error.type_uri == "urn:jumin:problem:stale-version"
    assert second.error.title == "他の職員が先にこの記録を更新しました"
    _only_the_winner_committed(databases, person_id, version, first.outcome, winner_line="九段南一丁目2番")


def test_two_clerks_racing_exactly_one_wins(databases: Databases) -> None:
    """No forced order: both start together, several times; each time exactly one wins."""
    person_id, version = _household(databases)
    for round_no in range(5):
        barrier = threading.Barrier(2)
        lines = [f"丸の内{round_no + 1}丁目{i + 1}番" for i in range(2)]
        clerks = [
            ClerkAtWork(
                databases,
                move_within(person_id, version, lines[i]),
                name=f"race-{round_no}-{i}",
                hold=False,
                start_together=barrier,
            )
            for i in range(2)
        ]
        for c in clerks:
            c.start()
        for c in clerks:
            c.join(WAIT)
            assert not c.is_alive()
        winners = [(c, line) for c, line in zip(clerks, lines, strict=True) if c.outcome is not None]
        losers = [c for c in clerks if c.outcome is None]
        assert len(winners) == 1, [repr(c.error) for c in clerks]
        assert isinstance(losers[0].error, StaleVersion), repr(losers[0].error)
        winner, line = winners[0]
        assert winner.outcome is not None
        _only_the_winner_committed(databases, person_id, version, winner.outcome, winner_line=line)
        version += 1


def _only_the_winner_committed(
    dbs: Databases, person_id: int, version: int, outcome: EventOutcome, *, winner_line: str
) -> None:
    with Session(dbs.municipal) as session:
        assert (
            session.execute(select(Person.version).where(Person.id == person_id)).scalar_one() == version + 1
        )
        moves = session.execute(
            select(RegistryEvent.id).where(RegistryEvent.kind == EventKind.MOVE_WITHIN.value)
        ).scalars()
        assert outcome.event_id in moves
        # The newest move is the winner's: the loser recorded no event, no version, no message.
        assert (
            session.execute(
                select(func.max(RegistryEvent.id)).where(RegistryEvent.kind == EventKind.MOVE_WITHIN.value)
            ).scalar_one()
            == outcome.event_id
        )
        assert session.execute(select(func.max(PersonVersion.event_id))).scalar_one() == outcome.event_id
        assert session.execute(select(func.max(OutboxMessage.event_id))).scalar_one() == outcome.event_id
        versions = repository.current_versions(session, person_id)
        assert [(v.valid_from, v.address_line) for v in versions][-1] == (
            today() - dt.timedelta(days=2),
            winner_line,
        )
        assert service.replay_matches(session, person_id)
        audited = session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == AuditAction.REGISTRY_EVENT_RECORDED.value,
                AuditEntry.detail.startswith(f"event={outcome.event_id} "),
            )
        ).scalar_one()
        assert audited == 1


def test_over_http_the_second_clerk_gets_409_in_japanese(databases: Databases) -> None:
    person_id, _ = _household(databases)
    with unit_of_work(databases.municipal) as session:
        staff_a = factories.staff(session, Role.CLERK, org=CHIYODA)
        staff_b = factories.staff(session, Role.CLERK, org=CHIYODA)
    app = create_app(databases.municipal, databases.network, national_engine=databases.national)
    with (
        TestClient(app, raise_server_exceptions=False) as a,
        TestClient(app, raise_server_exceptions=False) as b,
    ):
        headers_a = factories.auth(a, staff_a)
        headers_b = factories.auth(b, staff_b)
        # Both open the record and see the same version.
        seen_a = a.get(f"/registry/persons/{person_id}", headers=headers_a).json()["version"]
        seen_b = b.get(f"/registry/persons/{person_id}", headers=headers_b).json()["version"]
        assert seen_a == seen_b

        def move(client: TestClient, headers: dict[str, str], version: int, line: str) -> Any:
            return client.post(
                "/registry/events/move-within",
                json={
                    "effective_on": (today() - dt.timedelta(days=2)).isoformat(),
                    "persons": [{"person_id": person_id, "version": version}],
                    "address": {"line": line},
                },
                headers=headers,
            )

        won = move(a, headers_a, seen_a, "九段南一丁目2番")
        assert won.status_code == 201, won.text
        lost = move(b, headers_b, seen_b, "神田神保町二丁目3番")
        assert lost.status_code == 409, lost.text
        assert lost.headers["content-type"].startswith("application/problem+json")
        problem = lost.json()
        assert problem["type"] == "urn:jumin:problem:stale-version"
        assert problem["title"] == "他の職員が先にこの記録を更新しました"
        assert problem["status"] == 409
        assert problem["field"] == "version"
        # The record is the winner's, and the second clerk can carry on from it.
        record = b.get(f"/registry/persons/{person_id}", headers=headers_b).json()
        assert record["address_line"] == "九段南一丁目2番"
        assert record["version"] == seen_a + 1
        retried = move(b, headers_b, record["version"], "神田神保町二丁目3番")
        assert retried.status_code == 201, retried.text


def test_two_clerks_founding_households_at_once_both_succeed(databases: Databases) -> None:
    """Nothing is stale here: two arrivals from abroad, each founding its own household."""
    _household(databases)
    first = ClerkAtWork(databases, arrival_from_abroad("一子"), name="clerk-a", hold=True)
    second = ClerkAtWork(databases, arrival_from_abroad("二子"), name="clerk-b", hold=False)
    working = _watch_for_work(databases.municipal, "clerk-b")
    first.start()
    assert first.recorded.wait(WAIT)
    assert first.error is None, repr(first.error)
    second.start()
    _wait_until_blocked(databases.municipal, working, second)
    first.release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert first.error is None, repr(first.error)
    assert second.error is None, repr(second.error)
    assert first.outcome is not None
    assert second.outcome is not None
    assert first.outcome.household_ids != second.outcome.household_ids
