"""The online 転出届 with a 転入予約, filed by the card holder through the resident's door.

At the service level: the resident's context is found from the 住民票コード alone, the
filing is checked against the online window and the household, recorded as an
ordinary 転出 by the resident, and its 転出証明書情報 reaches the destination as an
expected arrival through the relay.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind
from jumin.audit.models import AuditEntry
from jumin.core.errors import DomainError, InvalidValue, NotFound, RuleViolation
from jumin.db import finish_failed
from jumin.network_client import InProcessNetworkClient
from jumin.registry import relay as relay_service
from jumin.registry import service as registry
from jumin.registry.domain import EventKind
from jumin.registry.models import OutboxMessage, RegistryEvent
from jumin.registry.schemas import MoveInRequest, MoveOutRequest, PersonRef
from tests import factories
from tests.network.replication_support import register
from tests.registry.conftest import CHIYODA, SAPPORO, days_ago, member, today

CLERK = Actor(kind=ActorKind.STAFF, actor_id="window-clerk", organisation_code=CHIYODA)


def _clerk(network: InProcessNetworkClient, lg_code: str = CHIYODA) -> registry.RegistryContext:
    actor = Actor(kind=ActorKind.STAFF, actor_id="window-clerk", organisation_code=lg_code)
    return registry.RegistryContext(actor=actor, lg_code=lg_code, network=network)


def _family(db: Session, network: InProcessNetworkClient, *, line: str = "千代田一丁目1番1号") -> list[int]:
    outcome = registry.move_in(
        db,
        ctx=_clerk(network),
        kind=EventKind.MOVE_IN_FROM_ABROAD,
        request=MoveInRequest.model_validate(
            {
                "effective_on": days_ago(60),
                "address": {"line": line},
                "previous_address": "アメリカ合衆国",
                "members": [
                    member(),
                    member(
                        "山田",
                        "花子",
                        ("ヤマダ", "ハナコ"),
                        birth="1982-06-15",
                        sex="female",
                        relationship="妻",
                    ),
                ],
            }
        ),
    )
    return list(outcome.person_ids)


def _code(db: Session, network: InProcessNetworkClient, person_id: int) -> str:
    return registry.get_record(
        db, ctx=_clerk(network), person_id=person_id, purpose="テスト"
    ).record.resident_code


def _request(
    db: Session,
    ctx: registry.RegistryContext,
    persons: list[int],
    *,
    planned: dt.date | None = None,
    destination_lg_code: str | None = SAPPORO,
    **extra: Any,
) -> MoveOutRequest:
    refs = [
        PersonRef(
            person_id=p, version=registry.get_record(db, ctx=ctx, person_id=p, purpose="テスト").version
        )
        for p in persons
    ]
    return MoveOutRequest(
        effective_on=planned or today() + dt.timedelta(days=7),
        persons=refs,
        destination="北海道札幌市中央区北1条西2丁目",
        destination_lg_code=destination_lg_code,
        **extra,
    )


def _as_resident(
    db: Session, network: InProcessNetworkClient, person_id: int
) -> tuple[registry.RegistryContext, int]:
    return registry.resident_context(db, resident_code=_code(db, network, person_id), network=network)


def test_the_card_holders_code_finds_their_record_and_they_act_as_themselves(
    db: Session, network: InProcessNetworkClient
) -> None:
    taro, _hanako = _family(db, network)
    ctx, person_id = _as_resident(db, network, taro)
    assert (ctx.lg_code, person_id) == (CHIYODA, taro)
    assert ctx.actor == Actor(kind=ActorKind.RESIDENT, actor_id=f"person:{taro}", organisation_code=CHIYODA)
    found = registry.records_of_resident(db, resident_code=_code(db, network, taro))
    assert found.current == (CHIYODA, taro)
    assert found.all == ((CHIYODA, taro),)
    household = registry.get_record(db, ctx=ctx, person_id=taro, purpose="テスト").record.household_id
    assert found.households == (household,)
    with pytest.raises(NotFound):
        registry.resident_context(db, resident_code="24727059608", network=network)


def test_an_online_move_out_is_a_move_out_by_the_resident_with_the_certificate_sent_ahead(
    db: Session, network: InProcessNetworkClient
) -> None:
    taro, hanako = _family(db, network)
    ctx, me = _as_resident(db, network, taro)
    planned = today() + dt.timedelta(days=14)
    outcome = registry.move_out_online(
        db, ctx=ctx, filer_person_id=me, request=_request(db, ctx, [taro, hanako], planned=planned)
    )
    assert outcome.kind is EventKind.MOVE_OUT
    event = db.get(RegistryEvent, outcome.event_id)
    assert event is not None
    assert event.reason == "オンライン転出届 (転入予約) 転出先: 北海道札幌市"
    assert (event.notified_on, event.effective_on, event.recorded_by) == (today(), planned, f"person:{taro}")
    record = registry.get_record(db, ctx=ctx, person_id=taro, purpose="テスト").record
    assert record.planned_move_out is not None
    assert (record.planned_move_out.planned_on, record.planned_move_out.destination_lg_code) == (
        planned,
        SAPPORO,
    )
    sent = db.execute(
        select(OutboxMessage).where(
            OutboxMessage.event_id == outcome.event_id, OutboxMessage.kind == "move_out_certificate"
        )
    ).scalars()
    assert {(m.person_id, m.destination_lg_code) for m in sent} == {(taro, SAPPORO), (hanako, SAPPORO)}
    recorded = (
        db.execute(
            select(AuditEntry).where(
                AuditEntry.action == "registry.event_recorded", AuditEntry.target_id == str(taro)
            )
        )
        .scalars()
        .all()
    )
    assert (recorded[-1].actor_kind, recorded[-1].actor_id) == ("resident", f"person:{taro}")
    # The record awaits the destination's 転入: the resident still finds it.
    assert registry.resident_context(db, resident_code=record.resident_code, network=network)[1] == taro


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-11, False), (-10, True), (0, True), (30, True), (31, False)],
)
def test_the_planned_date_must_lie_from_ten_days_past_to_thirty_days_ahead(
    db: Session, network: InProcessNetworkClient, offset: int, accepted: bool
) -> None:
    taro, hanako = _family(db, network)
    ctx, me = _as_resident(db, network, taro)
    request = _request(db, ctx, [taro, hanako], planned=today() + dt.timedelta(days=offset))
    if accepted:
        registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=request)
        return
    with pytest.raises(InvalidValue) as refused:
        registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=request)
    assert refused.value.field == "effective_on"


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2090, 12, 31)), st.integers(-400, 400))
def test_the_online_window_holds_exactly_the_days_the_law_allows(today_: dt.date, offset: int) -> None:
    earliest, latest = registry.online_move_out_window(today_)
    planned = today_ + dt.timedelta(days=offset)
    assert (earliest <= planned <= latest) == (
        -registry.ONLINE_MOVE_OUT_DAYS_AFTER <= offset <= registry.ONLINE_MOVE_OUT_DAYS_BEFORE
    )


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"destination_lg_code": None}, InvalidValue, "destination_lg_code"),
        ({"destination_lg_code": None, "abroad": True}, InvalidValue, "destination_lg_code"),
        ({"destination_lg_code": "011011"}, InvalidValue, "destination_lg_code"),  # 札幌市中央区: a ward
        ({"destination_lg_code": "130001"}, InvalidValue, "destination_lg_code"),  # 東京都: a prefecture
        ({"destination_lg_code": CHIYODA}, InvalidValue, "destination_lg_code"),  # a 転居, not a 転出
    ],
)
def test_the_reservation_names_a_municipality_in_japan_other_than_the_origin(
    db: Session,
    network: InProcessNetworkClient,
    changes: dict[str, Any],
    error: type[DomainError],
    field: str,
) -> None:
    taro, _ = _family(db, network)
    ctx, me = _as_resident(db, network, taro)
    request = _request(db, ctx, [taro]).model_copy(update=changes)
    with pytest.raises(error) as refused:
        registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=request)
    assert refused.value.field == field


def test_only_the_filer_and_members_of_their_household_and_only_once(
    db: Session, network: InProcessNetworkClient
) -> None:
    taro, hanako = _family(db, network)
    (stranger,) = _family(db, network, line="千代田二丁目2番")[:1]
    ctx, me = _as_resident(db, network, taro)
    with pytest.raises(InvalidValue, match="本人を含めてください"):
        registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=_request(db, ctx, [hanako]))
    with pytest.raises(RuleViolation, match="同じ世帯"):
        registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=_request(db, ctx, [taro, stranger]))
    registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=_request(db, ctx, [taro, hanako]))
    with pytest.raises(RuleViolation, match="転出の届出が済んでいます"):
        registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=_request(db, ctx, [taro]))


def test_another_municipalitys_resident_cannot_be_named(db: Session, network: InProcessNetworkClient) -> None:
    taro, _ = _family(db, network)
    ctx, me = _as_resident(db, network, taro)
    elsewhere = registry.RegistryContext(actor=ctx.actor, lg_code=SAPPORO, network=network)
    with pytest.raises(NotFound):
        registry.move_out_online(db, ctx=elsewhere, filer_person_id=me, request=_request(db, ctx, [taro]))


def test_the_destination_sees_the_expected_arrival_after_the_relay(
    client: TestClient, db: Session, national_db: Session, network: InProcessNetworkClient
) -> None:
    register(national_db, CHIYODA, SAPPORO)
    # The destination is served by this register: its organisation exists here.
    factories.organisation(db, SAPPORO, name="札幌市")

    @contextmanager
    def scope() -> Iterator[Session]:
        try:
            yield db
            db.commit()
        except BaseException as exc:
            finish_failed(db, exc)
            raise

    taro, hanako = _family(db, network)
    ctx, me = _as_resident(db, network, taro)
    planned = today() + dt.timedelta(days=3)
    request = _request(db, ctx, [taro], planned=planned, remaining_head_person_id=hanako)
    registry.move_out_online(db, ctx=ctx, filer_person_id=me, request=request)
    relay = relay_service.Relay(url="http://testserver", http=client, session_scope=scope)
    report = relay.run_once()
    assert report.errors == [], report
    assert report.arrivals == 1, report
    sapporo = _clerk(network, SAPPORO)
    arrivals = relay_service.list_arrivals(db, actor=sapporo.actor, lg_code=SAPPORO, purpose="テスト")
    assert [(a.name, a.origin_lg_code, a.planned_on, a.arrived) for a in arrivals] == [
        ("山田　太郎", CHIYODA, planned, False)
    ]
    # Only the one who moves is announced; the wife stays, head of the household from that day.
    stays = registry.get_record(db, ctx=_clerk(network), person_id=hanako, on=planned, purpose="テスト")
    assert stays.record.is_head
    assert stays.record.planned_move_out is None
