"""Card login, the way the portal and the kiosk call it: challenge-response with the
software card after the PIN, the certificate checked against the chain and OCSP.
Every way in that must be refused is refused, and audited."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.audit.models import AuditEntry
from jumin.card import service
from jumin.card.domain import CardAuthenticationFailed, CertificateKind, PinLocked, WrongPin
from jumin.db import finish_failed, utcnow
from tests.card.helpers import AUTH_PIN, CHIYODA, CLERK, DOCS, issue_card, seed_identity


def _failures(db: Session) -> list[str]:
    failed = db.query(AuditEntry).filter_by(action="card.login_failed").order_by(AuditEntry.id)
    return [e.detail or "" for e in failed]


def _signed(db: Session, card_number: str, challenge: service.Challenge) -> bytes:
    return service.sign_with_card(
        db, card_number=card_number, kind=CertificateKind.AUTH, pin=AUTH_PIN, data=challenge.to_sign
    )


def test_the_portal_logs_in_with_card_and_pin_and_out_again(client: TestClient, national_db: Session) -> None:
    code = seed_identity(national_db)
    number, _ = issue_card(national_db, code)
    login = service.login_with_card(national_db, card_number=number, pin=AUTH_PIN)
    national_db.commit()
    assert login.principal.resident_code == code
    assert login.expires_at - utcnow() <= dt.timedelta(minutes=30)
    principal = service.authenticate_resident(national_db, login.access_token)
    assert (principal.resident_code, principal.session_id) == (code, login.principal.session_id)
    headers = {"Authorization": f"Bearer {login.access_token}"}
    assert client.get("/card/v1/me", headers=headers).json()["facts"]["name"] == "山田　太郎"
    assert client.post("/card/v1/me/logout", headers=headers).status_code == 204
    assert client.get("/card/v1/me", headers=headers).status_code == 401
    with pytest.raises(CardAuthenticationFailed):
        service.authenticate_resident(national_db, login.access_token)
    # Sessions time out after 30 minutes.
    again = service.login_with_card(national_db, card_number=number, pin=AUTH_PIN)
    with pytest.raises(CardAuthenticationFailed):
        service.authenticate_resident(
            national_db, again.access_token, now=utcnow() + dt.timedelta(minutes=31)
        )


def test_wrong_pins_at_login_lock_the_card_until_the_window_resets_it(national_db: Session) -> None:
    number, _ = issue_card(national_db, seed_identity(national_db))
    for left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            service.login_with_card(national_db, card_number=number, pin="0000")
        assert f"あと{left}回" in wrong.value.detail
        finish_failed(national_db, wrong.value)  # what the entry point does: the count is kept
    with pytest.raises(PinLocked) as locked:
        service.login_with_card(national_db, card_number=number, pin="0000")
    finish_failed(national_db, locked.value)
    national_db.expire_all()
    with pytest.raises(PinLocked):
        service.login_with_card(national_db, card_number=number, pin=AUTH_PIN)
    service.reset_pin(
        national_db,
        actor=CLERK,
        lg_code=CHIYODA,
        card_number=number,
        kind=CertificateKind.AUTH,
        new_pin="8642",
        identity_documents=DOCS,
    )
    assert service.login_with_card(national_db, card_number=number, pin="8642").access_token


def test_a_challenge_is_good_once_and_for_five_minutes(national_db: Session) -> None:
    number, _ = issue_card(national_db, seed_identity(national_db))
    cert = service.read_certificate(national_db, card_number=number, kind=CertificateKind.AUTH)
    challenge = service.login_challenge(national_db)
    signature = _signed(national_db, number, challenge)
    service.login(national_db, challenge_id=challenge.challenge_id, certificate_der=cert, signature=signature)
    with pytest.raises(CardAuthenticationFailed):  # replayed
        service.login(
            national_db, challenge_id=challenge.challenge_id, certificate_der=cert, signature=signature
        )
    late = service.login_challenge(national_db)
    with pytest.raises(CardAuthenticationFailed):
        service.login(
            national_db,
            challenge_id=late.challenge_id,
            certificate_der=cert,
            signature=_signed(national_db, number, late),
            now=late.expires_at + dt.timedelta(seconds=1),
        )
    assert _failures(national_db) == ["unknown, used or expired challenge"] * 2


def test_a_signature_must_come_from_the_certificates_own_card(national_db: Session) -> None:
    mine, _ = issue_card(national_db, seed_identity(national_db))
    other, _ = issue_card(national_db, seed_identity(national_db, name="佐藤　次郎"))
    challenge = service.login_challenge(national_db)
    with pytest.raises(CardAuthenticationFailed):
        service.login(
            national_db,
            challenge_id=challenge.challenge_id,
            certificate_der=service.read_certificate(
                national_db, card_number=mine, kind=CertificateKind.AUTH
            ),
            signature=_signed(national_db, other, challenge),
        )
    assert _failures(national_db) == ["bad signature"]


def test_only_a_good_authentication_certificate_of_the_jpki_ca_opens_a_session(national_db: Session) -> None:
    number, secret = issue_card(national_db, seed_identity(national_db))
    signing = service.read_certificate(national_db, card_number=number, kind=CertificateKind.SIGNING)

    def attempt(certificate: bytes, *, now: dt.datetime | None = None) -> None:
        challenge = service.login_challenge(national_db, now=now)
        with pytest.raises(CardAuthenticationFailed):
            service.login(
                national_db,
                challenge_id=challenge.challenge_id,
                certificate_der=certificate,
                signature=_signed(national_db, number, challenge),
                now=now,
            )

    attempt(signing)  # the signing certificate is not for logging in
    # A look-alike certificate for the card's own key, made by a CA of someone else's.
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    genuine = x509.load_der_x509_certificate(
        service.read_certificate(national_db, card_number=number, kind=CertificateKind.AUTH)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "JPKI Authentication CA (Jumin)")])
    rogue = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(name)
        .public_key(genuine.public_key())
        .serial_number(genuine.serial_number)
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
        .sign(rogue_key, hashes.SHA256())
    )
    attempt(rogue.public_bytes(serialization.Encoding.DER))
    attempt(b"not a certificate")
    # Past its notAfter the genuine certificate is refused too.
    attempt(
        genuine.public_bytes(serialization.Encoding.DER), now=genuine.not_valid_after_utc + dt.timedelta(1)
    )
    # Suspended (OCSP: revoked, certificateHold): refused until lifted at the window.
    service.suspend_with_secret(national_db, card_number=number, secret=secret)
    attempt(genuine.public_bytes(serialization.Encoding.DER))
    assert _failures(national_db) == [
        "not issued by the JPKI CA",
        "not issued by the JPKI CA",
        "malformed certificate",
        "outside validity period",
        "certificate revoked",
    ]
    service.lift_suspension(
        national_db, actor=CLERK, lg_code=CHIYODA, card_number=number, identity_documents=DOCS
    )
    assert service.login_with_card(national_db, card_number=number, pin=AUTH_PIN).principal.card_id


def test_no_card_in_the_reader_is_a_plain_refusal(national_db: Session) -> None:
    for number in ("000000000000", "12345"):
        with pytest.raises(CardAuthenticationFailed):
            service.login_with_card(national_db, card_number=number, pin=AUTH_PIN)
    assert _failures(national_db) == ["no usable card in the reader"] * 2
