"""The resident portal without a browser: card login, sessions, CSRF and every use case.

Each test makes its own card holder (a family recorded in 千代田区, relayed to the
national store, the head's card handed over with its PINs) in the test's rolled-back
transactions, and drives the pages over HTTP as a browser would.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jumin.accounts.domain import Role
from jumin.audit.domain import Actor, ActorKind
from jumin.audit.models import AuditEntry
from jumin.card import fourfacts
from jumin.card import service as cards
from jumin.card.models import Card, CardChip, ResidentSession
from jumin.core.wareki import format_wareki
from jumin.network.agencies import service as agencies
from jumin.network_client import InProcessNetworkClient
from jumin.portal.security import COOKIE_PATH, SESSION_COOKIE
from jumin.registry import service as registry
from jumin.registry.models import OutboxMessage
from tests import factories
from tests.portal.conftest import log_in, token_of
from tests.portal.support import CHIYODA, SAPPORO, Holder, clerk_context, csrf, today

HTML = "text/html"


def _mine(db: Session, network: InProcessNetworkClient, who: Holder) -> Any:
    return registry.get_record(db, ctx=clerk_context(network), person_id=who.person_id, purpose="テスト")


# --- login and the session ---------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_the_card_login(browser_client: TestClient) -> None:
    first = browser_client.get("/portal/record", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/portal/login?reason=required&next=/portal/record"
    page = browser_client.get(first.headers["location"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith(HTML)
    assert "マイナンバーカードでログインしてください" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"
    assert browser_client.get("/portal", follow_redirects=False).headers["location"] == "/portal/"


def test_the_card_and_its_pin_log_in_with_a_cookie_of_the_portals_own(
    browser_client: TestClient, holder: Holder, national_db: Session
) -> None:
    response = log_in(browser_client, holder, next="/portal/record")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/portal/record"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" in cookie
    assert f"Path={COOKIE_PATH}" in cookie
    page = browser_client.get("/portal/record")
    assert page.status_code == 200
    assert holder.name in page.text
    # The login is the card service's: a resident session row and its audit entry.
    assert national_db.execute(
        select(ResidentSession).where(ResidentSession.resident_code == holder.resident_code)
    ).scalar_one()
    succeeded = national_db.execute(
        select(AuditEntry).where(
            AuditEntry.action == "card.login_succeeded", AuditEntry.target_id == holder.resident_code
        )
    ).scalar_one()
    assert succeeded.actor_kind == "resident"


def test_wrong_pins_count_down_on_the_card_and_the_third_locks_it(
    browser_client: TestClient, holder: Holder, national_db: Session
) -> None:
    first = log_in(browser_client, holder, pin="0000")
    assert first.status_code == 401
    assert "暗証番号が違います。あと2回誤るとロックされます。" in first.text
    assert 'aria-invalid="true"' in first.text
    assert SESSION_COOKIE not in first.headers.get("set-cookie", "")
    assert "あと1回" in log_in(browser_client, holder, pin="0001").text
    locked = log_in(browser_client, holder, pin="0002")
    assert locked.status_code == 423
    assert "ロックされました" in locked.text
    # Locked: the right PIN no longer opens the card; only the window's reset does.
    again = log_in(browser_client, holder)
    assert again.status_code == 423
    assert "窓口で再設定してください" in again.text
    card = national_db.execute(select(Card).where(Card.card_number == holder.card_number)).scalar_one()
    chip = national_db.get(CardChip, card.id)
    assert chip is not None
    assert chip.auth_tries_left == 0
    failures = national_db.execute(
        select(AuditEntry).where(
            AuditEntry.action == "card.pin_failed", AuditEntry.target_id == holder.resident_code
        )
    ).scalars()
    assert len(list(failures)) >= 3


def test_an_unknown_card_number_or_a_malformed_pin_fails_without_saying_more(
    browser_client: TestClient, holder: Holder
) -> None:
    unknown = log_in(browser_client, Holder(**{**holder.__dict__, "card_number": "000000000000"}))
    assert unknown.status_code == 401
    assert "カード番号が正しくないか" in unknown.text
    short = log_in(browser_client, holder, pin="12")
    assert short.status_code == 400
    assert "数字4桁" in short.text


def test_resident_and_staff_sessions_never_open_each_others_pages(
    browser_client: TestClient, holder: Holder, db: Session
) -> None:
    assert log_in(browser_client, holder).status_code == 303
    resident_token = browser_client.cookies.get(SESSION_COOKIE)
    assert resident_token
    # The resident cookie is not a staff session: the staff window asks for a staff login.
    staff_page = browser_client.get("/staff/residents", follow_redirects=False)
    assert staff_page.status_code == 303
    assert staff_page.headers["location"].startswith("/staff/login")
    # Nor is the resident's token a bearer token of the register's API.
    api = browser_client.get("/registry/persons/1", headers={"Authorization": f"Bearer {resident_token}"})
    assert api.status_code == 401
    # And a staff token in the portal's cookie is no resident session.
    clerk = factories.staff(db, Role.CLERK, org=CHIYODA)
    with TestClient(browser_client.app, base_url="https://jumin.example") as other:
        staff_token = factories.token_for(other, clerk)
        other.cookies.set(SESSION_COOKIE, staff_token, domain="jumin.example", path=COOKIE_PATH)
        refused = other.get("/portal/record", follow_redirects=False)
        assert refused.status_code == 303
        assert refused.headers["location"] == "/portal/login?reason=expired"


def test_an_expired_session_goes_back_to_the_login_with_the_reason(
    browser_client: TestClient, holder: Holder, national_db: Session
) -> None:
    assert log_in(browser_client, holder).status_code == 303
    national_db.execute(
        update(ResidentSession)
        .where(ResidentSession.resident_code == holder.resident_code)
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    )
    page = browser_client.get("/portal/record", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/portal/login?reason=expired"
    assert "有効期限 (30分) が切れた" in browser_client.get(page.headers["location"]).text
    # An htmx request is told where to go instead of receiving the login page as a fragment.
    fragment = browser_client.get(
        "/portal/move-out/municipalities?prefecture=01", headers={"HX-Request": "true"}
    )
    assert fragment.headers["HX-Redirect"].startswith("/portal/login")


def test_logout_needs_the_forms_token_and_ends_the_session(
    browser_client: TestClient, holder: Holder
) -> None:
    assert log_in(browser_client, holder).status_code == 303
    token = token_of(browser_client)
    for data in ({}, {"csrf_token": "0" * 64}):
        refused = browser_client.post("/portal/logout", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert "フォームの確認に失敗しました" in refused.text
    out = browser_client.post("/portal/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.headers["location"] == "/portal/login?reason=logged_out"
    assert browser_client.get("/portal/", follow_redirects=False).status_code == 303


def test_a_login_without_the_login_forms_token_is_refused(browser_client: TestClient, holder: Holder) -> None:
    browser_client.get("/portal/login")
    response = browser_client.post(
        "/portal/login",
        data={"csrf_token": "forged", "card_number": holder.card_number, "pin": holder.pin},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_next_is_kept_inside_the_portal(browser_client: TestClient, holder: Holder) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/staff/residents", "/portal\\x"):
        response = log_in(browser_client, holder, next=target)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/portal/"


# --- my record ---------------------------------------------------------------------------------


def test_my_record_and_household_are_read_as_the_resident_and_audited(
    browser_client: TestClient, holder: Holder, db: Session
) -> None:
    log_in(browser_client, holder)
    page = browser_client.get("/portal/record")
    assert page.status_code == 200
    assert holder.name in page.text
    assert holder.spouse_name in page.text
    assert "世帯主" in page.text
    assert "東京都千代田区" in page.text
    assert holder.resident_code in page.text
    reads = (
        db.execute(
            select(AuditEntry).where(
                AuditEntry.action == "registry.read", AuditEntry.target_id == str(holder.person_id)
            )
        )
        .scalars()
        .all()
    )
    assert (reads[-1].actor_kind, reads[-1].actor_id, reads[-1].organisation_code) == (
        "resident",
        f"person:{holder.person_id}",
        CHIYODA,
    )


# --- certificates -------------------------------------------------------------------------------


def test_a_record_copy_downloads_as_a_signed_pdf_from_the_kiosk_channel(
    browser_client: TestClient, holder: Holder, db: Session
) -> None:
    log_in(browser_client, holder)
    form = browser_client.get("/portal/certificates")
    assert form.status_code == 200
    assert "200円" in form.text
    response = browser_client.post(
        "/portal/certificates",
        data={"csrf_token": csrf(form.text), "scope": "household", "include": ["head_and_relationship"]},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="131016-\d{4}-\d{7}\.pdf"', disposition), disposition
    assert response.content.startswith(b"%PDF")
    assert b"/ByteRange" in response.content  # signed
    issued = (
        db.execute(
            select(AuditEntry).where(AuditEntry.action == "certificate.issued").order_by(AuditEntry.id.desc())
        )
        .scalars()
        .first()
    )
    assert issued is not None
    assert issued.actor_kind == "resident"


def test_an_unknown_item_is_refused_beside_the_field(browser_client: TestClient, holder: Holder) -> None:
    log_in(browser_client, holder)
    token = csrf(browser_client.get("/portal/certificates").text)
    response = browser_client.post(
        "/portal/certificates", data={"csrf_token": token, "scope": "self", "include": ["nonsense"]}
    )
    assert response.status_code == 400
    assert "記載する項目を一覧から選んでください" in response.text


# --- the online 転出届 ----------------------------------------------------------------------------


def _move_out_form(
    client: TestClient, holder: Holder, db: Session, network: InProcessNetworkClient, **changes: Any
) -> Any:
    page = client.get("/portal/move-out?prefecture=01")
    assert page.status_code == 200
    assert "札幌市" in page.text
    mine = _mine(db, network, holder)
    data: dict[str, Any] = {
        "csrf_token": csrf(page.text),
        "destination_lg_code": SAPPORO,
        "destination_line": "北1条西2丁目3番地",
        "planned_on": format_wareki(today() + dt.timedelta(days=10)),
        "persons": [str(p) for p in holder.household],
        "confirmed": "yes",
    }
    for person in holder.household:
        data[f"version.{person}"] = str(
            mine.version if person == holder.person_id else _version(db, network, person)
        )
    data.update(changes)
    return client.post("/portal/move-out", data=data, follow_redirects=False)


def _version(db: Session, network: InProcessNetworkClient, person_id: int) -> int:
    return registry.get_record(db, ctx=clerk_context(network), person_id=person_id, purpose="テスト").version


def test_the_move_out_form_lists_municipalities_of_a_prefecture_for_htmx(
    browser_client: TestClient, holder: Holder
) -> None:
    log_in(browser_client, holder)
    fragment = browser_client.get(
        "/portal/move-out/municipalities?prefecture=01", headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div class="field')
    assert '<option value="011002">札幌市</option>' in fragment.text
    assert "中央区" not in fragment.text  # designated cities, not their wards
    assert "<html" not in fragment.text


def test_an_online_move_out_with_a_reservation_is_filed_and_sent_ahead(
    browser_client: TestClient, holder: Holder, db: Session, network: InProcessNetworkClient
) -> None:
    log_in(browser_client, holder)
    response = _move_out_form(browser_client, holder, db, network)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/portal/move-out/filed"
    filed = browser_client.get("/portal/move-out/filed")
    assert "転出の届出を受け付けました" in filed.text
    assert "北海道札幌市" in filed.text
    assert "14日以内" in filed.text
    record = _mine(db, network, holder).record
    assert record.planned_move_out is not None
    assert record.planned_move_out.destination == "北海道札幌市北1条西2丁目3番地"
    assert record.planned_move_out.planned_on == today() + dt.timedelta(days=10)
    sent = db.execute(
        select(OutboxMessage).where(
            OutboxMessage.kind == "move_out_certificate", OutboxMessage.destination_lg_code == SAPPORO
        )
    ).scalars()
    assert {m.person_id for m in sent} >= set(holder.household)
    # Filed once: the form now says so instead of offering a second filing.
    again = browser_client.get("/portal/move-out")
    assert "転出の届出は済んでいます" in again.text


def test_move_out_errors_come_back_beside_their_fields(
    browser_client: TestClient, holder: Holder, db: Session, network: InProcessNetworkClient
) -> None:
    log_in(browser_client, holder)
    late = _move_out_form(
        browser_client, holder, db, network, planned_on=format_wareki(today() + dt.timedelta(days=45))
    )
    assert late.status_code == 400
    assert "30日前から届け出られます" in late.text
    assert 'id="e-planned-on"' in late.text
    empty = _move_out_form(browser_client, holder, db, network, destination_lg_code="", confirmed="")
    assert empty.status_code == 400
    assert "転出先の市区町村を選んでください" in empty.text
    assert "チェックを入れてください" in empty.text
    without_me = _move_out_form(browser_client, holder, db, network, persons=[str(holder.household[1])])
    assert without_me.status_code == 400
    assert "本人を含めてください" in without_me.text
    # The head leaving alone needs a new head for the one who stays.
    headless = _move_out_form(browser_client, holder, db, network, persons=[str(holder.person_id)])
    assert headless.status_code == 409
    assert _mine(db, network, holder).record.planned_move_out is None


def test_a_move_out_on_a_changed_record_asks_to_reload(
    browser_client: TestClient, holder: Holder, db: Session, network: InProcessNetworkClient
) -> None:
    log_in(browser_client, holder)
    stale = {f"version.{p}": "1" for p in holder.household} | {f"version.{holder.person_id}": "999"}
    response = _move_out_form(browser_client, holder, db, network, **stale)
    assert response.status_code == 409
    assert "住民票の内容が変わりました" in response.text


# --- consents -----------------------------------------------------------------------------------


def test_consent_to_the_four_facts_service_is_given_listed_and_withdrawn(
    browser_client: TestClient, holder: Holder, national_db: Session
) -> None:
    operator = Actor(kind=ActorKind.STAFF, actor_id="operator", organisation_code="national")
    fourfacts.register_business(
        national_db, actor=operator, code="bank-portal", name="ポータル銀行", webhook_url=None
    )
    log_in(browser_client, holder)
    page = browser_client.get("/portal/consents")
    assert "同意している事業者はありません" in page.text
    unknown = browser_client.post(
        "/portal/consents", data={"csrf_token": csrf(page.text), "business_code": "nobody", "scope": ["name"]}
    )
    assert unknown.status_code == 400
    assert "事業者が見つかりません" in unknown.text
    given = browser_client.post(
        "/portal/consents",
        data={"csrf_token": csrf(page.text), "business_code": "bank-portal", "scope": ["name", "address"]},
        follow_redirects=False,
    )
    assert given.status_code == 303
    listed = browser_client.get(given.headers["location"])
    assert "同意を登録しました" in listed.text
    assert "ポータル銀行" in listed.text
    assert "<td>氏名・住所</td>" in listed.text
    consent_id = re.search(r"/portal/consents/(\d+)/withdraw", listed.text)
    assert consent_id
    withdrawn = browser_client.post(
        f"/portal/consents/{consent_id.group(1)}/withdraw", data={"csrf_token": csrf(listed.text)}
    )
    assert "同意を撤回しました" in withdrawn.text
    assert "同意している事業者はありません" in withdrawn.text


# --- the card -----------------------------------------------------------------------------------


def test_a_lost_card_is_suspended_from_the_portal_and_no_longer_logs_in(
    browser_client: TestClient, holder: Holder, national_db: Session
) -> None:
    log_in(browser_client, holder)
    page = browser_client.get("/portal/card")
    assert "利用中" in page.text
    assert holder.card_number in page.text
    unconfirmed = browser_client.post("/portal/card/suspend", data={"csrf_token": csrf(page.text)})
    assert unconfirmed.status_code == 400
    response = browser_client.post(
        "/portal/card/suspend",
        data={"csrf_token": csrf(page.text), "confirmed": "yes"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/portal/login?reason=suspended"
    card = national_db.execute(select(Card).where(Card.card_number == holder.card_number)).scalar_one()
    assert card.status == "suspended"
    # The session went with the suspension, and the card no longer logs in.
    assert browser_client.get("/portal/", follow_redirects=False).status_code == 303
    assert log_in(browser_client, holder).status_code == 401


# --- who looked at my data ----------------------------------------------------------------------


def test_the_access_log_lists_clerks_and_agencies_with_their_task_but_not_the_resident(
    browser_client: TestClient,
    holder: Holder,
    db: Session,
    national_db: Session,
    network: InProcessNetworkClient,
) -> None:
    # A clerk of 千代田区 reads the record; a pension agency looks the resident up.
    registry.get_record(
        db, ctx=clerk_context(network), person_id=holder.person_id, purpose="住民基本台帳事務"
    )
    new = agencies.register_agency_client(
        national_db, actor=None, organisation_code="nenkin", name="年金照会", organisation_name="日本年金機構"
    )
    agencies.grant_task(national_db, actor=None, client_id=new.client_id, task_code="pension-benefit")
    token = browser_client.post(
        "/network/v1/auth/token", json={"client_id": new.client_id, "client_secret": new.client_secret}
    ).json()["access_token"]
    looked = browser_client.post(
        "/network/v1/lookups/by-resident-code",
        json={"task": "pension-benefit", "resident_code": holder.resident_code},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert looked.status_code == 200, looked.text
    log_in(browser_client, holder)
    browser_client.get("/portal/record")  # the resident's own read: not listed
    page = browser_client.get("/portal/access-log")
    assert page.status_code == 200
    rows = re.findall(r"<tr(?: class=\"row--refused\")?>\s*<td>(.*?)</tr>", page.text, re.S)
    text = [re.sub(r"<[^>]+>|\s+", " ", r).strip() for r in rows]
    assert any("日本年金機構" in t and "本人確認情報の提供" in t and "年金" in t for t in text), text
    assert any(
        "千代田区" in t and "職員" in t and "住民票の閲覧" in t and "住民基本台帳事務" in t for t in text
    ), text
    assert not any("ご本人以外" in t for t in text), text
    # Reading the logs is itself audited, as the resident, on both sides.
    assert (
        national_db.execute(
            select(AuditEntry).where(
                AuditEntry.action == "network.access_log_viewed", AuditEntry.actor_kind == "resident"
            )
        )
        .scalars()
        .first()
    )
    assert (
        db.execute(
            select(AuditEntry).where(AuditEntry.action == "audit.viewed", AuditEntry.actor_kind == "resident")
        )
        .scalars()
        .first()
    )


def test_unknown_pages_and_malformed_paths_are_japanese_pages(
    browser_client: TestClient, holder: Holder
) -> None:
    log_in(browser_client, holder)
    missing = browser_client.get("/portal/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith(HTML)
    assert "ページが見つかりません" in missing.text
    malformed = browser_client.post(
        "/portal/consents/abc/withdraw", data={"csrf_token": token_of(browser_client)}
    )
    assert malformed.status_code == 400
    assert malformed.headers["content-type"].startswith(HTML)


def test_card_login_is_checked_by_the_card_service(holder: Holder, national_db: Session) -> None:
    """The reader the portal plays: a login the card service verified, opening a session."""
    from jumin.portal import service as portal

    issued = portal.card_login(national_db, card_number=holder.card_number, pin=holder.pin)
    assert issued.principal.resident_code == holder.resident_code
    assert cards.authenticate_resident(national_db, issued.access_token).card_id == issued.principal.card_id


def test_a_lost_card_is_suspended_without_it_by_number_and_secret(
    browser_client: TestClient, holder: Holder, national_db: Session
) -> None:
    page = browser_client.get("/portal/suspend")
    assert page.status_code == 200
    token = csrf(page.text)
    wrong = browser_client.post(
        "/portal/suspend",
        data={"csrf_token": token, "card_number": holder.card_number, "secret": "WRONGWRONGWRONG2"},
    )
    assert wrong.status_code == 401
    assert "確認コードが正しくありません" in wrong.text
    refused = (
        national_db.execute(select(AuditEntry).where(AuditEntry.action == "card.suspension_refused"))
        .scalars()
        .all()
    )
    assert refused
    done = browser_client.post(
        "/portal/suspend",
        data={
            "csrf_token": csrf(wrong.text),
            "card_number": holder.card_number,
            "secret": holder.suspension_secret,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/portal/login?reason=suspended"
    card = national_db.execute(select(Card).where(Card.card_number == holder.card_number)).scalar_one()
    assert card.status == "suspended"
    # Without the pre-login cookie's token, nothing is done.
    forged = browser_client.post(
        "/portal/suspend",
        data={"csrf_token": "forged", "card_number": holder.card_number, "secret": holder.suspension_secret},
    )
    assert forged.status_code == 403
