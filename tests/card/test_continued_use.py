"""継続利用: after a 転入 the card is presented at the new municipality's window, which writes
the new address on it and serves it from then on (card.service.continue_use), within 90 days."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind
from jumin.audit.models import AuditEntry
from jumin.card import repository, service
from jumin.card.domain import CardStateError, IdentityDocument, NotEligible
from jumin.card.jpki import service as jpki
from jumin.core.errors import Forbidden, InvalidValue
from jumin.db import utcnow
from jumin.network.identity.models import IdentityRecord
from tests.card.helpers import DOCS, SAPPORO_CHUO, change_identity, issue_card, seed_identity

NEW_ADDRESS = "北海道札幌市中央区北1条西2丁目1番"
SAPPORO_CLERK = Actor(kind=ActorKind.STAFF, actor_id="sapporo-clerk", organisation_code=SAPPORO_CHUO)


@pytest.fixture
def holder(national_db: Session) -> tuple[str, str]:
    jpki.ensure_authorities(national_db)
    code = seed_identity(national_db)
    number, _ = issue_card(national_db, code)
    return code, number


def _moved(national_db: Session, code: str) -> None:
    change_identity(
        national_db,
        code,
        change_kind="move_in_card_holder",
        lg_code=SAPPORO_CHUO,
        prefecture_code="01",
        address_lg_code=SAPPORO_CHUO,
        address=NEW_ADDRESS,
    )


def test_the_card_serves_the_new_municipality_with_the_new_address(
    national_db: Session, holder: tuple[str, str]
) -> None:
    code, number = holder
    before = service.card_after_move_in(
        national_db, actor=SAPPORO_CLERK, lg_code=SAPPORO_CHUO, resident_code=code
    )
    # Until the move reaches the identity store, nothing is read about the person.
    assert (before.registered_here, before.card) == (False, None)

    _moved(national_db, code)
    after = service.card_after_move_in(
        national_db, actor=SAPPORO_CLERK, lg_code=SAPPORO_CHUO, resident_code=code
    )
    assert after.registered_here
    assert after.card is not None
    assert after.card.card.card_number == number
    assert after.new_address == NEW_ADDRESS
    assert not after.continued
    assert after.deadline == service.today_jst(utcnow()) + dt.timedelta(days=90)

    view = service.continue_use(
        national_db,
        actor=SAPPORO_CLERK,
        lg_code=SAPPORO_CHUO,
        card_number=number,
        identity_documents=[IdentityDocument.PASSPORT],
    )
    assert view.lg_code == SAPPORO_CHUO
    card = repository.card_by_number(national_db, number)
    assert card is not None
    assert card.address == NEW_ADDRESS
    done = service.card_after_move_in(
        national_db, actor=SAPPORO_CLERK, lg_code=SAPPORO_CHUO, resident_code=code
    )
    assert done.continued
    entry = national_db.execute(
        select(AuditEntry).where(AuditEntry.action == "card.continued_use", AuditEntry.target_id == code)
    ).scalar_one()
    assert f"card={number}" in entry.detail
    # Once is enough.
    with pytest.raises(CardStateError):
        service.continue_use(
            national_db,
            actor=SAPPORO_CLERK,
            lg_code=SAPPORO_CHUO,
            card_number=number,
            identity_documents=DOCS,
        )


def test_continued_use_needs_the_move_documents_and_the_90_days(
    national_db: Session, holder: tuple[str, str]
) -> None:
    code, number = holder
    # Not (yet) a resident here: another municipality's card.
    with pytest.raises(Forbidden):
        service.continue_use(
            national_db,
            actor=SAPPORO_CLERK,
            lg_code=SAPPORO_CHUO,
            card_number=number,
            identity_documents=DOCS,
        )
    _moved(national_db, code)
    with pytest.raises(InvalidValue) as documents:
        service.continue_use(
            national_db,
            actor=SAPPORO_CLERK,
            lg_code=SAPPORO_CHUO,
            card_number=number,
            identity_documents=[IdentityDocument.STUDENT_CARD],
        )
    assert documents.value.field == "identity_documents"
    row = national_db.execute(select(IdentityRecord).where(IdentityRecord.resident_code == code)).scalar_one()
    row.changed_on = service.today_jst(utcnow()) - dt.timedelta(days=91)
    national_db.flush()
    with pytest.raises(NotEligible, match="90日"):
        service.continue_use(
            national_db,
            actor=SAPPORO_CLERK,
            lg_code=SAPPORO_CHUO,
            card_number=number,
            identity_documents=DOCS,
        )
