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
from jumin.card.domain import CertificateKind
from jumin.card.models import FourFactsProvision, JpkiCertificate
from jumin.db import utcnow
from tests.card.helpers import AUTH_PIN, OPERATOR, change_identity, issue_card, seed_identity

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
