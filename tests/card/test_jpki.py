"""The certification authority as openssl sees it: CA keys encrypted under the passphrase
from the environment, strict chains, the four facts in the signing certificate's subject
alternative name, and notAfter dates at the age boundaries (15, 18)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.card import repository, service
from jumin.card.domain import ApplicationReason, CertificateKind, NotEligible
from jumin.card.jpki import config
from jumin.card.jpki import service as jpki
from jumin.card.models import JpkiAuthority
from tests.card.helpers import (
    AUTH_PIN,
    CHIYODA,
    CLERK,
    DOCS,
    OPERATOR,
    PHOTO,
    SIGNING_PIN,
    issue_card,
    pem,
    run_openssl,
    seed_identity,
)

# 2026-06-10 12:00 JST: a fixed day of issue, so that the expected dates below are
# written out by hand rather than computed by the code under test.
ISSUE = dt.datetime(2026, 6, 10, 3, 0, tzinfo=dt.UTC)


def test_ca_keys_are_encrypted_under_the_passphrase_from_the_environment(
    national_db: Session, openssl: str, tmp_path: Path
) -> None:
    jpki.ensure_authorities(national_db)
    rows = {r.name: r for r in national_db.query(JpkiAuthority)}
    assert set(rows) == {"root", "signing", "auth"}
    passphrase = config.passphrase().decode()
    for name, row in rows.items():
        assert row.key_encrypted_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        key = tmp_path / f"{name}.key"
        key.write_text(row.key_encrypted_pem)
        cert = tmp_path / f"{name}.pem"
        cert.write_text(row.certificate_pem)
        opened = run_openssl(openssl, "pkey", "-in", str(key), "-passin", f"pass:{passphrase}", "-pubout")
        assert opened.returncode == 0, opened.stderr
        expected = run_openssl(openssl, "x509", "-in", str(cert), "-noout", "-pubkey").stdout
        assert opened.stdout == expected  # the key that opens is the CA certificate's key
        wrong = run_openssl(openssl, "pkey", "-in", str(key), "-passin", "pass:not-the-passphrase", "-pubout")
        assert wrong.returncode != 0
        assert "BEGIN PUBLIC KEY" not in wrong.stdout
        structure = run_openssl(openssl, "asn1parse", "-in", str(key)).stdout
        assert "PBES2" in structure
        assert "aes-256-cbc" in structure


def test_without_the_passphrase_the_cas_refuse_to_work(
    client: TestClient, national_db: Session, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    jpki.ensure_authorities(national_db)
    national_db.commit()
    monkeypatch.setattr(jpki, "_keys", {})  # a fresh process: nothing opened yet
    monkeypatch.setattr(config, "get_settings", lambda: SimpleNamespace(var_dir=tmp_path))
    monkeypatch.delenv(config.PASSPHRASE_ENV)
    with pytest.raises(config.JpkiUnavailable):
        config.passphrase()
    r = client.get("/card/v1/jpki/crl/auth.crl")
    assert (r.status_code, r.json()["type"]) == (503, "urn:jumin:problem:jpki-unavailable")
    monkeypatch.setenv(config.PASSPHRASE_ENV, "not-the-passphrase")
    r = client.get("/card/v1/jpki/crl/signing.crl")
    assert r.status_code == 503
    assert "JUMIN_JPKI_PASSPHRASE" in r.json()["detail"]
    # The demo deployment (jumin demo seed wrote its credentials) uses the public demo passphrase.
    monkeypatch.delenv(config.PASSPHRASE_ENV)
    (tmp_path / "demo-credentials.json").write_text("[]")
    assert config.passphrase() == config.DEV_PASSPHRASE.encode()


def test_openssl_verifies_the_chains_strictly_and_reads_the_four_facts(
    national_db: Session, openssl: str, tmp_path: Path
) -> None:
    number, _ = issue_card(national_db, seed_identity(national_db, sex="female", name="佐藤　花子"))
    root = tmp_path / "root.pem"
    root.write_text(jpki.ca_certificate_pem(national_db, "root"))
    for kind in CertificateKind:
        issuer = tmp_path / f"{kind.value}-ca.pem"
        issuer.write_text(jpki.ca_certificate_pem(national_db, kind.value))
        cert = tmp_path / f"{kind.value}.pem"
        cert.write_bytes(pem(service.read_certificate(national_db, card_number=number, kind=kind)))
        verify = run_openssl(
            openssl, "verify", "-x509_strict", "-CAfile", str(root), "-untrusted", str(issuer), str(cert)
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # The wrong issuing CA does not do.
        other = tmp_path / f"{'auth' if kind is CertificateKind.SIGNING else 'signing'}-other.pem"
        other.write_text(
            jpki.ca_certificate_pem(national_db, "auth" if kind is CertificateKind.SIGNING else "signing")
        )
        assert (
            run_openssl(
                openssl, "verify", "-CAfile", str(root), "-untrusted", str(other), str(cert)
            ).returncode
            != 0
        )
        san = run_openssl(
            openssl, "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName", "-nameopt", "utf8"
        ).stdout
        subject = run_openssl(openssl, "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "utf8")
        assert "佐藤" not in subject.stdout
        birth = repository.card_by_number(national_db, number).birth_date  # type: ignore[union-attr]
        if kind is CertificateKind.SIGNING:
            assert "othername: 1.2.392.200149.8.5.5.1::佐藤　花子" in san
            assert "othername: 1.2.392.200149.8.5.5.3::2" in san  # female
            assert f"othername: 1.2.392.200149.8.5.5.4::{birth:%Y%m%d}" in san
            assert "othername: 1.2.392.200149.8.5.5.5::東京都千代田区千代田1番1号" in san
        else:
            assert "othername" not in san
            assert "佐藤" not in san
            text = run_openssl(openssl, "x509", "-in", str(cert), "-noout", "-text", "-nameopt", "utf8")
            assert "佐藤" not in text.stdout
            assert "TLS Web Client Authentication" in text.stdout


def _issue_at(db: Session, code: str, *, signing_pin: str | None) -> str:
    """Apply, produce, set up and hand over, all on ISSUE."""
    service.apply(
        db,
        actor=CLERK,
        lg_code=CHIYODA,
        resident_code=code,
        reason=ApplicationReason.NEW,
        photo_ref=PHOTO,
        now=ISSUE,
    )
    service.produce(db, actor=OPERATOR, now=ISSUE)
    service.pre_issuance_setup(db, actor=OPERATOR, now=ISSUE)
    number = repository.cards_of(db, code)[-1].card_number
    service.hand_over(
        db,
        actor=CLERK,
        lg_code=CHIYODA,
        card_number=number,
        identity_documents=DOCS,
        auth_pin=AUTH_PIN,
        signing_pin=signing_pin,
        now=ISSUE,
    )
    return number


def _end_date(openssl: str, tmp_path: Path, der: bytes) -> str:
    path = tmp_path / "cert.pem"
    path.write_bytes(pem(der))
    out = run_openssl(openssl, "x509", "-in", str(path), "-noout", "-enddate")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize(
    ("birth", "card_until", "certificates_until"),
    [
        # Legally 18 on the day of issue (the 18th birthday is tomorrow): a ten-year card.
        (dt.date(2008, 6, 11), dt.date(2035, 6, 11), dt.date(2030, 6, 11)),
        # One day younger: still 17, a five-year card.
        (dt.date(2008, 6, 12), dt.date(2030, 6, 12), dt.date(2030, 6, 12)),
        # Issued on the 30th birthday: that birthday is not "after issue".
        (dt.date(1996, 6, 10), dt.date(2036, 6, 10), dt.date(2031, 6, 10)),
        # Born on 29 February: the birthday is 1 March in common years (2035, 2031).
        (dt.date(1996, 2, 29), dt.date(2036, 2, 29), dt.date(2031, 3, 1)),
    ],
)
def test_validity_at_the_age_boundaries_down_to_the_certificates_not_after(
    national_db: Session,
    openssl: str,
    tmp_path: Path,
    birth: dt.date,
    card_until: dt.date,
    certificates_until: dt.date,
) -> None:
    number = _issue_at(national_db, seed_identity(national_db, birth=birth), signing_pin=SIGNING_PIN)
    card = repository.card_by_number(national_db, number)
    assert card is not None
    assert (card.issued_on, card.valid_until) == (dt.date(2026, 6, 10), card_until)
    # Valid through the last day, 23:59:59 JST = 14:59:59 UTC.
    expected = (
        f"notAfter={certificates_until:%b} {certificates_until.day:2d} 14:59:59 {certificates_until.year} GMT"
    )
    for kind in CertificateKind:
        der = service.read_certificate(national_db, card_number=number, kind=kind)
        assert _end_date(openssl, tmp_path, der) == expected
        assert x509.load_der_x509_certificate(der).not_valid_before_utc <= ISSUE


def test_the_signing_certificate_from_the_day_one_is_legally_fifteen(national_db: Session) -> None:
    # The 15th birthday is tomorrow: legally 15 today (年齢計算ニ関スル法律).
    fifteen = seed_identity(national_db, birth=dt.date(2011, 6, 11), name="十五　歳")
    fourteen = seed_identity(national_db, birth=dt.date(2011, 6, 12), name="十四　歳")
    number = _issue_at(national_db, fifteen, signing_pin=SIGNING_PIN)
    card = repository.card_by_number(national_db, number)
    assert card is not None
    assert {c.kind for c in service.card_view(national_db, card).certificates} == {"auth", "signing"}
    with pytest.raises(NotEligible) as refused:
        _issue_at(national_db, fourteen, signing_pin=SIGNING_PIN)
    assert refused.value.field == "signing_pin"


def test_certificates_renew_from_three_months_before_expiry_and_expired_ones_leave_the_crl(
    national_db: Session,
) -> None:
    number, _ = issue_card(national_db, seed_identity(national_db))
    old = x509.load_der_x509_certificate(
        service.read_certificate(national_db, card_number=number, kind=CertificateKind.AUTH)
    )
    window = {"actor": CLERK, "lg_code": CHIYODA, "card_number": number, "identity_documents": DOCS}
    with pytest.raises(NotEligible) as early:
        service.issue_certificates(national_db, auth_pin="1357", signing_pin=None, **window)  # type: ignore[arg-type]
    assert "3か月前" in early.value.detail
    # Ten weeks before it expires: renewed, with a new key pair on the chip.
    renewal_day = old.not_valid_after_utc - dt.timedelta(weeks=10)
    view = service.issue_certificates(
        national_db,
        auth_pin="1357",
        signing_pin=None,
        now=renewal_day,
        **window,  # type: ignore[arg-type]
    )
    auth = [c for c in view.certificates if c.kind == "auth"]
    assert [(c.status, c.revocation_reason) for c in auth] == [("revoked", "superseded"), ("good", None)]
    new = x509.load_der_x509_certificate(
        service.read_certificate(national_db, card_number=number, kind=CertificateKind.AUTH)
    )
    assert new.public_key().public_numbers() != old.public_key().public_numbers()  # type: ignore[union-attr]

    # The signing certificate was not renewed: past its notAfter it expires. It leaves the
    # CRL (RFC 5280 lets a CA drop expired entries) and OCSP answers it as revoked.
    signing = x509.load_der_x509_certificate(
        service.read_certificate(national_db, card_number=number, kind=CertificateKind.SIGNING)
    )
    after = signing.not_valid_after_utc + dt.timedelta(days=1)
    assert service.expire(national_db, actor=OPERATOR, now=after) == (0, 1)
    issuer = jpki.authority_for(national_db, "signing").certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(signing, issuer, hashes.SHA256()).build()
    answer = ocsp.load_der_ocsp_response(
        jpki.ocsp_respond(national_db, request.public_bytes(serialization.Encoding.DER), now=after)
    )
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    crl = x509.load_der_x509_crl(jpki.current_crl(national_db, "signing", now=after))
    assert crl.get_revoked_certificate_by_serial_number(signing.serial_number) is None
