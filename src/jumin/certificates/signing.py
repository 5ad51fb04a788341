"""The municipal document-signing CA, each municipality's signing certificate, PAdES.

Every certificate PDF is signed (PAdES baseline B, via pyhanko) with a key of the
municipality that issues it; the key's certificate is issued by a document-signing CA
of this deployment's municipal side. It is a CA of its own, not the card's JPKI CA:

- Separation of purposes. The JPKI CA (card/) certifies *residents'* keys on their
  cards under 公的個人認証法, whose relying parties check a person's identity. A
  municipality's signature on a 住民票の写し is the mayor's act of certification; its
  relying parties (banks, schools, employers) check a document. One root for both would
  let a flaw or a mis-issuance in one purpose be used in the other, and tie their
  policies, lifetimes and revocation together.
- Different key custody. The JPKI CA belongs to the national operator (J-LIS) and its
  key stays in the national centre, used rarely and offline. The document-signing keys
  are online: each issuance at a window or a kiosk signs with one. They are held by the
  municipal side, and the CA above them by whoever runs the municipal systems. A
  compromise of a municipal server must never put the trust in residents' cards at risk.
- Independence of the card work, which builds its CA concurrently: certificates can be
  signed and verified without it.

Keys live under the key directory (keys.py conventions: files created once with
O_EXCL, mode 0600, never in the database), each PEM bundle holding the private key
encrypted with the passphrase from JUMIN_CA_PASSPHRASE and its certificate. A bundle is
written in one file so that two processes starting together can never pair one's key
with the other's certificate. When JUMIN_CA_PASSPHRASE is unset, the documented
development passphrase is used only in the demo deployment (after `jumin demo seed`);
anywhere else issuance refuses with a clear error. After the signing certificates are
made, an operator may move ``ca.pem`` offline: signers are renewed only when they near
their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from jumin.certificates.domain import SigningUnavailable
from jumin.config import get_settings

log = logging.getLogger("jumin.certificates.signing")
# An upload modified after signing is an expected answer of the public verification
# route, not a fault: pyhanko would log each one as an ERROR with a traceback, letting
# anyone fill the error log. The verdict is returned to the caller instead.
logging.getLogger("pyhanko.sign.diff_analysis.policies").setLevel(logging.CRITICAL)

PASSPHRASE_ENV = "JUMIN_CA_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
# Public on purpose: it protects nothing but the demo's throw-away keys (docs/certificates.md).
DEV_PASSPHRASE = "jumin-demo-ca-passphrase"  # noqa: S105
CA_NAME = "Jumin 市区町村文書署名CA"
CA_YEARS = 20
SIGNER_YEARS = 3
RENEW_BEFORE = dt.timedelta(days=30)
SIGNATURE_FIELD = "JuminCertificateSignature"

_lock = threading.Lock()


def _directory() -> Path:
    return get_settings().key_dir / "certificates"


def ca_path() -> Path:
    return _directory() / "ca.pem"


def signer_path(lg_code: str) -> Path:
    return _directory() / "signers" / f"{lg_code}.pem"


def passphrase() -> bytes:
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value.encode()
    if (get_settings().var_dir / "demo-credentials.json").exists():
        log.warning("JUMIN_CA_PASSPHRASE is unset: using the demo passphrase (demo deployment only)")
        return DEV_PASSPHRASE.encode()
    raise SigningUnavailable(
        f"環境変数 {PASSPHRASE_ENV} (証明書署名鍵のパスフレーズ) が設定されていません。"
        "運用者が設定してから再度お試しください。"
    )


def _write_once(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    # link() fails if another process made the file first: theirs stands, ours is dropped.
    with contextlib.suppress(FileExistsError):
        os.link(tmp, path)
    tmp.unlink()


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class KeyPair:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def bundle(self, secret: bytes) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        ) + self.certificate.public_bytes(serialization.Encoding.PEM)


def _load_bundle(path: Path, secret: bytes) -> KeyPair:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except (ValueError, TypeError) as exc:
        raise SigningUnavailable(
            f"署名鍵 {path.name} を開けません。"
            f"{PASSPHRASE_ENV} が鍵を作成したときの値と一致するか確認してください。"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningUnavailable(f"署名鍵 {path.name} の形式が想定と異なります。")
    return KeyPair(key, x509.load_pem_x509_certificate(data))


def _name(common_name: str, organisation: str, unit: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
    ]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(*, sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certs,
        content_commitment=not sign_certs,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


def _new_ca(now: dt.datetime) -> KeyPair:
    key = ec.generate_private_key(ec.SECP384R1())
    name = _name(CA_NAME, "Jumin 住民基本台帳システム (市区町村)")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return KeyPair(key, cert)


def _new_signer(
    ca: KeyPair, *, lg_code: str, municipality: str, mayor_title: str, now: dt.datetime
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    end = min(now + dt.timedelta(days=365 * SIGNER_YEARS), ca.certificate.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(mayor_title, municipality, lg_code))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # No extended key usage: NSS (pdfsig, Firefox) then accepts the key for document
        # signatures, and pyhanko's default needs digitalSignature + nonRepudiation.
        .add_extension(_key_usage(sign_certs=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA384())
    )
    return KeyPair(key, cert)


def ca_certificate() -> x509.Certificate | None:
    """The CA's certificate (public), or None before anything was ever signed."""
    path = ca_path()
    if not path.exists():
        return None
    return x509.load_pem_x509_certificate(path.read_bytes())


def ca_certificate_pem() -> bytes | None:
    cert = ca_certificate()
    return None if cert is None else cert.public_bytes(serialization.Encoding.PEM)


def _ensure_ca(secret: bytes, now: dt.datetime) -> KeyPair:
    path = ca_path()
    if not path.exists():
        _write_once(path, _new_ca(now).bundle(secret))
        log.info("document-signing CA created")
    return _load_bundle(path, secret)


@dataclass(frozen=True, slots=True)
class Signer:
    lg_code: str
    pyhanko_signer: Any
    certificate: x509.Certificate
    created: bool  # made for this call: the caller audits a new signing key
    reserve: int  # hex digits kept in the PDF for the signature container

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


_signers: dict[tuple[Path, float], Signer] = {}


def signer_for(*, lg_code: str, municipality: str, mayor_title: str, now: dt.datetime) -> Signer:
    """The municipality's signing key and certificate, made (or renewed) when needed."""
    secret = passphrase()
    path = signer_path(lg_code)
    created = False
    with _lock:
        if path.exists():
            stamp = path.stat().st_mtime
            cached = _signers.get((path, stamp))
            if cached is not None and cached.certificate.not_valid_after_utc - now > RENEW_BEFORE:
                return cached
        pair = _load_bundle(path, secret) if path.exists() else None
        if pair is None or pair.certificate.not_valid_after_utc - now <= RENEW_BEFORE:
            ca = _ensure_ca(secret, now)
            fresh = _new_signer(
                ca, lg_code=lg_code, municipality=municipality, mayor_title=mayor_title, now=now
            )
            if pair is None:
                _write_once(path, fresh.bundle(secret))
            else:
                _replace(path, fresh.bundle(secret))
            created = True
            log.info("document-signing certificate issued", extra={"lg_code": lg_code})
            pair = _load_bundle(path, secret)
        ca_cert = ca_certificate()
        assert ca_cert is not None
        key_der = pair.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        chain = load_certs_from_pemder_data(ca_cert.public_bytes(serialization.Encoding.PEM))
        (own,) = load_certs_from_pemder_data(pair.certificate.public_bytes(serialization.Encoding.PEM))
        pyhanko_signer = signers.SimpleSigner(
            signing_cert=own,
            signing_key=load_private_key_from_pemder_data(key_der, None),
            cert_registry=SimpleCertificateStore.from_certs(list(chain)),  # type: ignore[no-untyped-call]
        )
        signer = Signer(
            lg_code=lg_code,
            pyhanko_signer=pyhanko_signer,
            certificate=pair.certificate,
            created=created,
            reserve=_signature_reserve(pyhanko_signer, now),
        )
        _signers[(path, path.stat().st_mtime)] = Signer(
            signer.lg_code, signer.pyhanko_signer, signer.certificate, created=False, reserve=signer.reserve
        )
        return signer


def _signature_reserve(pyhanko_signer: signers.SimpleSigner, now: dt.datetime) -> int:
    """The room pyhanko's own estimate would keep for this signer's signature, worked out once.

    Left to itself, pyhanko estimates it for every PDF by building and encoding a whole
    dummy signature first, which doubled the cost of signing. The container's size
    depends only on the signer (key, certificate chain, PAdES attributes, no timestamp or
    revocation data), so one dry run per signer gives the same figure, with the same
    50% margin for the few bytes by which ECDSA signatures vary.
    """
    dummy = asyncio.run(
        pyhanko_signer.async_sign(
            hashlib.sha256().digest(),
            "sha256",
            dry_run=True,
            use_pades=True,
            signed_attr_settings=PdfCMSSignedAttributes(signing_time=now),
        )
    )
    hex_digits = len(dummy.dump()) * 2
    return hex_digits + 2 * (hex_digits // 4)


def sign_pdf(pdf: bytes, signer: Signer, *, reason: str, location: str) -> bytes:
    """The PDF with one PAdES signature over the whole file."""
    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    pdf_signer = signers.PdfSigner(meta, signer=signer.pyhanko_signer)
    out = pdf_signer.sign_pdf(writer, bytes_reserved=signer.reserve)
    data: bytes = out.getvalue()
    return data


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What the signature of a PDF says, in the terms a verifier needs."""

    signed: bool
    intact: bool = False
    trusted: bool = False
    whole_file: bool = False
    unmodified: bool = False
    signer: str | None = None
    signer_fingerprint: str | None = None
    signed_at: dt.datetime | None = None
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return self.signed and self.intact and self.trusted and self.whole_file and self.unmodified


def check_signature(pdf: bytes, *, moment: dt.datetime | None = None) -> SignatureCheck:
    """Validate the one signature a certificate carries against the document-signing CA.

    ``moment`` is when the certificate must have been valid: the issuance time from the
    register when the document is known, so that a certificate stays verifiable after its
    signing certificate was renewed.
    """
    ca = ca_certificate()
    if ca is None:
        return SignatureCheck(signed=False, problem="この環境では証明書がまだ発行されていません。")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        found = reader.embedded_signatures
    except Exception:  # any unreadable upload is simply "not a certificate"
        return SignatureCheck(signed=False, problem="PDFとして読み取れません。")
    if len(found) != 1:
        return SignatureCheck(
            signed=bool(found),
            problem="電子署名がありません。"
            if not found
            else "電子署名が複数あります (発行後に署名が追加されています)。",
        )
    embedded = found[0]
    (trust_root,) = load_certs_from_pemder_data(ca.public_bytes(serialization.Encoding.PEM))
    context = ValidationContext(trust_roots=[trust_root], allow_fetching=False, moment=moment)
    try:
        status = validate_pdf_signature(embedded, context)
    except Exception:  # a corrupted signature is a failed check, not a crash
        return SignatureCheck(signed=True, problem="電子署名を検証できません (署名データが壊れています)。")
    cert = x509.load_der_x509_certificate(status.signing_cert.dump())
    whole = status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    unmodified = status.modification_level in (None, ModificationLevel.NONE) and whole
    problem: str | None = None
    if not status.intact:
        problem = "署名後に文書の内容が変更されています。"
    elif not status.trusted:
        problem = "署名者の証明書がこのシステムの文書署名CAから発行されたものではありません。"
    elif not unmodified:
        problem = "署名後に文書へ追記 (増分更新) が行われています。"
    return SignatureCheck(
        signed=True,
        intact=bool(status.intact),
        trusted=bool(status.trusted),
        whole_file=whole,
        unmodified=unmodified and bool(status.bottom_line),
        signer=cert.subject.rfc4514_string(),
        signer_fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        signed_at=status.signer_reported_dt,
        problem=problem,
    )
