"""Valid objects in one line each."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role

_counter = itertools.count(1)

MUNICIPALITY = "131016"
NATIONAL = "national"


@dataclass
class Staff:
    login: str
    password: str
    totp_secret: str
    organisation_code: str

    def code(self, now: dt.datetime | None = None) -> str:
        return str(pyotp.TOTP(self.totp_secret).at(now or dt.datetime.now(dt.UTC)))


def organisation(
    db: Session,
    code: str = MUNICIPALITY,
    kind: OrganisationKind = OrganisationKind.MUNICIPALITY,
    name: str = "千代田区",
) -> str:
    accounts.ensure_organisation(db, code=code, kind=kind, name=name)
    return code


def staff(
    db: Session,
    *roles: Role,
    org: str = MUNICIPALITY,
    kind: OrganisationKind = OrganisationKind.MUNICIPALITY,
) -> Staff:
    organisation(db, org, kind, name=org)
    login = f"user{next(_counter)}"
    new = accounts.create_staff(
        db,
        actor=None,
        organisation_code=org,
        login=login,
        display_name=login,
        roles=roles or (Role.CLERK,),
    )
    return Staff(login=login, password=new.password, totp_secret=new.totp_secret, organisation_code=org)


def operator(db: Session) -> Staff:
    return staff(db, Role.OPERATOR, org=NATIONAL, kind=OrganisationKind.NATIONAL)


def token_for(client: TestClient, who: Staff) -> str:
    response = client.post(
        "/auth/login", json={"login": who.login, "password": who.password, "totp": who.code()}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def auth(client: TestClient, who: Staff) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(client, who)}"}
