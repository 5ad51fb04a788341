from __future__ import annotations

import datetime as dt

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts import service
from jumin.accounts.domain import AccountLocked, InvalidCredentials, Role
from jumin.audit.models import AuditEntry
from jumin.config import get_settings
from jumin.core.errors import InvalidValue
from tests import factories
from tests.factories import auth

PROBLEM = "application/problem+json"


def test_login_needs_password_and_totp(client: TestClient, db: Session) -> None:
    clerk = factories.staff(db, Role.CLERK)
    r = client.post(
        "/auth/login", json={"login": clerk.login, "password": clerk.password, "totp": clerk.code()}
    )
    assert r.status_code == 200
    token = r.json()["access_token"]
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() == {
        "kind": "staff",
        "subject": clerk.login,
        "organisation_code": "131016",
        "organisation_kind": "municipality",
        "roles": ["clerk"],
    }


def test_wrong_totp_is_refused_with_a_japanese_problem(client: TestClient, db: Session) -> None:
    clerk = factories.staff(db)
    wrong = f"{(int(clerk.code()) + 1) % 1_000_000:06d}"
    r = client.post("/auth/login", json={"login": clerk.login, "password": clerk.password, "totp": wrong})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"] == "urn:jumin:problem:invalid-credentials"
    assert body["title"] == "認証に失敗しました"
    assert "ワンタイムパスワード" in body["detail"]


def test_wrong_password_with_right_totp_is_refused(client: TestClient, db: Session) -> None:
    clerk = factories.staff(db)
    r = client.post(
        "/auth/login",
        json={"login": clerk.login, "password": clerk.password + "x", "totp": clerk.code()},
    )
    assert r.status_code == 401


def test_unknown_login_gives_the_same_answer_as_a_wrong_password(client: TestClient, db: Session) -> None:
    clerk = factories.staff(db)
    unknown = client.post("/auth/login", json={"login": "nobody", "password": "x" * 12, "totp": "123456"})
    wrong = client.post("/auth/login", json={"login": clerk.login, "password": "x" * 12, "totp": "123456"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


def test_a_totp_code_works_once(client: TestClient, db: Session) -> None:
    clerk = factories.staff(db)
    code = clerk.code()
    first = client.post("/auth/login", json={"login": clerk.login, "password": clerk.password, "totp": code})
    again = client.post("/auth/login", json={"login": clerk.login, "password": clerk.password, "totp": code})
    assert first.status_code == 200
    assert again.status_code == 401
    assert "使用済み" in again.json()["detail"]


def test_codes_one_step_apart_are_accepted_but_not_two(db: Session) -> None:
    clerk = factories.staff(db)
    now = dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.UTC)
    totp = pyotp.TOTP(clerk.totp_secret)
    previous_step = totp.at(now - dt.timedelta(seconds=30))
    service.login(db, login=clerk.login, password=clerk.password, totp_code=previous_step, now=now)
    two_ahead = totp.at(now + dt.timedelta(seconds=60))
    with pytest.raises(InvalidCredentials):
        service.login(db, login=clerk.login, password=clerk.password, totp_code=two_ahead, now=now)


def test_an_older_code_after_a_newer_one_is_a_replay(db: Session) -> None:
    clerk = factories.staff(db)
    now = dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.UTC)
    totp = pyotp.TOTP(clerk.totp_secret)
    service.login(db, login=clerk.login, password=clerk.password, totp_code=totp.at(now), now=now)
    with pytest.raises(InvalidCredentials, match="使用済み"):
        service.login(
            db,
            login=clerk.login,
            password=clerk.password,
            totp_code=totp.at(now - dt.timedelta(seconds=30)),
            now=now,
        )


def test_repeated_failures_lock_the_account_and_the_lock_survives_the_refusal(
    client: TestClient, db: Session
) -> None:
    clerk = factories.staff(db)
    threshold = get_settings().lockout_threshold
    for _ in range(threshold):
        r = client.post(
            "/auth/login",
            json={"login": clerk.login, "password": "wrong-password-1", "totp": "000000"},
        )
        assert r.status_code == 401
    locked = client.post(
        "/auth/login", json={"login": clerk.login, "password": clerk.password, "totp": clerk.code()}
    )
    assert locked.status_code == 423
    assert locked.json()["title"] == "アカウントがロックされています"
    failures = db.query(AuditEntry).filter_by(target_id=clerk.login, action="login.failed").count()
    assert failures == threshold


def test_lock_expires_and_an_administrator_can_lift_it(db: Session) -> None:
    clerk = factories.staff(db)
    now = dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.UTC)
    for _ in range(get_settings().lockout_threshold):
        with pytest.raises(InvalidCredentials):
            service.login(db, login=clerk.login, password="wrong-password-1", totp_code="000000", now=now)
    totp = pyotp.TOTP(clerk.totp_secret)
    with pytest.raises(AccountLocked):
        service.login(db, login=clerk.login, password=clerk.password, totp_code=totp.at(now), now=now)
    later = now + dt.timedelta(minutes=get_settings().lockout_minutes, seconds=1)
    assert service.login(db, login=clerk.login, password=clerk.password, totp_code=totp.at(later), now=later)

    for _ in range(get_settings().lockout_threshold):
        with pytest.raises(InvalidCredentials):
            service.login(db, login=clerk.login, password="wrong-password-1", totp_code="000000", now=later)
    service.unlock(db, actor=None, login=clerk.login)
    even_later = later + dt.timedelta(seconds=30)
    assert service.login(
        db,
        login=clerk.login,
        password=clerk.password,
        totp_code=totp.at(even_later),
        now=even_later,
    )


def test_expired_token_is_refused(client: TestClient, db: Session) -> None:
    clerk = factories.staff(db)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=get_settings().token_ttl_minutes + 1)
    issued = service.login(
        db,
        login=clerk.login,
        password=clerk.password,
        totp_code=pyotp.TOTP(clerk.totp_secret).at(long_ago),
        now=long_ago,
    )
    r = client.get("/auth/me", headers={"Authorization": f"Bearer {issued.access_token}"})
    assert r.status_code == 401
    assert "有効期限" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_logout_revokes_the_token(client: TestClient, db: Session) -> None:
    headers = auth(client, factories.staff(db))
    assert client.post("/auth/logout", headers=headers).status_code == 204
    assert client.get("/auth/me", headers=headers).status_code == 401


def test_mfa_reset_invalidates_the_old_secret(db: Session) -> None:
    clerk = factories.staff(db)
    fresh = service.reset_mfa(db, actor=None, login=clerk.login)
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(InvalidCredentials):
        service.login(
            db,
            login=clerk.login,
            password=clerk.password,
            totp_code=pyotp.TOTP(clerk.totp_secret).at(now),
            now=now,
        )
    later = now + dt.timedelta(seconds=30)
    assert service.login(
        db,
        login=clerk.login,
        password=clerk.password,
        totp_code=pyotp.TOTP(fresh.totp_secret).at(later),
        now=later,
    )


def test_weak_passwords_are_refused(db: Session) -> None:
    factories.organisation(db)
    with pytest.raises(InvalidValue) as err:
        service.create_staff(
            db,
            actor=None,
            organisation_code="131016",
            login="weak",
            display_name="w",
            roles=[Role.CLERK],
            password="short1",
        )
    assert err.value.field == "password"


def test_totp_secret_is_not_stored_in_clear(db: Session) -> None:
    from jumin.accounts.models import StaffAccount

    clerk = factories.staff(db)
    row = db.query(StaffAccount).filter_by(login=clerk.login).one()
    assert clerk.totp_secret not in row.totp_secret_encrypted


def test_a_token_carries_every_role_and_refuses_a_deactivated_account(db: Session) -> None:
    """Authentication reads token, holder, organisation and roles in one query."""
    both = factories.staff(db, Role.CLERK, Role.SUPERVISOR)
    issued = service.login(db, login=both.login, password=both.password, totp_code=both.code())
    principal = service.authenticate(db, issued.access_token)
    assert principal.roles == frozenset({Role.CLERK, Role.SUPERVISOR})
    assert (principal.subject, principal.organisation_code) == (both.login, both.organisation_code)
    assert principal.token_id == issued.principal.token_id
    service.deactivate(db, actor=None, login=both.login)
    with pytest.raises(InvalidCredentials, match="無効"):
        service.authenticate(db, issued.access_token)
    with pytest.raises(InvalidCredentials):
        service.authenticate(db, "not-a-token")
