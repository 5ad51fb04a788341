"""The card service fed by the real national network: events recorded at the municipal
window travel through the outbox, the relay and the signed national inbox into the
identity store, and the card sweeper acts on them.

A family arrives from abroad in 千代田区, gets cards; the father consents to a bank. They
move within the ward (signing certificates revoked, the bank alone told the new
address), then to 札幌市 (the card follows them; the bank is told again, under the
serial it knows), then the mother emigrates and the father dies (cards revoked).
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography import x509
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import Role
from jumin.audit.models import AuditEntry
from jumin.card import fourfacts, repository, service
from jumin.card.domain import CertificateKind, end_of_day_utc
from jumin.card.models import FourFactsProvision, JpkiCertificate
from jumin.db import finish_failed
from jumin.registry import relay as relay_service
from tests import factories
from tests.card.conftest import Headers
from tests.card.helpers import AUTH_PIN, OPERATOR, PHOTO, SIGNING_PIN
from tests.network.replication_support import register
from tests.registry.conftest import days_ago, family_from_abroad, member, today

CHIYODA = "131016"
SAPPORO = "011002"
DOCS = ["passport"]


@pytest.fixture
def chiyoda(client: TestClient, db: Session) -> Headers:
    return factories.auth(client, factories.staff(db, Role.CLERK, Role.SUPERVISOR, org=CHIYODA))


@pytest.fixture
def sapporo(client: TestClient, db: Session) -> Headers:
    return factories.auth(client, factories.staff(db, Role.CLERK, Role.SUPERVISOR, org=SAPPORO))


@pytest.fixture
def relay(client: TestClient, db: Session, national_db: Session) -> Callable[[], None]:
    """Runs the municipal relay once against the app; its units of work join the test's."""
    register(national_db, CHIYODA, SAPPORO)

    @contextmanager
    def scope() -> Iterator[Session]:
        try:
            yield db
            db.commit()
        except BaseException as exc:
            finish_failed(db, exc)
            raise

    worker = relay_service.Relay(url="http://testserver", http=client, session_scope=scope)

    def run() -> None:
        report = worker.run_once()
        assert report.errors == [], report.errors

    return run


def _post(client: TestClient, path: str, headers: Headers, body: dict[str, Any] | None = None) -> Any:
    r = client.post(path, json=body if body is not None else {}, headers=headers)
    assert r.status_code in (200, 201), f"{path}: {r.status_code} {r.text}"
    return r.json()


def _person(client: TestClient, person_id: int, headers: Headers, **params: str) -> dict[str, Any]:
    r = client.get(f"/registry/persons/{person_id}", headers=headers, params=params)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def _ref(client: TestClient, person_id: int, headers: Headers) -> dict[str, int]:
    return {"person_id": person_id, "version": _person(client, person_id, headers)["version"]}


def _leap_birthday(year: int) -> dt.date:
    """Independent of the code under test: 29 February, or 1 March in a common year."""
    return dt.date(year, 2, 29) if calendar.isleap(year) else dt.date(year, 3, 1)


def _fifth_leap_birthday_after(issued: dt.date) -> dt.date:
    first = next(_leap_birthday(y) for y in itertools.count(issued.year) if _leap_birthday(y) > issued)
    return _leap_birthday(first.year + 4)


def _sweep(client: TestClient, operator: Headers) -> dict[str, int]:
    result: dict[str, int] = _post(client, "/card/v1/identity-sweep", operator)
    return result


def _statuses(client: TestClient, card_number: str, headers: Headers) -> dict[str, str]:
    r = client.get(f"/card/v1/cards/{card_number}", headers=headers)
    assert r.status_code == 200, r.text
    certs = r.json()["certificates"]
    latest: dict[str, str] = {}
    for c in certs:  # oldest first: the last of a kind is the one on the chip
        latest[c["kind"]] = c["status"]
    return latest


def test_moves_deaths_and_emigration_recorded_at_the_window_reach_the_cards(
    client: TestClient,
    db: Session,
    national_db: Session,
    chiyoda: Headers,
    sapporo: Headers,
    operator: Headers,
    relay: Callable[[], None],
) -> None:
    family = family_from_abroad(
        lambda slug, body, headers: _post(client, f"/registry/events/{slug}", headers, body), chiyoda
    )
    ids = family["person_ids"]
    relay()
    codes = [_person(client, p, chiyoda)["resident_code"] for p in ids]
    father, mother, son = codes  # 山田太郎 1980, 山田花子 1982, 山田一郎 2012-02-29 (under 15)

    for code in codes:
        _post(
            client,
            "/card/v1/applications",
            chiyoda,
            {"resident_code": code, "reason": "new", "photo_ref": PHOTO},
        )
    assert _post(client, "/card/v1/production", operator)["cards"] == 3
    assert _post(client, "/card/v1/pre-issuance-setup", operator)["ready"] == 3
    numbers = {
        repository.cards_of(national_db, code)[-1].resident_code: repository.cards_of(national_db, code)[
            -1
        ].card_number
        for code in codes
    }
    for code in codes:
        _post(
            client,
            f"/card/v1/cards/{numbers[code]}/hand-over",
            chiyoda,
            {
                "identity_documents": DOCS,
                "auth_pin": AUTH_PIN,
                **({"signing_pin": SIGNING_PIN} if code != son else {}),
            },
        )

    # The boy was born on 29 February: his card and certificate run to the 5th birthday
    # after issue, which falls on 1 March in a common year — in the X.509 notAfter too.
    boy_card = repository.card_by_number(national_db, numbers[son])
    assert boy_card is not None
    assert boy_card.issued_on is not None
    expected = _fifth_leap_birthday_after(boy_card.issued_on)
    assert boy_card.valid_until == expected
    boy_auth = x509.load_der_x509_certificate(
        service.read_certificate(national_db, card_number=numbers[son], kind=CertificateKind.AUTH)
    )
    assert boy_auth.not_valid_after_utc == end_of_day_utc(expected)
    assert _statuses(client, numbers[son], chiyoda) == {"auth": "good"}

    bank = fourfacts.register_business(
        national_db, actor=OPERATOR, code="bank", name="銀行", webhook_url=None
    )
    shop = fourfacts.register_business(
        national_db, actor=OPERATOR, code="shop", name="通販", webhook_url=None
    )
    national_db.commit()
    # The father logs in with his card and PIN (the portal's call) and consents to the bank.
    login = service.login_with_card(national_db, card_number=numbers[father], pin=AUTH_PIN)
    national_db.commit()
    resident = {"Authorization": f"Bearer {login.access_token}"}
    offered = client.get("/card/v1/me/four-facts-businesses", headers=resident).json()
    assert {b["code"] for b in offered} == {"bank", "shop"}
    consent = _post(
        client,
        "/card/v1/me/four-facts-consents",
        resident,
        {"business_code": "bank", "scope": ["name", "address"]},
    )
    first_signing = national_db.query(JpkiCertificate).filter_by(resident_code=father, kind="signing").one()

    # 転居 within 千代田区, recorded at the window and relayed.
    _post(
        client,
        "/registry/events/move-within",
        chiyoda,
        {
            "effective_on": days_ago(1),
            "notified_on": today().isoformat(),
            "persons": [_ref(client, p, chiyoda) for p in ids],
            "address": {"line": "永田町一丁目7番1号"},
        },
    )
    relay()
    swept = _sweep(client, operator)
    assert (swept["signing_revoked"], swept["cards_revoked"], swept["provisions"]) == (2, 0, 1)
    for code in (father, mother):
        assert _statuses(client, numbers[code], chiyoda) == {"auth": "good", "signing": "revoked"}
    bank_key = {"Authorization": f"Bearer {bank.api_key}"}
    pulled = client.get("/card/v1/four-facts/updates", headers=bank_key).json()["items"]
    assert len(pulled) == 1
    assert pulled[0]["certificate_serial"] == first_signing.serial
    assert pulled[0]["changed_on"] == days_ago(1)
    assert set(pulled[0]["facts"]) == {"name", "address"}
    assert pulled[0]["facts"]["address"] == "東京都千代田区永田町一丁目7番1号"  # the full address
    shop_key = {"Authorization": f"Bearer {shop.api_key}"}
    assert client.get("/card/v1/four-facts/updates", headers=shop_key).json()["items"] == []
    # The mother consented to nobody: nothing queued for her, for anyone.
    assert national_db.query(FourFactsProvision).filter_by(resident_code=mother).count() == 0

    # A new signing certificate for the father at the window (new key pair on the chip).
    _post(
        client,
        f"/card/v1/cards/{numbers[father]}/certificates",
        chiyoda,
        {"identity_documents": DOCS, "signing_pin": "NEWPIN99"},
    )

    # 転出 to 札幌市 and 転入 there: the card follows the family, it is not revoked.
    _post(
        client,
        "/registry/events/move-out",
        chiyoda,
        {
            "effective_on": today().isoformat(),
            "notified_on": today().isoformat(),
            "persons": [_ref(client, p, chiyoda) for p in ids],
            "destination": "北海道札幌市中央区北1条西2丁目",
            "destination_lg_code": SAPPORO,
        },
    )
    relay()
    assert _sweep(client, operator)["cards_revoked"] == 0
    people = [_person(client, p, chiyoda, show_individual_number="true") for p in ids]
    arrived = _post(
        client,
        "/registry/events/move-in",
        sapporo,
        {
            "effective_on": today().isoformat(),
            "notified_on": today().isoformat(),
            "address": {"line": "北1条西2丁目"},
            "previous_address": "東京都千代田区永田町一丁目7番1号",
            "origin_lg_code": CHIYODA,
            "members": [
                member(
                    p["family_name"],
                    p["given_name"],
                    (p["family_name_kana"], p["given_name_kana"]),
                    birth=p["birth_date"],
                    sex=p["sex"],
                    relationship=p["relationship"],
                    resident_code=p["resident_code"],
                    individual_number=p["individual_number"],
                )
                for p in people
            ],
        },
    )
    in_sapporo = dict(zip(codes, arrived["person_ids"], strict=True))
    relay()
    swept = _sweep(client, operator)
    assert (swept["signing_revoked"], swept["cards_revoked"], swept["provisions"]) == (1, 0, 1)
    # 札幌市 now serves the family's cards; 千代田区, which issued them, no longer acts on them.
    assert _statuses(client, numbers[father], sapporo) == {"auth": "good", "signing": "revoked"}
    reset_elsewhere = client.post(
        f"/card/v1/cards/{numbers[father]}/pin-reset",
        json={"kind": "auth", "new_pin": "5678", "identity_documents": DOCS},
        headers=chiyoda,
    )
    assert reset_elsewhere.status_code == 403
    second = client.get(f"/card/v1/four-facts/updates?after={pulled[0]['delivery_id']}", headers=bank_key)
    items = second.json()["items"]
    assert len(items) == 1
    assert items[0]["facts"]["address"] == "北海道札幌市北1条西2丁目"
    # The serial the bank knows (the one the father consented with), not the one the
    # window issued after the first move, which the bank never saw.
    assert items[0]["certificate_serial"] == first_signing.serial == consent_serial(national_db, consent)

    # The mother emigrates; the father dies. Both cards are revoked with both certificates.
    _post(
        client,
        "/registry/events/move-out",
        sapporo,
        {
            "effective_on": today().isoformat(),
            "notified_on": today().isoformat(),
            "persons": [_ref(client, in_sapporo[mother], sapporo)],
            "destination": "フランス",
            "abroad": True,
        },
    )
    _post(
        client,
        "/registry/events/death",
        sapporo,
        {
            "effective_on": today().isoformat(),
            "notified_on": today().isoformat(),
            "person": _ref(client, in_sapporo[father], sapporo),
            "remaining_head_person_id": in_sapporo[son],
        },
    )
    relay()
    swept = _sweep(client, operator)
    assert (swept["cards_revoked"], swept["provisions"]) == (2, 0)
    for code, reason in ((mother, "emigration"), (father, "death")):
        card = repository.card_by_number(national_db, numbers[code])
        assert card is not None
        assert (card.status, card.revocation_reason) == ("revoked", reason)
        assert {c.status for c in national_db.query(JpkiCertificate).filter_by(card_id=card.id)} == {
            "revoked"
        }
    assert repository.card_by_number(national_db, numbers[son]).status == "active"  # type: ignore[union-attr]
    # The father's session ended with his card.
    assert client.get("/card/v1/me", headers=resident).status_code == 401
    queued = national_db.query(AuditEntry).filter_by(action="four_facts.queued", target_id=father).count()
    assert queued == 2


def consent_serial(db: Session, consent: dict[str, Any]) -> str:
    row = repository.consent(db, consent["id"])
    assert row is not None
    return row.certificate_serial


def test_after_a_resident_code_change_the_card_still_follows_the_person(
    client: TestClient,
    db: Session,
    national_db: Session,
    chiyoda: Headers,
    operator: Headers,
    relay: Callable[[], None],
) -> None:
    """住民票コードの変更 recorded at the window: the card, its certificates and the consent
    stay as they are (nothing on them carries the code); the window finds the card by the
    new code only; the card login names the person by the new code; a later move still
    revokes the signing certificate and reaches the bank, and the death revokes the card."""
    father_id, mother_id, _son_id = family_from_abroad(
        lambda slug, body, headers: _post(client, f"/registry/events/{slug}", headers, body), chiyoda
    )["person_ids"]
    relay()
    old_code = _person(client, father_id, chiyoda)["resident_code"]
    _post(
        client,
        "/card/v1/applications",
        chiyoda,
        {"resident_code": old_code, "reason": "new", "photo_ref": PHOTO},
    )
    _post(client, "/card/v1/production", operator)
    _post(client, "/card/v1/pre-issuance-setup", operator)
    number = repository.cards_of(national_db, old_code)[-1].card_number
    _post(
        client,
        f"/card/v1/cards/{number}/hand-over",
        chiyoda,
        {"identity_documents": DOCS, "auth_pin": AUTH_PIN, "signing_pin": SIGNING_PIN},
    )
    bank = fourfacts.register_business(
        national_db, actor=OPERATOR, code="bank", name="銀行", webhook_url=None
    )
    national_db.commit()
    before = service.login_with_card(national_db, card_number=number, pin=AUTH_PIN)
    national_db.commit()
    consent = _post(
        client,
        "/card/v1/me/four-facts-consents",
        {"Authorization": f"Bearer {before.access_token}"},
        {"business_code": "bank", "scope": ["name", "address"]},
    )
    serial = consent_serial(national_db, consent)

    _post(
        client,
        "/registry/events/resident-code-change",
        chiyoda,
        {"effective_on": today().isoformat(), "person": _ref(client, father_id, chiyoda)},
    )
    relay()
    new_code = _person(client, father_id, chiyoda)["resident_code"]
    assert new_code != old_code
    # The code change alone changes none of the four facts: nothing is revoked or sent.
    swept = _sweep(client, operator)
    assert swept["history_rows"] >= 1
    assert (swept["signing_revoked"], swept["cards_revoked"], swept["provisions"]) == (0, 0, 0)
    assert _statuses(client, number, chiyoda) == {"auth": "good", "signing": "good"}

    # The window finds the card by the new code; the old one finds nobody.
    found = client.post("/card/v1/resident-cards", json={"resident_code": new_code}, headers=chiyoda)
    assert found.status_code == 200, found.text
    assert [(c["card_number"], c["status"]) for c in found.json()] == [(number, "active")]
    gone = client.post("/card/v1/resident-cards", json={"resident_code": old_code}, headers=chiyoda)
    assert gone.status_code == 404
    again = client.post(
        "/card/v1/applications",
        json={"resident_code": new_code, "reason": "new", "photo_ref": PHOTO},
        headers=chiyoda,
    )
    assert again.status_code == 409
    assert "有効なカードをお持ちです" in again.json()["detail"]
    viewed = national_db.query(AuditEntry).filter_by(action="card.viewed", target_id=new_code).count()
    assert viewed >= 1

    # The card login still works and names the person by the new code, as does the
    # session opened before the change; the portal finds the register record by it.
    after = service.login_with_card(national_db, card_number=number, pin=AUTH_PIN)
    national_db.commit()
    assert after.principal.resident_code == new_code
    assert service.authenticate_resident(national_db, before.access_token).resident_code == new_code
    me = client.get("/card/v1/me", headers={"Authorization": f"Bearer {after.access_token}"})
    assert me.status_code == 200, me.text
    consents = client.get(
        "/card/v1/me/four-facts-consents", headers={"Authorization": f"Bearer {after.access_token}"}
    ).json()
    assert [c["id"] for c in consents] == [consent["id"]]

    # 転居 after the change: the signing certificate is revoked and the bank told, under
    # the serial it knows.
    _post(
        client,
        "/registry/events/move-within",
        chiyoda,
        {
            "effective_on": today().isoformat(),
            "notified_on": today().isoformat(),
            "persons": [_ref(client, father_id, chiyoda)],
            "address": {"line": "永田町一丁目7番1号"},
        },
    )
    relay()
    swept = _sweep(client, operator)
    assert (swept["signing_revoked"], swept["cards_revoked"], swept["provisions"]) == (1, 0, 1)
    assert _statuses(client, number, chiyoda) == {"auth": "good", "signing": "revoked"}
    items = client.get(
        "/card/v1/four-facts/updates", headers={"Authorization": f"Bearer {bank.api_key}"}
    ).json()["items"]
    assert len(items) == 1
    assert items[0]["certificate_serial"] == serial
    assert items[0]["facts"]["address"] == "東京都千代田区永田町一丁目7番1号"
    queued = national_db.query(AuditEntry).filter_by(action="four_facts.queued").all()
    assert [e.target_id for e in queued] == [new_code]

    # The death: the card is revoked with its certificates, the sessions end.
    _post(
        client,
        "/registry/events/death",
        chiyoda,
        {
            "effective_on": today().isoformat(),
            "notified_on": today().isoformat(),
            "person": _ref(client, father_id, chiyoda),
            "remaining_head_person_id": mother_id,
        },
    )
    relay()
    assert _sweep(client, operator)["cards_revoked"] == 1
    card = repository.card_by_number(national_db, number)
    assert card is not None
    assert (card.status, card.revocation_reason) == ("revoked", "death")
    assert {c.status for c in national_db.query(JpkiCertificate).filter_by(card_id=card.id)} == {"revoked"}
    assert (
        client.get("/card/v1/me", headers={"Authorization": f"Bearer {after.access_token}"}).status_code
        == 401
    )
