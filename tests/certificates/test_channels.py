"""The four channels end to end, and the rules each one enforces.

Window (a clerk for the requester at the counter), kiosk (the resident with their PIN),
wide-area (another municipality's clerk, audited at both ends) and official requests
(an agency client). Each is driven over HTTP once; the rules are checked at the service.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.audit.domain import Actor, ActorKind
from jumin.audit.models import AuditEntry
from jumin.certificates import service, signing
from jumin.certificates.domain import KioskRefused, OfficialTaskNotGranted
from jumin.certificates.schemas import KioskIssueRequest, OfficialIssueRequest, WideAreaIssueRequest
from jumin.core.errors import InvalidValue, NotFound, RuleViolation
from jumin.registry.relay import Relay, RelayReport
from tests import factories
from tests.certificates.conftest import (
    Desk,
    Headers,
    card_holder,
    card_login,
    days_ago,
    joined,
    pypdf_text,
    self_request,
    squash,
    today,
)

# ---------------------------------------------------------------------------
# Window


def test_a_clerk_issues_at_the_window_over_http_and_the_ledger_records_it(
    desk: Desk, client: TestClient, chiyoda: Headers, sapporo: Headers, db: Session
) -> None:
    head, wife, _ = desk.family().person_ids
    body = {
        "kind": "record_copy",
        "person_ids": [head, wife],
        "include": ["head_and_relationship"],
        "requester": {"kind": "agent", "name": "代理　太郎", "authority": "委任状 (本人署名・押印あり)"},
    }
    r = client.post("/certificates/window", json=body, headers=chiyoda)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    number, sha = r.headers["x-issue-number"], r.headers["x-document-sha256"]
    assert r.headers["x-fee-yen"] == "300"
    assert f'filename="{number}.pdf"' in r.headers["content-disposition"]
    # The chosen members and no one else: the child of the household is not on it.
    text = squash(pypdf_text(r.content))
    assert "山田太郎" in text
    assert "山田花子" in text
    assert "山田一郎" not in text
    assert squash("世帯主山田　太郎") in text

    record = client.get(f"/certificates/issuances/{number}", headers=chiyoda).json()
    assert record["channel"] == "window"
    assert record["document_kind"] == "record_copy"
    assert record["title"] == "住民票の写し"
    assert record["person_ids"] == [head, wife]
    assert record["requester_kind"] == "agent"
    assert record["requester_name"] == "代理　太郎"
    assert record["authority"] == "委任状 (本人署名・押印あり)"
    assert record["as_of"] is None
    assert record["fee_yen"] == 300
    assert record["document_sha256"] == sha
    assert record["items"]
    assert "head_and_relationship" in record["items"]
    listed = client.get("/certificates/issuances", headers=chiyoda, params={"channel": "window"}).json()
    assert [i["issue_number"] for i in listed["results"]] == [number]
    # Another municipality neither sees the record nor learns it exists.
    assert client.get(f"/certificates/issuances/{number}", headers=sapporo).status_code == 404

    issued = db.query(AuditEntry).filter_by(action="certificate.issued").one()
    assert issued.target_id == number
    assert sha in issued.detail
    assert "requester=agent" in issued.detail

    preview = client.post("/certificates/window/preview", json=body, headers=chiyoda)
    assert preview.status_code == 200
    assert preview.json()["title"] == "住民票の写し"
    assert preview.json()["sections"][0]["rows"][0] == {"label": "氏名", "value": "山田　太郎"}
    assert preview.json()["fee_yen"] == 300


def test_requesters_bring_what_their_kind_needs(desk: Desk) -> None:
    head, wife, child = desk.family().person_ids
    stranger = desk.family(line="千代田九丁目9番").person_ids[0]

    with pytest.raises(RuleViolation, match="本人の請求ですが"):
        desk.window(self_request(head) | {"requester": {"kind": "self", "person_id": wife}})
    with pytest.raises(RuleViolation, match="同じ世帯"):
        desk.window(self_request(head) | {"requester": {"kind": "household_member", "person_id": stranger}})
    with pytest.raises(InvalidValue, match="委任状"):
        desk.window(self_request(head) | {"requester": {"kind": "agent", "name": "代理　太郎"}})
    with pytest.raises(InvalidValue, match="利用の目的"):
        desk.window(
            self_request(head) | {"requester": {"kind": "third_party", "name": "債権者", "reason": "必要"}}
        )
    third = {"kind": "third_party", "name": "株式会社 債権回収", "reason": "貸金返還請求訴訟の提起のため"}
    with pytest.raises(RuleViolation, match="個人番号"):
        desk.window(self_request(head, include=["individual_number"]) | {"requester": third})
    with pytest.raises(RuleViolation, match="本籍"):
        desk.window(self_request(head, include=["honseki"]) | {"requester": third})

    issued = desk.window(self_request(head) | {"requester": third})
    view = service.get_issuance(desk.db, actor=desk.ctx.actor, lg_code="131016", number=issued.issue_number)
    assert view.requester_kind.value == "third_party"
    assert view.requester_name == "株式会社 債権回収"
    assert view.reason == "貸金返還請求訴訟の提起のため"
    member = desk.window(self_request(child) | {"requester": {"kind": "household_member", "person_id": wife}})
    assert (
        service.get_issuance(
            desk.db, actor=desk.ctx.actor, lg_code="131016", number=member.issue_number
        ).requester_name
        == "山田　花子"
    )


# ---------------------------------------------------------------------------
# Kiosk


def test_a_resident_uses_the_kiosk_with_a_pin_and_is_locked_after_three_wrong_ones(
    desk: Desk, client: TestClient, db: Session
) -> None:
    head, wife, child = desk.family().person_ids
    code = desk.record(head).resident_code
    service.set_pin(desk.db, ctx=desk.ctx, person_id=head, pin="1234")
    body = {"lg_code": "131016", "resident_code": code, "pin": "1234", "whole_household": True}
    r = client.post("/certificates/kiosk", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["x-fee-yen"] == "200"
    text = squash(pypdf_text(r.content))
    assert all(name in text for name in ("山田太郎", "山田花子", "山田一郎"))
    record = service.get_issuance(
        db, actor=desk.ctx.actor, lg_code="131016", number=r.headers["x-issue-number"]
    )
    assert record.channel.value == "kiosk"
    assert record.issued_by == f"resident:person:{head}@131016"
    assert record.form.value == "household"
    assert list(record.person_ids) == [head, wife, child]

    wrong = body | {"pin": "9999"}
    for _ in range(3):
        failed = client.post("/certificates/kiosk", json=wrong)
        assert failed.status_code == 401
        assert failed.json()["detail"] == "住民票コードまたは暗証番号が正しくありません。"
    locked = client.post("/certificates/kiosk", json=body)
    assert locked.status_code == 423
    assert "窓口で暗証番号を再設定" in locked.json()["detail"]
    entries = db.query(AuditEntry).filter(AuditEntry.action.like("resident.%")).order_by(AuditEntry.id).all()
    assert [e.action for e in entries] == [
        "resident.login_succeeded",
        "resident.login_failed",
        "resident.login_failed",
        "resident.locked_out",  # the third wrong PIN locks...
        "resident.login_failed",  # ...and is itself a failure
        "resident.login_failed",  # the right PIN, refused while locked
    ]
    assert entries[-1].outcome == "denied"

    # The window resets the PIN, which unlocks it.
    service.set_pin(desk.db, ctx=desk.ctx, person_id=head, pin="4321")
    assert client.post("/certificates/kiosk", json=body | {"pin": "4321"}).status_code == 200
    unknown = client.post("/certificates/kiosk", json=body | {"resident_code": "24727059608"})
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == failed.json()["detail"]


def _kiosk(desk: Desk, person_id: int, **extra: object) -> service.IssuedCertificate:
    return service.issue_at_kiosk(
        desk.db,
        network=desk.network,
        request=KioskIssueRequest.model_validate(
            {
                "lg_code": "131016",
                "resident_code": desk.record(person_id).resident_code,
                "pin": "1234",
                **extra,
            }
        ),
    )


def test_kiosk_rules_household_form_only_no_move_out_no_deceased(desk: Desk) -> None:
    head, wife, child = desk.family().person_ids
    for person in (head, wife, child):
        service.set_pin(desk.db, ctx=desk.ctx, person_id=person, pin="1234")
    assert _kiosk(desk, head).fee_yen == 200
    with pytest.raises(KioskRefused, match="世帯連記式"):
        _kiosk(desk, head, form="individual")
    with pytest.raises(KioskRefused, match="住民票の写し"):
        _kiosk(desk, head, kind="record_certificate")

    desk.event(
        "death", {"effective_on": days_ago(1), "person": {"person_id": child, "version": desk.version(child)}}
    )
    with pytest.raises(KioskRefused, match="死亡により消除された方"):
        _kiosk(desk, child)
    # The living may still have their household's copy; the deceased is not on it.
    assert _kiosk(desk, head, whole_household=True).person_ids == (head, wife)

    planned = today().toordinal() + 10
    import datetime as dt

    desk.event(
        "move-out",
        {
            "effective_on": dt.date.fromordinal(planned).isoformat(),
            "persons": [{"person_id": wife, "version": desk.version(wife)}],
            "destination": "大阪府大阪市北区",
        },
    )
    with pytest.raises(KioskRefused, match="転出届"):
        _kiosk(desk, wife)
    with pytest.raises(KioskRefused, match="転出届"):
        _kiosk(desk, head, whole_household=True)
    assert _kiosk(desk, head).person_ids == (head,)


def test_a_resident_logs_in_with_the_card_at_the_kiosk(
    desk: Desk, client: TestClient, db: Session, national_db: Session, chiyoda: Headers
) -> None:
    head, wife, child = desk.family().person_ids
    card_number = card_holder(national_db, desk.record(head))
    resident = card_login(client, national_db, card_number)

    body = {"lg_code": "131016", "whole_household": True, "include": ["head_and_relationship"]}
    r = client.post("/certificates/kiosk/card", json=body, headers=resident)
    assert r.status_code == 200, r.text
    assert r.headers["x-fee-yen"] == "200"
    text = squash(pypdf_text(r.content))
    assert all(name in text for name in ("山田太郎", "山田花子", "山田一郎"))
    assert squash("世帯主山田　太郎") in text
    record = service.get_issuance(
        db, actor=desk.ctx.actor, lg_code="131016", number=r.headers["x-issue-number"]
    )
    assert record.channel.value == "kiosk"
    assert record.issued_by == f"resident:person:{head}@131016"
    assert list(record.person_ids) == [head, wife, child]
    login = db.query(AuditEntry).filter_by(action="resident.login_succeeded").one()
    assert login.target_id == str(head)
    assert login.detail.startswith("method=card card=")
    assert desk.record(head).resident_code not in login.detail

    # The kiosk's rules hold whatever the login: household form only.
    individual = client.post("/certificates/kiosk/card", json=body | {"form": "individual"}, headers=resident)
    assert individual.status_code == 403
    assert individual.json()["type"] == "urn:jumin:problem:kiosk-refused"
    # A municipality whose register does not hold the card's resident refuses, audited.
    elsewhere = client.post("/certificates/kiosk/card", json=body | {"lg_code": "011002"}, headers=resident)
    assert elsewhere.status_code == 401
    assert elsewhere.json()["field"] == "lg_code"
    assert db.query(AuditEntry).filter_by(action="resident.login_failed", chain="011002").count() == 1
    # Only a card session opens this route: no token, or a staff token, is a 401.
    assert client.post("/certificates/kiosk/card", json=body).status_code == 401
    assert client.post("/certificates/kiosk/card", json=body, headers=chiyoda).status_code == 401


# ---------------------------------------------------------------------------
# Wide-area (広域交付)


def test_another_municipality_issues_a_record_copy_audited_at_both_ends(
    desk: Desk,
    sapporo_desk: Desk,
    client: TestClient,
    sapporo: Headers,
    chiyoda: Headers,
    db: Session,
    national_db: Session,
) -> None:
    head, _wife, _child = desk.family().person_ids
    code = desk.record(head).resident_code
    r = client.post(
        "/certificates/wide-area",
        json={
            "home_lg_code": "131016",
            "resident_code": code,
            "whole_household": True,
            "include": ["head_and_relationship"],
        },
        headers=sapporo,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-issue-number"].startswith("011002-")
    assert r.headers["x-fee-yen"] == "300"
    text = squash(pypdf_text(r.content))
    assert "札幌市長札幌次郎" in text  # the issuing municipality certifies
    signature = signing.check_signature(r.content)
    assert signature.valid
    assert signature.signer is not None
    assert "OU=011002" in signature.signer  # ...and signs with its own key
    assert "東京都千代田区千代田一丁目1番1号" in text  # the home register's address
    assert all(name in text for name in ("山田太郎", "山田花子", "山田一郎"))

    number = r.headers["x-issue-number"]
    visiting = db.query(AuditEntry).filter_by(chain="011002", action="certificate.issued").one()
    assert visiting.target_id == number
    assert "channel=wide_area" in visiting.detail
    assert "home=131016" in visiting.detail
    # The home answered from its own register, through the network: its reads and its
    # provision are in its own chain, naming the visiting clerk; the issuer read no register.
    home = db.query(AuditEntry).filter_by(chain="131016", action="certificate.record_provided").one()
    assert home.target_kind == "wide_area_request"
    assert "issued_by=011002" in home.detail
    assert "@011002" in home.detail
    reads = [
        e
        for e in db.query(AuditEntry).filter_by(chain="131016", action="registry.read").all()
        if e.actor_id.endswith("@011002")
    ]
    assert {e.target_id for e in reads} == {"search", f"household:{desk.record(head).household_id}"}
    assert db.query(AuditEntry).filter_by(chain="011002", action="registry.read").count() == 0
    forwarded = national_db.query(AuditEntry).filter_by(action="network.wide_area_request_forwarded").one()
    assert (forwarded.target_id, forwarded.actor_id) == (code, "municipality:011002")

    # The relay tells the home that the copy was issued; the home keeps the record of it.
    relay = Relay(url="http://testserver", http=client, session_scope=lambda: joined(db))
    report = RelayReport()
    relay.deliver_wide_area_notices(report)
    assert (report.wide_area_notices, report.errors) == (1, [])
    told = db.query(AuditEntry).filter_by(chain="131016", action="certificate.wide_area_issued").one()
    assert told.target_id == number
    relay.deliver_wide_area_notices(report)
    assert report.wide_area_notices == 1  # delivered once, not again
    provided = client.get("/certificates/wide-area/provided", headers=chiyoda).json()
    assert [(p["issuer_lg_code"], p["issue_number"], p["fee_yen"]) for p in provided] == [
        ("011002", number, 300)
    ]
    assert client.get("/certificates/wide-area/provided", headers=sapporo).json() == []

    view = service.get_issuance(desk.db, actor=desk.ctx.actor, lg_code="131016", number=number)
    assert (view.lg_code, view.home_lg_code, view.channel.value) == ("011002", "131016", "wide_area")

    def wide(**body: object) -> service.IssuedCertificate:
        request = WideAreaIssueRequest.model_validate(
            {"home_lg_code": "131016", "resident_code": code, **body}
        )
        return service.issue_wide_area(sapporo_desk.db, ctx=sapporo_desk.ctx, request=request)

    with pytest.raises(RuleViolation, match="本籍・筆頭者"):
        wide(include=["honseki"])
    with pytest.raises(RuleViolation, match="個人番号"):
        wide(include=["individual_number"])
    with pytest.raises(InvalidValue, match="自団体"):
        service.issue_wide_area(
            desk.db,
            ctx=desk.ctx,
            request=WideAreaIssueRequest.model_validate({"home_lg_code": "131016", "resident_code": code}),
        )
    with pytest.raises(NotFound):
        wide(resident_code="24727059608")
    assert wide(form="individual").person_ids == (head,)


# ---------------------------------------------------------------------------
# Official requests (公用請求)


def _agency_token(client: TestClient, db: Session) -> Headers:
    accounts.ensure_organisation(db, code="nenkin", kind=OrganisationKind.AGENCY, name="日本年金機構")
    created = accounts.create_agency_client(db, actor=None, organisation_code="nenkin", name="年金給付")
    token = accounts.issue_client_token(db, client_id=created.client_id, client_secret=created.client_secret)
    return {"Authorization": f"Bearer {token.access_token}"}


def test_an_agency_requests_officially_only_for_a_task_granted_to_it(
    desk: Desk, client: TestClient, db: Session, chiyoda: Headers, sapporo: Headers
) -> None:
    head = desk.family().person_ids[0]
    agency = _agency_token(client, db)
    code = desk.record(head).resident_code
    body = {
        "kind": "record_copy",
        "lg_code": "131016",
        "resident_code": code,
        "include": ["resident_code"],
        "task_code": "national-pension",
        "reason": "国民年金法第108条に基づく年金給付の事務",
    }
    # Before the municipality accepts the agency for the task: refused, and the refusal kept.
    refused = client.post("/certificates/official", json=body, headers=agency)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"] == "urn:jumin:problem:official-task-not-granted"
    assert "国民年金・厚生年金保険の給付" in refused.json()["detail"]
    kept = db.query(AuditEntry).filter_by(action="certificate.refused", chain="nenkin").one()
    assert (kept.target_kind, kept.target_id, kept.outcome) == ("resident_code", code, "denied")

    tasks = client.get("/certificates/official-tasks", headers=chiyoda).json()
    pension = next(t for t in tasks if t["code"] == "national-pension")
    assert "国民年金法第108条" in pension["basis"]
    assert "honseki" not in pension["items"]
    grant = {"agency_code": "nenkin", "task_code": "national-pension"}
    granted = client.post("/certificates/official-grants", json=grant, headers=chiyoda)
    assert granted.status_code == 201, granted.text
    assert granted.json()["active"] is True
    assert db.query(AuditEntry).filter_by(action="network.agency_task_granted", chain="131016").count() == 1
    # Sapporo's supervisor grants for Sapporo's residents only.
    assert client.get("/certificates/official-grants", headers=sapporo).json() == []

    r = client.post("/certificates/official", json=body, headers=agency)
    assert r.status_code == 200, r.text
    assert r.headers["x-fee-yen"] == "0"
    text = squash(pypdf_text(r.content))
    assert squash(f"住民票コード{code}") in text
    assert "千代田区長千代田一郎" in text  # the home municipality certifies
    record = client.get(f"/certificates/issuances/{r.headers['x-issue-number']}", headers=chiyoda).json()
    assert record["channel"] == "official"
    assert record["requester_kind"] == "official"
    assert record["requester_name"] == "日本年金機構"
    assert record["task_code"] == "national-pension"
    assert record["reason"] == "国民年金法第108条に基づく年金給付の事務"
    entry = db.query(AuditEntry).filter_by(action="certificate.issued", chain="nenkin").one()
    assert entry.purpose == "national-pension"
    assert db.query(AuditEntry).filter_by(action="certificate.record_provided", chain="131016").count() == 1

    # The task decides the items: no 本籍 for pension benefits.
    no_honseki = client.post("/certificates/official", json=body | {"include": ["honseki"]}, headers=agency)
    assert no_honseki.status_code == 403
    assert "本籍・筆頭者" in no_honseki.json()["detail"]
    unknown = client.post("/certificates/official", json=body | {"task_code": "curiosity"}, headers=agency)
    assert unknown.status_code == 403
    assert "登録されていません" in unknown.json()["detail"]

    revoked = client.post("/certificates/official-grants/revoke", json=grant, headers=chiyoda)
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    assert client.post("/certificates/official", json=body, headers=agency).status_code == 403
    assert db.query(AuditEntry).filter_by(action="certificate.refused", chain="nenkin").count() == 4

    # A staff member cannot use the agency route, nor an agency the window; a clerk cannot grant.
    assert client.post("/certificates/official", json=body, headers=chiyoda).status_code == 403
    assert client.post("/certificates/window", json=self_request(head), headers=agency).status_code == 403
    clerk = factories.auth(client, factories.staff(db, Role.CLERK, org="131016"))
    assert client.post("/certificates/official-grants", json=grant, headers=clerk).status_code == 403
    unknown_agency = client.post(
        "/certificates/official-grants", json=grant | {"agency_code": "nobody"}, headers=chiyoda
    )
    assert unknown_agency.status_code == 404


def test_an_official_task_limits_the_document_kinds(desk: Desk, db: Session) -> None:
    head = desk.family().person_ids[0]
    accounts.ensure_organisation(db, code="koseki", kind=OrganisationKind.AGENCY, name="法務局")
    service.grant_official_task(desk.db, ctx=desk.ctx, agency_code="koseki", task_code="family-register")
    agency = service.context(
        actor=Actor(kind=ActorKind.AGENCY_CLIENT, actor_id="agc_koseki", organisation_code="koseki"),
        lg_code="131016",
        network=desk.network,
    )

    def official(**extra: object) -> service.IssuedCertificate:
        request = OfficialIssueRequest.model_validate(
            {
                "kind": "record_copy",
                "lg_code": "131016",
                "resident_code": desk.record(head).resident_code,
                "task_code": "family-register",
                "reason": "戸籍の附票の記載のため",
                **extra,
            }
        )
        return service.issue_official(desk.db, ctx=agency, request=request)

    issued = official(include=["honseki"])
    assert squash("本籍東京都千代田区千代田1番") in squash(pypdf_text(issued.pdf))
    with pytest.raises(OfficialTaskNotGranted, match="住民票記載事項証明書"):
        official(kind="record_certificate")
    with pytest.raises(OfficialTaskNotGranted, match="個人番号"):
        official(include=["individual_number"])
