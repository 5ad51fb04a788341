"""The national batches: production (unique numbers, express first), pre-issuance setup as
set-based statements whose count does not grow with the number of cards, renewal
notices that skip people no longer registered, and the application paths."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from jumin.card import cli as card_cli
from jumin.card import repository, service
from jumin.card.domain import (
    ApplicationReason,
    ExpressReason,
    NotEligible,
    new_card_number,
)
from jumin.cli import app as cli_app
from jumin.config import get_settings
from jumin.db import national_engine, unit_of_work, upgrade, utcnow
from tests.card.conftest import Headers
from tests.card.helpers import (
    CHIYODA,
    CLERK,
    OPERATOR,
    PHOTO,
    change_identity,
    issue_card,
    seed_identity,
    years_ago,
)


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _produced(db: Session, n: int) -> list[str]:
    codes = [seed_identity(db, name=f"一括　{i}") for i in range(n)]
    for code in codes:
        service.apply(
            db,
            actor=CLERK,
            lg_code=CHIYODA,
            resident_code=code,
            reason=ApplicationReason.NEW,
            photo_ref=PHOTO,
        )
    service.produce(db, actor=OPERATOR)
    return codes


def test_setup_costs_the_same_statements_for_3_cards_as_for_30(
    national_engine: Engine, national_db: Session
) -> None:
    """A day's national volume in one run: the work per chunk is a fixed set of statements
    (verdicts, updates, work items, one audit entry), never one per card."""
    runs = []
    for n in (3, 30):
        codes = _produced(national_db, n)
        # A fifth (at least one) no longer match: the work list fills in the same statements.
        for code in codes[: max(1, n // 5)]:
            change_identity(national_db, code, change_kind="name_change", name="改姓　後")
        with counted(national_engine) as statements:
            report = service.pre_issuance_setup(national_db, actor=OPERATOR, chunk_size=1000)
        assert (report.examined, report.mismatched, report.chunks) == (n, max(1, n // 5), 1)
        runs.append([s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE"))])
    assert len(runs[0]) == len(runs[1]), runs


def test_setup_refuses_a_card_whose_holder_is_no_longer_registered(national_db: Session) -> None:
    living, dead = _produced(national_db, 2)
    change_identity(national_db, dead, change_kind="death", status="removed", removal_reason="death")
    report = service.pre_issuance_setup(national_db, actor=OPERATOR)
    assert (report.ready, report.reasons) == (1, {"record_not_live": 1})
    assert [i.reason for i in service.work_list(national_db, actor=CLERK, lg_code=CHIYODA)] == [
        "record_not_live"
    ]
    assert repository.cards_of(national_db, living)[-1].status == "ready"


def test_card_numbers_stay_unique_when_the_generator_repeats_one(
    national_db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_code = seed_identity(national_db)
    number, _ = issue_card(national_db, first_code)
    fresh = (new_card_number() for _ in itertools.count())
    # The generator hands out the taken number first, and twice in the same batch.
    repeats = itertools.chain([number, number], fresh)
    monkeypatch.setattr(service, "new_card_number", lambda: next(repeats))
    codes = [seed_identity(national_db, name=f"番号　{i}") for i in range(3)]
    for code in codes:
        service.apply(
            national_db,
            actor=CLERK,
            lg_code=CHIYODA,
            resident_code=code,
            reason=ApplicationReason.NEW,
            photo_ref=PHOTO,
        )
    assert service.produce(national_db, actor=OPERATOR).cards == 3
    numbers = [repository.cards_of(national_db, c)[-1].card_number for c in (first_code, *codes)]
    assert len(set(numbers)) == 4


@pytest.mark.parametrize(
    ("age", "reason", "reissue", "express", "ok"),
    [
        (0, ApplicationReason.NEW, None, ExpressReason.NEWBORN, True),
        (2, ApplicationReason.NEW, None, ExpressReason.NEWBORN, False),
        (40, ApplicationReason.NEW, None, ExpressReason.ARRIVAL_FROM_ABROAD, True),
        (40, ApplicationReason.REISSUE, ExpressReason.LOSS, ExpressReason.LOSS, True),
        (40, ApplicationReason.REISSUE, ExpressReason.THEFT, ExpressReason.THEFT, True),
        (40, ApplicationReason.REISSUE, ExpressReason.FIRE, ExpressReason.FIRE, True),
        (40, ApplicationReason.REISSUE, ExpressReason.DAMAGE, ExpressReason.DAMAGE, True),
        (40, ApplicationReason.REISSUE, ExpressReason.DAMAGE, ExpressReason.LOSS, False),
        (40, ApplicationReason.RENEWAL, None, ExpressReason.LOSS, False),
        (40, ApplicationReason.NEW, None, ExpressReason.LOSS, False),
    ],
)
def test_express_issuance_only_for_its_eligible_reasons(
    national_db: Session,
    age: int,
    reason: ApplicationReason,
    reissue: ExpressReason | None,
    express: ExpressReason,
    ok: bool,
) -> None:
    code = seed_identity(national_db, birth=years_ago(age, days=30))
    if reason is not ApplicationReason.NEW:
        number, _ = issue_card(national_db, code)
        card = repository.card_by_number(national_db, number)
        assert card is not None
        card.valid_until = service.today_jst(utcnow()) + dt.timedelta(days=30)  # renewal window open
        national_db.flush()

    def apply() -> service.ApplicationView:
        return service.apply(
            national_db,
            actor=CLERK,
            lg_code=CHIYODA,
            resident_code=code,
            reason=reason,
            photo_ref=PHOTO,
            reissue_reason=reissue,
            express_reason=express,
        )

    if ok:
        view = apply()
        assert (view.express, view.express_reason) == (True, express)
        assert view.due_on == service.today_jst(utcnow()) + dt.timedelta(days=7)
    else:
        with pytest.raises(NotEligible) as refused:
            apply()
        assert refused.value.field == "express_reason"


def test_renewal_notices_skip_people_no_longer_registered(national_db: Session) -> None:
    staying, leaving = seed_identity(national_db), seed_identity(national_db, name="転出　予定")
    soon = service.today_jst(utcnow()) + dt.timedelta(days=40)
    for code in (staying, leaving):
        number, _ = issue_card(national_db, code)
        card = repository.card_by_number(national_db, number)
        assert card is not None
        card.valid_until = soon
    national_db.flush()
    # Removed before the sweeper ran: the batch itself reads the register and skips them.
    change_identity(
        national_db, leaving, change_kind="ex_officio_removal", status="removed", removal_reason="ex_officio"
    )
    report = service.renewal_notices(national_db, actor=OPERATOR)
    assert (report.card_notices, report.skipped_not_live) == (1, 1)
    notices = service.notices_of_batch(national_db, actor=OPERATOR, batch_id=report.batch_id)
    assert [(n.kind, n.mailing_name) for n in notices] == [("card_renewal", "山田　太郎")]
    assert notices[0].form_id is not None
    assert len(notices[0].form_id) == 23


def test_a_new_card_applied_for_online_with_the_form_from_the_window(
    client: TestClient, national_db: Session, clerk: Headers
) -> None:
    code = seed_identity(national_db)
    form = client.post("/card/v1/application-forms", json={"resident_code": code}, headers=clerk)
    assert form.status_code == 201, form.text
    form_id = form.json()["form_id"]
    missing_photo = client.post("/card/v1/online-applications", json={"form_id": form_id})
    assert missing_photo.status_code == 400
    assert missing_photo.json()["field"] == "photo_ref"
    applied = client.post("/card/v1/online-applications", json={"form_id": form_id, "photo_ref": PHOTO})
    assert applied.status_code == 201, applied.text
    assert (applied.json()["channel"], applied.json()["reason"], applied.json()["status"]) == (
        "online",
        "new",
        "received",
    )
    assert (
        client.post("/card/v1/online-applications", json={"form_id": form_id, "photo_ref": PHOTO}).status_code
        == 404
    )
    status = client.get(f"/card/v1/applications/{applied.json()['application_no']}", headers=clerk)
    assert status.json()["status"] == "received"


def test_the_worker_revokes_on_its_own_and_runs_the_expiry_once_a_day() -> None:
    """`jumin card worker`: each round sweeps the identity changes and delivers; the expiry
    run only when the day has changed. Runs on the deployment's national database."""
    upgrade(get_settings().national_database_url)
    with unit_of_work(national_engine()) as session:
        code = seed_identity(session, name="常駐　確認")
        number, _ = issue_card(session, code)
        change_identity(session, code, address="東京都千代田区一番町1番1号")
    result = CliRunner().invoke(cli_app, ["card", "worker", "--once"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["sweep"]["signing_revoked"] >= 1
    assert report["expired_on"] == service.today_jst(utcnow()).isoformat()
    with unit_of_work(national_engine()) as session:
        card = repository.card_by_number(session, number)
        assert card is not None
        signing = [c for c in service.card_view(session, card).certificates if c.kind == "signing"]
        assert [(c.status, c.revocation_reason) for c in signing] == [("revoked", "four_facts_changed")]
    again, ok = card_cli.worker_round(expired_on=service.today_jst(utcnow()), post=lambda *_: 204)
    assert ok
    assert "expire" not in again
    assert again["sweep"] == {"history_rows": 0, "signing_revoked": 0, "cards_revoked": 0, "provisions": 0}
