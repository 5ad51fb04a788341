"""Protection orders (支援措置): registered by a supervisor, blocking the named parties at
every channel (and the kiosk entirely), every step audited, refusals kept as evidence."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.audit.domain import Actor, ActorKind
from jumin.audit.models import AuditEntry
from jumin.certificates import service
from jumin.certificates.domain import KioskRefused, ProtectedRecord
from jumin.certificates.schemas import (
    KioskIssueRequest,
    OfficialIssueRequest,
    ProtectionOrderRequest,
    WideAreaIssueRequest,
    WindowIssueRequest,
)
from jumin.core.errors import InvalidValue
from tests import factories
from tests.certificates.conftest import CHIYODA, Desk, Headers, self_request, today


def _order(desk: Desk, person_id: int, *parties: dict[str, str], **extra: object) -> int:
    view = service.register_protection_order(
        desk.db,
        ctx=desk.ctx,
        request=ProtectionOrderRequest.model_validate(
            {"person_id": person_id, "parties": list(parties), **extra}
        ),
    )
    return view.order_id


def test_a_supervisor_registers_an_order_that_stops_the_named_party_at_the_window(
    desk: Desk, client: TestClient, chiyoda: Headers, db: Session
) -> None:
    _head, wife, _ = desk.family().person_ids
    r = client.post(
        "/certificates/protection-orders",
        json={
            "person_id": wife,
            "parties": [{"name": "加害　太郎"}],
            "reason": "DV (配偶者暴力相談支援センター)",
        },
        headers=chiyoda,
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["active"] is True
    assert order["parties"][0]["name"] == "加害　太郎"

    third = {
        "kind": "record_copy",
        "person_ids": [wife],
        "requester": {"kind": "third_party", "name": "加害 太郎", "reason": "債権回収のため住所を知りたい"},
    }
    refused = client.post("/certificates/window", json=third, headers=chiyoda)
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["type"] == "urn:jumin:problem:protection-order"
    assert problem["title"] == "支援措置の対象のため交付できません"
    # Viewing through the certificates service is refused the same way.
    assert client.post("/certificates/window/preview", json=third, headers=chiyoda).status_code == 403
    # The refusals were kept (the unit of work commits refusals that are evidence).
    denied = db.query(AuditEntry).filter_by(action="certificate.refused").all()
    assert len(denied) == 2
    assert all(e.outcome == "denied" and e.target_id == str(wife) for e in denied)
    assert db.query(AuditEntry).filter_by(action="protection_order.registered").one().target_id == str(wife)

    # Someone else, and the person herself, are not affected.
    other = third | {
        "requester": {"kind": "third_party", "name": "銀行　花子", "reason": "相続手続のため必要"}
    }
    assert client.post("/certificates/window", json=other, headers=chiyoda).status_code == 200
    assert client.post("/certificates/window", json=self_request(wife), headers=chiyoda).status_code == 200

    listed = client.get("/certificates/protection-orders", params={"person_id": wife}, headers=chiyoda).json()
    assert [o["order_id"] for o in listed] == [order["order_id"]]
    assert db.query(AuditEntry).filter_by(action="protection_order.viewed").count() == 1
    ended = client.post(f"/certificates/protection-orders/{order['order_id']}/end", headers=chiyoda)
    assert ended.status_code == 200
    assert ended.json()["active"] is False
    assert client.post("/certificates/window", json=third, headers=chiyoda).status_code == 200
    assert db.query(AuditEntry).filter_by(action="protection_order.ended").count() == 1


def test_only_supervisors_manage_orders(client: TestClient, db: Session, desk: Desk) -> None:
    wife = desk.family().person_ids[1]
    clerk = factories.auth(client, factories.staff(db, Role.CLERK, org=CHIYODA))
    r = client.post(
        "/certificates/protection-orders", json={"person_id": wife, "parties": [{"name": "x"}]}, headers=clerk
    )
    assert r.status_code == 403
    assert client.get("/certificates/protection-orders", headers=clerk).status_code == 403


def test_a_party_is_recognised_by_resident_code_whatever_name_or_role_they_give(desk: Desk) -> None:
    head, wife, _child = desk.family().person_ids
    husband_code = desk.record(head).resident_code
    _order(desk, wife, {"name": "山田　太郎", "resident_code": husband_code})
    with pytest.raises(ProtectedRecord):
        desk.window(
            self_request(wife)
            | {
                "requester": {
                    "kind": "agent",
                    "name": "別名　一郎",
                    "resident_code": husband_code,
                    "authority": "委任状",
                }
            }
        )
    # As a household member asking for the whole household, the head is the named party.
    with pytest.raises(ProtectedRecord):
        desk.window(
            {
                "kind": "record_copy",
                "household_id": desk.record(head).household_id,
                "requester": {"kind": "self", "person_id": head},
            }
        )
    # His own copy alone is still his.
    assert desk.window(self_request(head)).person_ids == (head,)


def test_the_kiosk_refuses_protected_persons_and_wide_area_and_official_respect_orders(
    desk: Desk, sapporo_desk: Desk, db: Session
) -> None:
    head, wife, child = desk.family().person_ids
    service.set_pin(desk.db, ctx=desk.ctx, person_id=wife, pin="2468")
    _order(desk, wife, {"name": "山田　太郎", "resident_code": desk.record(head).resident_code})
    _order(desk, child, {"name": "調査会社", "organisation_code": "tantei"})

    kiosk = KioskIssueRequest.model_validate(
        {"lg_code": "131016", "resident_code": desk.record(wife).resident_code, "pin": "2468"}
    )
    with pytest.raises(KioskRefused, match="窓口で請求"):
        service.issue_at_kiosk(desk.db, network=desk.network, request=kiosk)

    wide = WideAreaIssueRequest.model_validate(
        {"home_lg_code": "131016", "resident_code": desk.record(head).resident_code, "whole_household": True}
    )
    with pytest.raises(ProtectedRecord, match="広域交付はできません"):
        service.issue_wide_area(sapporo_desk.db, ctx=sapporo_desk.ctx, request=wide)

    accounts.ensure_organisation(db, code="tantei", kind=OrganisationKind.AGENCY, name="調査会社")
    service.grant_official_task(desk.db, ctx=desk.ctx, agency_code="tantei", task_code="local-tax")
    agency = service.context(
        actor=Actor(kind=ActorKind.AGENCY_CLIENT, actor_id="agc_x", organisation_code="tantei"),
        lg_code="131016",
        network=desk.network,
    )
    official = OfficialIssueRequest.model_validate(
        {
            "kind": "record_copy",
            "lg_code": "131016",
            "resident_code": desk.record(child).resident_code,
            "task_code": "local-tax",
            "reason": "地方税法第20条の11による調査",
        }
    )
    with pytest.raises(ProtectedRecord):
        service.issue_official(desk.db, ctx=agency, request=official)
    refusals = db.query(AuditEntry).filter_by(action="certificate.refused").order_by(AuditEntry.id).all()
    # 広域交付 is refused by the home (its order, its chain, naming the visiting clerk) and
    # recorded again by the issuer.
    assert [e.chain for e in refusals] == ["131016", "131016", "011002", "tantei"]
    assert refusals[1].actor_id.endswith("@011002")
    assert "reason=protection_order" in refusals[1].detail
    assert all(e.outcome == "denied" for e in refusals)


def test_an_order_past_its_end_date_no_longer_blocks(desk: Desk) -> None:
    wife = desk.family().person_ids[1]
    until = today() + dt.timedelta(days=30)
    _order(desk, wife, {"name": "加害　太郎"}, valid_until=until.isoformat())
    third = {"kind": "third_party", "name": "加害太郎", "reason": "訴訟の準備のため必要"}
    with pytest.raises(ProtectedRecord):
        desk.window(self_request(wife) | {"requester": third})
    later = desk.at(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(3), tzinfo=dt.UTC))
    assert later.window(self_request(wife) | {"requester": third}).person_ids == (wife,)
    with pytest.raises(InvalidValue):
        _order(desk, wife, {"name": "x"}, valid_until="2000-01-01")


def test_window_request_model_needs_persons_or_a_household() -> None:
    with pytest.raises(ValueError, match="どちらか一方"):
        WindowIssueRequest.model_validate(
            {"kind": "record_copy", "requester": {"kind": "self", "person_id": 1}}
        )
