"""The staff window without a browser: CSRF, cookies, roles, redirects and form parsing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import Role
from jumin.audit.models import AuditEntry
from jumin.registry.schemas import CorrectionRequest, MoveInRequest, MoveWithinRequest
from jumin.web.forms import FormInvalid, parse_request
from tests import factories

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture
def browser_client(app: FastAPI) -> Iterator[TestClient]:
    # https: the session cookie is Secure off localhost, and httpx sends it back over TLS only.
    with TestClient(app, base_url="https://jumin.example", raise_server_exceptions=False) as c:
        yield c


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _log_in(client: TestClient, who: factories.Staff) -> str:
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


def test_the_root_leads_an_anonymous_visitor_to_the_login_page(browser_client: TestClient) -> None:
    first = browser_client.get("/", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/staff/"
    second = browser_client.get("/staff/residents", follow_redirects=False)
    assert second.status_code == 303
    assert second.headers["location"] == "/staff/login?reason=required&next=/staff/residents"
    page = browser_client.get(second.headers["location"])
    assert page.status_code == 200
    assert "この画面を使うにはログインしてください。" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"


def test_the_session_cookie_is_httponly_strict_secure_and_scoped_to_the_window(
    browser_client: TestClient, db: Session
) -> None:
    who = factories.staff(db, Role.CLERK)
    page = browser_client.get("/staff/login")
    response = browser_client.post(
        "/staff/login",
        data={
            "csrf_token": _csrf(page.text),
            "login": who.login,
            "password": who.password,
            "totp": who.code(),
        },
        follow_redirects=False,
    )
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("jumin_staff="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" in cookie
    assert "Path=/staff" in cookie


def test_a_login_without_the_forms_token_is_refused(browser_client: TestClient, db: Session) -> None:
    who = factories.staff(db, Role.CLERK)
    browser_client.get("/staff/login")
    response = browser_client.post(
        "/staff/login",
        data={"csrf_token": "forged", "login": who.login, "password": who.password, "totp": who.code()},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "フォームの確認に失敗しました" in response.text
    assert "jumin_staff" not in response.headers.get("set-cookie", "")


def test_every_post_needs_the_sessions_csrf_token(browser_client: TestClient, db: Session) -> None:
    clerk = factories.staff(db, Role.CLERK)
    token = _log_in(browser_client, clerk)
    before = db.query(AuditEntry).filter_by(action="registry.event_recorded").count()
    for data in ({}, {"csrf_token": "0" * 64}):
        refused = browser_client.post(
            "/staff/events/move-in-from-abroad",
            data=data | {"effective_on": "2025-04-01", "address.line": "千代田一丁目1番"},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert "フォームの確認に失敗しました" in refused.text
        assert browser_client.post("/staff/logout", data=data, follow_redirects=False).status_code == 403
    assert db.query(AuditEntry).filter_by(action="registry.event_recorded").count() == before
    # With the token, the same logout goes through and the session is over.
    out = browser_client.post("/staff/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/staff/login?reason=logged_out"
    again = browser_client.get("/staff/", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/staff/login")


def test_a_csrf_token_of_another_session_does_not_work(app: FastAPI, db: Session) -> None:
    with (
        TestClient(app, base_url="https://jumin.example") as alice,
        TestClient(app, base_url="https://jumin.example") as mallory,
    ):
        _log_in(alice, factories.staff(db, Role.CLERK))
        mallory_token = _log_in(mallory, factories.staff(db, Role.CLERK))
        refused = alice.post("/staff/logout", data={"csrf_token": mallory_token}, follow_redirects=False)
        assert refused.status_code == 403


def test_a_clerk_cannot_open_the_audit_viewer_and_the_refusal_is_audited(
    browser_client: TestClient, db: Session
) -> None:
    clerk = factories.staff(db, Role.CLERK)
    _log_in(browser_client, clerk)
    menu = browser_client.get("/staff/")
    assert "/staff/audit" not in menu.text
    response = browser_client.get("/staff/audit")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "この画面を開く権限がありません" in response.text
    denied = db.query(AuditEntry).filter_by(actor_id=clerk.login, action="access.denied").one()
    assert denied.target_id == "GET /staff/audit"


def test_an_auditor_reads_but_records_nothing(browser_client: TestClient, db: Session) -> None:
    auditor = factories.staff(db, Role.AUDITOR)
    _log_in(browser_client, auditor)
    assert browser_client.get("/staff/audit").status_code == 200
    assert browser_client.get("/staff/residents").status_code == 200
    assert browser_client.get("/staff/events/move-in").status_code == 403


def test_a_supervisor_only_event_is_refused_to_a_clerk(browser_client: TestClient, db: Session) -> None:
    _log_in(browser_client, factories.staff(db, Role.CLERK))
    response = browser_client.get("/staff/events/ex-officio-entry")
    assert response.status_code == 403
    assert "監督職員のみ" in response.text


def test_another_municipalitys_resident_is_not_found_as_a_page(
    browser_client: TestClient, db: Session
) -> None:
    _log_in(browser_client, factories.staff(db, Role.CLERK))
    response = browser_client.get("/staff/residents/999999")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "この団体の住民基本台帳にありません" in response.text


def test_pages_stay_out_of_the_openapi_schema(browser_client: TestClient) -> None:
    paths = browser_client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/staff")]
    # Unknown URLs outside the window are still the API's problem+json.
    assert browser_client.get("/no-such-thing").headers["content-type"].startswith("application/problem+json")


def test_posted_fields_become_the_request_model() -> None:
    request = parse_request(
        MoveWithinRequest,
        {
            "effective_on": "令和7年4月1日",
            "persons.0.selectable": "1",
            "persons.0.include": "true",
            "persons.0.person_id": "3",
            "persons.0.version": "2",
            "persons.1.selectable": "1",  # unticked: not part of the request
            "persons.1.person_id": "4",
            "persons.1.version": "1",
            "address.line": "一番町4番",
            "address.katagaki": "",
        },
    )
    assert isinstance(request, MoveWithinRequest)
    assert request.effective_on.isoformat() == "2025-04-01"
    assert [(p.person_id, p.version) for p in request.persons] == [(3, 2)]
    assert request.address.katagaki == ""


def test_errors_come_back_named_by_input() -> None:
    with pytest.raises(FormInvalid) as caught:
        parse_request(
            MoveInRequest,
            {
                "effective_on": "令和元年4月30日",
                "previous_address": "札幌市",
                "members.0.family_name": "山田",
                "members.0.sex": "male",
                "members.0.relationship": "世帯主",
            },
        )
    errors = caught.value.errors
    assert "令和の期間" in errors["effective_on"]
    assert errors["address"] == "入力してください。"
    assert errors["members.0.birth_date"] == "入力してください。"


def test_correction_items_are_rows_with_wareki_dates() -> None:
    request = parse_request(
        CorrectionRequest,
        {
            "effective_on": "2025-04-01",
            "person.person_id": "1",
            "person.version": "1",
            "items.0.name": "birth_date",
            "items.0.value": "昭和55年4月2日",
            "items.1.name": "",
            "items.2.name": "honseki",
            "items.2.value": "東京都千代田区一番町1番",
        },
    )
    assert isinstance(request, CorrectionRequest)
    assert request.items == {"birth_date": "1980-04-02", "honseki": "東京都千代田区一番町1番"}
    with pytest.raises(FormInvalid) as caught:
        parse_request(
            CorrectionRequest,
            {
                "effective_on": "2025-04-01",
                "person.person_id": "1",
                "person.version": "1",
                "items.0.name": "birth_date",
                "items.0.value": "昭和65年1月1日",
            },
        )
    assert "items.0.value" in caught.value.errors
