"""The JPKI certificate authority: its keys, issuance, status changes, CRL and OCSP.

CA private keys are stored in ``jpki_authorities`` as encrypted PKCS#8 (PBES2, AES-256)
under ``JUMIN_JPKI_PASSPHRASE`` (jpki.config); a decrypted key is kept in memory for
the life of the process, keyed by the encrypted form, so that signing a certificate or
an OCSP response does not re-derive it each time. A missing or wrong passphrase is
``JpkiUnavailable`` (503), never a server error.

Status is one place: ``jpki_certificates.status`` (good / hold / revoked / expired).
The CRL and the OCSP responder both read it, so they cannot disagree. A status change
marks the issuing CA's CRL dirty; the next CRL request signs a new CRL with the next
CRL number. A clean CRL is served as stored until shortly before its nextUpdate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, AuditAction
from jumin.card import repository
from jumin.card.chip import generate_key
from jumin.card.domain import (
    CertificateKind,
    CertificateRevocationReason,
    CertificateStatus,
    FourFacts,
    end_of_day_utc,
)
from jumin.card.jpki import profile
from jumin.card.jpki.config import JpkiUnavailable, jpki_settings, passphrase
from jumin.card.models import JpkiAuthority, JpkiCertificate, JpkiCrl
from jumin.core.errors import NotFound
from jumin.db import utcnow

__all__ = [
    "CertificateCheck",
    "certificate_status",
    "check_certificate",
    "current_crl",
    "ensure_authorities",
    "issue",
    "ocsp_respond",
    "set_status",
]

NATIONAL = "national"
# A CRL is re-signed when it is this close to its nextUpdate, so relying parties that
# cache until nextUpdate never hold an expired one.
_CRL_REFRESH_MARGIN = dt.timedelta(hours=1)
OCSP_VALIDITY = dt.timedelta(hours=1)

_keys: dict[str, ec.EllipticCurvePrivateKey] = {}


def _encrypt(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase()),
    ).decode()


def _authority(row: JpkiAuthority) -> profile.Authority:
    key = _keys.get(row.key_encrypted_pem)
    if key is None:
        try:
            loaded = serialization.load_pem_private_key(row.key_encrypted_pem.encode(), passphrase())
        except ValueError:
            raise JpkiUnavailable(
                f"認証局 {row.name} の秘密鍵を開けません。JUMIN_JPKI_PASSPHRASE が鍵を作ったときと"
                "異なります。運用者が確認してください。"
            ) from None
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        key = _keys[row.key_encrypted_pem] = loaded
    return profile.Authority(
        name=row.name,
        certificate=x509.load_pem_x509_certificate(row.certificate_pem.encode()),
        key=key,
    )


def _store_authority(
    session: Session,
    name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    parent_id: int | None,
) -> JpkiAuthority:
    name_hash, key_hash = profile.issuer_hashes(cert)
    encrypted = _encrypt(key)
    _keys[encrypted] = key
    return repository.add_authority(
        session,
        JpkiAuthority(
            name=name,
            parent_id=parent_id,
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            key_encrypted_pem=encrypted,
            name_hash=name_hash,
            key_hash=key_hash,
            crl_number=0,
            crl_dirty=True,
            created_at=utcnow(),
        ),
    )


def ensure_authorities(session: Session, *, now: dt.datetime | None = None) -> list[str]:
    """Create the root and the two issuing CAs unless they exist; returns the names created."""
    now = now or utcnow()
    created: list[str] = []
    root_row = repository.authority(session, profile.ROOT, for_update=True)
    if root_row is None:
        key = generate_key()
        root_row = _store_authority(session, profile.ROOT, profile.build_root(key, now), key, None)
        created.append(profile.ROOT)
    root = _authority(root_row)
    for name in profile.CA_NAMES.values():
        if repository.authority(session, name) is None:
            key = generate_key()
            _store_authority(session, name, profile.build_issuing_ca(name, key, root, now), key, root_row.id)
            created.append(name)
    if created:
        audit.record(
            session,
            actor=Actor.system(NATIONAL),
            action=AuditAction.JPKI_CA_CREATED,
            target_kind="jpki_authority",
            target_id=",".join(created),
        )
    return created


def _row(session: Session, name: str, *, for_update: bool = False) -> JpkiAuthority:
    """A CA's row, creating the CAs on first use (a fresh demo needs no separate step)."""
    if name not in (profile.ROOT, *profile.CA_NAMES.values()):
        raise NotFound(f"認証局 {name} はありません。", field="ca")
    row = repository.authority(session, name, for_update=for_update)
    if row is None:
        ensure_authorities(session)
        row = repository.authority(session, name, for_update=for_update)
        assert row is not None
    return row


def authority_for(session: Session, name: str) -> profile.Authority:
    return _authority(_row(session, name))


def ca_certificate_pem(session: Session, name: str) -> str:
    return _row(session, name).certificate_pem


def issue(
    session: Session,
    *,
    kind: CertificateKind,
    card_id: int,
    resident_code: str,
    prefecture_code: str,
    public_key: ec.EllipticCurvePublicKey,
    facts: FourFacts | None,
    valid_until: dt.date,
    now: dt.datetime,
) -> JpkiCertificate:
    """Sign a certificate for a key the chip made; the caller audits the issuance."""
    issuer_row = _row(session, profile.CA_NAMES[kind])
    issuer = _authority(issuer_row)
    serial = x509.random_serial_number()
    not_after = end_of_day_utc(valid_until)
    cert = profile.build_end_entity(
        kind=kind,
        public_key=public_key,
        issuer=issuer,
        serial=serial,
        not_before=now - dt.timedelta(minutes=1),
        not_after=not_after,
        facts=facts,
        base_url=jpki_settings().base_url,
    )
    return repository.add_certificate(
        session,
        JpkiCertificate(
            serial=f"{serial:x}",
            authority_id=issuer_row.id,
            kind=kind.value,
            card_id=card_id,
            resident_code=resident_code,
            prefecture_code=prefecture_code,
            status=CertificateStatus.GOOD.value,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            valid_until=valid_until,
            der=cert.public_bytes(serialization.Encoding.DER),
            name=facts.name if facts else None,
            birth_date=facts.birth_date if facts else None,
            sex=facts.sex if facts else None,
            address=facts.address if facts else None,
            issued_at=now,
        ),
    )


def set_status(
    session: Session,
    cert: JpkiCertificate,
    *,
    status: CertificateStatus,
    reason: CertificateRevocationReason | None,
    now: dt.datetime,
) -> bool:
    """Hold, release or revoke; False when nothing changes. Revocation is final."""
    current = CertificateStatus(cert.status)
    if current in (CertificateStatus.REVOKED, CertificateStatus.EXPIRED) or current is status:
        return False
    cert.status = status.value
    if status is CertificateStatus.HOLD:
        cert.hold_at = now
    elif status is CertificateStatus.REVOKED:
        cert.revoked_at = now
        cert.revocation_reason = (reason or CertificateRevocationReason.HOLDER_REQUEST).value
    else:
        cert.hold_at = None
    repository.mark_crl_dirty(session, cert.authority_id)
    session.flush()
    return True


def _revoked_at(cert: JpkiCertificate) -> dt.datetime:
    when = cert.revoked_at if cert.status == CertificateStatus.REVOKED else cert.hold_at
    assert when is not None
    return when


def current_crl(session: Session, ca_name: str, *, now: dt.datetime | None = None) -> bytes:
    """The CA's CRL in DER: the stored one while it is clean and current, else a new one."""
    now = now or utcnow()
    if ca_name not in profile.CA_NAMES.values():
        raise NotFound(f"CRL {ca_name} はありません。", field="ca")
    row = _row(session, ca_name, for_update=True)
    issuer = _authority(row)
    latest = repository.latest_crl(session, row.id)
    if latest is not None and not row.crl_dirty and latest.next_update - _CRL_REFRESH_MARGIN > now:
        return latest.der
    listed = repository.listed_on_crl(session, row.id, now)
    row.crl_number += 1
    this_update = now.replace(microsecond=0)
    next_update = this_update + dt.timedelta(hours=jpki_settings().crl_hours)
    der = profile.build_crl(
        issuer,
        [
            profile.RevokedEntry(
                serial=int(c.serial, 16),
                revoked_at=_revoked_at(c),
                status=CertificateStatus(c.status),
                reason=CertificateRevocationReason(c.revocation_reason) if c.revocation_reason else None,
            )
            for c in listed
        ],
        number=row.crl_number,
        this_update=this_update,
        next_update=next_update,
    )
    row.crl_dirty = False
    repository.add_crl(
        session,
        JpkiCrl(
            authority_id=row.id,
            crl_number=row.crl_number,
            this_update=this_update,
            next_update=next_update,
            der=der,
        ),
    )
    return der


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    status: CertificateStatus | None  # None: not a certificate of ours
    revoked_at: dt.datetime | None
    reason: CertificateRevocationReason | None


def certificate_status(session: Session, serial: str, authority_id: int) -> StatusAnswer:
    cert = repository.certificate_by_serial(session, serial)
    if cert is None or cert.authority_id != authority_id:
        return StatusAnswer(None, None, None)
    if cert.status == CertificateStatus.EXPIRED:
        # RFC 6960 lets a responder answer for expired certificates; "good" would mislead.
        return StatusAnswer(CertificateStatus.REVOKED, cert.not_after, CertificateRevocationReason.SUPERSEDED)
    status = CertificateStatus(cert.status)
    if status is CertificateStatus.GOOD:
        return StatusAnswer(status, None, None)
    reason = CertificateRevocationReason(cert.revocation_reason) if cert.revocation_reason else None
    return StatusAnswer(status, _revoked_at(cert), reason)


def ocsp_respond(session: Session, request_der: bytes, *, now: dt.datetime | None = None) -> bytes:
    """An RFC 6960 response for a DER request: signed by the issuing CA, nonce echoed."""
    now = (now or utcnow()).replace(microsecond=0)
    try:
        query = profile.parse_ocsp_request(request_der)
    except (ValueError, NotImplementedError):
        return profile.ocsp_error(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    for ca_name in profile.CA_NAMES.values():
        row = _row(session, ca_name)
        issuer = _authority(row)
        if profile.cert_id_hashes(query, issuer.certificate) == (query.name_hash, query.key_hash):
            answer = certificate_status(session, f"{query.serial:x}", row.id)
            return profile.build_ocsp_response(
                query,
                issuer,
                status=answer.status,
                revoked_at=answer.revoked_at,
                reason=answer.reason,
                this_update=now,
                next_update=now + OCSP_VALIDITY,
            )
    # Not one of our CAs: RFC 6960 2.3 "unauthorized".
    return profile.ocsp_error(ocsp.OCSPResponseStatus.UNAUTHORIZED)


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    row: JpkiCertificate
    certificate: x509.Certificate


def check_certificate(
    session: Session, der: bytes, *, kind: CertificateKind, now: dt.datetime
) -> CertificateCheck | str:
    """Chain, validity period and OCSP status of a presented certificate.

    Returns the check or the reason (a short English code, for the audit log) it fails.
    The status is asked of the OCSP responder, through the same RFC 6960 encoding a
    relying party on another host would use, and its signed answer is verified.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return "malformed certificate"
    issuer = authority_for(session, profile.CA_NAMES[kind])
    root = authority_for(session, profile.ROOT)
    try:
        cert.verify_directly_issued_by(issuer.certificate)
        issuer.certificate.verify_directly_issued_by(root.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return "not issued by the JPKI CA"
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return "outside validity period"
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer.certificate, profile.SIGNATURE_HASH)
        .add_extension(x509.OCSPNonce(now.isoformat().encode()), critical=False)
        .build()
    )
    response = ocsp.load_der_ocsp_response(
        ocsp_respond(session, request.public_bytes(serialization.Encoding.DER), now=now)
    )
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return "ocsp unsuccessful"
    try:
        issuer.key.public_key().verify(
            response.signature, response.tbs_response_bytes, ec.ECDSA(profile.SIGNATURE_HASH)
        )
    except InvalidSignature:
        return "ocsp signature invalid"
    if response.certificate_status is not ocsp.OCSPCertStatus.GOOD:
        return f"certificate {response.certificate_status.name.lower()}"
    row = repository.certificate_by_serial(session, f"{cert.serial_number:x}")
    if row is None:
        return "unknown certificate"
    return CertificateCheck(row=row, certificate=cert)
