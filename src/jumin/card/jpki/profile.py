"""The JPKI certificate profile: CAs, end-entity certificates, CRLs and OCSP responses.

Pure construction with ``cryptography``; storage and policy are in ``jpki.service``.

Where the four facts go. The signing certificate carries them in the subject
alternative name as ``otherName`` entries, one per fact, each a UTF8String, under the
arc J-LIS uses for its 署名用電子証明書 profile (1.2.392.200149.8.5.5; the individual
numbers below are unconfirmed against the published profile and live only here):

| OID | fact | encoding |
| --- | --- | --- |
| 1.2.392.200149.8.5.5.1 | 氏名 name | as registered (Unicode, NFC as stored) |
| 1.2.392.200149.8.5.5.3 | 性別 sex | "1" male, "2" female (ISO/IEC 5218) |
| 1.2.392.200149.8.5.5.4 | 生年月日 birth date | "YYYYMMDD" (Gregorian) |
| 1.2.392.200149.8.5.5.5 | 住所 address | as registered |

The subject names no person (C=JP, O=JPKI, CN=a per-certificate random label); the
authentication certificate carries no personal fact at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from jumin.card.domain import CertificateKind, CertificateRevocationReason, CertificateStatus, FourFacts

__all__ = [
    "CA_NAMES",
    "OID_ADDRESS",
    "OID_BIRTH_DATE",
    "OID_NAME",
    "OID_SEX",
    "Authority",
    "OcspQuery",
    "RevokedEntry",
    "build_crl",
    "build_end_entity",
    "build_issuing_ca",
    "build_ocsp_response",
    "build_root",
    "four_facts_of",
    "issuer_hashes",
    "parse_ocsp_request",
]

JPKI_ARC = "1.2.392.200149.8.5.5"
OID_NAME = x509.ObjectIdentifier(f"{JPKI_ARC}.1")
OID_SEX = x509.ObjectIdentifier(f"{JPKI_ARC}.3")
OID_BIRTH_DATE = x509.ObjectIdentifier(f"{JPKI_ARC}.4")
OID_ADDRESS = x509.ObjectIdentifier(f"{JPKI_ARC}.5")
# Certificate policies of the two kinds (unconfirmed numbering under the J-LIS arc).
POLICY = {
    CertificateKind.SIGNING: x509.ObjectIdentifier("1.2.392.200149.8.5.1.1.10"),
    CertificateKind.AUTH: x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.10"),
}

ROOT = "root"
CA_NAMES = {CertificateKind.SIGNING: "signing", CertificateKind.AUTH: "auth"}
_CA_TITLES = {
    ROOT: "JPKI Root CA (Jumin)",
    "signing": "JPKI Signing CA (Jumin)",
    "auth": "JPKI Authentication CA (Jumin)",
}
_SEX_CODES = {"male": "1", "female": "2"}
_SEX_NAMES = {v: k for k, v in _SEX_CODES.items()}

_REASONS = {
    CertificateRevocationReason.FOUR_FACTS_CHANGED: x509.ReasonFlags.affiliation_changed,
    CertificateRevocationReason.DEATH: x509.ReasonFlags.cessation_of_operation,
    CertificateRevocationReason.CARD_REVOKED: x509.ReasonFlags.cessation_of_operation,
    CertificateRevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    CertificateRevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    CertificateRevocationReason.HOLDER_REQUEST: x509.ReasonFlags.unspecified,
}
SIGNATURE_HASH = hashes.SHA256()


@dataclass(frozen=True, slots=True)
class Authority:
    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    serial: int
    revoked_at: dt.datetime
    status: CertificateStatus
    reason: CertificateRevocationReason | None


def x509_reason(status: CertificateStatus, reason: CertificateRevocationReason | None) -> x509.ReasonFlags:
    if status is CertificateStatus.HOLD:
        return x509.ReasonFlags.certificate_hold
    return _REASONS[reason] if reason is not None else x509.ReasonFlags.unspecified


def _ca_name(name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, _CA_TITLES[name]),
        ]
    )


def _ca_builder(
    name: str, subject_key: ec.EllipticCurvePublicKey, issuer: x509.Name, now: dt.datetime, years: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_ca_name(name))
        .issuer_name(issuer)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def build_root(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = _ca_name(ROOT)
    return (
        _ca_builder(ROOT, key.public_key(), name, now, 20)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, SIGNATURE_HASH)
    )


def build_issuing_ca(
    name: str, key: ec.EllipticCurvePrivateKey, root: Authority, now: dt.datetime
) -> x509.Certificate:
    return (
        _ca_builder(name, key.public_key(), root.certificate.subject, now, 12)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False
        )
        .sign(root.key, SIGNATURE_HASH)
    )


def _utf8(value: str) -> bytes:
    """DER UTF8String (the otherName value is the encoded ASN.1 value itself)."""
    body = value.encode()
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x0c" + length + body


def _read_utf8(der: bytes) -> str:
    if not der or der[0] != 0x0C:
        raise ValueError("not a UTF8String")
    first = der[1]
    if first < 0x80:
        return der[2 : 2 + first].decode()
    count = first & 0x7F
    n = int.from_bytes(der[2 : 2 + count], "big")
    return der[2 + count : 2 + count + n].decode()


def four_facts_names(facts: FourFacts) -> list[x509.GeneralName]:
    return [
        x509.OtherName(OID_NAME, _utf8(facts.name)),
        x509.OtherName(OID_SEX, _utf8(_SEX_CODES.get(facts.sex, "9"))),
        x509.OtherName(OID_BIRTH_DATE, _utf8(facts.birth_date.strftime("%Y%m%d"))),
        x509.OtherName(OID_ADDRESS, _utf8(facts.address)),
    ]


def four_facts_of(certificate: x509.Certificate) -> FourFacts | None:
    """The four facts a signing certificate carries; None for one without them."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    values = {o.type_id: _read_utf8(o.value) for o in san.get_values_for_type(x509.OtherName)}
    if OID_NAME not in values:
        return None
    return FourFacts(
        name=values[OID_NAME],
        birth_date=dt.datetime.strptime(values[OID_BIRTH_DATE], "%Y%m%d").date(),  # noqa: DTZ007 (a date)
        sex=_SEX_NAMES.get(values[OID_SEX], "unknown"),
        address=values[OID_ADDRESS],
    )


def build_end_entity(
    *,
    kind: CertificateKind,
    public_key: ec.EllipticCurvePublicKey,
    issuer: Authority,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    facts: FourFacts | None,
    base_url: str,
) -> x509.Certificate:
    if (kind is CertificateKind.SIGNING) != (facts is not None):
        raise ValueError("the signing certificate, and only it, carries the four facts")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{kind.value}-{serial:040x}"[:64]),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=kind is CertificateKind.SIGNING,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY[kind], None)]), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url(base_url, issuer.name))],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(f"{base_url}/card/v1/jpki/ocsp"),
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(f"{base_url}/card/v1/jpki/ca/{issuer.name}.pem"),
                    ),
                ]
            ),
            critical=False,
        )
    )
    if facts is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(four_facts_names(facts)), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer.key, SIGNATURE_HASH)


def crl_url(base_url: str, ca_name: str) -> str:
    return f"{base_url}/card/v1/jpki/crl/{ca_name}.crl"


def build_crl(
    issuer: Authority,
    revoked: list[RevokedEntry],
    *,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    )
    for entry in revoked:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
            .add_extension(x509.CRLReason(x509_reason(entry.status, entry.reason)), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(item)
    return builder.sign(issuer.key, SIGNATURE_HASH).public_bytes(serialization.Encoding.DER)


def issuer_hashes(certificate: x509.Certificate) -> tuple[str, str]:
    """SHA-1 of the CA's DER subject and of its public key bits (RFC 6960 CertID)."""
    name_hash = hashlib.sha1(certificate.subject.public_bytes(), usedforsecurity=False).hexdigest()
    point = certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return name_hash, hashlib.sha1(point, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class OcspQuery:
    name_hash: bytes
    key_hash: bytes
    serial: int
    algorithm: hashes.HashAlgorithm
    nonce: bytes | None


def parse_ocsp_request(der: bytes) -> OcspQuery:
    """The one certificate an OCSP request asks about (ValueError if malformed)."""
    request = ocsp.load_der_ocsp_request(der)
    try:
        nonce: bytes | None = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        nonce = None
    return OcspQuery(
        name_hash=request.issuer_name_hash,
        key_hash=request.issuer_key_hash,
        serial=request.serial_number,
        algorithm=request.hash_algorithm,
        nonce=nonce,
    )


def cert_id_hashes(query: OcspQuery, certificate: x509.Certificate) -> tuple[bytes, bytes]:
    """The CertID hashes of ``certificate`` in the request's hash algorithm."""
    point = certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    name = hashes.Hash(query.algorithm)
    name.update(certificate.subject.public_bytes())
    key = hashes.Hash(query.algorithm)
    key.update(point)
    return name.finalize(), key.finalize()


def build_ocsp_response(
    query: OcspQuery,
    issuer: Authority,
    *,
    status: CertificateStatus | None,
    revoked_at: dt.datetime | None,
    reason: CertificateRevocationReason | None,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> bytes:
    """A signed response for one certificate; ``status`` None means unknown to us."""
    if status is None:
        cert_status = ocsp.OCSPCertStatus.UNKNOWN
    elif status is CertificateStatus.GOOD:
        cert_status = ocsp.OCSPCertStatus.GOOD
    else:
        cert_status = ocsp.OCSPCertStatus.REVOKED
    revoked = cert_status is ocsp.OCSPCertStatus.REVOKED
    assert status is not None or not revoked
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=query.name_hash,
            issuer_key_hash=query.key_hash,
            serial_number=query.serial,
            algorithm=query.algorithm,
            cert_status=cert_status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=revoked_at if revoked else None,
            revocation_reason=x509_reason(status, reason) if revoked and status is not None else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.certificate)
        .certificates([issuer.certificate])
    )
    if query.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    return builder.sign(issuer.key, SIGNATURE_HASH).public_bytes(serialization.Encoding.DER)


def ocsp_error(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
