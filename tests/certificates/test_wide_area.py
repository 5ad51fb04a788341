"""広域交付 through the network: who may ask, what leaves the home register, and every refusal.

The issuer (Sapporo, 011002) never reads the home register (Chiyoda, 131016): it signs a
request to the national network, which forwards it, signed with its own key, to the
home's endpoint; the home answers from its register and signs the answer. Here all three
run in this process (the home over HTTP into the app, tests/certificates/conftest.py);
tests/network/test_wide_area_e2e.py runs them as separate servers on separate databases.
"""

from __future__ import annotations

import json
from secrets import token_hex

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.audit.models import AuditEntry
from jumin.certificates import service
from jumin.certificates import widearea as home_side
from jumin.certificates.domain import ProtectedRecord
from jumin.certificates.schemas import ProtectionOrderRequest, WideAreaIssueRequest
from jumin.certificates.widearea_models import WideAreaNotice, WideAreaProvision
from jumin.core.errors import InvalidValue, NotFound
from jumin.core.replication import municipality_key_name, sign
from jumin.core.widearea import (
    HOME_RECORDS_PATH,
    WIDE_AREA_RECORDS_PATH,
    HomeUnavailable,
    RecordRequest,
    WideAreaKind,
    envelope,
)
from jumin.db import utcnow
from jumin.keys import load_or_create_ed25519
from jumin.network.identity import widearea as national
from jumin.network.identity.widearea import HomeGateway
from jumin.network_client import HttpNetworkClient, InProcessNetworkClient, signed_wide_area_request
from jumin.registry.relay import Relay, RelayReport
from tests.certificates.conftest import (
    CHIYODA,
    SAPPORO,
    Desk,
    Headers,
    InProcessHomes,
    days_ago,
    joined,
    link_municipalities,
    national_scope,
    pypdf_text,
    squash,
)
from tests.network.servers import free_port

SHINJUKU = "131041"  # a municipality whose key the network does not know


def asked(code: str, **extra: object) -> RecordRequest:
    fields: dict[str, object] = {
        "request_id": token_hex(16),
        "issuer_lg_code": SAPPORO,
        "home_lg_code": CHIYODA,
        "resident_code": code,
        "whole_household": False,
        "form": "household",
        "include": (),
        "omit": (),
        "clerk": "staff:sapporo-window",
    }
    fields.update(extra)
    return RecordRequest(**fields)  # type: ignore[arg-type]


def wide(desk: Desk, code: str, **body: object) -> service.IssuedCertificate:
    request = WideAreaIssueRequest.model_validate({"home_lg_code": CHIYODA, "resident_code": code, **body})
    return service.issue_wide_area(desk.db, ctx=desk.ctx, request=request)


def entries(session: Session, action: str, chain: str | None = None) -> list[AuditEntry]:
    query = session.query(AuditEntry).filter_by(action=action)
    if chain is not None:
        query = query.filter_by(chain=chain)
    return query.order_by(AuditEntry.id).all()


# ---------------------------------------------------------------------------
# What leaves the home register


def test_the_home_answers_only_the_items_a_wide_area_copy_prints(
    desk: Desk, network: InProcessNetworkClient, db: Session
) -> None:
    head, wife, _child = desk.family().person_ids
    code = desk.record(head).resident_code
    assert desk.record(head).honseki  # the register holds it; the answer must not carry it

    answer = network.request_wide_area_record(request=asked(code, whole_household=True))
    assert answer.subject_person_id == head
    assert len(answer.persons) == 3
    for person in answer.persons:
        record = person.record
        assert record["individual_number"] is None
        assert (record["honseki"], record["hittousha"]) == (None, None)
        assert record["resident_code"] == ""  # not asked for
        assert record["relationship"] == ""  # 世帯主・続柄 not asked for
        assert person.history is None
    assert answer.head_name is None

    asked_for = asked(code, include=("resident_code", "head_and_relationship", "history"))
    answer = network.request_wide_area_record(request=asked_for)
    (person,) = answer.persons
    assert person.record["resident_code"] == code
    assert person.record["relationship"] == "世帯主"
    assert answer.head_name == "山田　太郎"
    assert person.history is not None
    assert [h["label"] for h in person.history] == ["国外転入"]

    # The home keeps a record of each provision, under the visiting clerk's name.
    rows = db.query(WideAreaProvision).order_by(WideAreaProvision.id).all()
    assert [(r.issuer_lg_code, r.clerk, r.person_ids) for r in rows] == [
        (SAPPORO, "staff:sapporo-window", f"{head},{wife},{_child}"),
        (SAPPORO, "staff:sapporo-window", str(head)),
    ]
    provided = entries(db, "certificate.record_provided", CHIYODA)
    assert [e.actor_id for e in provided] == ["sapporo-window@011002"] * 2
    assert [e.target_id for e in provided] == [r.request_id for r in rows]


def test_the_issued_copy_prints_what_the_home_said(desk: Desk, sapporo_desk: Desk, db: Session) -> None:
    head = desk.family().person_ids[0]
    code = desk.record(head).resident_code
    issued = wide(sapporo_desk, code, include=["resident_code", "history"], form="individual")
    text = squash(pypdf_text(issued.pdf))
    assert code in text
    assert "国外転入" in text
    assert "東京都千代田区千代田一丁目1番1号" in text
    assert "本籍" not in text
    assert issued.person_ids == (head,)
    assert (issued.lg_code, issued.home_lg_code) == (SAPPORO, CHIYODA)
    # The notice for the home is queued in the issuance's own transaction.
    notice = db.query(WideAreaNotice).filter_by(issue_number=issued.issue_number).one()
    assert notice.delivered_at is None
    assert json.loads(notice.payload)["document_sha256"] == issued.sha256
    requested = entries(db, "certificate.wide_area_requested", SAPPORO)
    assert [(e.target_id, e.outcome) for e in requested] == [(code, "success")]


# ---------------------------------------------------------------------------
# Refusals


def test_a_person_the_home_does_not_hold_is_refused_and_audited_at_every_hop(
    desk: Desk, sapporo_desk: Desk, db: Session, national_db: Session
) -> None:
    desk.family()
    with pytest.raises(NotFound, match="住民票コードの住民"):
        wide(sapporo_desk, "24727059608")
    (home,) = entries(db, "certificate.refused", CHIYODA)
    assert (home.target_id, home.outcome, home.actor_id) == ("24727059608", "denied", "sapporo-window@011002")
    assert "reason=not_found" in home.detail
    (network,) = entries(national_db, "network.wide_area_answer_returned")
    assert (network.outcome, network.actor_id) == ("denied", "municipality:011002")
    (issuer,) = entries(db, "certificate.wide_area_requested", SAPPORO)
    assert issuer.outcome == "denied"
    assert "problem=not-found" in issuer.detail


def test_a_removed_record_is_not_given_out_by_wide_area(desk: Desk, sapporo_desk: Desk) -> None:
    head = desk.one("死亡", "予定", ("シボウ", "ヨテイ"))
    code = desk.record(head).resident_code
    desk.event(
        "death", {"effective_on": days_ago(1), "person": {"person_id": head, "version": desk.version(head)}}
    )
    with pytest.raises(NotFound):
        wide(sapporo_desk, code)


def test_a_protection_order_at_home_blocks_wide_area_whoever_asks(
    desk: Desk, sapporo_desk: Desk, db: Session
) -> None:
    head, wife, _child = desk.family().person_ids
    service.register_protection_order(
        desk.db,
        ctx=desk.ctx,
        request=ProtectionOrderRequest.model_validate(
            {
                "person_id": wife,
                "reason": "DV",
                "parties": [{"name": "加害　者", "resident_code": "24727059608"}],
            }
        ),
    )
    # The protected person herself: the home cannot check her at another window.
    with pytest.raises(ProtectedRecord, match="支援措置"):
        wide(sapporo_desk, desk.record(wife).resident_code)
    # Her husband's household copy would print her.
    with pytest.raises(ProtectedRecord):
        wide(sapporo_desk, desk.record(head).resident_code, whole_household=True)
    # His own copy alone does not.
    assert wide(sapporo_desk, desk.record(head).resident_code).person_ids == (head,)
    home = entries(db, "certificate.refused", CHIYODA)
    assert len(home) == 2
    assert all("reason=protection_order" in e.detail for e in home)
    assert len(entries(db, "certificate.refused", SAPPORO)) == 2
    # Nothing was provided for the refused requests.
    assert db.query(WideAreaProvision).count() == 1


def test_rules_of_the_issuing_window_refuse_before_anything_leaves(
    desk: Desk, sapporo_desk: Desk, homes: InProcessHomes
) -> None:
    code = desk.record(desk.family().person_ids[0]).resident_code
    with pytest.raises(InvalidValue, match="自団体"):
        service.issue_wide_area(
            desk.db,
            ctx=desk.ctx,
            request=WideAreaIssueRequest.model_validate({"home_lg_code": CHIYODA, "resident_code": code}),
        )
    with pytest.raises(Exception, match="本籍"):
        wide(sapporo_desk, code, include=["honseki"])
    with pytest.raises(InvalidValue, match="個人票"):
        wide(sapporo_desk, code, form="individual", whole_household=True)
    assert homes.calls == 0  # none of them reached the home


def test_a_home_that_does_not_answer_is_a_clear_japanese_error(
    desk: Desk, sapporo_desk: Desk, db: Session, national_db: Session, homes: InProcessHomes
) -> None:
    code = desk.record(desk.family().person_ids[0]).resident_code
    homes.down = True
    with pytest.raises(HomeUnavailable, match="千代田区 \\(131016\\) のシステムから応答がありません"):
        wide(sapporo_desk, code)
    (network,) = entries(national_db, "network.wide_area_answer_returned")
    assert network.outcome == "failure"
    (issuer,) = entries(db, "certificate.wide_area_requested", SAPPORO)
    assert issuer.outcome == "failure"
    assert db.query(WideAreaNotice).count() == 0  # nothing issued

    # Over real HTTP to a port where nothing listens, with a short timeout.
    national.register_endpoint(national_db, lg_code=CHIYODA, url=f"http://127.0.0.1:{free_port()}")
    national_db.commit()
    real = InProcessNetworkClient(national_scope(national_db), homes=HomeGateway(timeout=2))
    with pytest.raises(HomeUnavailable, match="応答がありません"):
        real.request_wide_area_record(request=asked(code))


def test_a_home_the_network_cannot_reach_is_named(
    desk: Desk, network: InProcessNetworkClient, national_db: Session
) -> None:
    code = desk.record(desk.family().person_ids[0]).resident_code
    with pytest.raises(HomeUnavailable, match="新宿区 \\(131041\\) の接続先が全国センターに登録されていない"):
        network.request_wide_area_record(request=asked(code, home_lg_code=SHINJUKU))
    (forwarded,) = entries(national_db, "network.wide_area_request_forwarded")
    assert forwarded.outcome == "failure"


def test_the_wide_area_route_answers_503_when_the_home_is_down(
    desk: Desk, client: TestClient, sapporo: Headers, homes: InProcessHomes
) -> None:
    code = desk.record(desk.family().person_ids[0]).resident_code
    homes.down = True
    r = client.post(
        "/certificates/wide-area", json={"home_lg_code": CHIYODA, "resident_code": code}, headers=sapporo
    )
    assert r.status_code == 503
    problem = r.json()
    assert problem["type"] == "urn:jumin:problem:home-municipality-unavailable"
    assert problem["title"] == "住所地の市区町村のシステムに接続できません"
    assert "しばらくしてから" in problem["detail"]


# ---------------------------------------------------------------------------
# The network checks who asks


def _post(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    r = client.post(
        WIDE_AREA_RECORDS_PATH, content=body, headers={"Content-Type": "application/json", **headers}
    )
    return r.status_code, r.json()


def test_the_network_refuses_unsigned_unknown_and_forged_issuers(
    desk: Desk, client: TestClient, national_db: Session, homes: InProcessHomes
) -> None:
    code = desk.record(desk.family().person_ids[0]).resident_code
    body, signature = signed_wide_area_request(asked(code))

    status, problem = _post(client, body, {})
    assert (status, problem["type"]) == (401, "urn:jumin:problem:replication-refused")

    status, problem = _post(client, body, {"X-Jumin-Sender": SAPPORO, "X-Jumin-Signature": "AAAA"})
    assert status == 401

    forged = sign(Ed25519PrivateKey.generate(), body)
    status, problem = _post(client, body, {"X-Jumin-Sender": SAPPORO, "X-Jumin-Signature": forged})
    assert status == 401

    stranger, stranger_signature = signed_wide_area_request(asked(code, issuer_lg_code=SHINJUKU))
    status, problem = _post(
        client, stranger, {"X-Jumin-Sender": SHINJUKU, "X-Jumin-Signature": stranger_signature}
    )
    assert (status, problem["type"]) == (403, "urn:jumin:problem:unknown-municipality")

    # Signed by Sapporo, but the request inside claims to come from Chiyoda.
    posing = envelope(
        kind=WideAreaKind.REQUEST,
        sender=SAPPORO,
        sent_at=utcnow(),
        nonce=token_hex(16),
        request=asked(code, issuer_lg_code=CHIYODA).as_json(),
    )
    sapporo_key = load_or_create_ed25519(municipality_key_name(SAPPORO)).private_key
    status, problem = _post(
        client, posing, {"X-Jumin-Sender": SAPPORO, "X-Jumin-Signature": sign(sapporo_key, posing)}
    )
    assert status == 401

    assert homes.calls == 0  # nothing reached the home
    refused = entries(national_db, "network.replication_refused")
    reasons = [e.detail.split()[0] for e in refused]
    assert reasons == [
        "reason=unsigned",
        "reason=bad_signature",
        "reason=bad_signature",
        "reason=unknown_municipality",
        "reason=sender_mismatch",
    ]
    assert all(e.outcome == "denied" for e in refused)

    # Well signed: answered; the same envelope again is a replay.
    status, answer = _post(client, body, {"X-Jumin-Sender": SAPPORO, "X-Jumin-Signature": signature})
    assert status == 200, answer
    status, problem = _post(client, body, {"X-Jumin-Sender": SAPPORO, "X-Jumin-Signature": signature})
    assert status == 401
    assert "二度" in str(problem["detail"])


def test_the_home_refuses_what_the_network_did_not_sign(
    desk: Desk, client: TestClient, db: Session, national_db: Session
) -> None:
    code = desk.record(desk.family().person_ids[0]).resident_code
    forward = envelope(
        kind=WideAreaKind.FORWARD,
        sender="national",
        sent_at=utcnow(),
        nonce=token_hex(16),
        request=asked(code).as_json(),
    )
    headers = {"Content-Type": "application/json"}
    r = client.post(HOME_RECORDS_PATH, content=forward, headers=headers)
    assert (r.status_code, r.json()["type"]) == (401, "urn:jumin:problem:network-signature-refused")
    # Signed by the issuer's key instead of the network's: refused too.
    issuer_key = load_or_create_ed25519(municipality_key_name(SAPPORO))
    r = client.post(
        HOME_RECORDS_PATH,
        content=forward,
        headers={
            **headers,
            "X-Jumin-Sender": "national",
            "X-Jumin-Signature": sign(issuer_key.private_key, forward),
        },
    )
    assert r.status_code == 401
    refused = entries(db, "certificate.refused", CHIYODA)
    assert [e.detail.split()[-1] for e in refused] == ["reason=unsigned", "reason=bad_signature"]
    assert db.query(WideAreaProvision).count() == 0

    # Signed by the network: answered once, and the same request id never again.
    signed = {
        **headers,
        "X-Jumin-Sender": "national",
        "X-Jumin-Signature": sign(national.network_key().private_key, forward),
    }
    first = client.post(HOME_RECORDS_PATH, content=forward, headers=signed)
    assert first.status_code == 200, first.text
    assert first.headers["X-Jumin-Signature"]
    again = client.post(HOME_RECORDS_PATH, content=forward, headers=signed)
    assert (again.status_code, again.json()["type"]) == (409, "urn:jumin:problem:wide-area-replayed")


# ---------------------------------------------------------------------------
# Over HTTP, and the copy-issued notice


def test_an_issuer_reaches_the_national_server_over_http(
    desk: Desk, sapporo_desk: Desk, client: TestClient, network: InProcessNetworkClient, db: Session
) -> None:
    head = desk.family().person_ids[0]
    code = desk.record(head).resident_code
    over_http = HttpNetworkClient("http://testserver", codes=network, http=client)
    remote = Desk(sapporo_desk.db, over_http, lg_code=SAPPORO, login="sapporo-window")  # type: ignore[arg-type]
    issued = wide(remote, code)
    assert issued.person_ids == (head,)
    with pytest.raises(NotFound):
        wide(remote, "24727059608")
    assert len(entries(db, "certificate.record_provided", CHIYODA)) == 1


def test_the_home_is_told_of_the_copy_even_when_it_was_down(
    desk: Desk, sapporo_desk: Desk, client: TestClient, db: Session, homes: InProcessHomes
) -> None:
    head = desk.family().person_ids[0]
    issued = wide(sapporo_desk, desk.record(head).resident_code)
    relay = Relay(url="http://testserver", http=client, session_scope=lambda: joined(db))

    homes.down = True
    report = RelayReport()
    relay.deliver_wide_area_notices(report)
    assert report.wide_area_notices == 0
    assert len(report.errors) == 1
    assert "次回再送" in report.errors[0]
    notice = db.query(WideAreaNotice).one()
    assert (notice.delivered_at, notice.attempts) == (None, 1)

    homes.down = False
    relay.deliver_wide_area_notices(report)
    assert report.wide_area_notices == 1
    provision = db.query(WideAreaProvision).one()
    assert (provision.issue_number, provision.fee_yen, provision.document_sha256) == (
        issued.issue_number,
        300,
        issued.sha256,
    )
    # A notice sent twice (its delivery mark lost) is recorded once.
    notice.delivered_at = None
    db.flush()
    relay.deliver_wide_area_notices(report)
    assert report.wide_area_notices == 2
    told = entries(db, "certificate.wide_area_issued", CHIYODA)
    assert [e.target_id for e in told] == [issued.issue_number]

    views = home_side.provisions(db, actor=desk.ctx.actor, lg_code=CHIYODA)
    assert [(v.issuer_lg_code, v.issue_number) for v in views] == [(SAPPORO, issued.issue_number)]


def test_endpoints_are_registered_by_the_operator(national_db: Session) -> None:
    with pytest.raises(InvalidValue, match="http"):
        national.register_endpoint(national_db, lg_code=CHIYODA, url="ftp://example")
    with pytest.raises(InvalidValue, match="都道府県"):
        national.register_endpoint(national_db, lg_code="130001", url="http://127.0.0.1:9")
    link_municipalities(national_db, SAPPORO, CHIYODA, url="http://127.0.0.1:9/")
    link_municipalities(national_db, CHIYODA, url="http://127.0.0.1:9")  # the same again: nothing new
    assert [(v.lg_code, v.url) for v in national.list_endpoints(national_db)] == [
        (SAPPORO, "http://127.0.0.1:9"),
        (CHIYODA, "http://127.0.0.1:9"),
    ]
    registered = entries(national_db, "network.municipality_endpoint_registered")
    assert [e.target_id for e in registered] == [SAPPORO, CHIYODA]
