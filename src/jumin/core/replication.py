"""The contract between the municipal register and the national network: nothing else crosses.

The two sides never import each other (DESIGN.md): the relay on the municipal side and
the inbox on the national side both import this module, so the wire format, the signed
envelope and the reconcile digest are written once and cannot drift apart.

Signed envelope
    A request carries one envelope, a JSON object serialised canonically (sorted keys,
    no spaces, UTF-8; :func:`canonical_bytes`). ``kind`` names what it is for, so that a
    signature made for one purpose is never accepted for another; ``sender`` is the
    municipality; ``sent_at`` and ``nonce`` make each envelope unique, so that the inbox
    can refuse an envelope it has seen before or one too old to check against its memory
    of seen nonces. The Ed25519 signature over the exact bytes is sent base64url-encoded
    in ``X-Jumin-Signature``; ``X-Jumin-Sender`` names the key to check it with.

    A POST carries the envelope as its body. A GET carries its parameters in the query
    and ``sent_at``/``nonce`` in headers; both sides rebuild the same envelope from them
    (:func:`notices_envelope`) and the signature covers that.

Reconcile digest
    Each side turns every person's identity information into keyed hashes, field by
    field, under a salt chosen for the run, so that comparing two sides exchanges no
    personal data and a digest cannot be matched against one from another run.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

CHANGES_PATH = "/network/v1/changes"
NOTICES_PATH = "/network/v1/notices"
SENDER_HEADER = "X-Jumin-Sender"
SIGNATURE_HEADER = "X-Jumin-Signature"
SENT_AT_HEADER = "X-Jumin-Sent-At"
NONCE_HEADER = "X-Jumin-Nonce"

# How far a sender's clock may be from the inbox's; the inbox remembers nonces at least
# this long on either side, so an envelope is either fresh and unseen or refused.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
# One batch stays one short national transaction even when every message is applied.
MAX_BATCH = 500
MAX_NOTICES = 500


def municipality_key_name(lg_code: str) -> str:
    """The key file a municipality signs with (jumin.keys.load_or_create_ed25519)."""
    return f"municipality-{lg_code}"


class MessageKind(StrEnum):
    IDENTITY_CHANGED = "identity_changed"
    MOVE_OUT_CERTIFICATE = "move_out_certificate"


class EnvelopeKind(StrEnum):
    CHANGES = "jumin.changes.v1"
    NOTICES = "jumin.notices.v1"


class DeliveryStatus(StrEnum):
    """What the inbox did with one message; all three mean "received, do not send again"."""

    APPLIED = "applied"  # applied now (it, or the gap it filled)
    HELD = "held"  # stored, waiting for an earlier sequence number of the same record
    DUPLICATE = "duplicate"  # this idempotency key was received before


ACKNOWLEDGED = frozenset(DeliveryStatus)


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def format_instant(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def is_fresh(sent_at: dt.datetime, now: dt.datetime) -> bool:
    return abs(now - sent_at) <= MAX_CLOCK_SKEW


def changes_envelope(
    *, sender: str, sent_at: dt.datetime, nonce: str, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "kind": EnvelopeKind.CHANGES.value,
        "sender": sender,
        "sent_at": format_instant(sent_at),
        "nonce": nonce,
        "messages": messages,
    }


def notices_envelope(
    *, sender: str, sent_at: str, nonce: str, lg_code: str, after_id: int, limit: int
) -> bytes:
    """The bytes a notices request's signature covers, rebuilt from its query and headers."""
    return canonical_bytes(
        {
            "kind": EnvelopeKind.NOTICES.value,
            "sender": sender,
            "sent_at": sent_at,
            "nonce": nonce,
            "lg_code": lg_code,
            "after_id": after_id,
            "limit": limit,
        }
    )


def sign(private_key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.urlsafe_b64encode(private_key.sign(data)).decode().rstrip("=")


def public_key_from_pem(pem: str) -> Ed25519PublicKey | None:
    """The Ed25519 key in ``pem``, or None for anything else (RSA, garbage)."""
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def verify(public_key_pem: str, data: bytes, signature: str) -> bool:
    key = public_key_from_pem(public_key_pem)
    if key is None:
        return False
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        key.verify(raw, data)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


# ---------------------------------------------------------------------------
# Which record of a person is the one that counts now


def record_rank(started_on: dt.date, live: bool, tiebreak: int) -> tuple[dt.date, bool, int]:
    """A person's records, oldest first: the one that began last is where they live now.

    A record begins when the person became a resident there (出生, 転入: the record's
    ``became_resident_on``), so a later record always follows an earlier one whatever
    order their messages arrive in: the destination's 転入 outranks the origin's 転出, and
    an old record's late correction never takes the person back. Of two records begun
    the same day (in and out again that day), the live one is where the person is;
    ``tiebreak`` settles the rest (the one heard of last wins).
    """
    return (started_on, live, tiebreak)


# ---------------------------------------------------------------------------
# Reconcile digest

IDENTITY_FIELDS: tuple[str, ...] = (
    "resident_code",
    "individual_number",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "address_lg_code",
    "address",
    "status",
    "removal_reason",
    "resident_kind",
)


def _field_mac(salt: bytes, name: str, value: str | None) -> str:
    text = "\x01" if value is None else "\x00" + value
    return hmac.new(salt, f"{name}\x1f{text}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class PersonDigest:
    """One person's identity information as keyed hashes: a digest per field and one overall."""

    resident_code: str
    started_on: dt.date | None
    fields: Mapping[str, str]
    digest: str

    @staticmethod
    def of(
        values: Mapping[str, str | None], *, salt: bytes, started_on: dt.date | None = None
    ) -> PersonDigest:
        missing = set(IDENTITY_FIELDS) - set(values)
        if missing:
            raise ValueError(f"identity values lack {sorted(missing)}")
        macs = {name: _field_mac(salt, name, values[name]) for name in IDENTITY_FIELDS}
        overall = hashlib.sha256("".join(macs[name] for name in IDENTITY_FIELDS).encode()).hexdigest()
        resident_code = values["resident_code"] or ""
        return PersonDigest(resident_code=resident_code, started_on=started_on, fields=macs, digest=overall)


def combine(digests: Iterable[str]) -> str:
    """An order-independent hash of a set: the sum of the members' hashes modulo 2^256."""
    total = 0
    for d in digests:
        total = (total + int(d, 16)) % (1 << 256)
    return f"{total:064x}"


@dataclass(frozen=True, slots=True)
class MunicipalityDigest:
    """What one side holds for one municipality: a count, a combined hash, and each person."""

    lg_code: str
    persons: Mapping[str, PersonDigest] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.persons)

    @property
    def combined(self) -> str:
        return combine(p.digest for p in self.persons.values())


def identity_values(
    *,
    resident_code: str,
    individual_number: str | None,
    name: str,
    name_kana: str | None,
    birth_date: dt.date,
    sex: str,
    address_lg_code: str,
    address: str,
    status: str,
    removal_reason: str | None,
    resident_kind: str,
) -> dict[str, str | None]:
    """The identity fields as the digest reads them: text, dates in ISO form, None kept."""
    return {
        "resident_code": resident_code,
        "individual_number": individual_number,
        "name": name,
        "name_kana": name_kana,
        "birth_date": birth_date.isoformat(),
        "sex": sex,
        "address_lg_code": address_lg_code,
        "address": address,
        "status": status,
        "removal_reason": removal_reason,
        "resident_kind": resident_kind,
    }
