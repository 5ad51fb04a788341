"""Supervisor approval of events a clerk drafts (職権修正, 誤記修正, 職権消除, 取消し).

The use cases on the database (SQLite and PostgreSQL), then the same through the API:
a clerk drafts, another staff member of the supervisor role approves or refuses, the
drafter never decides their own request, and an approval of a record changed since the
draft records nothing and leaves the request pending for resubmission.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.accounts.domain import Role
from jumin.audit.domain import Actor, ActorKind
from jumin.audit.models import AuditEntry
from jumin.core.errors import Conflict, InvalidValue, NotFound, RuleViolation
from jumin.network_client import InProcessNetworkClient
from jumin.registry import approvals
from jumin.registry import service as registry
from jumin.registry.domain import StaleVersion
from jumin.registry.models import RegistryEvent
from jumin.registry.schemas import CorrectionRequest, FuriganaRequest, PersonRef, RemovalRequest
from tests import factories
from tests.registry.conftest import CHIYODA, SAPPORO, Headers, Post, days_ago, family_from_abroad


def _ctx(network: InProcessNetworkClient, who: str, lg_code: str = CHIYODA) -> registry.RegistryContext:
    return registry.RegistryContext(
        actor=Actor(kind=ActorKind.STAFF, actor_id=who, organisation_code=lg_code),
        lg_code=lg_code,
        network=network,
    )


@pytest.fixture
def family(post: Post, chiyoda: Headers) -> list[int]:
    ids: list[int] = family_from_abroad(post, chiyoda, moved=60)["person_ids"]
    return ids


def _ref(db: Session, network: InProcessNetworkClient, person_id: int) -> PersonRef:
    view = registry.get_record(db, ctx=_ctx(network, "reader"), person_id=person_id, purpose="test")
    return PersonRef(person_id=person_id, version=view.version)


def _correction(ref: PersonRef, **items: Any) -> CorrectionRequest:
    return CorrectionRequest.model_validate(
        {"effective_on": days_ago(60), "person": ref.model_dump(), "items": items, "reason": "戸籍との照合"}
    )


def _audited(db: Session, action: str, target: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action)
    if target is not None:
        query = query.where(AuditEntry.target_id == target)
    return list(db.execute(query).scalars())


def _record(db: Session, network: InProcessNetworkClient, person_id: int) -> registry.RecordView:
    return registry.get_record(db, ctx=_ctx(network, "reader"), person_id=person_id, purpose="test")


# ---------------------------------------------------------------------------
# The use cases


def test_a_clerks_draft_waits_until_another_supervisor_approves_it(
    db: Session, network: InProcessNetworkClient, family: list[int]
) -> None:
    father = family[0]
    clerk, supervisor = _ctx(network, "clerk-a"), _ctx(network, "supervisor-b")
    drafted = approvals.draft(
        db,
        ctx=clerk,
        slug="ex-officio-correction",
        request=_correction(_ref(db, network, father), given_name="太朗"),
        reason="戸籍謄本の記載と異なる (本人が窓口で申出)",
    )
    assert drafted.pending
    assert drafted.revision == 1
    assert drafted.person_ids == (father,)
    # Nothing is recorded by drafting.
    assert _record(db, network, father).record.given_name == "太郎"
    assert _audited(db, "registry.approval_requested", str(drafted.id))

    pending = approvals.list_requests(db, ctx=supervisor, statuses=[approvals.ApprovalStatus.PENDING])
    assert [p.id for p in pending] == [drafted.id]
    detail = approvals.get_request(db, ctx=supervisor, request_id=drafted.id)
    assert detail.current[0].record.given_name == "太郎"
    proposed = detail.proposed[0]
    assert proposed is not None
    assert proposed.record.given_name == "太朗"
    assert detail.problem is None
    # Showing the draft against the record recorded nothing either.
    assert _record(db, network, father).record.given_name == "太郎"

    done = approvals.approve(db, ctx=supervisor, request_id=drafted.id, revision=1, note="謄本を確認")
    assert done.request.status is approvals.ApprovalStatus.APPROVED
    assert done.request.event_id == done.outcome.event_id
    assert done.request.decided_by == "supervisor-b"
    assert _record(db, network, father).record.given_name == "太朗"
    event = db.get(RegistryEvent, done.outcome.event_id)
    assert event is not None
    assert event.kind == "ex_officio_correction"
    assert event.recorded_by == "supervisor-b"
    assert event.reason == "戸籍との照合"
    assert _audited(db, "registry.approval_approved", str(drafted.id))
    with pytest.raises(Conflict):
        approvals.approve(db, ctx=_ctx(network, "supervisor-c"), request_id=drafted.id)


def test_a_draft_is_checked_by_the_events_own_rules_and_nothing_is_kept_when_refused(
    db: Session, network: InProcessNetworkClient, family: list[int]
) -> None:
    clerk = _ctx(network, "clerk-a")
    ref = _ref(db, network, family[0])
    with pytest.raises(InvalidValue) as bad_item:
        approvals.draft(
            db,
            ctx=clerk,
            slug="ex-officio-correction",
            request=_correction(ref, resident_code="1"),
            reason="x",
        )
    assert bad_item.value.field == "items.resident_code"
    with pytest.raises(StaleVersion):
        approvals.draft(
            db,
            ctx=clerk,
            slug="clerical-correction",
            request=_correction(PersonRef(person_id=ref.person_id, version=ref.version + 5), given_name="X"),
            reason="x",
        )
    with pytest.raises(InvalidValue) as no_reason:
        approvals.draft(
            db,
            ctx=clerk,
            slug="ex-officio-correction",
            request=_correction(ref, given_name="太朗"),
            reason=" ",
        )
    assert no_reason.value.field == "approval_reason"
    # An event a clerk records alone, or a new record, is not drafted.
    for slug in ("furigana", "ex-officio-entry"):
        with pytest.raises(InvalidValue):
            approvals.draft(db, ctx=clerk, slug=slug, request=_correction(ref, given_name="太朗"), reason="x")
    assert approvals.list_requests(db, ctx=clerk) == []
    assert not _audited(db, "registry.approval_requested")
    assert _record(db, network, family[0]).version == ref.version


def test_the_drafter_cannot_decide_their_own_request_and_the_attempt_is_audited(
    db: Session, network: InProcessNetworkClient, family: list[int]
) -> None:
    # A supervisor may draft too; then another supervisor decides.
    own = _ctx(network, "supervisor-a")
    drafted = approvals.draft(
        db,
        ctx=own,
        slug="ex-officio-correction",
        request=_correction(_ref(db, network, family[1]), honseki="東京都千代田区千代田2番"),
        reason="本籍地からの通知",
    )
    with pytest.raises(approvals.OwnRequest) as refused:
        approvals.approve(db, ctx=own, request_id=drafted.id)
    assert refused.value.commits_recorded_work
    with pytest.raises(approvals.OwnRequest):
        approvals.refuse(db, ctx=own, request_id=drafted.id, note="取り下げたい")
    denied = _audited(db, "access.denied", str(drafted.id))
    assert len(denied) == 2
    assert all(d.outcome == "denied" for d in denied)
    assert approvals.get_request(db, ctx=own, request_id=drafted.id).request.pending
    # Someone else may not withdraw it; the drafter may.
    with pytest.raises(approvals.Forbidden):
        approvals.withdraw(db, ctx=_ctx(network, "supervisor-b"), request_id=drafted.id)
    withdrawn = approvals.withdraw(db, ctx=own, request_id=drafted.id)
    assert withdrawn.status is approvals.ApprovalStatus.WITHDRAWN
    with pytest.raises(Conflict):
        approvals.approve(db, ctx=_ctx(network, "supervisor-b"), request_id=drafted.id)


def test_an_approval_of_a_record_changed_since_the_draft_is_refused_and_the_draft_stays_pending(
    db: Session, network: InProcessNetworkClient, family: list[int]
) -> None:
    mother = family[1]
    clerk, supervisor = _ctx(network, "clerk-a"), _ctx(network, "supervisor-b")
    drafted = approvals.draft(
        db,
        ctx=clerk,
        slug="ex-officio-correction",
        request=_correction(_ref(db, network, mother), given_name="華子"),
        reason="戸籍の記載",
    )
    # Meanwhile another clerk records the furigana: the version the draft names is gone.
    registry.furigana(
        db,
        ctx=_ctx(network, "clerk-c"),
        request=FuriganaRequest.model_validate(
            {
                "effective_on": days_ago(1),
                "person": _ref(db, network, mother).model_dump(),
                "family_name_kana": "ヤマダ",
                "given_name_kana": "ハナ",
            }
        ),
    )
    detail = approvals.get_request(db, ctx=supervisor, request_id=drafted.id)
    assert detail.stale
    assert detail.problem == approvals.STALE_DETAIL
    events_before = db.execute(select(RegistryEvent)).scalars().all()
    with pytest.raises(approvals.StaleApproval) as stale:
        approvals.approve(db, ctx=supervisor, request_id=drafted.id)
    assert stale.value.status == 409
    assert stale.value.commits_recorded_work
    assert "他の職員がこの住民票を更新した" in stale.value.detail
    assert db.execute(select(RegistryEvent)).scalars().all() == events_before
    still = approvals.get_request(db, ctx=supervisor, request_id=drafted.id).request
    assert still.pending
    assert still.stale
    assert still.stale_at is not None
    assert _audited(db, "registry.approval_failed", str(drafted.id))[0].outcome == "failure"
    assert _record(db, network, mother).record.given_name == "花子"

    # Resubmitted against the current record (the drafter only), then approved.
    with pytest.raises(approvals.Forbidden):
        approvals.resubmit(
            db,
            ctx=supervisor,
            request_id=drafted.id,
            request=_correction(_ref(db, network, mother), given_name="華子"),
            reason="x",
        )
    again = approvals.resubmit(
        db,
        ctx=clerk,
        request_id=drafted.id,
        request=_correction(_ref(db, network, mother), given_name="華子"),
        reason="戸籍の記載 (最新の記録で再提出)",
    )
    assert again.revision == 2
    assert not again.stale
    # A supervisor who read revision 1 cannot approve revision 2 unread.
    with pytest.raises(Conflict):
        approvals.approve(db, ctx=supervisor, request_id=drafted.id, revision=1)
    approvals.approve(db, ctx=supervisor, request_id=drafted.id, revision=2)
    record = _record(db, network, mother).record
    assert record.given_name == "華子"
    assert record.given_name_kana == "ハナ"


def test_a_refusal_needs_a_reason_and_records_nothing(
    db: Session, network: InProcessNetworkClient, family: list[int]
) -> None:
    child = family[2]
    clerk, supervisor = _ctx(network, "clerk-a"), _ctx(network, "supervisor-b")
    ref = _ref(db, network, child)
    removal = RemovalRequest.model_validate(
        {"effective_on": days_ago(3), "person": ref.model_dump(), "reason": "居住の実態なし"}
    )
    drafted = approvals.draft(
        db, ctx=clerk, slug="ex-officio-removal", request=removal, reason="実態調査の結果"
    )
    detail = approvals.get_request(db, ctx=supervisor, request_id=drafted.id)
    proposed = detail.proposed[0]
    assert proposed is not None
    assert proposed.record.status.value == "removed"
    with pytest.raises(InvalidValue) as no_note:
        approvals.refuse(db, ctx=supervisor, request_id=drafted.id, note="")
    assert no_note.value.field == "note"
    refused = approvals.refuse(db, ctx=supervisor, request_id=drafted.id, note="調査記録が添付されていない")
    assert refused.status is approvals.ApprovalStatus.REFUSED
    assert refused.decision_note == "調査記録が添付されていない"
    assert _record(db, network, child).version == ref.version
    assert _audited(db, "registry.approval_refused", str(drafted.id))
    with pytest.raises(Conflict):
        approvals.resubmit(db, ctx=clerk, request_id=drafted.id, request=removal, reason="再申請")


def test_another_municipality_sees_no_request_and_a_rule_broken_since_the_draft_is_reported(
    db: Session, network: InProcessNetworkClient, family: list[int]
) -> None:
    clerk, supervisor = _ctx(network, "clerk-a"), _ctx(network, "supervisor-b")
    father = family[0]
    drafted = approvals.draft(
        db,
        ctx=clerk,
        slug="ex-officio-correction",
        request=_correction(_ref(db, network, father), old_surname="鈴木"),
        reason="旧氏の記載漏れ",
    )
    with pytest.raises(NotFound):
        approvals.approve(db, ctx=_ctx(network, "sapporo-sv", SAPPORO), request_id=drafted.id)
    assert approvals.list_requests(db, ctx=_ctx(network, "sapporo-sv", SAPPORO)) == []
    assert [r.id for r in approvals.list_requests(db, ctx=clerk, person_id=father)] == [drafted.id]
    assert approvals.list_requests(db, ctx=clerk, person_id=family[2]) == []
    # A cancellation drafted for the same person: approved first, it makes the correction stale.
    events = registry.events_of(db, ctx=supervisor, person_id=father, purpose="test")
    cancel = approvals.draft(
        db,
        ctx=clerk,
        slug="cancellation",
        request=registry.COMMANDS_BY_SLUG["cancellation"].request_type.model_validate(
            {
                "event_id": events[0].id,
                "reason": "誤って記録した転入",
                "versions": [_ref(db, network, p).model_dump() for p in family],
            }
        ),
        reason="転入の記録の誤り",
    )
    detail = approvals.get_request(db, ctx=supervisor, request_id=cancel.id)
    assert detail.proposed == (None, None, None)  # a cancelled 転入 leaves no record
    assert detail.problem is None
    approvals.approve(db, ctx=supervisor, request_id=cancel.id)
    with pytest.raises((approvals.StaleApproval, RuleViolation)):
        approvals.approve(db, ctx=supervisor, request_id=drafted.id)


# ---------------------------------------------------------------------------
# The API


@pytest.fixture
def clerk(client: TestClient, db: Session) -> Headers:
    return factories.auth(client, factories.staff(db, Role.CLERK, org=CHIYODA))


@pytest.fixture
def supervisor(client: TestClient, db: Session) -> Headers:
    return factories.auth(client, factories.staff(db, Role.SUPERVISOR, org=CHIYODA))


def _version(client: TestClient, headers: Headers, person_id: int) -> int:
    return int(client.get(f"/registry/persons/{person_id}", headers=headers).json()["version"])


def test_the_api_offers_drafting_deciding_and_listing(
    client: TestClient, clerk: Headers, supervisor: Headers, family: list[int]
) -> None:
    father = family[0]
    body = {
        "approval_reason": "戸籍謄本との照合",
        "request": {
            "effective_on": days_ago(60),
            "person": {"person_id": father, "version": _version(client, clerk, father)},
            "items": {"given_name": "太朗"},
        },
    }
    # The clerk may not record it, but may ask for it.
    assert (
        client.post("/registry/events/ex-officio-correction", json=body["request"], headers=clerk).status_code
        == 403
    )
    bad = client.post(
        "/registry/approval-requests/ex-officio-correction",
        json=body | {"request": body["request"] | {"items": {"resident_code": "1"}}},
        headers=clerk,
    )
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["field"] == "items.resident_code"
    assert client.post("/registry/approval-requests/furigana", json=body, headers=clerk).status_code in (
        404,
        405,
    )
    drafted = client.post("/registry/approval-requests/ex-officio-correction", json=body, headers=clerk)
    assert drafted.status_code == 201, drafted.text
    request_id = drafted.json()["id"]
    assert drafted.json()["status"] == "pending"
    assert drafted.json()["request"]["items"] == {"given_name": "太朗"}

    listed = client.get(
        "/registry/approval-requests", params={"status": "pending"}, headers=supervisor
    ).json()
    assert [r["id"] for r in listed] == [request_id]
    assert client.get("/registry/approval-requests", params={"mine": "true"}, headers=supervisor).json() == []
    detail = client.get(f"/registry/approval-requests/{request_id}", headers=supervisor).json()
    assert detail["current"][0]["given_name"] == "太郎"
    assert detail["proposed"][0]["given_name"] == "太朗"
    assert detail["current"][0]["individual_number"].startswith("********")

    # Deciding is the supervisor's: a clerk is refused by the route's rule.
    assert (
        client.post(f"/registry/approval-requests/{request_id}/approve", json={}, headers=clerk).status_code
        == 403
    )
    approved = client.post(
        f"/registry/approval-requests/{request_id}/approve",
        json={"revision": 1, "note": "確認済み"},
        headers=supervisor,
    )
    assert approved.status_code == 201, approved.text
    assert approved.json()["event"]["label"] == "職権修正"
    assert approved.json()["approval"]["event_id"] == approved.json()["event"]["event_id"]
    assert client.get(f"/registry/persons/{father}", headers=clerk).json()["given_name"] == "太朗"
    again = client.post(
        f"/registry/approval-requests/{request_id}/refuse", json={"note": "x"}, headers=supervisor
    )
    assert again.status_code == 409


def test_the_api_refuses_own_and_stale_approvals_and_takes_a_resubmission(
    client: TestClient, db: Session, clerk: Headers, supervisor: Headers, family: list[int], post: Post
) -> None:
    mother = family[1]
    own = client.post(
        "/registry/approval-requests/clerical-correction",
        json={
            "approval_reason": "誤記",
            "request": {
                "effective_on": days_ago(60),
                "person": {"person_id": mother, "version": _version(client, supervisor, mother)},
                "items": {"given_name": "華子"},
            },
        },
        headers=supervisor,
    )
    assert own.status_code == 201
    request_id = own.json()["id"]
    refused = client.post(f"/registry/approval-requests/{request_id}/approve", json={}, headers=supervisor)
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:jumin:problem:own-approval-request"
    assert (
        db.execute(
            select(AuditEntry).where(
                AuditEntry.action == "access.denied", AuditEntry.target_id == str(request_id)
            )
        )
        .scalars()
        .first()
    )

    other = factories.auth(client, factories.staff(db, Role.SUPERVISOR, org=CHIYODA))
    post(
        "furigana",
        {
            "effective_on": days_ago(1),
            "person": {"person_id": mother, "version": _version(client, clerk, mother)},
            "family_name_kana": "ヤマダ",
            "given_name_kana": "ハナ",
        },
        clerk,
    )
    stale = client.post(f"/registry/approval-requests/{request_id}/approve", json={}, headers=other)
    assert stale.status_code == 409
    assert stale.json()["type"] == "urn:jumin:problem:stale-approval-request"
    assert "再提出" in stale.json()["detail"]
    assert (
        client.get(f"/registry/approval-requests/{request_id}", headers=other).json()["status"] == "pending"
    )

    malformed = client.put(
        f"/registry/approval-requests/{request_id}",
        json={"approval_reason": "再提出", "request": {"person": {"person_id": mother}}},
        headers=supervisor,
    )
    assert malformed.status_code == 422
    resubmitted = client.put(
        f"/registry/approval-requests/{request_id}",
        json={
            "approval_reason": "最新の記録で再提出",
            "request": {
                "effective_on": days_ago(60),
                "person": {"person_id": mother, "version": _version(client, supervisor, mother)},
                "items": {"given_name": "華子"},
            },
        },
        headers=supervisor,
    )
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["revision"] == 2
    assert resubmitted.json()["stale_at"] is None
    ok = client.post(f"/registry/approval-requests/{request_id}/approve", json={"revision": 2}, headers=other)
    assert ok.status_code == 201, ok.text
    assert client.get(f"/registry/persons/{mother}", headers=clerk).json()["given_name"] == "華子"
