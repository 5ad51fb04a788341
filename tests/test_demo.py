"""The demo `make run` seeds: the national side's staff and the agency client work as printed."""

from __future__ import annotations

from pathlib import Path

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.demo import AGENCY_TASKS, PREFECTURE, seed_national


def test_the_demo_prefecture_clerk_and_agency_client_can_sign_in(
    client: TestClient, national_db: Session, tmp_path: Path
) -> None:
    creds, agency = seed_national(national_db, tmp_path)
    national_db.commit()
    clerk = next(c for c in creds if c.organisation_code == PREFECTURE[0])
    login = client.post(
        "/network/v1/auth/login",
        json={"login": clerk.login, "password": clerk.password, "totp": pyotp.TOTP(clerk.totp_secret).now()},
    )
    assert login.status_code == 200, login.text
    token = client.post(
        "/network/v1/auth/token", json={"client_id": agency.client_id, "client_secret": agency.client_secret}
    )
    assert token.status_code == 200, token.text
    tasks = client.get(
        "/network/v1/me/tasks", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    ).json()
    assert sorted(t["task_code"] for t in tasks if t["active"]) == sorted(AGENCY_TASKS)


def test_seeding_again_reuses_the_accounts_and_the_client(national_db: Session, tmp_path: Path) -> None:
    first_creds, first_agency = seed_national(national_db, tmp_path)
    again_creds, again_agency = seed_national(national_db, tmp_path)
    assert again_agency == first_agency
    assert [c.password for c in again_creds] == [c.password for c in first_creds]
    assert oct((tmp_path / "demo-agency-client.json").stat().st_mode & 0o777) == "0o600"
