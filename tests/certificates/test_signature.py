"""Authenticity: the PAdES signature against the document-signing CA, and the QR codes.

pyhanko and poppler's pdfsig (NSS) each validate the signature on their own; a one-byte
change and an incremental update after signing must both be caught. The QR code on
every page is decoded back with zbarimg from a 200 dpi render.
"""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils.generic import StreamObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from jumin.certificates import service, signing
from jumin.certificates.domain import SigningUnavailable
from tests.certificates.conftest import Desk, pypdf_text, require_program, squash


def _issued(desk: Desk) -> service.IssuedCertificate:
    family = desk.family()
    return desk.window(
        {
            "kind": "record_copy",
            "household_id": family.household_ids[0],
            "include": ["head_and_relationship"],
            "requester": {"kind": "self", "person_id": family.person_ids[0]},
        }
    )


def _flip_inside_signed_range(pdf: bytes) -> bytes:
    """Change one byte of the first page's compressed content, keeping the length."""
    start = pdf.index(b"stream", pdf.index(b"/Contents")) + len(b"stream\n") + 20
    tampered = bytearray(pdf)
    tampered[start] ^= 0x01
    return bytes(tampered)


def _incremental_update(pdf: bytes) -> bytes:
    """Append a revision that draws on the first page, as an editor saving the file would."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    extra = writer.add_object(StreamObject(stream_data=b"BT /F1 24 Tf 100 100 Td (X) Tj ET"))
    writer.add_stream_to_page(0, extra)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pyhanko_finds_the_signature_intact_and_trusted(desk: Desk) -> None:
    issued = _issued(desk)
    ca = signing.ca_certificate()
    assert ca is not None
    (root,) = load_certs_from_pemder_data(ca.public_bytes(serialization.Encoding.PEM))
    (embedded,) = PdfFileReader(io.BytesIO(issued.pdf)).embedded_signatures
    # PAdES: a CAdES detached signature (ETSI EN 319 142), not the older PKCS#7 one.
    assert embedded.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    status = validate_pdf_signature(embedded, ValidationContext(trust_roots=[root]))
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.bottom_line
    assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    assert "千代田区長" in status.signing_cert.subject.human_friendly

    check = signing.check_signature(issued.pdf)
    assert check.valid
    assert check.signer is not None
    assert "OU=131016" in check.signer


def test_a_one_byte_change_breaks_the_signature(desk: Desk) -> None:
    issued = _issued(desk)
    tampered = _flip_inside_signed_range(issued.pdf)
    assert len(tampered) == len(issued.pdf)
    check = signing.check_signature(tampered)
    assert check.signed
    assert not check.intact
    assert not check.valid
    assert check.problem == "署名後に文書の内容が変更されています。"
    result = service.verify_document(desk.db, pdf=tampered)
    assert not result.authentic


def test_an_incremental_update_after_signing_is_detected(desk: Desk) -> None:
    issued = _issued(desk)
    updated = _incremental_update(issued.pdf)
    check = signing.check_signature(updated)
    # The signed bytes are untouched; what gives it away is the revision after them.
    assert check.intact
    assert check.trusted
    assert not check.unmodified
    assert not check.valid
    assert check.problem == "署名後に文書へ追記 (増分更新) が行われています。"
    assert not service.verify_document(desk.db, pdf=updated).authentic


def test_a_signature_from_another_ca_is_not_trusted(desk: Desk, tmp_path: Path) -> None:
    issued = _issued(desk)
    ca_file = signing.ca_path()
    saved = ca_file.read_bytes()
    try:
        # As if the document had been signed under someone else's CA: replace ours.
        ca_file.unlink()
        other = signing._new_ca(issued.issued_at)
        ca_file.write_bytes(other.bundle(b"x"))
        check = signing.check_signature(issued.pdf)
        assert check.intact
        assert not check.trusted
        assert not check.valid
    finally:
        ca_file.write_bytes(saved)


def _nss_db(tmp_path: Path) -> Path:
    certutil = require_program("certutil")
    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run([certutil, "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    ca_pem = tmp_path / "ca.pem"
    pem = service.ca_certificate_pem()
    assert pem is not None
    ca_pem.write_bytes(pem)
    subprocess.run(
        [certutil, "-A", "-d", f"sql:{nss}", "-n", "jumin-document-ca", "-t", "CT,C,C", "-i", str(ca_pem)],
        check=True,
        capture_output=True,
    )
    return nss


def _pdfsig(pdf: bytes, nss: Path, tmp_path: Path, name: str) -> str:
    program = require_program("pdfsig")
    path = tmp_path / name
    path.write_bytes(pdf)
    # pdfsig exits 0 whatever it finds (STACK.md): the verdict is in its text.
    done = subprocess.run([program, "-nssdir", f"sql:{nss}", str(path)], capture_output=True, text=True)
    return done.stdout + done.stderr


def test_pdfsig_reports_the_signature_valid_against_the_ca(desk: Desk, tmp_path: Path) -> None:
    issued = _issued(desk)
    nss = _nss_db(tmp_path)
    report = _pdfsig(issued.pdf, nss, tmp_path, "issued.pdf")
    assert "Signature Validation: Signature is Valid." in report, report
    assert "Certificate Validation: Certificate is Trusted." in report, report
    assert "Total document signed" in report, report

    tampered = _pdfsig(_flip_inside_signed_range(issued.pdf), nss, tmp_path, "tampered.pdf")
    assert "Signature is Valid." not in tampered, tampered
    updated = _pdfsig(_incremental_update(issued.pdf), nss, tmp_path, "updated.pdf")
    assert "Total document signed" not in updated, updated


def test_every_page_carries_a_qr_code_of_the_verification_url(desk: Desk, tmp_path: Path) -> None:
    pdftoppm, zbarimg = require_program("pdftoppm"), require_program("zbarimg")
    family = desk.family()
    issued = desk.window(
        {
            "kind": "record_copy",
            "household_id": family.household_ids[0],
            "include": ["head_and_relationship", "honseki", "resident_code", "history"],
            "requester": {"kind": "self", "person_id": family.person_ids[0]},
        }
    )
    assert issued.page_count >= 2
    source = tmp_path / "c.pdf"
    source.write_bytes(issued.pdf)
    subprocess.run([pdftoppm, "-r", "200", "-png", str(source), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == issued.page_count
    urls = set()
    for page in pages:
        done = subprocess.run([zbarimg, "--raw", "-q", str(page)], capture_output=True, text=True)
        assert done.returncode == 0, f"no QR code found on {page.name}"
        urls.add(done.stdout.strip())
    (url,) = urls
    match = re.fullmatch(
        r"http://127\.0\.0\.1:8000/certificates/verify\?no=([0-9-]+)&code=([A-Z2-9]{12})", url
    )
    assert match is not None, url
    assert match.group(1) == issued.issue_number
    # The URL is printed too, and its code opens the issuance record.
    assert squash(url) in squash(pypdf_text(issued.pdf))
    found = service.verify_number(desk.db, number=match.group(1), code=match.group(2))
    assert found.document_sha256 == issued.sha256


def test_keys_are_encrypted_at_rest_and_need_the_passphrase(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    _issued(desk)
    bundle = signing.signer_path("131016").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in bundle
    assert signing.signer_path("131016").stat().st_mode & 0o077 == 0
    monkeypatch.delenv("JUMIN_CA_PASSPHRASE")
    with pytest.raises(SigningUnavailable) as missing:
        signing.passphrase()
    assert "JUMIN_CA_PASSPHRASE" in missing.value.detail
    monkeypatch.setenv("JUMIN_CA_PASSPHRASE", "a wrong one")
    with pytest.raises(SigningUnavailable) as wrong:
        signing._load_bundle(signing.signer_path("131016"), signing.passphrase())
    assert "一致するか確認" in wrong.value.detail
