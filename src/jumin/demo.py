"""The demo deployment `make run` starts: 千代田区 with an administrator, and the operator.

Seeding is idempotent: a second run finds the organisations and accounts and reuses the
credentials it wrote the first time (kept under var/, mode 0600, never in the repo).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role

DEMO_MUNICIPALITY = ("131016", "千代田区")
SECOND_MUNICIPALITY = ("011002", "札幌市")
NATIONAL = ("national", "地方公共団体情報システム機構 (全国センター)")


@dataclass(frozen=True, slots=True)
class DemoCredential:
    login: str
    organisation_code: str
    roles: list[str]
    password: str
    totp_secret: str
    totp_uri: str


def _credentials_path(var_dir: Path) -> Path:
    return var_dir / "demo-credentials.json"


def load_credentials(var_dir: Path) -> list[DemoCredential]:
    path = _credentials_path(var_dir)
    if not path.exists():
        return []
    return [DemoCredential(**c) for c in json.loads(path.read_text())]


def _save(var_dir: Path, creds: list[DemoCredential]) -> None:
    path = _credentials_path(var_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([asdict(c) for c in creds], f, ensure_ascii=False, indent=2)
    tmp.replace(path)


_ACCOUNTS = [
    (
        "chiyoda-admin",
        DEMO_MUNICIPALITY[0],
        "千代田区 管理者",
        [Role.ADMINISTRATOR, Role.SUPERVISOR, Role.AUDITOR],
    ),
    ("chiyoda-clerk", DEMO_MUNICIPALITY[0], "千代田区 窓口職員", [Role.CLERK]),
    ("sapporo-clerk", SECOND_MUNICIPALITY[0], "札幌市 窓口職員", [Role.CLERK, Role.SUPERVISOR]),
    ("jlis-operator", NATIONAL[0], "全国センター 運用者", [Role.OPERATOR, Role.AUDITOR]),
]


def seed(session: Session, var_dir: Path) -> list[DemoCredential]:
    accounts.ensure_organisation(
        session,
        code=DEMO_MUNICIPALITY[0],
        kind=OrganisationKind.MUNICIPALITY,
        name=DEMO_MUNICIPALITY[1],
    )
    accounts.ensure_organisation(
        session,
        code=SECOND_MUNICIPALITY[0],
        kind=OrganisationKind.MUNICIPALITY,
        name=SECOND_MUNICIPALITY[1],
    )
    accounts.ensure_organisation(session, code=NATIONAL[0], kind=OrganisationKind.NATIONAL, name=NATIONAL[1])
    known = {c.login: c for c in load_credentials(var_dir)}
    existing = {
        a.login
        for org in (DEMO_MUNICIPALITY[0], SECOND_MUNICIPALITY[0], NATIONAL[0])
        for a in accounts.list_accounts(session, actor=None, organisation_code=org)
    }
    creds: list[DemoCredential] = []
    for login, org, name, roles in _ACCOUNTS:
        if login in existing and login in known:
            creds.append(known[login])
            continue
        if login in existing:
            # The database outlived the credentials file: issue a new TOTP secret, keep going.
            reset = accounts.reset_mfa(session, actor=None, login=login)
            creds.append(
                DemoCredential(
                    login,
                    org,
                    [r.value for r in reset.roles],
                    "(変更なし: 以前の表示を参照)",
                    reset.totp_secret,
                    reset.totp_uri,
                )
            )
            continue
        new = accounts.create_staff(
            session, actor=None, organisation_code=org, login=login, display_name=name, roles=roles
        )
        creds.append(
            DemoCredential(
                login,
                org,
                [r.value for r in new.roles],
                new.password,
                new.totp_secret,
                new.totp_uri,
            )
        )
    _save(var_dir, creds)
    return creds
