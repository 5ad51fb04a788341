"""The window's other screens without a browser: one-stop 転入, certificates, cards, protection
orders and extraction approvals, each through its real use case, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.accounts.domain import OrganisationKind, Principal, PrincipalKind, Role
from jumin.audit.domain import Actor, ActorKind
from jumin.audit.models import AuditEntry
from jumin.card import repository as card_repository
from jumin.card import service as cards
from jumin.certificates import service as certificates
from jumin.network.agencies import service as agencies
from jumin.network_client import InProcessNetworkClient
from jumin.registry import relay as relay_service
from jumin.registry import service as registry
from tests import factories
from tests.network.replication_support import register
from tests.web.scenario import (
    AUTH_PIN,
    CHIYODA,
    SAPPORO,
    World,
    arrive_from_abroad,
    clerk_context,
    joined_world,
    moving_household,
    today,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


@pytest.fixture
def world(client: TestClient, db: Session, national_db: Session, network: InProcessNetworkClient) -> World:
    register(national_db, CHIYODA, SAPPORO)
    # The relay collects 転出証明書情報 for the municipalities this register serves.
    factories.organisation(db, CHIYODA, name="千代田区")
    factories.organisation(db, SAPPORO, name="札幌市")

    return joined_world(client, db, national_db, network)


@pytest.fixture
def window(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://jumin.example", raise_server_exceptions=False) as c:
        yield c


def log_in(client: TestClient, who: factories.Staff) -> str:
    page = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={
            "csrf_token": _csrf(page.text),
            "login": who.login,
            "password": who.password,
            "totp": who.code(),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return _csrf(client.get("/staff/").text)


def _audited(db: Session, action: str) -> list[AuditEntry]:
    return list(db.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


# ---------------------------------------------------------------------------
# 書かないワンストップ窓口


def test_the_one_stop_window_completes_the_move_in_without_retyping(
    window: TestClient, db: Session, national_db: Session, world: World
) -> None:
    people, card_number = moving_household(world, members=2)
    token = log_in(window, factories.staff(db, Role.CLERK, org=SAPPORO))

    listing = window.get("/staff/arrivals")
    assert listing.status_code == 200
    assert people[0].name in listing.text
    assert people[1].name in listing.text
    arrival_id = int(re.findall(r'href="/staff/arrivals/(\d+)"', listing.text)[0])

    page = window.get(f"/staff/arrivals/{arrival_id}")
    assert page.status_code == 200
    # Pre-filled from the 転出証明書情報: the address line without the municipality, the household.
    assert 'value="中央区北1条西2丁目1番"' in page.text
    assert "転入を記録する" in page.text
    assert 'value="世帯主"' in page.text
    assert 'value="子"' in page.text

    # Without an address: nothing recorded, the error beside the field.
    form = {
        "csrf_token": token,
        "effective_on": today().isoformat(),
        "address.line": "",
        "card_holder": "true",
        "members.0.arrival_id": "",
    }
    refused = window.post(f"/staff/arrivals/{arrival_id}", data=form)
    assert refused.status_code == 400
    assert 'id="q-address-line-error"' in refused.text

    ids = re.findall(r'name="members\.(\d+)\.arrival_id" value="(\d+)"', page.text)
    form = {
        "csrf_token": token,
        "effective_on": today().isoformat(),
        "notified_on": "",
        "address.line": "中央区北1条西2丁目1番",
        "address.katagaki": "札幌ハイツ305",
        "card_holder": "false",
    }
    for row, arrival in ids:
        form |= {
            f"members.{row}.arrival_id": arrival,
            f"members.{row}.selectable": "1",
            f"members.{row}.include": "true",
            f"members.{row}.relationship": "世帯主" if row == "0" else "子",
        }
    form["card_holder"] = "true"
    done = window.post(f"/staff/arrivals/{arrival_id}", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(f"/staff/arrivals/{arrival_id}/card?recorded=")

    sapporo = clerk_context(world, SAPPORO)
    found = registry.search(db, ctx=sapporo, resident_code=people[0].resident_code, purpose="テスト").results
    assert [v.record.address.line for v in found] == ["中央区北1条西2丁目1番"]
    assert found[0].record.individual_number is not None
    events = registry.events_of(db, ctx=sapporo, person_id=found[0].person_id, purpose="テスト")
    assert [e.kind for e in events] == ["move_in_card_holder"]
    # The origin's records are closed by the move-in (転入通知).
    origin = registry.get_record(
        db, ctx=clerk_context(world, CHIYODA), person_id=people[0].person_id, purpose="t"
    )
    assert origin.record.status.value == "removed"
    assert window.get("/staff/arrivals").text.count("/staff/arrivals/") == 0

    # The card step waits for the move to reach the national store, then offers 継続利用.
    waiting = window.get(done.headers["location"])
    assert "転入を記録しました" in waiting.text
    assert "全国センターへの転入の反映を待っています" in waiting.text
    world.relay()
    ready = window.get(f"/staff/arrivals/{arrival_id}/card")
    assert "継続利用を記録する" in ready.text
    assert card_number is not None
    assert card_number in ready.text
    person_arrival = re.search(r'action="/staff/arrivals/\d+/card/(\d+)"', ready.text)
    assert person_arrival
    url = f"/staff/arrivals/{arrival_id}/card/{person_arrival.group(1)}"

    no_document = window.post(url, data={"csrf_token": token, "card_number": card_number})
    assert no_document.status_code == 400
    assert "本人確認書類" in no_document.text
    continued = window.post(
        url,
        data={"csrf_token": token, "card_number": card_number, "identity_documents": "drivers_licence"},
        follow_redirects=False,
    )
    assert continued.status_code == 303, continued.text
    card = card_repository.card_by_number(national_db, card_number)
    assert card is not None
    assert card.lg_code == SAPPORO
    assert "中央区北1条西2丁目1番" in card.address
    after = window.get(continued.headers["location"])
    assert "カードの継続利用を記録しました" in after.text
    assert "この市区町村で利用できる状態です" in after.text


def test_a_move_in_of_someone_already_arrived_is_refused_beside_the_person(
    window: TestClient, db: Session, world: World
) -> None:
    people, _ = moving_household(world, card=False)
    token = log_in(window, factories.staff(db, Role.CLERK, org=SAPPORO))
    arrival_id = relay_service.list_arrivals(
        db, actor=clerk_context(world, SAPPORO).actor, lg_code=SAPPORO, purpose="テスト"
    )[0].id
    form = {
        "csrf_token": token,
        "effective_on": today().isoformat(),
        "address.line": "中央区北1条西2丁目1番",
        "card_holder": "true",
        "members.0.arrival_id": str(arrival_id),
        "members.0.selectable": "1",
        "members.0.include": "true",
        "members.0.relationship": "世帯主",
    }
    assert window.post(f"/staff/arrivals/{arrival_id}", data=form, follow_redirects=False).status_code == 303
    again = window.post(f"/staff/arrivals/{arrival_id}", data=form)
    assert again.status_code == 409
    assert "転入は既に記録されています" in again.text
    assert 'id="q-members-0-include-error"' in again.text or "既に記録" in again.text
    assert people[0].name in again.text


# ---------------------------------------------------------------------------
# 証明書の交付


def _selection(token: str, person_id: int, **extra: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "person": str(person_id),
        "person_ids": str(person_id),
        "kind": "record_copy",
        "form": "household",
        "requester.kind": "self",
        "requester.person_id": str(person_id),
        **extra,
    }


def test_a_certificate_is_previewed_then_issued_and_handed_over_as_a_signed_pdf(
    window: TestClient, db: Session, world: World
) -> None:
    people, _ = moving_household(world, card=False)
    person = people[0]
    token = log_in(window, factories.staff(db, Role.CLERK, org=CHIYODA))
    start = window.get(f"/staff/certificates?resident_code={person.resident_code}", follow_redirects=False)
    assert start.status_code == 303
    form = window.get(start.headers["location"])
    assert form.status_code == 200
    assert "プレビュー" in form.text

    preview = window.post("/staff/certificates/preview", data=_selection(token, person.person_id))
    assert preview.status_code == 200, preview.text
    assert "まだ交付していません" in preview.text
    assert person.name in preview.text
    assert "(未発行)" in preview.text
    assert 'src="data:image/png;base64,' in preview.text  # the page as it will print
    assert _audited(db, "certificate.previewed")
    assert not _audited(db, "certificate.issued")

    # A third party may not have the 住民票コード printed: refused beside the items.
    refused = window.post(
        "/staff/certificates/preview",
        data=_selection(
            token,
            person.person_id,
            **{
                "requester.kind": "third_party",
                "requester.name": "債権者　一郎",
                "requester.reason": "貸付金の返還請求訴訟を提起するため、債務者の住所を確認する",
            },
            include="resident_code",
        ),
    )
    assert refused.status_code == 409
    assert 'id="q-include-error"' in refused.text

    # The issue form carries the preview's one-time token; the answer is a redirect.
    issue_token = re.search(r'name="issue_token" value="([^"]+)"', preview.text)
    assert issue_token
    form = _selection(token, person.person_id, issue_token=issue_token.group(1))
    issued = window.post("/staff/certificates/issue", data=form, follow_redirects=False)
    assert issued.status_code == 303, issued.text
    result_url = issued.headers["location"]
    assert result_url.startswith("/staff/certificates/issued/")
    # The same form posted again (a double click) answers with the first issuance.
    twice = window.post("/staff/certificates/issue", data=form, follow_redirects=False)
    assert twice.status_code == 303
    assert twice.headers["location"] == result_url
    shown = window.get(result_url)
    assert shown.status_code == 200, shown.text
    number = re.search(r"発行番号 <strong>([^<]+)</strong>", shown.text)
    assert number
    assert result_url.endswith(number.group(1))
    link = re.search(r'href="data:application/pdf;base64,([^"]+)" download="([^"]+)"', shown.text)
    assert link
    assert link.group(2) == f"{number.group(1)}.pdf"
    pdf = base64.b64decode(link.group(1))
    assert pdf.startswith(b"%PDF")
    verified = certificates.verify_document(db, pdf=pdf)
    assert verified.authentic
    # A reload shows the same PDF and issues nothing.
    again = window.get(result_url)
    assert link.group(1) in again.text
    assert len(_audited(db, "certificate.issued")) == 1
    assert _audited(db, "certificate.handover_shown")
    # The same token with other choices is refused: a token issues one certificate.
    other = window.post(
        "/staff/certificates/issue", data=form | {"kind": "record_certificate"}, follow_redirects=False
    )
    assert other.status_code == 409
    assert len(_audited(db, "certificate.issued")) == 1

    # Its clerk ends the hand-over: the PDF is erased, the issuance stays.
    finished = window.post(f"{result_url}/finish", data={"csrf_token": token}, follow_redirects=False)
    assert finished.status_code == 303
    gone = window.get(finished.headers["location"])
    assert "data:application/pdf" not in gone.text
    assert "署名付きPDFは消去しました" in gone.text
    assert number.group(1) in gone.text
    assert _audited(db, "certificate.handover_erased")


def test_a_kept_pdf_is_erased_when_its_time_is_up_and_never_shown_to_another_clerk(
    window: TestClient, db: Session, world: World
) -> None:
    from jumin.certificates import handover
    from jumin.certificates.schemas import WindowIssueRequest

    person = moving_household(world, card=False)[0][0]
    clerk = clerk_context(world, CHIYODA)
    request = WindowIssueRequest.model_validate(
        {
            "kind": "record_copy",
            "person_ids": [person.person_id],
            "requester": {"kind": "self", "person_id": person.person_id},
        }
    )
    token = handover.new_token()
    number = handover.issue_at_window_once(db, ctx=clerk, request=request, token=token)
    assert handover.issue_at_window_once(db, ctx=clerk, request=request, token=token) == number
    assert handover.handover(db, ctx=clerk, issue_number=number).pdf is not None
    other = registry.RegistryContext(
        actor=Actor(kind=ActorKind.STAFF, actor_id="another-clerk", organisation_code=CHIYODA),
        lg_code=CHIYODA,
        network=clerk.network,
    )
    seen = handover.handover(db, ctx=other, issue_number=number)
    assert seen.pdf is None
    assert not seen.mine
    later = dataclasses.replace(clerk, now=clerk.now + handover.HANDOVER_TIME + dt.timedelta(seconds=1))
    expired = handover.handover(db, ctx=later, issue_number=number)
    assert expired.pdf is None
    assert expired.erased_at is not None
    assert expired.issuance.issue_number == number
    # Even after the PDF is gone, the token still answers with its issuance.
    assert handover.issue_at_window_once(db, ctx=later, request=request, token=token) == number


def test_a_protection_order_registered_on_screen_stops_the_named_party(
    window: TestClient, db: Session, world: World
) -> None:
    people, _ = moving_household(world, card=False)
    person = people[0]
    clerk_token = log_in(window, factories.staff(db, Role.CLERK, org=CHIYODA))
    assert window.get("/staff/protection-orders").status_code == 403
    window.cookies.clear()
    token = log_in(window, factories.staff(db, Role.CLERK, Role.SUPERVISOR, org=CHIYODA))
    assert clerk_token != token

    blank = window.post(
        "/staff/protection-orders/new", data={"csrf_token": token, "person_id": str(person.person_id)}
    )
    assert blank.status_code == 400
    assert "制限する相手方" in blank.text

    made = window.post(
        "/staff/protection-orders/new",
        data={
            "csrf_token": token,
            "person_id": str(person.person_id),
            "reason": "支援措置 (DV)",
            "valid_until": "",
            "parties.0.name": "加害　太郎",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    listing = window.get(made.headers["location"])
    assert "支援措置を登録しました" in listing.text
    assert "加害　太郎" in listing.text
    assert person.name in listing.text

    refused = window.post(
        "/staff/certificates/preview",
        data=_selection(
            token,
            person.person_id,
            **{"requester.kind": "agent", "requester.name": "加害 太郎", "requester.authority": "委任状"},
        ),
    )
    assert refused.status_code == 403
    assert "支援措置" in refused.text
    # The refusal is evidence: kept although the page answered with the form again.
    assert _audited(db, "certificate.refused")

    order_id = re.search(r"/staff/protection-orders/(\d+)/end", listing.text)
    assert order_id
    confirm = window.get(f"/staff/protection-orders/{order_id.group(1)}/end")
    assert "支援措置を終了する" in confirm.text
    ended = window.post(
        f"/staff/protection-orders/{order_id.group(1)}/end",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert ended.status_code == 303
    assert "を終了しました" in window.get(ended.headers["location"]).text


# ---------------------------------------------------------------------------
# マイナンバーカード


def test_a_card_is_handed_over_and_its_pin_reset_at_the_window(
    window: TestClient, db: Session, national_db: Session, world: World
) -> None:
    from tests.web.scenario import arrive_from_abroad, issue_card

    person = arrive_from_abroad(world)[0]
    world.relay()
    number = issue_card(world, person, hand_over=False)
    token = log_in(window, factories.staff(db, Role.CLERK, org=CHIYODA))
    counter = window.get("/staff/cards")
    assert number in counter.text
    assert window.get(f"/staff/cards?card_number={number}", follow_redirects=False).headers["location"] == (
        f"/staff/cards/{number}"
    )
    page = window.get(f"/staff/cards/{number}/hand-over")
    assert person.name in page.text

    weak = window.post(
        f"/staff/cards/{number}/hand-over",
        data={
            "csrf_token": token,
            "identity_documents": "student_card",
            "auth_pin": "12",
            "signing_wanted": "false",
        },
    )
    assert weak.status_code == 400
    assert "本人確認書類" in weak.text or "暗証番号" in weak.text
    assert 'value="12"' not in weak.text  # a PIN is never sent back

    handed = window.post(
        f"/staff/cards/{number}/hand-over",
        data={
            "csrf_token": token,
            "identity_documents": "drivers_licence",
            "auth_pin": AUTH_PIN,
            "signing_wanted": "true",
            "signing_pin": "ABCD1234",
        },
    )
    assert handed.status_code == 200, handed.text
    secret = re.search(r'<p class="secret">([A-Z0-9]{16})</p>', handed.text)
    assert secret
    card = card_repository.card_by_number(national_db, number)
    assert card is not None
    assert card.status == "active"

    reset = window.post(
        f"/staff/cards/{number}/pin-reset",
        data={"csrf_token": token, "kind": "auth", "new_pin": "9876", "identity_documents": "passport"},
        follow_redirects=False,
    )
    assert reset.status_code == 303, reset.text
    assert "暗証番号を再設定しました" in window.get(reset.headers["location"]).text
    login = cards.login_with_card(national_db, card_number=number, pin="9876")
    assert login.access_token


# ---------------------------------------------------------------------------
# 抽出依頼の承認


def test_the_operator_approves_an_extraction_and_follows_its_production(
    window: TestClient, db: Session, national_db: Session
) -> None:
    prefecture = Principal(
        kind=PrincipalKind.STAFF,
        subject="tokyo-kyufu",
        organisation_code="130001",
        organisation_kind=OrganisationKind.PREFECTURE,
        roles=frozenset({Role.CLERK}),
        token_id=0,
    )
    asked = agencies.request_extraction(
        national_db,
        principal=prefecture,
        reference_date=today() - dt.timedelta(days=1),
        lg_codes=[CHIYODA],
        min_age=18,
        max_age=None,
        purpose="物価高騰対策給付金の支給対象者の把握",
        target="test",
    )
    national_db.commit()
    operator = factories.staff(db, Role.OPERATOR, org="national", kind=OrganisationKind.NATIONAL)
    token = log_in(window, operator)
    page = window.get("/staff/approvals")
    assert page.status_code == 200
    assert "物価高騰対策給付金" in page.text
    assert "承認する" in page.text

    decided = window.post(
        f"/staff/approvals/extractions/{asked.id}",
        data={"csrf_token": token, "decision": "approve", "note": "条例を確認"},
        follow_redirects=False,
    )
    assert decided.status_code == 303, decided.text
    after = window.get(decided.headers["location"])
    assert f"依頼 {asked.id[:8]} を承認しました" in after.text
    status = window.get(f"/staff/approvals/extractions/{asked.id}", headers={"HX-Request": "true"})
    assert status.status_code == 200
    assert "作成済み" in status.text or "作成中" in status.text or "作成待ち" in status.text
    again = window.post(
        f"/staff/approvals/extractions/{asked.id}",
        data={"csrf_token": token, "decision": "reject", "note": ""},
    )
    assert again.status_code == 409


def test_a_municipal_supervisor_sees_corrections_and_an_auditor_no_approvals(
    window: TestClient, db: Session
) -> None:
    log_in(window, factories.staff(db, Role.CLERK, Role.SUPERVISOR, org=CHIYODA))
    menu = window.get("/staff/").text
    for href in ("/staff/arrivals", "/staff/certificates", "/staff/cards", "/staff/protection-orders"):
        assert f'href="{href}"' in menu
    assert "修正の承認" in menu
    assert "抽出依頼の承認" not in menu
    page = window.get("/staff/approvals")
    assert page.status_code == 200
    assert "承認待ちの申請 (0件)" in page.text
    assert "都道府県" not in page.text
    window.cookies.clear()
    log_in(window, factories.staff(db, Role.AUDITOR, org=CHIYODA))
    assert 'href="/staff/approvals"' not in window.get("/staff/").text
    assert window.get("/staff/approvals").status_code == 403
    assert _audited(db, "access.denied")


# ---------------------------------------------------------------------------
# 職権修正の承認


def test_a_clerk_drafts_a_correction_on_its_form_and_a_supervisor_approves_it(
    window: TestClient, db: Session, world: World
) -> None:
    person = arrive_from_abroad(world, family=("承認", "ショウニン"))[0]
    clerk = factories.staff(db, Role.CLERK, org=CHIYODA)
    token = log_in(window, clerk)
    assert "承認の申請" in window.get("/staff/").text
    record = window.get(f"/staff/residents/{person.person_id}").text
    assert f'href="/staff/approvals/new/ex-officio-correction?person={person.person_id}"' in record
    # Recording it directly stays refused (and audited); drafting it is offered instead.
    assert window.get(f"/staff/events/ex-officio-correction?person={person.person_id}").status_code == 403
    form = window.get(f"/staff/approvals/new/ex-officio-correction?person={person.person_id}")
    assert form.status_code == 200
    assert "承認を申請する" in form.text
    version = re.search(r'name="person.version" value="(\d+)"', form.text)
    assert version
    fields = {
        "csrf_token": token,
        "effective_on": "",
        "person.person_id": str(person.person_id),
        "person.version": version.group(1),
        "items.0.name": "resident_code",
        "items.0.value": "1",
        "_approval_reason": "",
    }
    url = f"/staff/approvals/new/ex-officio-correction?person={person.person_id}"
    refused = window.post(url, data=fields)
    assert refused.status_code == 400
    assert 'id="f-effective-on-error"' in refused.text
    assert 'id="f-approval-reason-error"' in refused.text
    # The event's own rule answers beside the item at drafting time.
    fields |= {"effective_on": "令和2年1月1日", "_approval_reason": "戸籍謄本との照合"}
    refused = window.post(url, data=fields)
    assert refused.status_code == 400
    assert "修正できません" in refused.text
    fields |= {"items.0.name": "given_name", "items.0.value": "壱郎"}
    drafted = window.post(url, data=fields, follow_redirects=False)
    assert drafted.status_code == 303, drafted.text
    detail_url = drafted.headers["location"].split("?")[0]
    mine = window.get(drafted.headers["location"])
    assert "承認を申請しました" in mine.text
    assert "自分の申請は承認・却下できません" in mine.text
    assert "承認して記録する" not in mine.text
    assert _audited(db, "registry.approval_requested")

    window.cookies.clear()
    supervisor_token = log_in(window, factories.staff(db, Role.SUPERVISOR, org=CHIYODA))
    listing = window.get("/staff/approvals")
    assert "承認待ちの申請 (1件)" in listing.text
    assert person.name in listing.text
    shown = window.get(detail_url)
    assert shown.status_code == 200
    assert "承認して記録する" in shown.text
    assert "<strong>承認　壱郎</strong>" in shown.text  # the name as approving would leave it
    revision = re.search(r'name="revision" value="(\d+)"', shown.text)
    assert revision
    approved = window.post(
        detail_url,
        data={
            "csrf_token": supervisor_token,
            "decision": "approve",
            "revision": revision.group(1),
            "note": "",
        },
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    after = window.get(approved.headers["location"])
    assert "申請を承認し、異動を記録しました" in after.text
    event = re.search(r"recorded=(\d+)", after.text)
    assert event
    record_page = window.get(f"/staff/residents/{person.person_id}?recorded={event.group(1)}")
    assert "職権修正を記録しました" in record_page.text
    assert "承認　壱郎" in record_page.text


def test_an_approval_of_a_changed_record_is_refused_on_screen_and_the_drafter_resubmits(
    window: TestClient, app: FastAPI, db: Session, world: World
) -> None:
    person = arrive_from_abroad(world, family=("再出", "サイシュツ"))[0]
    clerk = factories.staff(db, Role.CLERK, org=CHIYODA)
    token = log_in(window, clerk)
    form = window.get(f"/staff/approvals/new/clerical-correction?person={person.person_id}").text
    version = re.search(r'name="person.version" value="(\d+)"', form)
    assert version
    drafted = window.post(
        f"/staff/approvals/new/clerical-correction?person={person.person_id}",
        data={
            "csrf_token": token,
            "effective_on": today().isoformat(),
            "person.person_id": str(person.person_id),
            "person.version": version.group(1),
            "items.0.name": "honseki",
            "items.0.value": "東京都千代田区丸の内一丁目1番",
            "_approval_reason": "本籍地からの通知",
        },
        follow_redirects=False,
    )
    assert drafted.status_code == 303, drafted.text
    detail_url = drafted.headers["location"].split("?")[0]
    # Another clerk changes the record meanwhile (a 転居).
    with world.municipal() as session:
        current = registry.get_record(
            session, ctx=clerk_context(world, CHIYODA), person_id=person.person_id, purpose="テスト"
        )
        registry.run_command(
            session,
            ctx=clerk_context(world, CHIYODA),
            slug="furigana",
            request=registry.COMMANDS_BY_SLUG["furigana"].request_type.model_validate(
                {
                    "effective_on": today().isoformat(),
                    "person": {"person_id": person.person_id, "version": current.version},
                    "family_name_kana": "サイシュツ",
                    "given_name_kana": "イチ",
                }
            ),
        )
    # The supervisor works at another desk (a second browser session).
    other = TestClient(app, base_url="https://jumin.example", raise_server_exceptions=False)
    supervisor_token = log_in(other, factories.staff(db, Role.SUPERVISOR, org=CHIYODA))
    stale = other.post(
        detail_url, data={"csrf_token": supervisor_token, "decision": "approve"}, follow_redirects=False
    )
    assert stale.status_code == 409
    assert "他の職員がこの記録を更新しました。再読み込みしてください。" in stale.text
    assert "申請は承認待ちのまま残ります" in stale.text
    assert _audited(db, "registry.approval_failed")

    listing = window.get("/staff/approvals").text
    assert "再提出が必要" in listing
    edit = window.get(f"{detail_url}/edit")
    assert edit.status_code == 200
    assert 'value="honseki" selected' in edit.text
    assert "東京都千代田区丸の内一丁目1番" in edit.text
    assert "本籍地からの通知" in edit.text
    version = re.search(r'name="person.version" value="(\d+)"', edit.text)
    assert version
    assert int(version.group(1)) > 1
    resubmitted = window.post(
        f"{detail_url}/edit",
        data={
            "csrf_token": token,
            "effective_on": today().isoformat(),
            "person.person_id": str(person.person_id),
            "person.version": version.group(1),
            "items.0.name": "honseki",
            "items.0.value": "東京都千代田区丸の内一丁目1番",
            "_approval_reason": "本籍地からの通知 (再提出)",
        },
        follow_redirects=False,
    )
    assert resubmitted.status_code == 303, resubmitted.text
    assert "再提出しました" in window.get(resubmitted.headers["location"]).text
    withdrawn = window.post(f"{detail_url}/withdraw", data={"csrf_token": token}, follow_redirects=False)
    assert withdrawn.status_code == 303
    assert "申請を取り下げました" in window.get(withdrawn.headers["location"]).text


def test_the_operator_reads_the_national_audit_log(
    window: TestClient, db: Session, national_db: Session
) -> None:
    from jumin.audit import service as audit
    from jumin.audit.domain import Actor, ActorKind, AuditAction

    audit.record(
        national_db,
        actor=Actor(kind=ActorKind.SYSTEM, actor_id="national", organisation_code="national"),
        action=AuditAction.CARD_EXPIRY_RUN,
        target_kind="card_batch",
        target_id="2025-04-01",
    )
    national_db.commit()
    log_in(
        window,
        factories.staff(db, Role.OPERATOR, Role.AUDITOR, org="national", kind=OrganisationKind.NATIONAL),
    )
    page = window.get("/staff/audit?log=national")
    assert page.status_code == 200
    assert "card_batch 2025-04-01" in page.text
    assert "<td>有効期限切れの処理</td>" in page.text
    chain = window.get("/staff/audit/chain?log=national", headers={"HX-Request": "true"})
    assert "全国センターの記録" in chain.text
    assert "改ざんは検出されませんでした" in chain.text
    # A municipality's auditor has no such choice: the parameter reads their own log.
    window.cookies.clear()
    log_in(window, factories.staff(db, Role.AUDITOR, org=CHIYODA))
    own = window.get("/staff/audit?log=national")
    assert "card_batch 2025-04-01" not in own.text
