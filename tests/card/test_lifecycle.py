"""The card's whole life over HTTP: application, production, setup, hand-over, login,
suspension and lifting, renewal notices, online renewal, replacement, death, expiry."""

from __future__ import annotations

import datetime as dt
from base64 import b64decode, b64encode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.audit.models import AuditEntry
from jumin.card import repository, service
from jumin.card.domain import (
    ApplicationReason,
    CardStateError,
    CertificateKind,
    ExpressReason,
    IdentityDocument,
    NotEligible,
    birthday_after,
    renewal_opens_on,
)
from jumin.card.models import Card, JpkiCertificate
from jumin.core.errors import InvalidValue
from jumin.db import utcnow
from tests.card.conftest import Headers
from tests.card.helpers import (
    AUTH_PIN,
    CHIYODA,
    CLERK,
    OPERATOR,
    PHOTO,
    SIGNING_PIN,
    change_identity,
    issue_card,
    seed_identity,
    years_ago,
)

DOCS = ["drivers_licence"]
DOCS_ = [IdentityDocument.DRIVERS_LICENCE]


def _login(client: TestClient, db: Session, card_number: str, pin: str = AUTH_PIN) -> dict[str, str]:
    challenge = client.post("/card/v1/login/challenge").json()
    signature = service.sign_with_card(
        db, card_number=card_number, kind=CertificateKind.AUTH, pin=pin, data=b64decode(challenge["to_sign"])
    )
    cert = service.read_certificate(db, card_number=card_number, kind=CertificateKind.AUTH)
    r = client.post(
        "/card/v1/login",
        json={
            "challenge_id": challenge["challenge_id"],
            "certificate": b64encode(cert).decode(),
            "signature": b64encode(signature).decode(),
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_the_whole_life_of_a_card(
    client: TestClient, national_db: Session, clerk: Headers, operator: Headers
) -> None:
    code = seed_identity(national_db, birth=years_ago(40, days=30))

    applied = client.post(
        "/card/v1/applications",
        json={"resident_code": code, "reason": "new", "photo_ref": PHOTO},
        headers=clerk,
    )
    assert applied.status_code == 201, applied.text
    assert applied.json()["status"] == "received"
    # One open application per person.
    again = client.post(
        "/card/v1/applications",
        json={"resident_code": code, "reason": "new", "photo_ref": PHOTO},
        headers=clerk,
    )
    assert again.status_code == 409

    assert client.post("/card/v1/jpki/authorities", headers=operator).status_code == 200
    produced = client.post("/card/v1/production", json={}, headers=operator).json()
    assert produced["cards"] == 1
    setup = client.post("/card/v1/pre-issuance-setup", json={}, headers=operator).json()
    assert (setup["examined"], setup["ready"], setup["mismatched"]) == (1, 1, 0)
    waiting = client.get("/card/v1/cards-awaiting-hand-over", headers=clerk).json()
    assert len(waiting) == 1
    card_number = waiting[0]["card_number"]

    # Hand-over: the identity check is recorded, PINs set, certificates issued.
    bad_docs = client.post(
        f"/card/v1/cards/{card_number}/hand-over",
        json={"identity_documents": ["health_insurance"], "auth_pin": AUTH_PIN},
        headers=clerk,
    )
    assert bad_docs.status_code == 400
    handed = client.post(
        f"/card/v1/cards/{card_number}/hand-over",
        json={"identity_documents": DOCS, "auth_pin": AUTH_PIN, "signing_pin": SIGNING_PIN},
        headers=clerk,
    )
    assert handed.status_code == 200, handed.text
    body = handed.json()
    secret = body["suspension_secret"]
    card = body["card"]
    assert card["status"] == "active"
    assert {c["kind"] for c in card["certificates"]} == {"auth", "signing"}
    assert all(c["status"] == "good" for c in card["certificates"])
    row = national_db.query(Card).filter_by(card_number=card_number).one()
    assert row.identity_check == "drivers_licence"
    assert row.suspension_secret_hash is not None
    assert secret not in row.suspension_secret_hash
    assert row.valid_until == service.card_valid_until(row.birth_date, row.issued_on or dt.date.min)

    # The resident logs in with the card and sees their four facts.
    resident = _login(client, national_db, card_number)
    me = client.get("/card/v1/me", headers=resident)
    assert me.status_code == 200
    assert me.json()["facts"]["address"] == "東京都千代田区千代田1番1号"
    # A staff token is not a resident session, and a resident session is not staff.
    assert client.get("/card/v1/me", headers=clerk).status_code == 401
    assert client.get(f"/card/v1/cards/{card_number}", headers=resident).status_code == 401

    # Lost at night: suspended with the card number and the secret, no login needed.
    wrong = client.post("/card/v1/suspensions", json={"card_number": card_number, "secret": "WRONGSECRET"})
    assert wrong.status_code == 401
    suspended = client.post(
        "/card/v1/suspensions", json={"card_number": card_number, "secret": secret.lower()}
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert {c["status"] for c in suspended.json()["certificates"]} == {"hold"}
    assert client.get("/card/v1/me", headers=resident).status_code == 401  # sessions end with it
    refused = client.post("/card/v1/login/challenge").json()
    cert = service.read_certificate(national_db, card_number=card_number, kind=CertificateKind.AUTH)
    signature = service.sign_with_card(
        national_db,
        card_number=card_number,
        kind=CertificateKind.AUTH,
        pin=AUTH_PIN,
        data=b64decode(refused["to_sign"]),
    )
    held = client.post(
        "/card/v1/login",
        json={
            "challenge_id": refused["challenge_id"],
            "certificate": b64encode(cert).decode(),
            "signature": b64encode(signature).decode(),
        },
    )
    assert held.status_code == 401
    assert national_db.query(AuditEntry).filter_by(action="card.login_failed").count() == 1

    # Found again: lifted at the window only.
    lifted = client.post(
        f"/card/v1/cards/{card_number}/lift-suspension", json={"identity_documents": DOCS}, headers=clerk
    )
    assert lifted.status_code == 200
    assert {c["status"] for c in lifted.json()["certificates"]} == {"good"}
    resident = _login(client, national_db, card_number)

    # Three months before expiry: a renewal notice, sent to where the person lives now.
    row.valid_until = service.today_jst(utcnow()) + dt.timedelta(days=60)
    national_db.flush()
    change_identity(national_db, code, address="東京都千代田区永田町1丁目7番1号")
    notices = client.post("/card/v1/renewal-notices", json={}, headers=operator).json()
    assert notices["card_notices"] == 1
    listed = client.get(f"/card/v1/renewal-notices/{notices['batch_id']}", headers=operator).json()
    card_notice = next(n for n in listed if n["kind"] == "card_renewal")
    assert card_notice["mailing_address"] == "東京都千代田区永田町1丁目7番1号"
    # The batch is idempotent: no second notice for the same expiry.
    assert client.post("/card/v1/renewal-notices", json={}, headers=operator).json()["card_notices"] == 0

    # The move revoked the signing certificate (the sweeper), not the card.
    swept = client.post("/card/v1/identity-sweep", headers=operator).json()
    assert swept["signing_revoked"] == 1
    view = client.get(f"/card/v1/cards/{card_number}", headers=clerk).json()
    statuses = {c["kind"]: c["status"] for c in view["certificates"]}
    assert statuses == {"auth": "good", "signing": "revoked"}

    # Online renewal with the notice's 申請書ID; the new card replaces the old one.
    online = client.post(
        "/card/v1/online-applications", json={"form_id": card_notice["form_id"], "photo_ref": PHOTO}
    )
    assert online.status_code == 201, online.text
    assert (online.json()["channel"], online.json()["reason"]) == ("online", "renewal")
    reused = client.post(
        "/card/v1/online-applications", json={"form_id": card_notice["form_id"], "photo_ref": PHOTO}
    )
    assert reused.status_code == 404
    client.post("/card/v1/production", json={}, headers=operator)
    client.post("/card/v1/pre-issuance-setup", json={}, headers=operator)
    new_number = client.get("/card/v1/cards-awaiting-hand-over", headers=clerk).json()[0]["card_number"]
    assert new_number != card_number
    client.post(
        f"/card/v1/cards/{new_number}/hand-over",
        json={"identity_documents": DOCS, "auth_pin": "2468", "signing_pin": "XYZ98765"},
        headers=clerk,
    ).raise_for_status()
    old = client.get(f"/card/v1/cards/{card_number}", headers=clerk).json()
    assert (old["status"], old["revocation_reason"]) == ("revoked", "replaced")
    assert {c["status"] for c in old["certificates"]} == {"revoked"}
    assert client.get("/card/v1/me", headers=resident).status_code == 401

    # Death: the sweeper revokes the card and both certificates.
    change_identity(national_db, code, change_kind="death", status="removed", removal_reason="death")
    assert client.post("/card/v1/identity-sweep", headers=operator).json()["cards_revoked"] == 1
    dead = client.get(f"/card/v1/cards/{new_number}", headers=clerk)
    assert dead.status_code == 200
    assert dead.json()["revocation_reason"] == "death"
    assert {c["status"] for c in dead.json()["certificates"]} == {"revoked"}

    # Every step left its trace in the national audit log.
    actions = {a for (a,) in national_db.query(AuditEntry.action).filter(AuditEntry.target_id == code)}
    assert {
        "card.applied",
        "card.handed_over",
        "jpki.certificate_issued",
        "card.suspended",
        "card.suspension_lifted",
        "card.login_succeeded",
        "jpki.certificate_revoked",
        "card.revoked",
    } <= actions


def _apply(db: Session, code: str, **kwargs: object) -> service.ApplicationView:
    fields: dict[str, object] = {"reason": ApplicationReason.NEW, "photo_ref": PHOTO, **kwargs}
    return service.apply(db, actor=CLERK, lg_code=CHIYODA, resident_code=code, **fields)  # type: ignore[arg-type]


def test_setup_sends_mismatches_to_the_municipalitys_work_list(national_db: Session) -> None:
    matching = seed_identity(national_db)
    moved = seed_identity(national_db, name="佐藤　花子", sex="female")
    for code in (matching, moved):
        _apply(national_db, code)
    service.produce(national_db, actor=OPERATOR)
    # The name changes after production: the printed card no longer matches the register.
    change_identity(national_db, moved, change_kind="name_change", name="鈴木　花子")
    setup = service.pre_issuance_setup(national_db, actor=OPERATOR, chunk_size=1)
    assert (setup.ready, setup.mismatched, setup.chunks, setup.reasons) == (
        1,
        1,
        2,
        {"four_facts_mismatch": 1},
    )
    items = service.work_list(national_db, actor=CLERK, lg_code=CHIYODA)
    assert len(items) == 1
    bad_card = items[0].card_number
    with pytest.raises(CardStateError):
        service.hand_over(
            national_db,
            actor=CLERK,
            lg_code=CHIYODA,
            card_number=bad_card,
            identity_documents=DOCS_,
            auth_pin=AUTH_PIN,
            signing_pin=None,
        )
    # Retrying is refused while the facts differ; rejecting destroys the card.
    with pytest.raises(NotEligible):
        service.resolve_work_item(national_db, actor=CLERK, lg_code=CHIYODA, item_id=items[0].id, retry=True)
    rejected = service.resolve_work_item(
        national_db, actor=CLERK, lg_code=CHIYODA, item_id=items[0].id, retry=False
    )
    assert (rejected.status, rejected.revocation_reason) == ("revoked", "rejected")
    assert service.work_list(national_db, actor=CLERK, lg_code=CHIYODA) == []
    # The person may apply again.
    _apply(national_db, moved)


def test_a_corrected_register_lets_the_card_through_on_retry(national_db: Session) -> None:
    code = seed_identity(national_db)
    _apply(national_db, code)
    service.produce(national_db, actor=OPERATOR)
    change_identity(national_db, code, change_kind="correction", address="東京都千代田区千代田1番2号")
    assert service.pre_issuance_setup(national_db, actor=OPERATOR).mismatched == 1
    # The clerk finds the register was wrong and corrects it back.
    change_identity(national_db, code, change_kind="correction", address="東京都千代田区千代田1番1号")
    item = service.work_list(national_db, actor=CLERK, lg_code=CHIYODA)[0]
    assert (
        service.resolve_work_item(
            national_db, actor=CLERK, lg_code=CHIYODA, item_id=item.id, retry=True
        ).status
        == "produced"
    )
    assert service.pre_issuance_setup(national_db, actor=OPERATOR).ready == 1


def test_express_reissue_after_loss_revokes_the_lost_card_at_once(national_db: Session) -> None:
    code = seed_identity(national_db)
    other = seed_identity(national_db, name="高橋　一郎")
    lost, _ = issue_card(national_db, code)
    _apply(national_db, other)
    with pytest.raises(NotEligible):
        _apply(
            national_db,
            code,
            reason=ApplicationReason.REISSUE,
            reissue_reason=ExpressReason.DAMAGE,
            express_reason=ExpressReason.LOSS,
        )
    express = _apply(
        national_db,
        code,
        reason=ApplicationReason.REISSUE,
        reissue_reason=ExpressReason.LOSS,
        express_reason=ExpressReason.LOSS,
    )
    assert express.express
    assert express.due_on == service.today_jst(utcnow()) + dt.timedelta(days=7)
    old = repository.card_by_number(national_db, lost)
    assert old is not None
    assert (old.status, old.revocation_reason) == ("revoked", "lost")
    reasons = {c.revocation_reason for c in national_db.query(JpkiCertificate).filter_by(resident_code=code)}
    assert reasons == {"key_compromise"}
    # Express applications are produced first.
    first = service.produce(national_db, actor=OPERATOR, limit=1)
    assert (first.cards, first.express) == (1, 1)
    assert repository.cards_of(national_db, code)[-1].status == "produced"


def test_renewal_only_from_three_months_before_expiry(national_db: Session) -> None:
    code = seed_identity(national_db)
    number, _ = issue_card(national_db, code)
    with pytest.raises(NotEligible) as early:
        _apply(national_db, code, reason=ApplicationReason.RENEWAL)
    assert "3か月前" in early.value.detail
    card = repository.card_by_number(national_db, number)
    assert card is not None
    assert card.valid_until is not None
    # Expiring in 89 days: the window opened (three months before is within the last 92 days).
    card.valid_until = service.today_jst(utcnow()) + dt.timedelta(days=89)
    assert renewal_opens_on(card.valid_until) <= service.today_jst(utcnow())
    national_db.flush()
    assert _apply(national_db, code, reason=ApplicationReason.RENEWAL).reason == "renewal"


def test_children_get_no_signing_certificate_and_infants_no_photo(national_db: Session) -> None:
    infant = seed_identity(national_db, name="山田　花", birth=years_ago(0, days=100))
    child = seed_identity(national_db, name="山田　次郎", birth=years_ago(14, days=-3))
    with pytest.raises(InvalidValue) as no_photo:
        _apply(national_db, child, photo_ref=None)
    assert no_photo.value.field == "photo_ref"
    _apply(national_db, infant, photo_ref=None, express_reason=ExpressReason.NEWBORN)
    _apply(national_db, child)
    service.produce(national_db, actor=OPERATOR)
    service.pre_issuance_setup(national_db, actor=OPERATOR)
    for code in (infant, child):
        number = repository.cards_of(national_db, code)[-1].card_number
        with pytest.raises(NotEligible):
            service.hand_over(
                national_db,
                actor=CLERK,
                lg_code=CHIYODA,
                card_number=number,
                identity_documents=DOCS_,
                auth_pin=AUTH_PIN,
                signing_pin=SIGNING_PIN,
            )
        done = service.hand_over(
            national_db,
            actor=CLERK,
            lg_code=CHIYODA,
            card_number=number,
            identity_documents=DOCS_,
            auth_pin=AUTH_PIN,
            signing_pin=None,
        )
        assert [c.kind for c in done.card.certificates] == ["auth"]
    # Under 18 at issue: five years, to the 5th birthday after issue.
    card = repository.cards_of(national_db, child)[-1]
    assert card.issued_on is not None
    assert card.valid_until == birthday_after(card.birth_date, card.issued_on, 5)


def test_clerks_act_for_their_own_residents_only(
    client: TestClient, national_db: Session, clerk: Headers
) -> None:
    sapporo = seed_identity(national_db, lg_code="011011", address="北海道札幌市中央区北1条西2丁目")
    r = client.post(
        "/card/v1/applications",
        json={"resident_code": sapporo, "reason": "new", "photo_ref": PHOTO},
        headers=clerk,
    )
    assert r.status_code == 403
    assert client.post("/card/v1/production", json={}, headers=clerk).status_code == 403
    assert client.post("/card/v1/suspensions", json={"card_number": "123", "secret": "x"}).status_code == 422


def test_expired_cards_are_revoked_by_the_expiry_run(national_db: Session) -> None:
    card_number, _ = issue_card(national_db, seed_identity(national_db))
    card = repository.card_by_number(national_db, card_number)
    assert card is not None
    card.valid_until = service.today_jst(utcnow()) - dt.timedelta(days=1)
    national_db.flush()
    assert service.expire(national_db, actor=OPERATOR) == (1, 0)
    national_db.refresh(card)
    assert (card.status, card.revocation_reason) == ("revoked", "expiry")
    assert {c.status for c in national_db.query(JpkiCertificate).filter_by(card_id=card.id)} == {"revoked"}
