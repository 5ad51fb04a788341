"""住民票コードの変更 on the card side: whatever was made under the old code follows the person.

The whole story through the register (window → relay → national inbox → sweep) is in
test_through_the_register; these are the paths between: a card in production or an
application form in the post when the code changes, and rows made before the card side
linked them to the identity (the card0002 migration).
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from jumin.card import repository, service
from jumin.card.domain import ApplicationReason
from jumin.card.models import CardApplication
from jumin.core.errors import Conflict, NotFound
from jumin.core.ids import ResidentCode
from jumin.db import make_engine, upgrade, utcnow
from tests.card.helpers import (
    AUTH_PIN,
    CLERK,
    DOCS,
    OPERATOR,
    PHOTO,
    SIGNING_PIN,
    change_identity,
    issue_card,
    seed_identity,
)
from tests.conftest import BACKENDS, PG_URL, _pg_database

_rng = random.Random(20261202)


def _new_code() -> str:
    return ResidentCode.random(_rng).value


def test_a_card_in_production_when_the_code_changes_is_set_up_and_handed_over(national_db: Session) -> None:
    old = seed_identity(national_db, name="製造　中")
    service.apply(
        national_db,
        actor=CLERK,
        lg_code="131016",
        resident_code=old,
        reason=ApplicationReason.NEW,
        photo_ref=PHOTO,
    )
    service.produce(national_db, actor=OPERATOR)
    new = _new_code()
    change_identity(national_db, old, change_kind="resident_code_change", resident_code=new)

    report = service.pre_issuance_setup(national_db, actor=OPERATOR)
    assert (report.ready, report.mismatched) == (1, 0)
    [card] = repository.cards_of(national_db, old)
    result = service.hand_over(
        national_db,
        actor=CLERK,
        lg_code="131016",
        card_number=card.card_number,
        identity_documents=DOCS,
        auth_pin=AUTH_PIN,
        signing_pin=SIGNING_PIN,
    )
    assert result.card.status == "active"
    face = service.card_face(national_db, actor=CLERK, lg_code="131016", card_number=card.card_number)
    assert face.resident_code == new
    # The old code is dead at the window: it finds nobody.
    with pytest.raises(NotFound):
        service.cards_of_resident(national_db, actor=CLERK, lg_code="131016", resident_code=old)
    assert [
        c.card_number
        for c in service.cards_of_resident(national_db, actor=CLERK, lg_code="131016", resident_code=new)
    ] == [card.card_number]


def test_an_application_form_mailed_before_the_code_change_still_applies(national_db: Session) -> None:
    old = seed_identity(national_db, name="郵送　申請")
    form_id = service.issue_application_form(national_db, actor=CLERK, lg_code="131016", resident_code=old)
    new = _new_code()
    change_identity(national_db, old, change_kind="resident_code_change", resident_code=new)

    view = service.apply_online(national_db, form_id=form_id, photo_ref=PHOTO)
    app = national_db.query(CardApplication).filter_by(application_no=view.application_no).one()
    assert app.resident_code == new
    # A second application under the new code is the same person's: refused as open.
    with pytest.raises(Conflict):
        service.apply(
            national_db,
            actor=CLERK,
            lg_code="131016",
            resident_code=new,
            reason=ApplicationReason.NEW,
            photo_ref=PHOTO,
        )


def test_a_death_after_two_code_changes_still_revokes_the_card(national_db: Session) -> None:
    first = seed_identity(national_db, name="二度　変更")
    number, _ = issue_card(national_db, first)
    second, third = _new_code(), _new_code()
    change_identity(national_db, first, change_kind="resident_code_change", resident_code=second)
    change_identity(national_db, second, change_kind="resident_code_change", resident_code=third)
    change_identity(national_db, third, change_kind="death", status="removed", removal_reason="death")
    report = service.sweep_identity_changes(national_db)
    assert report.cards_revoked == 1
    card = repository.card_by_number(national_db, number)
    assert card is not None
    assert (card.status, card.revocation_reason) == ("revoked", "death")


# --- the migration -----------------------------------------------------------------------------


def _empty_database(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'card0002.db'}"
    assert PG_URL is not None
    url = _pg_database(PG_URL, "card0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


_IDENTITY = (
    "INSERT INTO national_identities (resident_code, prefecture_code, lg_code, status, resident_kind, name,"
    " search_kana, birth_date, sex, address_lg_code, address, change_kind, changed_on, updated_at,"
    " source_lg_code, source_person_id) VALUES (:code, '13', '131016', 'live', 'japanese', '移行　確認',"
    " 'イコウカクニン', :birth, 'male', '131016', '千代田1番1号', :kind, :birth, :now, '131016', :person)"
)
_HISTORY = (
    "INSERT INTO national_identity_history (identity_id, resident_code, prefecture_code, lg_code, valid_from,"
    " recorded_at, status, resident_kind, name, search_kana, birth_date, sex, address_lg_code, address,"
    " change_kind, inbox_id) VALUES (:identity, :code, '13', '131016', :birth, :now, 'live', 'japanese',"
    " '移行　確認', 'イコウカクニン', :birth, 'male', '131016', '千代田1番1号', :kind, 0)"
)
_CARD = (
    "INSERT INTO cards (card_number, application_id, resident_code, prefecture_code, lg_code, name,"
    " birth_date, sex, address, resident_kind, has_photo, status, production_batch, produced_at)"
    " VALUES (:number, :application, :code, '13', '131016', '移行　確認', :birth, 'male',"
    " '東京都千代田区千代田1番1号', 'japanese', :photo, 'active', 'P-1', :now)"
)
_CONSENT = (
    "INSERT INTO card_four_facts_consents (business_id, resident_code, prefecture_code, scope, consented_on,"
    " certificate_serial, created_at) VALUES (1, :code, '13', 'address', :birth, 'ab12', :now)"
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_links_existing_rows_to_their_identity(backend: str, tmp_path: Path) -> None:
    """Rows made under card0001 get the identity id: by the code held now, by a code given up
    in an earlier change (the history), and none for a code the store never knew."""
    url = _empty_database(backend, tmp_path)
    upgrade(url, revision="card0001")
    engine = make_engine(url)
    birth, now = dt.date(1980, 4, 1), utcnow()
    current, former, unknown = _new_code(), _new_code(), _new_code()
    try:
        with engine.begin() as conn:
            conn.execute(
                text(_IDENTITY),
                {"code": current, "birth": birth, "now": now, "kind": "resident_code_change", "person": 1},
            )
            identity = conn.execute(
                text("SELECT id FROM national_identities WHERE resident_code = :c"), {"c": current}
            ).scalar_one()
            for code, kind in ((former, "birth"), (current, "resident_code_change")):
                conn.execute(
                    text(_HISTORY),
                    {"identity": identity, "code": code, "birth": birth, "now": now, "kind": kind},
                )
            for i, code in enumerate((current, former, unknown), start=1):
                conn.execute(
                    text(_CARD),
                    {
                        "number": f"{i:012d}",
                        "application": i,
                        "code": code,
                        "birth": birth,
                        "photo": True,
                        "now": now,
                    },
                )
            conn.execute(text(_CONSENT), {"code": former, "birth": birth, "now": now})
        upgrade(url)
        with engine.connect() as conn:
            cards = dict(conn.execute(text("SELECT resident_code, identity_id FROM cards")).all())
            consents = conn.execute(text("SELECT identity_id FROM card_four_facts_consents")).scalars().all()
        assert cards == {current: identity, former: identity, unknown: None}
        assert consents == [identity]
    finally:
        engine.dispose()
