"""転入 from expected arrivals (relay.arrival, relay.move_in_from_arrivals): the one-stop window's
use cases. What the 転出証明書情報 says is taken as sent; only the address, the dates, the
household and the 続柄 are asked for, and 特例転入 keeps to its 30 days."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.core.errors import NotFound, RuleViolation
from jumin.network_client import InProcessNetworkClient
from jumin.registry import relay
from jumin.registry import service as registry
from jumin.registry.schemas import ArrivalMoveInRequest
from tests import factories
from tests.network.replication_support import register
from tests.web.scenario import (
    CHIYODA,
    SAPPORO,
    World,
    arrive_from_abroad,
    clerk_context,
    joined_world,
    move_out,
    replicate,
    today,
)


@pytest.fixture
def world(client: TestClient, db: Session, national_db: Session, network: InProcessNetworkClient) -> World:
    register(national_db, CHIYODA, SAPPORO)
    factories.organisation(db, CHIYODA, name="千代田区")
    factories.organisation(db, SAPPORO, name="札幌市")
    return joined_world(client, db, national_db, network)


def _arrivals(db: Session, world: World) -> list[relay.ArrivalView]:
    return relay.list_arrivals(
        db, actor=clerk_context(world, SAPPORO).actor, lg_code=SAPPORO, include_arrived=True, purpose="テスト"
    )


def _detail(db: Session, world: World, arrival_id: int) -> relay.ArrivalDetail:
    return relay.arrival(
        db,
        actor=clerk_context(world, SAPPORO).actor,
        lg_code=SAPPORO,
        arrival_id=arrival_id,
        purpose="テスト",
    )


def _request(detail: relay.ArrivalDetail, **overrides: object) -> ArrivalMoveInRequest:
    data: dict[str, object] = {
        "effective_on": today().isoformat(),
        "address": {"line": detail.address_line, "katagaki": ""},
        "members": [
            {"arrival_id": p.arrival_id, "relationship": p.relationship}
            for p in detail.persons
            if not p.arrived
        ],
    }
    return ArrivalMoveInRequest.model_validate(data | overrides)


def test_the_arrival_prefills_the_household_and_the_address_line(db: Session, world: World) -> None:
    family = arrive_from_abroad(world, members=3)
    replicate(world)
    move_out(world, family, destination="北海道札幌市中央区北1条西2丁目1番")
    replicate(world)
    views = _arrivals(db, world)
    assert len(views) == 3
    detail = _detail(db, world, views[-1].id)
    # The whole household, head first, with the 続柄 it had; the address without the city.
    assert [p.relationship for p in detail.persons] == ["世帯主", "子", "子"]
    assert detail.persons[0].name == family[0].name
    assert detail.head_comes_along
    assert all(p.has_individual_number for p in detail.persons)
    assert detail.address_line == "中央区北1条西2丁目1番"
    assert detail.card_holder_until == detail.arrival.planned_on + dt.timedelta(days=30)


def test_a_member_moving_alone_is_offered_as_the_new_head(db: Session, world: World) -> None:
    family = arrive_from_abroad(world, members=2)
    replicate(world)
    move_out(world, family[1:])
    replicate(world)
    (view,) = _arrivals(db, world)
    detail = _detail(db, world, view.id)
    assert not detail.head_comes_along
    assert [(p.origin_relationship, p.relationship) for p in detail.persons] == [("子", "世帯主")]


def test_the_move_in_takes_everything_from_the_notice_and_closes_the_origin(
    db: Session, world: World
) -> None:
    family = arrive_from_abroad(world, members=2)
    replicate(world)
    move_out(world, family)
    replicate(world)
    detail = _detail(db, world, _arrivals(db, world)[0].id)
    outcome = relay.move_in_from_arrivals(
        db, ctx=clerk_context(world, SAPPORO), request=_request(detail, address={"line": "北1条西2丁目1番"})
    )
    ctx = clerk_context(world, SAPPORO)
    records = [
        registry.get_record(db, ctx=ctx, person_id=p, purpose="テスト").record for p in outcome.person_ids
    ]
    assert sorted(r.resident_code for r in records) == sorted(p.resident_code for p in family)
    assert {r.name for r in records} == {p.name for p in family}
    assert all(r.individual_number and r.honseki == "東京都千代田区千代田1番" for r in records)
    assert {r.previous_address for r in records} == {detail.origin_address}
    assert outcome.kind.value == "move_in_card_holder"
    for person in family:
        origin = registry.get_record(
            db, ctx=clerk_context(world, CHIYODA), person_id=person.person_id, purpose="t"
        )
        assert origin.record.status.value == "removed"
    assert all(v.arrived for v in _arrivals(db, world))
    with pytest.raises(RuleViolation, match="既に記録されています"):
        relay.move_in_from_arrivals(
            db,
            ctx=ctx,
            request=_request(
                detail, members=[{"arrival_id": detail.persons[0].arrival_id, "relationship": "世帯主"}]
            ),
        )


def test_card_holder_move_in_keeps_to_thirty_days_from_the_planned_date(db: Session, world: World) -> None:
    person = arrive_from_abroad(world, days_ago=120)
    replicate(world)
    move_out(world, person, planned_in=-40)  # notified 40 days late: accepted, flagged
    replicate(world)
    detail = _detail(db, world, _arrivals(db, world)[0].id)
    # A 転出 notified after the move carries no planned destination: the clerk types the line.
    assert detail.address_line == ""
    ctx = clerk_context(world, SAPPORO)
    moved = (today() - dt.timedelta(days=35)).isoformat()
    line = {"line": "北1条西2丁目1番"}
    with pytest.raises(RuleViolation) as refused:
        relay.move_in_from_arrivals(db, ctx=ctx, request=_request(detail, effective_on=moved, address=line))
    assert refused.value.field == "card_holder"
    # The ordinary 転入 (paper 転出証明書) is still possible, late and flagged.
    outcome = relay.move_in_from_arrivals(
        db, ctx=ctx, request=_request(detail, effective_on=moved, address=line, card_holder=False)
    )
    assert outcome.kind.value == "move_in"
    assert outcome.late


def test_an_arrival_of_another_municipality_is_not_found(db: Session, world: World) -> None:
    person = arrive_from_abroad(world)
    replicate(world)
    move_out(world, person)
    replicate(world)
    arrival_id = _arrivals(db, world)[0].id
    chiyoda = clerk_context(world, CHIYODA)
    with pytest.raises(NotFound):
        relay.arrival(db, actor=chiyoda.actor, lg_code=CHIYODA, arrival_id=arrival_id, purpose="テスト")
    request = ArrivalMoveInRequest.model_validate(
        {
            "effective_on": today().isoformat(),
            "address": {"line": "千代田一丁目2番"},
            "members": [{"arrival_id": arrival_id, "relationship": "世帯主"}],
        }
    )
    with pytest.raises(NotFound) as missing:
        relay.move_in_from_arrivals(db, ctx=chiyoda, request=request)
    assert missing.value.field == "members.0.arrival_id"
