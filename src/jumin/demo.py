"""The demo deployment `make run` starts: 千代田区 and 札幌市 with their staff, the operator,
a prefecture clerk of 東京都 and an agency client (日本年金機構) with its statutory tasks.

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
from jumin.network.agencies import service as agencies

DEMO_MUNICIPALITY = ("131016", "千代田区")
SECOND_MUNICIPALITY = ("011002", "札幌市")
NATIONAL = ("national", "地方公共団体情報システム機構 (全国センター)")
PREFECTURE = ("130001", "東京都")
AGENCY = ("nenkin", "日本年金機構", "年金給付システム")


@dataclass(frozen=True, slots=True)
class DemoCredential:
    login: str
    organisation_code: str
    roles: list[str]
    password: str
    totp_secret: str
    totp_uri: str


def load_credentials(var_dir: Path, file_name: str = "demo-credentials.json") -> list[DemoCredential]:
    path = var_dir / file_name
    if not path.exists():
        return []
    return [DemoCredential(**c) for c in json.loads(path.read_text())]


def _write_private(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(content, f, ensure_ascii=False, indent=2)
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
    """The municipal side: both municipalities, the operator and their staff."""
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
    return _ensure_accounts(session, var_dir, _ACCOUNTS, "demo-credentials.json")


# Staff of the national server (its own accounts tables): prefecture staff see only their
# prefecture's residents, and the operator approves their extractions.
_NATIONAL_ACCOUNTS = [
    ("tokyo-clerk", PREFECTURE[0], "東京都 給付担当", [Role.CLERK]),
    ("jlis-network-operator", NATIONAL[0], "全国センター 運用者", [Role.OPERATOR, Role.AUDITOR]),
]
# Statutory tasks the demo agency may use (network/agencies/statutory_tasks.json).
AGENCY_TASKS = ("pension-benefit", "pension-status-check")


@dataclass(frozen=True, slots=True)
class DemoAgencyClient:
    organisation_code: str
    name: str
    client_id: str
    client_secret: str
    tasks: list[str]


def seed_national(session: Session, var_dir: Path) -> tuple[list[DemoCredential], DemoAgencyClient]:
    """The national side: a prefecture clerk, the operator, and an agency client with its tasks."""
    accounts.ensure_organisation(session, code=NATIONAL[0], kind=OrganisationKind.NATIONAL, name=NATIONAL[1])
    accounts.ensure_organisation(
        session, code=PREFECTURE[0], kind=OrganisationKind.PREFECTURE, name=PREFECTURE[1]
    )
    creds = _ensure_accounts(session, var_dir, _NATIONAL_ACCOUNTS, "demo-national-credentials.json")
    path = var_dir / "demo-agency-client.json"
    if path.exists():
        client = DemoAgencyClient(**json.loads(path.read_text()))
    else:
        new = agencies.register_agency_client(
            session, actor=None, organisation_code=AGENCY[0], name=AGENCY[2], organisation_name=AGENCY[1]
        )
        client = DemoAgencyClient(AGENCY[0], AGENCY[2], new.client_id, new.client_secret, list(AGENCY_TASKS))
        _write_private(path, asdict(client))
    for task in client.tasks:
        agencies.grant_task(session, actor=None, client_id=client.client_id, task_code=task)
    return creds, client


def _ensure_accounts(
    session: Session, var_dir: Path, wanted: list[tuple[str, str, str, list[Role]]], file_name: str
) -> list[DemoCredential]:
    """Create the accounts that are missing; reuse what the credentials file remembers."""
    known = {c.login: c for c in load_credentials(var_dir, file_name)}
    existing = {
        a.login
        for org in {org for _, org, _, _ in wanted}
        for a in accounts.list_accounts(session, actor=None, organisation_code=org)
    }
    creds: list[DemoCredential] = []
    for login, org, name, roles in wanted:
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
    _write_private(var_dir / file_name, [asdict(c) for c in creds])
    return creds
