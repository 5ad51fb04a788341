"""`jumin cert` in process, against the SQLite files the test settings point at.

In process (typer's runner), not as subprocesses: a fresh interpreter costs seconds
(imports, fonts) per command. The world — migrated databases, a clerk, a family — is
built once for the module and committed, as a deployment's would be.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.audit.domain import Actor, ActorKind
from jumin.cli import app
from jumin.config import get_settings
from jumin.core.wareki import format_wareki
from jumin.db import unit_of_work, upgrade
from jumin.network_client import default_network_client
from jumin.registry import service as registry
from jumin.registry.domain import EventKind
from jumin.registry.schemas import MoveInRequest
from tests.certificates.conftest import days_ago, member, pypdf_text, squash
from tests.certificates.test_signature import _flip_inside_signed_range

CLERK = "cert-cli-clerk"
SUPERVISOR = "cert-cli-supervisor"
OPERATOR = "cert-cli-operator"


@dataclass
class World:
    head: int
    wife: int
    household: int


@pytest.fixture(scope="module")
def world() -> World:
    settings = get_settings()
    upgrade(settings.database_url)
    upgrade(settings.national_database_url)
    with unit_of_work() as session:
        accounts.ensure_organisation(
            session, code="131016", kind=OrganisationKind.MUNICIPALITY, name="千代田区"
        )
        accounts.ensure_organisation(
            session, code="national", kind=OrganisationKind.NATIONAL, name="全国センター"
        )
        accounts.create_staff(
            session,
            actor=None,
            organisation_code="131016",
            login=CLERK,
            display_name=CLERK,
            roles=[Role.CLERK],
        )
        accounts.create_staff(
            session,
            actor=None,
            organisation_code="131016",
            login=SUPERVISOR,
            display_name=SUPERVISOR,
            roles=[Role.SUPERVISOR],
        )
        accounts.ensure_organisation(
            session, code="cert-cli-agency", kind=OrganisationKind.AGENCY, name="年金事務所"
        )
        accounts.create_staff(
            session,
            actor=None,
            organisation_code="national",
            login=OPERATOR,
            display_name=OPERATOR,
            roles=[Role.OPERATOR],
        )
        ctx = registry.RegistryContext(
            actor=Actor(ActorKind.STAFF, CLERK, "131016"), lg_code="131016", network=default_network_client()
        )
        moved = registry.move_in(
            session,
            ctx=ctx,
            kind=EventKind.MOVE_IN_FROM_ABROAD,
            request=MoveInRequest.model_validate(
                {
                    "effective_on": days_ago(40),
                    "address": {"line": "永田町一丁目7番1号"},
                    "previous_address": "フランス",
                    "members": [
                        member("高橋", "一郎", ("タカハシ", "イチロウ")),
                        member("高橋", "二葉", ("タカハシ", "フタバ"), sex="female", relationship="妻"),
                    ],
                }
            ),
        )
    return World(moved.person_ids[0], moved.person_ids[1], moved.household_ids[0])


runner = CliRunner()


def test_issue_writes_the_signed_pdf_and_verify_says_authentic(world: World, tmp_path: Path) -> None:
    out = tmp_path / "copy.pdf"
    done = runner.invoke(
        app,
        [
            "cert",
            "issue",
            "--clerk",
            CLERK,
            "--household",
            str(world.household),
            "--include",
            "head_and_relationship",
            "--requester",
            "self",
            "--requester-person",
            str(world.head),
            "--out",
            str(out),
        ],
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["title"] == "住民票の写し"
    assert summary["person_ids"] == [world.head, world.wife]
    assert summary["fee_yen"] == 300
    text = squash(pypdf_text(out.read_bytes()))
    assert "高橋一郎" in text
    assert "高橋二葉" in text
    assert summary["issue_number"] in text

    verified = runner.invoke(app, ["cert", "verify", str(out)])
    assert verified.exit_code == 0, verified.output
    result = json.loads(verified.stdout)
    assert result["authentic"] is True
    assert result["issue_number"] == summary["issue_number"]
    assert result["issued_by"] == "千代田区"

    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(_flip_inside_signed_range(out.read_bytes()))
    rejected = runner.invoke(app, ["cert", "verify", str(tampered)])
    assert rejected.exit_code == 1
    assert json.loads(rejected.stdout)["authentic"] is False

    ca = runner.invoke(app, ["cert", "ca-cert"])
    assert ca.exit_code == 0
    assert ca.stdout.startswith("-----BEGIN CERTIFICATE-----")


def test_issue_refuses_bad_input_and_accounts_without_the_role(world: World, tmp_path: Path) -> None:
    out = tmp_path / "x.pdf"
    base = ["cert", "issue", "--out", str(out), "--person", str(world.wife)]
    third = ["--requester", "third_party", "--requester-name", "債権者", "--reason", "短い"]
    refused = runner.invoke(app, [*base, "--clerk", CLERK, *third])
    assert refused.exit_code == 2
    assert "利用の目的" in refused.stderr
    operator = runner.invoke(app, [*base, "--clerk", OPERATOR, "--requester-person", str(world.wife)])
    assert operator.exit_code == 2
    assert "権限がありません" in operator.stderr
    both = runner.invoke(app, [*base, "--clerk", CLERK, "--household", str(world.household)])
    assert both.exit_code == 2
    assert "どちらか一方" in both.stderr
    assert not out.exists()
    missing = runner.invoke(app, ["cert", "verify", str(tmp_path / "nothing.pdf")])
    assert missing.exit_code == 2


def test_pin_is_set_for_the_kiosk(world: World) -> None:
    done = runner.invoke(app, ["cert", "pin", str(world.head), "--clerk", CLERK], input="2580\n2580\n")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout.splitlines()[-1])["person_id"] == world.head
    bad = runner.invoke(app, ["cert", "pin", str(world.head), "--clerk", CLERK, "--pin", "12ab"])
    assert bad.exit_code == 2
    assert "数字4桁" in bad.stderr


def test_issue_as_of_a_date(world: World, tmp_path: Path) -> None:
    out = tmp_path / "as-of.pdf"
    day = dt.date.fromisoformat(days_ago(30))
    base = [
        "cert",
        "issue",
        "--clerk",
        CLERK,
        "--person",
        str(world.head),
        "--requester-person",
        str(world.head),
    ]
    done = runner.invoke(app, [*base, "--as-of", format_wareki(day), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["as_of"] == day.isoformat()
    assert squash(f"基準日{format_wareki(day)}現在") in squash(pypdf_text(out.read_bytes()))
    future = runner.invoke(app, [*base, "--as-of", "2999-01-01", "--out", str(tmp_path / "f.pdf")])
    assert future.exit_code == 2
    assert "将来" in future.stderr


def test_a_supervisor_grants_and_revokes_an_official_task(world: World) -> None:
    tasks = runner.invoke(app, ["cert", "official-tasks"])
    assert tasks.exit_code == 0
    assert "national-pension" in {t["code"] for t in json.loads(tasks.stdout)}
    grant = ["--agency", "cert-cli-agency", "--task", "national-pension"]
    done = runner.invoke(app, ["cert", "grant-official", "--supervisor", SUPERVISOR, *grant])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["active"] is True
    clerk = runner.invoke(app, ["cert", "grant-official", "--supervisor", CLERK, *grant])
    assert clerk.exit_code == 2
    assert "監督職員" in clerk.stderr
    revoked = runner.invoke(app, ["cert", "revoke-official", "--supervisor", SUPERVISOR, *grant])
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["active"] is False
    again = runner.invoke(app, ["cert", "revoke-official", "--supervisor", SUPERVISOR, *grant])
    assert again.exit_code == 2
