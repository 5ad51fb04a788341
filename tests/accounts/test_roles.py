from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import OrganisationKind, Role
from jumin.api_support import AccessRule, api_routes
from jumin.app import create_app
from jumin.audit.models import AuditEntry
from tests import factories
from tests.factories import auth


def _access_rules(dependant: object) -> list[AccessRule]:
    found: list[AccessRule] = []
    call = getattr(dependant, "call", None)
    if isinstance(call, AccessRule):
        found.append(call)
    for sub in getattr(dependant, "dependencies", []):
        found.extend(_access_rules(sub))
    return found


def test_every_route_declares_exactly_one_access_rule() -> None:
    app = create_app()
    routes = list(api_routes(app.routes))
    assert len(routes) > 10
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if len(_access_rules(r.dependant)) != 1]
    assert missing == []


def test_a_clerk_cannot_create_accounts_and_the_refusal_is_audited(client: TestClient, db: Session) -> None:
    clerk = factories.staff(db, Role.CLERK)
    r = client.post(
        "/accounts",
        json={"login": "newbie", "display_name": "新人", "roles": ["clerk"]},
        headers=auth(client, clerk),
    )
    assert r.status_code == 403
    assert r.json()["type"] == "urn:jumin:problem:access-denied"
    denied = db.query(AuditEntry).filter_by(actor_id=clerk.login, action="access.denied").one()
    assert denied.target_id == "POST /accounts"
    assert denied.outcome == "denied"


def test_an_administrator_creates_staff_in_their_own_body_only(client: TestClient, db: Session) -> None:
    admin = factories.staff(db, Role.ADMINISTRATOR)
    factories.organisation(db, "011002", OrganisationKind.MUNICIPALITY, "札幌市")
    headers = auth(client, admin)
    own = client.post(
        "/accounts",
        json={"login": "newbie", "display_name": "新人", "roles": ["clerk"]},
        headers=headers,
    )
    assert own.status_code == 201
    assert own.json()["totp_uri"].startswith("otpauth://totp/")
    other = client.post(
        "/accounts",
        json={
            "login": "intruder",
            "display_name": "x",
            "roles": ["clerk"],
            "organisation_code": "011002",
        },
        headers=headers,
    )
    assert other.status_code == 403
    listed = client.get("/accounts", headers=headers).json()
    assert {a["login"] for a in listed} == {admin.login, "newbie"}


def test_no_personal_route_is_readable_anonymously(client: TestClient) -> None:
    assert client.get("/accounts").status_code == 401
    assert client.get("/audit/entries").status_code == 401


def test_agency_clients_get_tokens_but_not_staff_routes(client: TestClient, db: Session) -> None:
    from jumin.accounts import service

    operator = factories.operator(db)
    factories.organisation(db, "nenkin", OrganisationKind.AGENCY, "日本年金機構")
    created = client.post(
        "/agency-clients",
        json={"organisation_code": "nenkin", "name": "年金給付"},
        headers=auth(client, operator),
    )
    assert created.status_code == 201
    cid, secret = created.json()["client_id"], created.json()["client_secret"]
    bad = client.post("/auth/token", json={"client_id": cid, "client_secret": secret + "x"})
    assert bad.status_code == 401
    token = client.post("/auth/token", json={"client_id": cid, "client_secret": secret})
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert client.get("/auth/me", headers=headers).json()["kind"] == "agency_client"
    assert client.get("/accounts", headers=headers).status_code == 403
    assert service.list_organisations(db)


def test_municipalities_and_prefectures_are_registered_under_their_real_codes(db: Session) -> None:
    from jumin.accounts import service
    from jumin.core.errors import InvalidValue, NotFound

    assert service.ensure_organisation(db, code="130001", kind=OrganisationKind.PREFECTURE, name="東京都")
    with pytest.raises(InvalidValue):
        service.ensure_organisation(db, code="131017", kind=OrganisationKind.MUNICIPALITY, name="x")
    with pytest.raises(NotFound):
        service.ensure_organisation(db, code="139998", kind=OrganisationKind.MUNICIPALITY, name="x")
    with pytest.raises(InvalidValue):
        service.ensure_organisation(db, code="130001", kind=OrganisationKind.MUNICIPALITY, name="x")
