"""A move revokes the signing certificate and the new four facts reach the businesses the
resident consented to — by pull and by signed webhook — and nobody else."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from base64 import b64decode, b64encode
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.audit.models import AuditEntry
from jumin.card import fourfacts, service
from jumin.card.domain import CertificateKind, NotEligible
from jumin.card.models import FourFactsProvision, JpkiCertificate
from jumin.core.errors import InvalidValue, NotFound
from jumin.db import utcnow
from tests.card.helpers import (
    AUTH_PIN,
    OPERATOR,
    SAPPORO_CHUO,
    change_identity,
    issue_card,
    seed_identity,
    years_ago,
)

NEW_ADDRESS = "東京都千代田区霞が関1丁目1番1号"


class Receiver:
    """A business's webhook endpoint on loopback: fails the first call, then accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 1
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 503 if receiver.fail_next > 0 else 204
                receiver.fail_next -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jpki-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _login(client: TestClient, db: Session, card_number: str) -> dict[str, str]:
    challenge = client.post("/card/v1/login/challenge").json()
    signature = service.sign_with_card(
        db,
        card_number=card_number,
        kind=CertificateKind.AUTH,
        pin=AUTH_PIN,
        data=b64decode(challenge["to_sign"]),
    )
    cert = service.read_certificate(db, card_number=card_number, kind=CertificateKind.AUTH)
    token = client.post(
        "/card/v1/login",
        json={
            "challenge_id": challenge["challenge_id"],
            "certificate": b64encode(cert).decode(),
            "signature": b64encode(signature).decode(),
        },
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_a_move_reaches_consenting_businesses_only(
    client: TestClient, national_db: Session, receiver: Receiver
) -> None:
    mover = seed_identity(national_db)
    neighbour = seed_identity(national_db, name="田中　一郎")
    mover_card, _ = issue_card(national_db, mover)
    issue_card(national_db, neighbour)
    bank = fourfacts.register_business(
        national_db, actor=OPERATOR, code="bank", name="銀行", webhook_url=None
    )
    insurer = fourfacts.register_business(
        national_db, actor=OPERATOR, code="insurer", name="保険会社", webhook_url=receiver.url
    )
    shop = fourfacts.register_business(
        national_db, actor=OPERATOR, code="shop", name="通販", webhook_url=None
    )
    national_db.commit()

    resident = _login(client, national_db, mover_card)
    to_bank = client.post(
        "/card/v1/me/four-facts-consents",
        json={"business_code": "bank", "scope": ["name", "address"]},
        headers=resident,
    )
    assert to_bank.status_code == 201, to_bank.text
    to_insurer = client.post(
        "/card/v1/me/four-facts-consents", json={"business_code": "insurer"}, headers=resident
    )
    assert to_insurer.json()["scope"] == ["address", "birth_date", "name", "sex"]
    twice = client.post("/card/v1/me/four-facts-consents", json={"business_code": "bank"}, headers=resident)
    assert twice.status_code == 409
    assert len(client.get("/card/v1/me/four-facts-consents", headers=resident).json()) == 2

    # Both move; only the mover consented to anyone.
    change_identity(national_db, mover, address=NEW_ADDRESS)
    change_identity(national_db, neighbour, address="東京都千代田区丸の内1丁目1番1号")
    report = service.sweep_identity_changes(national_db)
    assert (report.signing_revoked, report.provisions) == (2, 2)
    revoked = national_db.query(JpkiCertificate).filter_by(resident_code=mover, kind="signing").one()
    assert (revoked.status, revoked.revocation_reason) == ("revoked", "four_facts_changed")
    # Running again finds nothing new: the cursor moved.
    assert service.sweep_identity_changes(national_db).history_rows == 0
    national_db.commit()

    # Pull, with a cursor, in the consented scope.
    bank_key = {"Authorization": f"Bearer {bank.api_key}"}
    pulled = client.get("/card/v1/four-facts/updates", headers=bank_key).json()
    assert len(pulled["items"]) == 1
    item = pulled["items"][0]
    assert item["facts"] == {"name": "山田　太郎", "address": NEW_ADDRESS}
    assert item["certificate_serial"] == revoked.serial
    assert "resident_code" not in json.dumps(pulled)
    assert (
        client.get(f"/card/v1/four-facts/updates?after={pulled['next_after']}", headers=bank_key).json()[
            "items"
        ]
        == []
    )
    # No consent, nothing sent.
    shop_items = client.get(
        "/card/v1/four-facts/updates", headers={"Authorization": f"Bearer {shop.api_key}"}
    )
    assert shop_items.json()["items"] == []
    assert client.get("/card/v1/four-facts/updates", headers=resident).status_code == 401

    # Webhook: signed, retried with back-off after a failure.
    now = utcnow()
    first = fourfacts.deliver_webhooks(national_db, post=fourfacts.httpx_poster(), now=now)
    assert (first.attempted, first.delivered, first.failed) == (1, 0, 1)
    assert fourfacts.deliver_webhooks(national_db, post=fourfacts.httpx_poster(), now=now).attempted == 0
    later = fourfacts.deliver_webhooks(
        national_db, post=fourfacts.httpx_poster(), now=now + dt.timedelta(minutes=2)
    )
    assert (later.attempted, later.delivered) == (1, 1)
    headers, body = receiver.received[-1]
    expected = "sha256=" + hmac.new(insurer.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-jumin-signature"], expected)
    payload = json.loads(body)
    assert payload["facts"]["address"] == NEW_ADDRESS
    assert payload["facts"]["sex"] == "male"
    assert payload["business"] == "insurer"
    assert len(receiver.received) == 2  # the failed attempt and the good one, same delivery
    assert receiver.received[0][1] != b""

    provided = national_db.query(AuditEntry).filter_by(action="four_facts.provided", target_id=mover).all()
    assert sorted(e.detail.split()[0] for e in provided) == ["business=bank", "business=insurer"]
    assert (
        national_db.query(AuditEntry).filter_by(action="four_facts.provided", target_id=neighbour).count()
        == 0
    )


def test_a_withdrawn_consent_stops_provision(client: TestClient, national_db: Session) -> None:
    code = seed_identity(national_db)
    card, _ = issue_card(national_db, code)
    fourfacts.register_business(national_db, actor=OPERATOR, code="bank", name="銀行", webhook_url=None)
    national_db.commit()
    resident = _login(client, national_db, card)
    consent = client.post(
        "/card/v1/me/four-facts-consents", json={"business_code": "bank"}, headers=resident
    ).json()
    withdrawn = client.delete(f"/card/v1/me/four-facts-consents/{consent['id']}", headers=resident)
    assert withdrawn.json()["withdrawn_at"] is not None
    change_identity(national_db, code, name="山田　大郎", change_kind="name_change")
    report = service.sweep_identity_changes(national_db)
    assert (report.signing_revoked, report.provisions) == (1, 0)
    assert national_db.query(FourFactsProvision).count() == 0


def test_a_webhook_that_never_answers_is_given_up_after_ten_attempts_but_stays_pullable(
    national_db: Session,
) -> None:
    code = seed_identity(national_db)
    card, _ = issue_card(national_db, code)
    hook = fourfacts.register_business(
        national_db,
        actor=OPERATOR,
        code="carrier",
        name="携帯電話会社",
        webhook_url="http://127.0.0.1:9/hook",
    )
    resident = service.login_with_card(national_db, card_number=card, pin=AUTH_PIN).principal
    fourfacts.consent(national_db, resident=resident, business_code="carrier", scope=["address"])
    change_identity(national_db, code, address=NEW_ADDRESS)
    assert service.sweep_identity_changes(national_db).provisions == 1
    calls: list[str] = []

    def down(url: str, body: bytes, headers: dict[str, str]) -> int:
        calls.append(headers["X-Jumin-Delivery"])
        raise ConnectionRefusedError

    now = utcnow()
    for attempt in range(1, fourfacts.MAX_ATTEMPTS + 1):
        report = fourfacts.deliver_webhooks(national_db, post=down, now=now)
        assert report.attempted == 1
        if attempt < fourfacts.MAX_ATTEMPTS:
            assert (report.failed, report.given_up) == (1, 0)
            # Not again before the back-off has passed; then again.
            assert fourfacts.deliver_webhooks(national_db, post=down, now=now).attempted == 0
            now += fourfacts.backoff(attempt)
        else:
            assert (report.failed, report.given_up) == (0, 1)
    assert len(calls) == fourfacts.MAX_ATTEMPTS
    assert fourfacts.deliver_webhooks(national_db, post=down, now=now + dt.timedelta(days=1)).attempted == 0
    failures = national_db.query(AuditEntry).filter_by(action="four_facts.delivery_failed").count()
    assert failures == fourfacts.MAX_ATTEMPTS
    pulled = fourfacts.pull(
        national_db, business=fourfacts.authenticate_business(national_db, hook.api_key), after=0
    )
    assert [v.facts for v in pulled] == [{"address": NEW_ADDRESS}]


def test_consent_needs_a_signing_certificate_a_known_business_and_is_the_residents_own(
    national_db: Session,
) -> None:
    adult = seed_identity(national_db)
    child = seed_identity(national_db, name="山田　次郎", birth=years_ago(10))
    adult_card, _ = issue_card(national_db, adult)
    child_card, _ = issue_card(national_db, child, signing_pin=None)
    fourfacts.register_business(national_db, actor=OPERATOR, code="bank", name="銀行", webhook_url=None)
    grown = service.login_with_card(national_db, card_number=adult_card, pin=AUTH_PIN).principal
    young = service.login_with_card(national_db, card_number=child_card, pin=AUTH_PIN).principal
    with pytest.raises(NotEligible):
        fourfacts.consent(national_db, resident=young, business_code="bank", scope=["address"])
    with pytest.raises(NotFound):
        fourfacts.consent(national_db, resident=grown, business_code="nobody", scope=["address"])
    with pytest.raises(InvalidValue):
        fourfacts.consent(national_db, resident=grown, business_code="bank", scope=["income"])
    given = fourfacts.consent(national_db, resident=grown, business_code="bank", scope=["address"])
    with pytest.raises(NotFound):
        fourfacts.withdraw(national_db, resident=young, consent_id=given.id)
    assert [c.business_code for c in fourfacts.consents_of(national_db, resident=grown)] == ["bank"]
    assert fourfacts.consents_of(national_db, resident=young) == []


def test_nothing_is_provided_for_a_death(national_db: Session) -> None:
    code = seed_identity(national_db)
    card, _ = issue_card(national_db, code)
    fourfacts.register_business(national_db, actor=OPERATOR, code="bank", name="銀行", webhook_url=None)
    resident = service.login_with_card(national_db, card_number=card, pin=AUTH_PIN).principal
    fourfacts.consent(national_db, resident=resident, business_code="bank", scope=["name", "address"])
    change_identity(national_db, code, change_kind="death", status="removed", removal_reason="death")
    report = service.sweep_identity_changes(national_db)
    assert (report.cards_revoked, report.provisions) == (1, 0)
    assert national_db.query(FourFactsProvision).count() == 0


def test_a_move_to_the_same_line_in_another_municipality_is_a_change(national_db: Session) -> None:
    """本町一丁目1番1号 is in many towns: the four facts carry the full address."""
    code = seed_identity(national_db, address="東京都千代田区本町1丁目1番1号")
    card, _ = issue_card(national_db, code)
    fourfacts.register_business(national_db, actor=OPERATOR, code="bank", name="銀行", webhook_url=None)
    resident = service.login_with_card(national_db, card_number=card, pin=AUTH_PIN).principal
    fourfacts.consent(national_db, resident=resident, business_code="bank", scope=["address"])
    assert service.my_card(national_db, resident=resident).facts.address == "東京都千代田区本町1丁目1番1号"
    change_identity(
        national_db,
        code,
        change_kind="move_in",
        lg_code=SAPPORO_CHUO,
        prefecture_code="01",
        address_lg_code=SAPPORO_CHUO,
        address="北海道札幌市中央区本町1丁目1番1号",
    )
    report = service.sweep_identity_changes(national_db)
    assert (report.signing_revoked, report.provisions) == (1, 1)
    provision = national_db.query(FourFactsProvision).one()
    assert fourfacts.pull(
        national_db,
        business=fourfacts.BusinessPrincipal(business_id=provision.business_id, code="bank"),
        after=0,
    )[0].facts == {"address": "北海道札幌市中央区本町1丁目1番1号"}
