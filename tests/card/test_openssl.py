"""openssl agrees with the system: `openssl verify -crl_check` against the served CRL and
`openssl ocsp` against the responder, for good, revoked and suspended certificates.

The app runs under a real uvicorn server on an ephemeral loopback port, its national
unit of work joined to the test's transaction (as the TestClient does).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from fastapi import FastAPI
from sqlalchemy.orm import Session

from jumin.card import repository, service
from jumin.card.domain import CertificateKind
from jumin.card.jpki import service as jpki
from jumin.card.models import Card
from jumin.db import utcnow
from tests.card.helpers import (
    CHIYODA,
    CLERK,
    DOCS,
    change_identity,
    issue_card,
    pem,
    run_openssl,
    seed_identity,
    served,
)

pytestmark = pytest.mark.slow


def test_openssl_agrees_on_good_revoked_and_suspended(
    app: FastAPI, national_db: Session, openssl: str, tmp_path: Path
) -> None:
    good_code = seed_identity(national_db)
    moved_code = seed_identity(national_db, name="佐藤　花子", sex="female")
    lost_code = seed_identity(national_db, name="鈴木　一郎")
    good, _ = issue_card(national_db, good_code)
    moved, _ = issue_card(national_db, moved_code)
    lost, secret = issue_card(national_db, lost_code)
    # Revoked: the signing certificate of someone who moved. Suspended: a lost card.
    change_identity(national_db, moved_code, address="東京都千代田区富士見1丁目1番1号")
    service.sweep_identity_changes(national_db)
    service.suspend_with_secret(national_db, card_number=lost, secret=secret)
    national_db.commit()

    chain = tmp_path / "chain.pem"
    issuer = tmp_path / "signing-ca.pem"
    issuer.write_text(jpki.ca_certificate_pem(national_db, "signing"))
    chain.write_text(jpki.ca_certificate_pem(national_db, "root") + issuer.read_text())
    certs: dict[str, Path] = {}
    for label, number in (("good", good), ("revoked", moved), ("suspended", lost)):
        path = tmp_path / f"{label}.pem"
        path.write_bytes(
            pem(service.read_certificate(national_db, card_number=number, kind=CertificateKind.SIGNING))
        )
        certs[label] = path
        # What the system itself says, which openssl must repeat.
    system = {
        label: repository.certificate_by_serial(
            national_db, f"{x509.load_pem_x509_certificate(p.read_bytes()).serial_number:x}"
        )
        for label, p in certs.items()
    }
    assert {k: v.status for k, v in system.items() if v is not None} == {
        "good": "good",
        "revoked": "revoked",
        "suspended": "hold",
    }

    with served(app) as base:
        crl_der = httpx.get(f"{base}/card/v1/jpki/crl/signing.crl", timeout=10)
        assert crl_der.status_code == 200
        assert crl_der.headers["content-type"] == "application/pkix-crl"
        (tmp_path / "crl.der").write_bytes(crl_der.content)
        converted = run_openssl(
            openssl,
            "crl",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "crl.der"),
            "-out",
            str(tmp_path / "crl.pem"),
            "-text",
        )
        assert converted.returncode == 0, converted.stderr
        crl_text = run_openssl(openssl, "crl", "-in", str(tmp_path / "crl.pem"), "-noout", "-text").stdout
        assert "X509v3 CRL Number" in crl_text
        assert "Next Update" in crl_text
        assert "Certificate Hold" in crl_text

        verdicts = {}
        for label, path in certs.items():
            verify = run_openssl(
                openssl,
                "verify",
                "-crl_check",
                "-CAfile",
                str(chain),
                "-CRLfile",
                str(tmp_path / "crl.pem"),
                str(path),
            )
            verdicts[label] = (verify.returncode, "certificate revoked" in verify.stdout + verify.stderr)
        assert verdicts == {"good": (0, False), "revoked": (2, True), "suspended": (2, True)}

        ocsp = {}
        for label, path in certs.items():
            out = run_openssl(
                openssl,
                "ocsp",
                "-issuer",
                str(issuer),
                "-cert",
                str(path),
                "-CAfile",
                str(chain),
                "-url",
                f"{base}/card/v1/jpki/ocsp",
                "-resp_text",
            )
            # openssl exits 0 even for a revoked certificate: the text is the verdict.
            assert out.returncode == 0, out.stderr
            assert "Response verify OK" in out.stderr + out.stdout
            assert "WARNING: no nonce" not in out.stderr + out.stdout
            match = re.search(rf"{re.escape(str(path))}: (good|revoked|unknown)", out.stdout)
            assert match is not None, out.stdout
            ocsp[label] = match.group(1)
            if label == "suspended":
                assert "Reason: certificateHold" in out.stdout
            if label == "revoked":
                assert "Reason: affiliationChanged" in out.stdout
        assert ocsp == {"good": "good", "revoked": "revoked", "suspended": "revoked"}

        # Lifting the suspension at the window takes the certificate off the next CRL.
        service.lift_suspension(
            national_db, actor=CLERK, lg_code=CHIYODA, card_number=lost, identity_documents=DOCS
        )
        national_db.commit()
        (tmp_path / "crl2.der").write_bytes(
            httpx.get(f"{base}/card/v1/jpki/crl/signing.crl", timeout=10).content
        )
        converted = run_openssl(
            openssl,
            "crl",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "crl2.der"),
            "-out",
            str(tmp_path / "crl2.pem"),
        )
        assert converted.returncode == 0, converted.stderr
        after = run_openssl(
            openssl,
            "verify",
            "-crl_check",
            "-CAfile",
            str(chain),
            "-CRLfile",
            str(tmp_path / "crl2.pem"),
            str(certs["suspended"]),
        )
        assert after.returncode == 0, after.stdout + after.stderr
        numbers = [
            x509.load_der_x509_crl(p.read_bytes())
            .extensions.get_extension_for_class(x509.CRLNumber)
            .value.crl_number
            for p in (tmp_path / "crl.der", tmp_path / "crl2.der")
        ]
        assert numbers[1] > numbers[0]
        lifted = run_openssl(
            openssl,
            "ocsp",
            "-issuer",
            str(issuer),
            "-cert",
            str(certs["suspended"]),
            "-CAfile",
            str(chain),
            "-url",
            f"{base}/card/v1/jpki/ocsp",
        )
        assert f"{certs['suspended']}: good" in lifted.stdout

        # Unknown issuer: an OCSP error status inside HTTP 200, never a server error.
        garbage = httpx.post(
            f"{base}/card/v1/jpki/ocsp",
            content=b"not der",
            headers={"Content-Type": "application/ocsp-request"},
        )
        assert garbage.status_code == 200
        assert garbage.content == bytes.fromhex("30030a0101")  # malformedRequest


def _ocsp_verdict(openssl: str, base: str, issuer: Path, chain: Path, cert: Path) -> tuple[str, str]:
    """(good | revoked | unknown, the reason line or ""), as openssl reads the responder."""
    out = run_openssl(
        openssl,
        "ocsp",
        "-issuer",
        str(issuer),
        "-cert",
        str(cert),
        "-CAfile",
        str(chain),
        "-url",
        f"{base}/card/v1/jpki/ocsp",
    )
    assert out.returncode == 0, out.stderr
    assert "Response verify OK" in out.stderr + out.stdout
    assert "nonce" not in (out.stderr + out.stdout).lower()  # no "WARNING: no nonce", no nonce error
    match = re.search(rf"{re.escape(str(cert))}: (good|revoked|unknown)", out.stdout)
    assert match is not None, out.stdout
    reason = re.search(r"Reason: (\w+)", out.stdout)
    return match.group(1), reason.group(1) if reason else ""


def test_openssl_agrees_on_authentication_certificates_and_after_a_death(
    app: FastAPI, national_db: Session, openssl: str, tmp_path: Path
) -> None:
    living_code = seed_identity(national_db)
    lost_code = seed_identity(national_db, name="鈴木　一郎")
    dead_code = seed_identity(national_db, name="高橋　三郎")
    living, _ = issue_card(national_db, living_code)
    lost, secret = issue_card(national_db, lost_code)
    dead, _ = issue_card(national_db, dead_code)
    service.suspend_with_secret(national_db, card_number=lost, secret=secret)
    change_identity(national_db, dead_code, change_kind="death", status="removed", removal_reason="death")
    assert service.sweep_identity_changes(national_db).cards_revoked == 1
    national_db.commit()

    root = jpki.ca_certificate_pem(national_db, "root")
    files: dict[tuple[str, str], Path] = {}
    for kind in CertificateKind:
        issuer = tmp_path / f"{kind.value}-ca.pem"
        issuer.write_text(jpki.ca_certificate_pem(national_db, kind.value))
        (tmp_path / f"{kind.value}-chain.pem").write_text(root + issuer.read_text())
        for label, number in (("living", living), ("lost", lost), ("dead", dead)):
            path = tmp_path / f"{kind.value}-{label}.pem"
            path.write_bytes(pem(service.read_certificate(national_db, card_number=number, kind=kind)))
            files[(kind.value, label)] = path

    with served(app) as base:
        verify: dict[tuple[str, str], int] = {}
        ocsp: dict[tuple[str, str], tuple[str, str]] = {}
        for kind in CertificateKind:
            der = tmp_path / f"{kind.value}.crl"
            der.write_bytes(httpx.get(f"{base}/card/v1/jpki/crl/{kind.value}.crl", timeout=10).content)
            crl = tmp_path / f"{kind.value}-crl.pem"
            assert (
                run_openssl(openssl, "crl", "-inform", "DER", "-in", str(der), "-out", str(crl)).returncode
                == 0
            )
            chain = tmp_path / f"{kind.value}-chain.pem"
            # The CRL is signed by the issuing CA: openssl checks that signature too.
            checked = run_openssl(openssl, "crl", "-in", str(crl), "-noout", "-CAfile", str(chain))
            assert "verify OK" in checked.stdout + checked.stderr
            for label in ("living", "lost", "dead"):
                cert = files[(kind.value, label)]
                verify[(kind.value, label)] = run_openssl(
                    openssl, "verify", "-crl_check", "-CAfile", str(chain), "-CRLfile", str(crl), str(cert)
                ).returncode
                ocsp[(kind.value, label)] = _ocsp_verdict(
                    openssl, base, tmp_path / f"{kind.value}-ca.pem", chain, cert
                )
    for kind in ("auth", "signing"):
        assert (verify[(kind, "living")], verify[(kind, "lost")], verify[(kind, "dead")]) == (0, 2, 2)
        assert ocsp[(kind, "living")] == ("good", "")
        assert ocsp[(kind, "lost")] == ("revoked", "certificateHold")
        assert ocsp[(kind, "dead")] == ("revoked", "cessationOfOperation")
    # And the system says the same.
    for label, number in (("living", living), ("lost", lost), ("dead", dead)):
        statuses = {
            c.kind: c.status for c in service.card_view(national_db, _card(national_db, number)).certificates
        }
        assert set(statuses.values()) == {"living": {"good"}, "lost": {"hold"}, "dead": {"revoked"}}[label]


def _card(db: Session, number: str) -> Card:
    card = repository.card_by_number(db, number)
    assert card is not None
    return card


def test_the_authentication_certificate_carries_no_personal_facts(national_db: Session) -> None:
    number, _ = issue_card(national_db, seed_identity(national_db))
    auth = x509.load_der_x509_certificate(
        service.read_certificate(national_db, card_number=number, kind=CertificateKind.AUTH)
    )
    signing = x509.load_der_x509_certificate(
        service.read_certificate(national_db, card_number=number, kind=CertificateKind.SIGNING)
    )
    from jumin.card.jpki.profile import four_facts_of

    facts = four_facts_of(signing)
    assert facts is not None
    assert (facts.name, facts.sex, facts.address) == ("山田　太郎", "male", "東京都千代田区千代田1番1号")
    assert four_facts_of(auth) is None
    assert "山田" not in auth.subject.rfc4514_string()
    assert "山田" not in signing.subject.rfc4514_string()
    assert signing.not_valid_after_utc > utcnow()
