"""Random sequences of 異動 in two municipalities, with the register's invariants after every step.

The machine calls the service functions directly, as the API would, one unit of work per
step: each step runs inside a savepoint that is released when the event is recorded and
rolled back when the service refuses it with a domain error. A refusal must leave the
database exactly as it was; anything that is not a domain error fails the test.

Steps that the machine builds from the register's current state and dates it forward
(after everything recorded so far) must be accepted; late notifications, back-dated
deaths and cancellations may be refused (each outcome is labelled with
``hypothesis.event``). Some steps must be refused: a resident code that is live
somewhere moved in again, an edit naming a stale version.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind, AuditAction
from jumin.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry
from jumin.core.errors import DomainError, RuleViolation
from jumin.network_client import InProcessNetworkClient
from jumin.registry import service
from jumin.registry.domain import RELATIONSHIP_HEAD, EventKind, EventOutcome, StaleVersion
from jumin.registry.models import (
    Household,
    OutboxMessage,
    Person,
    PersonVersion,
    RegistryEvent,
    RegistryEventChange,
    ResidentCodePool,
)
from jumin.registry.schemas import (
    AddressInput,
    BirthRequest,
    CancellationRequest,
    CorrectionRequest,
    HeadChangeRequest,
    HouseholdRef,
    HouseholdSplitRequest,
    MemberRelationship,
    MoveInRequest,
    MoveOutRequest,
    MoveWithinRequest,
    NameChangeRequest,
    PersonInput,
    PersonRef,
    RemovalRequest,
)

CHIYODA = "131016"  # 千代田区 (特別区)
SAPPORO = "011002"  # 札幌市 (指定都市: the register is the city's, not a ward's)
LG_CODES = (CHIYODA, SAPPORO)
OTHER = {CHIYODA: SAPPORO, SAPPORO: CHIYODA}
LG_NAMES = {CHIYODA: "東京都千代田区", SAPPORO: "北海道札幌市"}
STREETS = {
    CHIYODA: ("千代田一丁目1番", "九段南一丁目2番", "神田神保町二丁目3番", "丸の内三丁目4番"),
    SAPPORO: ("北一条西二丁目1番", "南三条西五丁目6番", "大通西四丁目7番", "北十条西一丁目8番"),
}
FAMILY_NAMES = (("山田", "ヤマダ"), ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("髙橋", "タカハシ"))
GIVEN_NAMES = (
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("一郎", "イチロウ"),
    ("さくら", "サクラ"),
    ("健", "ケン"),
)
NON_HEAD = ("妻", "夫", "子", "母", "同居人")
# The machine's calendar starts this many days before today (Japan time) and moves forward.
HORIZON_DAYS = 400

# Bounded for CI; JUMIN_STATEFUL_EXAMPLES=500 explores further when hunting a bug locally.
SETTINGS = settings(
    max_examples=int(os.environ.get("JUMIN_STATEFUL_EXAMPLES", "25")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

REGISTER_TABLES: tuple[Table, ...] = tuple(
    m.__table__  # type: ignore[misc]
    for m in (
        Household,
        Person,
        PersonVersion,
        RegistryEvent,
        RegistryEventChange,
        OutboxMessage,
        ResidentCodePool,
        AuditEntry,
        AuditChainHead,
        AuditCheckpoint,
    )
)


def today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()


def clerk(lg_code: str, network: InProcessNetworkClient) -> service.RegistryContext:
    return service.RegistryContext(
        actor=Actor(kind=ActorKind.STAFF, actor_id="clerk", organisation_code=lg_code),
        lg_code=lg_code,
        network=network,
    )


def snapshot(db: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table an event may write, read past the session's identity map."""
    return {
        table.name: [
            tuple(row) for row in db.execute(select(table).order_by(*table.primary_key.columns)).all()
        ]
        for table in REGISTER_TABLES
    }


def stored_record_on(db: Session, person_id: int, on: dt.date) -> dict[str, Any] | None:
    """The stored current version valid on ``on`` (without its 個人番号), as JSON."""
    record_json = db.execute(
        select(PersonVersion.record_json).where(
            PersonVersion.person_id == person_id,
            PersonVersion.superseded_at.is_(None),
            PersonVersion.valid_from <= on,
            (PersonVersion.valid_to.is_(None)) | (PersonVersion.valid_to > on),
        )
    ).scalar_one_or_none()
    return None if record_json is None else dict(json.loads(record_json))


# ---------------------------------------------------------------------------
# What the machine knows of the register: read back from the database before each step.


@dataclass(frozen=True, slots=True)
class Member:
    person_id: int
    lg_code: str
    household_id: int
    relationship: str
    version: int

    @property
    def is_head(self) -> bool:
        return self.relationship == RELATIONSHIP_HEAD


@dataclass(frozen=True, slots=True)
class Certificate:
    """転出証明書情報 as the origin sent it: the person, where they go, what they carry."""

    person_id: int
    move_out_event_id: int
    destination_lg_code: str
    payload: dict[str, Any]


@dataclass(slots=True)
class View:
    households: dict[int, list[Member]] = field(default_factory=dict)  # live members, latest record
    household_versions: dict[int, int] = field(default_factory=dict)
    first_day: dict[int, dt.date] = field(default_factory=dict)  # persons with a record at all
    person_lg: dict[int, str] = field(default_factory=dict)
    person_versions: dict[int, int] = field(default_factory=dict)
    live_codes: set[str] = field(default_factory=set)
    # 転出証明書情報 of persons still moving out: move-out event → outbox message ids
    certified: dict[int, list[int]] = field(default_factory=dict)
    standing_events: list[tuple[int, str]] = field(default_factory=list)  # (event id, lg_code)

    @property
    def live(self) -> list[Member]:
        return [m for members in self.households.values() for m in members]

    def households_with(self, at_least: int) -> list[int]:
        return sorted(h for h, members in self.households.items() if len(members) >= at_least)


def load_view(db: Session) -> View:
    view = View()
    persons = {p.id: p for p in db.execute(select(Person)).scalars()}
    view.person_versions = {pid: p.version for pid, p in persons.items()}
    view.person_lg = {pid: p.lg_code for pid, p in persons.items()}
    view.household_versions = {
        hid: version for hid, version in db.execute(select(Household.id, Household.version))
    }
    latest: dict[int, PersonVersion] = {}
    for v in db.execute(
        select(PersonVersion)
        .where(PersonVersion.superseded_at.is_(None))
        .order_by(PersonVersion.person_id, PersonVersion.valid_from)
    ).scalars():
        view.first_day.setdefault(v.person_id, v.valid_from)
        latest[v.person_id] = v
    for pid, v in latest.items():
        if v.status != "live":
            continue
        person = persons[pid]
        view.live_codes.add(person.resident_code)
        relationship = json.loads(v.record_json)["relationship"]
        view.households.setdefault(v.household_id, []).append(
            Member(pid, person.lg_code, v.household_id, relationship, person.version)
        )
    moving_out = {pid for pid, p in persons.items() if p.lifecycle == "moving_out"}
    view.standing_events = [
        (e.id, e.lg_code)
        for e in db.execute(
            select(RegistryEvent)
            .where(
                RegistryEvent.cancelled_by_event_id.is_(None),
                RegistryEvent.kind != EventKind.CANCELLATION.value,
            )
            .order_by(RegistryEvent.id)
        ).scalars()
    ]
    standing = {event_id for event_id, _ in view.standing_events}
    for message_id, event_id, person_id in db.execute(
        select(OutboxMessage.id, OutboxMessage.event_id, OutboxMessage.person_id)
        .where(OutboxMessage.kind == service.OutboxKind.MOVE_OUT_CERTIFICATE)
        .order_by(OutboxMessage.id)
    ):
        if person_id in moving_out and event_id in standing:
            view.certified.setdefault(event_id, []).append(message_id)
    return view


def certificate(db: Session, message_id: int) -> Certificate:
    """One 転出証明書情報 as the destination receives it (個人番号 unsealed)."""
    [(message, payload)] = service.outbox(db, lg_code=None, after_id=message_id - 1, limit=1)
    assert message.id == message_id
    assert message.destination_lg_code is not None
    return Certificate(message.person_id, message.event_id, message.destination_lg_code, payload)


# ---------------------------------------------------------------------------
# Strategies


@st.composite
def person_input(draw: st.DrawFn, *, relationship: str, on: dt.date, child: bool = False) -> PersonInput:
    family, family_kana = draw(st.sampled_from(FAMILY_NAMES))
    given, given_kana = draw(st.sampled_from(GIVEN_NAMES))
    age_days = draw(st.integers(0, 17 * 365) if child else st.integers(20 * 365, 85 * 365))
    return PersonInput(
        family_name=family,
        given_name=given,
        family_name_kana=family_kana,
        given_name_kana=given_kana,
        birth_date=on - dt.timedelta(days=age_days),
        sex=draw(st.sampled_from(["male", "female"])),
        relationship=relationship,
        honseki="東京都千代田区千代田1番",
        hittousha=f"{family}　{given}",
    )


ADVANCE = st.integers(0, 12)
DELAY = st.integers(0, 20)
BACK = st.integers(1, 90)


# ---------------------------------------------------------------------------
# The machine


class RegisterMachine(RuleBasedStateMachine):
    """Drive 異動 through the service; the session and network come from the test's fixtures."""

    db: ClassVar[Session]
    network: ClassVar[InProcessNetworkClient]

    def __init__(self) -> None:
        super().__init__()
        self.db.expire_all()
        # Every example starts from the empty register the test's transaction holds.
        self._example = self.db.begin_nested()
        self.start = today() - dt.timedelta(days=HORIZON_DAYS)
        self.clock = self.start  # no change recorded so far takes effect after this day
        self.view = View()
        self.replayed: dict[int, ReplayKey] = {}

    def teardown(self) -> None:
        self._example.rollback()
        self.db.expire_all()

    # -- helpers -------------------------------------------------------------

    def _forward(self, advance: int) -> dt.date:
        """A date on or after every effective date so far: the register's latest state holds on it."""
        self.clock = min(self.clock + dt.timedelta(days=advance), today())
        return self.clock

    def _back(self, back: int, person_ids: Sequence[int]) -> dt.date:
        """A date before the latest one, while the persons were already registered: a late notification."""
        return max(
            self.start, self.clock - dt.timedelta(days=back), *(self.view.first_day[p] for p in person_ids)
        )

    @staticmethod
    def _notified(on: dt.date, delay: int) -> dt.date:
        return min(on + dt.timedelta(days=delay), today())

    def _attempt(
        self,
        what: str,
        action: Callable[[], EventOutcome],
        *,
        may_refuse: bool = False,
        must_refuse: type[DomainError] | None = None,
    ) -> EventOutcome | None:
        """Run one step as one unit of work; a refusal must change nothing.

        ``may_refuse``: the step may be refused (it reaches into the past, or cancels);
        ``must_refuse``: the step is wrong and must be refused with this error.
        """
        self.db.expire_all()  # each step is a fresh request: nothing cached from the last one
        before = snapshot(self.db)
        savepoint = self.db.begin_nested()
        failure: DomainError | None = None
        try:
            outcome = action()
            self.db.flush()
        except DomainError as exc:
            failure = exc
        except BaseException:
            savepoint.rollback()
            raise
        if failure is None:
            savepoint.commit()
            assert must_refuse is None, f"{what} was recorded but must be refused ({must_refuse.__name__})"
            event(f"{what} recorded")
            return outcome
        savepoint.rollback()
        self.db.expire_all()
        after = snapshot(self.db)
        changed = [name for name in before if before[name] != after[name]]
        assert not changed, f"{what} was refused ({failure.detail}) but changed {changed}"
        if must_refuse is not None:
            assert isinstance(failure, must_refuse), f"{what}: refused with {failure!r}, not {must_refuse}"
        elif not may_refuse:
            raise AssertionError(f"{what}: a valid step was refused: {failure!r}")
        event(f"{what} refused: {type(failure).__name__}")
        return None

    def _ctx(self, lg_code: str) -> service.RegistryContext:
        return clerk(lg_code, self.network)

    def _household_of(self, data: st.DataObject, at_least: int = 1) -> list[Member]:
        household_id = data.draw(st.sampled_from(self.view.households_with(at_least)), label="household")
        return self.view.households[household_id]

    # -- rules ---------------------------------------------------------------

    @initialize()
    def load(self) -> None:
        self.view = load_view(self.db)

    @rule(
        lg=st.sampled_from(LG_CODES),
        size=st.integers(1, 3),
        advance=ADVANCE,
        delay=DELAY,
        street=st.integers(0, 3),
        data=st.data(),
    )
    def move_in_from_abroad(
        self, lg: str, size: int, advance: int, delay: int, street: int, data: st.DataObject
    ) -> None:
        on = self._forward(advance)
        members = [data.draw(person_input(relationship=RELATIONSHIP_HEAD, on=on), label="head")]
        for _ in range(size - 1):
            relationship = data.draw(st.sampled_from(NON_HEAD), label="relationship")
            members.append(
                data.draw(person_input(relationship=relationship, on=on, child=relationship == "子"))
            )
        request = MoveInRequest(
            effective_on=on,
            notified_on=self._notified(on, delay),
            address=AddressInput(line=STREETS[lg][street], katagaki="101号室"),
            previous_address="アメリカ合衆国",
            members=members,
        )
        outcome = self._attempt(
            "move_in_from_abroad",
            lambda: service.move_in(
                self.db, ctx=self._ctx(lg), request=request, kind=EventKind.MOVE_IN_FROM_ABROAD
            ),
            may_refuse=False,
        )
        assert outcome is not None
        assert len(outcome.person_ids) == size
        assert len(outcome.household_ids) == 1

    @precondition(lambda self: bool(self.view.households))
    @rule(advance=ADVANCE, delay=DELAY, data=st.data())
    def birth(self, advance: int, delay: int, data: st.DataObject) -> None:
        members = self._household_of(data)
        household_id, lg = members[0].household_id, members[0].lg_code
        on = self._forward(advance)
        child = data.draw(person_input(relationship="子", on=on, child=True))
        request = BirthRequest(
            effective_on=on,
            notified_on=self._notified(on, delay),
            child=child.model_copy(update={"birth_date": on}),
            household=HouseholdRef(
                household_id=household_id, version=self.view.household_versions[household_id]
            ),
        )
        self._attempt(
            "birth", lambda: service.birth(self.db, ctx=self._ctx(lg), request=request), may_refuse=False
        )

    @precondition(lambda self: bool(self.view.households))
    @rule(advance=ADVANCE, back=BACK, late=st.booleans(), street=st.integers(0, 3), data=st.data())
    def move_within(self, advance: int, back: int, late: bool, street: int, data: st.DataObject) -> None:
        members = self._household_of(data)
        movers = data.draw(st.lists(st.sampled_from(members), min_size=1, unique=True), label="movers")
        lg = members[0].lg_code
        on = self._back(back, [m.person_id for m in movers]) if late else self._forward(advance)
        request = MoveWithinRequest(
            effective_on=on,
            notified_on=today() if late else on,
            persons=[PersonRef(person_id=m.person_id, version=m.version) for m in movers],
            address=AddressInput(line=STREETS[lg][street]),
        )
        self._attempt(
            "late move_within" if late else "move_within",
            lambda: service.move_within(self.db, ctx=self._ctx(lg), request=request),
            may_refuse=late,
        )

    @precondition(lambda self: bool(self.view.households))
    @rule(advance=ADVANCE, delay=DELAY, data=st.data())
    def move_out(self, advance: int, delay: int, data: st.DataObject) -> None:
        members = self._household_of(data)
        leaving = data.draw(st.lists(st.sampled_from(members), min_size=1, unique=True), label="leaving")
        staying = [m for m in members if m not in leaving]
        remaining_head = None
        if staying and any(m.is_head for m in leaving):
            remaining_head = data.draw(st.sampled_from(staying), label="remaining head").person_id
        lg = members[0].lg_code
        on = self._forward(advance)
        request = MoveOutRequest(
            effective_on=on,
            notified_on=self._notified(on, delay) if delay % 2 else on,
            persons=[PersonRef(person_id=m.person_id, version=m.version) for m in leaving],
            destination=LG_NAMES[OTHER[lg]] + STREETS[OTHER[lg]][0],
            destination_lg_code=OTHER[lg],
            remaining_head_person_id=remaining_head,
        )
        outcome = self._attempt(
            "move_out",
            lambda: service.move_out(self.db, ctx=self._ctx(lg), request=request),
            may_refuse=False,
        )
        assert outcome is not None
        # The 転出証明書情報 goes ahead to the destination, one message per person leaving.
        sent = {
            m.person_id
            for m, _ in service.outbox(self.db, lg_code=lg, limit=10_000)
            if m.event_id == outcome.event_id and m.kind == service.OutboxKind.MOVE_OUT_CERTIFICATE
        }
        # Not the member who stays behind as the new head.
        assert sent == {m.person_id for m in leaving}
        for m in leaving:
            person = self.db.get(Person, m.person_id)
            assert person is not None
            assert person.lifecycle == "moving_out"

    @precondition(lambda self: bool(self.view.certified))
    @rule(advance=ADVANCE, delay=DELAY, data=st.data())
    def move_in_with_certificate(self, advance: int, delay: int, data: st.DataObject) -> None:
        """転入 at the destination with the codes the certificate carries; the origin record closes."""
        move_out_event = data.draw(st.sampled_from(sorted(self.view.certified)), label="move-out event")
        group = [certificate(self.db, message_id) for message_id in self.view.certified[move_out_event]]
        arriving = data.draw(
            st.lists(st.sampled_from(group), min_size=1, unique_by=lambda c: c.person_id), label="arriving"
        )
        head = data.draw(st.sampled_from(arriving), label="new head")
        lg = arriving[0].destination_lg_code
        on = self._forward(advance)
        members = [
            PersonInput(
                family_name=c.payload["family_name"],
                given_name=c.payload["given_name"],
                family_name_kana=c.payload["family_name_kana"],
                given_name_kana=c.payload["given_name_kana"],
                birth_date=c.payload["birth_date"],
                sex=c.payload["sex"],
                relationship=RELATIONSHIP_HEAD if c is head else "同居人",
                honseki=c.payload["honseki"],
                hittousha=c.payload["hittousha"],
                resident_code=c.payload["identity"]["resident_code"],
                individual_number=c.payload["identity"]["individual_number"],
            )
            for c in arriving
        ]
        codes_live_elsewhere = {m.resident_code for m in members} & self.view.live_codes
        request = MoveInRequest(
            effective_on=on,
            notified_on=self._notified(on, delay),
            address=AddressInput(line=STREETS[lg][1]),
            previous_address=arriving[0].payload["address"]["line"],
            origin_lg_code=OTHER[lg],
            members=members,
        )
        outcome = self._attempt(
            "move_in_with_certificate",
            lambda: service.move_in(self.db, ctx=self._ctx(lg), request=request, kind=EventKind.MOVE_IN),
            # A code live again (the person's move-out cancelled after they had moved in
            # there) may not be registered twice.
            must_refuse=DomainError if codes_live_elsewhere else None,
        )
        if outcome is None:
            return
        ctx = self._ctx(lg)
        for c, new_id in zip(arriving, outcome.person_ids, strict=True):
            origin = self.db.get(Person, c.person_id)
            assert origin is not None
            assert origin.lifecycle == "removed", "the origin record stays open after the move-in"
            view = service.get_record(self.db, ctx=ctx, person_id=new_id, purpose="転入の確認")
            assert view.record.resident_code == c.payload["identity"]["resident_code"]
            assert view.record.individual_number == c.payload["identity"]["individual_number"]

    @precondition(lambda self: bool(self.view.households))
    @rule(advance=ADVANCE, back=BACK, late=st.booleans(), data=st.data())
    def death(self, advance: int, back: int, late: bool, data: st.DataObject) -> None:
        members = self._household_of(data)
        dead = data.draw(st.sampled_from(members), label="deceased")
        others = [m for m in members if m != dead]
        remaining_head = None
        if dead.is_head and others:
            remaining_head = data.draw(st.sampled_from(others), label="remaining head").person_id
        on = self._back(back, [dead.person_id]) if late else self._forward(advance)
        request = RemovalRequest(
            effective_on=on,
            notified_on=today() if late else on,
            person=PersonRef(person_id=dead.person_id, version=dead.version),
            remaining_head_person_id=remaining_head,
        )
        what = ("late " if late else "") + ("death of a head" if dead.is_head else "death")
        outcome = self._attempt(
            what,
            lambda: service.removal(
                self.db, ctx=self._ctx(dead.lg_code), request=request, kind=EventKind.DEATH
            ),
            may_refuse=late,
        )
        if outcome is None:
            return
        deceased = stored_record_on(self.db, dead.person_id, on)
        assert deceased is not None
        assert deceased["status"] == "removed"
        assert deceased["removal_reason"] == "death"
        if remaining_head is not None:
            # The named member heads the deceased's household (as it was on the day of
            # death) from that day, wherever they live now.
            successor = stored_record_on(self.db, remaining_head, on)
            assert successor is not None
            assert successor["household_id"] == deceased["household_id"]
            assert successor["relationship"] == RELATIONSHIP_HEAD

    @precondition(lambda self: bool(self.view.households_with(2)))
    @rule(advance=ADVANCE, delay=DELAY, data=st.data())
    def household_split(self, advance: int, delay: int, data: st.DataObject) -> None:
        members = self._household_of(data, at_least=2)
        leaving = data.draw(
            st.lists(st.sampled_from(members), min_size=1, max_size=len(members) - 1, unique=True),
            label="leaving",
        )
        staying = [m for m in members if m not in leaving]
        new_head = data.draw(st.sampled_from(leaving), label="head of the new household")
        remaining: list[MemberRelationship] = []
        if any(m.is_head for m in leaving):
            successor = data.draw(st.sampled_from(staying), label="remaining head")
            remaining = [MemberRelationship(person_id=successor.person_id, relationship=RELATIONSHIP_HEAD)]
        household_id, lg = members[0].household_id, members[0].lg_code
        on = self._forward(advance)
        request = HouseholdSplitRequest(
            effective_on=on,
            notified_on=self._notified(on, delay),
            household=HouseholdRef(
                household_id=household_id, version=self.view.household_versions[household_id]
            ),
            members=[
                MemberRelationship(
                    person_id=m.person_id, relationship=RELATIONSHIP_HEAD if m is new_head else "同居人"
                )
                for m in leaving
            ],
            remaining_relationships=remaining,
        )
        self._attempt(
            "household_split",
            lambda: service.household_split(self.db, ctx=self._ctx(lg), request=request),
            may_refuse=False,
        )

    @precondition(lambda self: bool(self.view.households_with(2)))
    @rule(advance=ADVANCE, delay=DELAY, data=st.data())
    def head_change(self, advance: int, delay: int, data: st.DataObject) -> None:
        members = self._household_of(data, at_least=2)
        old_head = next(m for m in members if m.is_head)
        new_head = data.draw(st.sampled_from([m for m in members if m != old_head]), label="new head")
        household_id, lg = members[0].household_id, members[0].lg_code
        on = self._forward(advance)
        request = HeadChangeRequest(
            effective_on=on,
            notified_on=self._notified(on, delay),
            household=HouseholdRef(
                household_id=household_id, version=self.view.household_versions[household_id]
            ),
            relationships=[
                MemberRelationship(person_id=new_head.person_id, relationship=RELATIONSHIP_HEAD),
                MemberRelationship(
                    person_id=old_head.person_id, relationship=data.draw(st.sampled_from(NON_HEAD))
                ),
            ],
        )
        self._attempt(
            "head_change",
            lambda: service.head_change(self.db, ctx=self._ctx(lg), request=request),
            may_refuse=False,
        )

    @precondition(lambda self: bool(self.view.households))
    @rule(advance=ADVANCE, back=BACK, late=st.booleans(), data=st.data())
    def name_change(self, advance: int, back: int, late: bool, data: st.DataObject) -> None:
        person = data.draw(st.sampled_from(self.view.live), label="person")
        family, family_kana = data.draw(st.sampled_from(FAMILY_NAMES))
        on = self._back(back, [person.person_id]) if late else self._forward(advance)
        request = NameChangeRequest(
            effective_on=on,
            notified_on=today() if late else on,
            person=PersonRef(person_id=person.person_id, version=person.version),
            family_name=family,
            given_name="改名",
            family_name_kana=family_kana,
            given_name_kana="カイメイ",
        )
        self._attempt(
            "late name_change" if late else "name_change",
            lambda: service.name_change(self.db, ctx=self._ctx(person.lg_code), request=request),
            may_refuse=late,
        )

    @precondition(lambda self: bool(self.view.first_day))
    @rule(
        back=st.integers(0, HORIZON_DAYS),
        kind=st.sampled_from([EventKind.CLERICAL_CORRECTION, EventKind.EX_OFFICIO_CORRECTION]),
        item=st.sampled_from(["family_name", "given_name", "birth_date"]),
        data=st.data(),
    )
    def correction(self, back: int, kind: EventKind, item: str, data: st.DataObject) -> None:
        """誤記修正・職権修正 from a past date, on a live or a removed record alike."""
        person_id = data.draw(st.sampled_from(sorted(self.view.first_day)), label="person")
        on = max(self.view.first_day[person_id], self.clock - dt.timedelta(days=back))
        value: str = {
            "family_name": "訂正",
            "given_name": "正子",
            "birth_date": (self.start - dt.timedelta(days=9000 + back)).isoformat(),
        }[item]
        request = CorrectionRequest(
            effective_on=on,
            person=PersonRef(person_id=person_id, version=self.view.person_versions[person_id]),
            items={item: value},
            reason="届書の誤記",
        )
        self._attempt(
            "correction",
            lambda: service.correction(
                self.db, ctx=self._ctx(self.view.person_lg[person_id]), request=request, kind=kind
            ),
            may_refuse=False,
        )

    @precondition(lambda self: bool(self.view.standing_events))
    @rule(recent=st.booleans(), data=st.data())
    def cancel(self, recent: bool, data: st.DataObject) -> None:
        """異動の取消し of a standing event; later events may forbid it, and then nothing changes.

        Half the time one of the last few events, so that cancellations of cancellable
        events (the latest ones) are not drowned by refusals of early ones.
        """
        candidates = self.view.standing_events[-3:] if recent else self.view.standing_events
        event_id, lg = data.draw(st.sampled_from(candidates), label="event")
        kind = self.db.execute(select(RegistryEvent.kind).where(RegistryEvent.id == event_id)).scalar_one()
        persons = sorted(
            set(
                self.db.execute(
                    select(RegistryEventChange.person_id).where(RegistryEventChange.event_id == event_id)
                ).scalars()
            )
        )
        request = CancellationRequest(
            event_id=event_id,
            reason="誤った届出",
            versions=[PersonRef(person_id=p, version=self.view.person_versions[p]) for p in persons],
        )
        self._attempt(
            f"cancel {kind}",
            lambda: service.cancel(self.db, ctx=self._ctx(lg), request=request),
            may_refuse=True,
        )

    @precondition(lambda self: bool(self.view.households))
    @rule(data=st.data())
    def move_in_of_a_live_code(self, data: st.DataObject) -> None:
        """A code that is live somewhere may not be registered again, in either municipality."""
        person = data.draw(st.sampled_from(self.view.live), label="person")
        code = self.db.execute(select(Person.resident_code).where(Person.id == person.person_id)).scalar_one()
        lg = data.draw(st.sampled_from(LG_CODES), label="municipality")
        on = self._forward(0)
        request = MoveInRequest(
            effective_on=on,
            address=AddressInput(line=STREETS[lg][2]),
            previous_address="不明",
            members=[
                data.draw(person_input(relationship=RELATIONSHIP_HEAD, on=on)).model_copy(
                    update={"resident_code": code}
                )
            ],
        )
        self._attempt(
            "move_in of a live code",
            lambda: service.move_in(self.db, ctx=self._ctx(lg), request=request, kind=EventKind.MOVE_IN),
            must_refuse=DomainError,
        )

    @precondition(lambda self: bool(self.view.households))
    @rule(data=st.data())
    def stale_edit(self, data: st.DataObject) -> None:
        """An edit naming a version that is not the current one is refused, whatever it asks."""
        person = data.draw(st.sampled_from(self.view.live), label="person")
        stale = data.draw(st.sampled_from([v for v in (person.version - 1, person.version + 1) if v >= 1]))
        request = MoveWithinRequest(
            effective_on=self._forward(0),
            persons=[PersonRef(person_id=person.person_id, version=stale)],
            address=AddressInput(line=STREETS[person.lg_code][3]),
        )
        self._attempt(
            "stale edit",
            lambda: service.move_within(self.db, ctx=self._ctx(person.lg_code), request=request),
            must_refuse=StaleVersion,
        )

    # -- after every step ----------------------------------------------------

    @invariant()
    def refresh(self) -> None:
        self.db.expire_all()
        self.view = load_view(self.db)

    @invariant()
    def invariants_hold(self) -> None:
        check_register(self.db, self.replayed)


# ---------------------------------------------------------------------------
# The invariants, read from the stored rows


def _contiguous(versions: Sequence[PersonVersion]) -> bool:
    if not versions:
        return True
    pairs = itertools.pairwise(versions)
    return all(a.valid_to == b.valid_from and a.valid_from < b.valid_from for a, b in pairs) and (
        versions[-1].valid_to is None
    )


ReplayKey = tuple[tuple[int, ...], tuple[int, ...]]


def check_register(db: Session, replayed: dict[int, ReplayKey] | None = None) -> None:
    """Every invariant of the register, on everything stored.

    ``replayed`` remembers, per person, the standing changes and current versions that
    were last replayed and matched: a person whose changes and versions are the same
    rows as then is not replayed again (the result could not differ).
    """
    on_today = today()
    persons = {p.id: p for p in db.execute(select(Person)).scalars()}
    current: dict[int, list[PersonVersion]] = defaultdict(list)
    for v in db.execute(
        select(PersonVersion)
        .where(PersonVersion.superseded_at.is_(None))
        .order_by(PersonVersion.person_id, PersonVersion.valid_from, PersonVersion.id)
    ).scalars():
        current[v.person_id].append(v)

    # Current versions: contiguous, non-overlapping, the last one open-ended; and the
    # person row agrees with its last version, including what the network was last told.
    for pid, person in persons.items():
        versions = current.get(pid, [])
        assert _contiguous(versions), (
            f"person {pid}: versions not contiguous: {[(v.valid_from, v.valid_to) for v in versions]}"
        )
        if versions:
            last = versions[-1]
            assert person.resident_code == last.resident_code
            assert (person.lifecycle == "live") == (last.status == "live"), (
                f"person {pid}: lifecycle {person.lifecycle} but last version {last.status}"
            )
            identity = service.version_summary(last).identity().fingerprint()
            assert person.identity_fingerprint == identity, (
                f"person {pid}: the network was told another identity"
            )
        else:
            assert person.lifecycle == "removed", f"person {pid} has no record but is {person.lifecycle}"
            assert person.identity_fingerprint == "void", f"person {pid}: voided record not sent as void"

    # Replaying the event log reproduces the stored state.
    standing: dict[int, list[int]] = defaultdict(list)
    for change_id, pid in db.execute(
        select(RegistryEventChange.id, RegistryEventChange.person_id)
        .join(RegistryEvent, RegistryEvent.id == RegistryEventChange.event_id)
        .where(RegistryEvent.cancelled_by_event_id.is_(None))
        .order_by(RegistryEventChange.id)
    ):
        standing[pid].append(change_id)
    cache = {} if replayed is None else replayed
    for pid in persons:
        key = (tuple(v.id for v in current.get(pid, [])), tuple(standing[pid]))
        if cache.get(pid) == key:
            continue
        assert service.replay_matches(db, pid), f"person {pid}: replaying the events gives another state"
        cache[pid] = key

    # No resident code is live twice: not as a person row, not as a record valid today.
    live_codes = [p.resident_code for p in persons.values() if p.lifecycle == "live"]
    assert len(live_codes) == len(set(live_codes)), "a resident code has two live persons"
    live_today: dict[str, list[int]] = defaultdict(list)
    for pid, versions in current.items():
        for v in versions:
            if (
                v.valid_from <= on_today
                and (v.valid_to is None or on_today < v.valid_to)
                and v.status == "live"
            ):
                live_today[v.resident_code].append(pid)
    doubles = {code: pids for code, pids in live_today.items() if len(pids) > 1}
    assert not doubles, f"resident codes with two records live today: {doubles}"

    # 世帯主: exactly one live head in every household that has live members, on every
    # date where its membership or a member's record changes.
    by_household: dict[int, list[tuple[PersonVersion, str]]] = defaultdict(list)
    for versions in current.values():
        for v in versions:
            by_household[v.household_id].append((v, json.loads(v.record_json)["relationship"]))
    for household_id, rows in by_household.items():
        dates = sorted({v.valid_from for v, _ in rows} | {v.valid_to for v, _ in rows if v.valid_to})
        for on in dates:
            live = [
                (v, rel)
                for v, rel in rows
                if v.status == "live" and v.valid_from <= on and (v.valid_to is None or on < v.valid_to)
            ]
            heads = [v.person_id for v, rel in live if rel == RELATIONSHIP_HEAD]
            assert not live or len(heads) == 1, (
                f"household {household_id} on {on}: {len(live)} live members, heads {heads}"
            )

    # Outbox: per person, sequence numbers 1..n without a gap, n the person's counter.
    seqs: dict[int, list[int]] = defaultdict(list)
    for pid, seq in db.execute(
        select(OutboxMessage.person_id, OutboxMessage.seq).order_by(
            OutboxMessage.person_id, OutboxMessage.seq
        )
    ):
        seqs[pid].append(seq)
    for pid, person in persons.items():
        assert seqs.get(pid, []) == list(range(1, person.outbox_seq + 1)), (
            f"person {pid}: outbox seq {seqs.get(pid)} but counter {person.outbox_seq}"
        )

    # Audit: every event has an entry for every person it touched (a cancellation
    # touches the persons of the event it cancels).
    events = {e.id: e for e in db.execute(select(RegistryEvent)).scalars()}
    changed: dict[int, set[int]] = defaultdict(set)
    for event_id, pid in db.execute(select(RegistryEventChange.event_id, RegistryEventChange.person_id)):
        changed[event_id].add(pid)
    audited: dict[int, set[int]] = defaultdict(set)
    for detail, target in db.execute(
        select(AuditEntry.detail, AuditEntry.target_id).where(
            AuditEntry.action == AuditAction.REGISTRY_EVENT_RECORDED.value
        )
    ):
        event_part = detail.split()[0]
        assert event_part.startswith("event="), detail
        audited[int(event_part.removeprefix("event="))].add(int(target))
    for event_id, e in events.items():
        touched = changed[e.cancels_event_id] if e.cancels_event_id is not None else changed[event_id]
        assert touched, f"event {event_id} ({e.kind}) touched nobody"
        assert touched <= audited[event_id], (
            f"event {event_id} ({e.kind}) touched {sorted(touched)}, audited {sorted(audited[event_id])}"
        )


# ---------------------------------------------------------------------------


def test_random_sequences_of_events_keep_the_register_consistent(
    db: Session, network: InProcessNetworkClient
) -> None:
    class Machine(RegisterMachine):
        pass

    Machine.db = db
    Machine.network = network
    run_state_machine_as_test(Machine, settings=SETTINGS)


# ---------------------------------------------------------------------------
# Sequences the machine reaches, pinned as plain tests


def _family(db: Session, network: InProcessNetworkClient, *, lg: str, days_ago: int) -> EventOutcome:
    """A couple arriving from abroad: a head and a wife, one household."""
    on = today() - dt.timedelta(days=days_ago)
    return service.move_in(
        db,
        ctx=clerk(lg, network),
        request=MoveInRequest(
            effective_on=on,
            notified_on=on,
            address=AddressInput(line=STREETS[lg][0]),
            previous_address="アメリカ合衆国",
            members=[
                PersonInput(
                    family_name="山田",
                    given_name="太郎",
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


def test_move_out_certificate_is_sent_only_for_those_who_leave(
    db: Session, network: InProcessNetworkClient
) -> None:
    head, wife = _family(db, network, lg=CHIYODA, days_ago=60).person_ids
    outcome = service.move_out(
        db,
        ctx=clerk(CHIYODA, network),
        request=MoveOutRequest(
            effective_on=today() - dt.timedelta(days=10),
            persons=[PersonRef(person_id=head, version=1)],
            destination="北海道札幌市北一条西二丁目1番",
            destination_lg_code=SAPPORO,
            remaining_head_person_id=wife,
        ),
    )
    certificates = [
        m.person_id
        for m, _ in service.outbox(db, lg_code=CHIYODA)
        if m.event_id == outcome.event_id and m.kind == service.OutboxKind.MOVE_OUT_CERTIFICATE
    ]
    assert certificates == [head]


def test_cancelling_a_move_out_after_the_household_moved_in_elsewhere_is_refused(
    db: Session, network: InProcessNetworkClient
) -> None:
    chiyoda = clerk(CHIYODA, network)
    head, wife = _family(db, network, lg=CHIYODA, days_ago=100).person_ids
    moved_out = service.move_out(
        db,
        ctx=chiyoda,
        request=MoveOutRequest(
            effective_on=today() - dt.timedelta(days=50),
            persons=[PersonRef(person_id=head, version=1), PersonRef(person_id=wife, version=1)],
            destination="北海道札幌市北一条西二丁目1番",
            destination_lg_code=SAPPORO,
        ),
    )
    certificates = [
        payload
        for m, payload in service.outbox(db, lg_code=CHIYODA)
        if m.kind == service.OutboxKind.MOVE_OUT_CERTIFICATE
    ]
    service.move_in(
        db,
        ctx=clerk(SAPPORO, network),
        request=MoveInRequest(
            effective_on=today() - dt.timedelta(days=45),
            address=AddressInput(line=STREETS[SAPPORO][0]),
            previous_address=STREETS[CHIYODA][0],
            members=[
                PersonInput(
                    family_name=c["family_name"],
                    given_name=c["given_name"],
                    birth_date=c["birth_date"],
                    sex=c["sex"],
                    relationship=RELATIONSHIP_HEAD if i == 0 else "妻",
                    resident_code=c["identity"]["resident_code"],
                    individual_number=c["identity"]["individual_number"],
                )
                for i, c in enumerate(certificates)
            ],
        ),
    )
    db.expire_all()
    # Chiyoda cancels the 転入通知 it received, then the move-out itself: the household
    # would be live in both municipalities, which must be refused as a rule, not crash.
    confirmation = db.execute(
        select(RegistryEvent).where(RegistryEvent.kind == EventKind.MOVE_OUT_CONFIRMED.value)
    ).scalar_one()
    service.cancel(
        db,
        ctx=chiyoda,
        request=CancellationRequest(
            event_id=confirmation.id,
            reason="転入通知の誤送付",
            versions=[PersonRef(person_id=p, version=db.get_one(Person, p).version) for p in (head, wife)],
        ),
    )
    db.expire_all()
    versions = [PersonRef(person_id=p, version=db.get_one(Person, p).version) for p in (head, wife)]
    with db.begin_nested(), pytest.raises(RuleViolation):
        service.cancel(
            db,
            ctx=chiyoda,
            request=CancellationRequest(
                event_id=moved_out.event_id, reason="転出の取消し", versions=versions
            ),
        )
