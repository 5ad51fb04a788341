from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import Role
from jumin.logging import JsonFormatter
from tests import factories

PROBLEM = "application/problem+json"


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_openapi_is_served(client: TestClient) -> None:
    assert client.get("/openapi.json").json()["info"]["title"].startswith("Jumin")
    assert client.get("/docs").status_code == 200


def test_malformed_payload_is_a_422_problem_naming_the_field(client: TestClient) -> None:
    r = client.post("/auth/login", json={"login": "a", "password": "b"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["title"] == "入力形式が正しくありません"
    assert body["field"] == "totp"
    assert body["errors"][0]["field"] == "totp"


def test_unknown_url_is_a_japanese_problem(client: TestClient) -> None:
    r = client.get("/no-such-thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["title"] == "対象が見つかりません"


def test_request_id_is_echoed_and_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc12345-test"})
    assert given.headers["x-request-id"] == "abc12345-test"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 32


def test_audit_entries_carry_the_request_id(client: TestClient, db: Session) -> None:
    from jumin.audit.models import AuditEntry

    clerk = factories.staff(db, Role.CLERK)
    client.post(
        "/auth/login",
        json={"login": clerk.login, "password": clerk.password, "totp": clerk.code()},
        headers={"X-Request-ID": "login-req-0001"},
    )
    entry = db.query(AuditEntry).filter_by(action="login.succeeded", actor_id=clerk.login).one()
    assert entry.request_id == "login-req-0001"


def test_access_log_names_the_route_template_never_the_values(
    client: TestClient, db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    admin = factories.staff(db, Role.ADMINISTRATOR)
    headers = factories.auth(client, admin)
    with caplog.at_level(logging.INFO, logger="jumin.http"):
        client.post("/accounts/secret-login-name/unlock", headers=headers)
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "jumin.http"]
    assert lines
    logged = json.loads(lines[-1])
    assert logged["route"] == "/accounts/{login}/unlock"
    assert "secret-login-name" not in "".join(lines)


def test_log_formatter_blanks_identifiers() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "person 123456789018 moved", None, None)
    assert "123456789018" not in JsonFormatter().format(record)


def test_nul_characters_are_refused_at_the_door(client: TestClient) -> None:
    # PostgreSQL text cannot hold NUL: without this guard the request would fail as a 500.
    body = client.post("/auth/token", json={"client_id": "\u0000", "client_secret": "x"})
    assert body.status_code == 422
    assert body.headers["content-type"].startswith(PROBLEM)
    assert "NUL" in body.json()["detail"]
    assert client.get("/healthz?x=%00").status_code == 422


def test_a_number_beyond_the_database_range_is_a_clear_400(client: TestClient, db: Session) -> None:
    headers = factories.auth(client, factories.staff(db, Role.AUDITOR))
    r = client.get("/audit/entries", params={"before_id": 2**63}, headers=headers)
    assert r.status_code in (400, 422)
    assert r.headers["content-type"].startswith(PROBLEM)
