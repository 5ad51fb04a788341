from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import OrganisationKind, Role
from jumin.audit.models import AuditEntry
from jumin.network.agencies import service
from tests import factories
from tests.network.agencies.store import Store

Headers = dict[str, str]


@dataclass
class Agency:
    client_id: str
    organisation_code: str
    headers: Headers


def national_login(client: TestClient, who: factories.Staff) -> Headers:
    code = pyotp.TOTP(who.totp_secret).at(dt.datetime.now(dt.UTC))
    r = client.post(
        "/network/v1/auth/login", json={"login": who.login, "password": who.password, "totp": code}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def store(national_db: Session) -> Store:
    return Store(national_db)


@pytest.fixture
def make_agency(client: TestClient, national_db: Session) -> Callable[..., Agency]:
    def make(org: str = "nenkin", *tasks: str, name: str = "照会システム") -> Agency:
        new = service.register_agency_client(
            national_db, actor=None, organisation_code=org, name=name, organisation_name=f"{org} 機関"
        )
        for task in tasks:
            service.grant_task(national_db, actor=None, client_id=new.client_id, task_code=task)
        r = client.post(
            "/network/v1/auth/token", json={"client_id": new.client_id, "client_secret": new.client_secret}
        )
        assert r.status_code == 200, r.text
        return Agency(new.client_id, org, {"Authorization": f"Bearer {r.json()['access_token']}"})

    return make


@pytest.fixture
def operator(client: TestClient, national_db: Session) -> Headers:
    return national_login(client, factories.operator(national_db))


@pytest.fixture
def auditor(client: TestClient, national_db: Session) -> Headers:
    who = factories.staff(national_db, Role.AUDITOR, org=factories.NATIONAL, kind=OrganisationKind.NATIONAL)
    return national_login(client, who)


def audit_entries(db: Session, **filters: str) -> list[AuditEntry]:
    return db.query(AuditEntry).filter_by(**filters).order_by(AuditEntry.id).all()
