"""How a resident proves who they are at a kiosk.

Kiosk issuance needs the resident, not a clerk, to authenticate. ``ResidentAuthenticator``
is the one interface the kiosk use case depends on; each way of authenticating is an
implementation taking its own kind of credentials:

- ``PinAuthenticator`` (now): the 住民票コード and a 4-digit PIN the resident set at the
  window, where a clerk checked their identity in person. Three wrong PINs lock it until
  the window sets a new one: that, not the hash, is what stops guessing, since no hash
  cost protects a space of 10,000 values. The PIN is stored as an argon2id hash of an
  HMAC of (person, PIN) under a key in the key directory, so a database dump alone
  cannot be searched for PINs, and a hash copied onto another person's row does not
  match; the argon2 cost is therefore kept light (it would buy nothing here).
- ``CardAuthenticator``: the My Number Card. The kiosk has the card sign a challenge
  with its 利用者証明用電子証明書 (the 4-digit PIN unlocks the chip) and logs in at the
  national card service (``POST /card/v1/login``), which checks the signature, the
  certificate's chain to the JPKI CA and its status by OCSP. The kiosk route accepts
  only such a session (the card's ``RESIDENT`` access rule) and hands over who the card
  says the resident is; this authenticator then finds that resident in the register of
  the municipality the kiosk asks for. The PIN's retry counter lives on the chip, so
  there is nothing to lock here.

Every attempt, failed or not, is audited; a failure says nothing about whether the
resident code exists.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Protocol, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.certificates import repository
from jumin.certificates.domain import (
    GENERIC_RESIDENT_FAILURE,
    MAX_PIN_ATTEMPTS,
    AuthenticatedResident,
    CardCredentials,
    PinCredentials,
    ResidentAuthenticationFailed,
    ResidentLocked,
    check_pin_format,
)
from jumin.certificates.models import ResidentPin
from jumin.db import utcnow
from jumin.keys import load_or_create_secret
from jumin.network_client import NetworkClient
from jumin.registry import service as registry

C_contra = TypeVar("C_contra", contravariant=True)

_hasher = PasswordHasher(time_cost=2, memory_cost=8 * 1024, parallelism=1)
_PEPPER = "resident-pin"


def _material(person_id: int, pin: str) -> str:
    key = load_or_create_secret(_PEPPER)
    return hmac.new(key, f"{person_id}\x00{pin}".encode(), hashlib.sha256).hexdigest()


# Verified against when the resident code is unknown, so that an unknown code and a wrong
# PIN take the same time.
_DUMMY = _hasher.hash("0" * 64)


class ResidentAuthenticator(Protocol[C_contra]):
    """Turns a resident's credentials into the resident, or refuses (audited either way)."""

    def authenticate(
        self, session: Session, *, lg_code: str, credentials: C_contra
    ) -> AuthenticatedResident: ...


def hash_pin(person_id: int, pin: str) -> str:
    check_pin_format(pin)
    return _hasher.hash(_material(person_id, pin))


def _matches(pin_hash: str, material: str) -> bool:
    # argon2's verify raises on mismatch instead of returning False (STACK.md).
    try:
        return _hasher.verify(pin_hash, material)
    except (VerificationError, InvalidHashError):
        return False


def kiosk_actor(lg_code: str) -> Actor:
    """Who reads the register before the resident is known: the kiosk service itself."""
    return Actor(kind=ActorKind.SYSTEM, actor_id="kiosk", organisation_code=lg_code)


def resident_actor(lg_code: str, person_id: int) -> Actor:
    return Actor(kind=ActorKind.RESIDENT, actor_id=f"person:{person_id}", organisation_code=lg_code)


def _find_resident(
    session: Session, network: NetworkClient, lg_code: str, resident_code: str, purpose: str
) -> int | None:
    ctx = registry.RegistryContext(actor=kiosk_actor(lg_code), lg_code=lg_code, network=network)
    # Removed records too: a deceased or moved-out resident is refused by the kiosk
    # rules with the reason, not by a puzzling login failure.
    found = registry.search(
        session, ctx=ctx, resident_code=resident_code, include_removed=True, limit=5, purpose=purpose
    )
    live = [v for v in found.results if v.record.status.value == "live"]
    chosen = live or found.results
    return chosen[-1].person_id if chosen else None


class CardAuthenticator:
    """The resident of a verified card login, found in the kiosk's municipality."""

    def __init__(self, network: NetworkClient) -> None:
        self.network = network

    def authenticate(
        self, session: Session, *, lg_code: str, credentials: CardCredentials
    ) -> AuthenticatedResident:
        person_id = _find_resident(
            session, self.network, lg_code, credentials.resident_code, "コンビニ交付の本人確認 (カード)"
        )
        card = f"method=card card={credentials.card_id} certificate={credentials.certificate_serial}"
        if person_id is None:
            audit.record(
                session,
                actor=kiosk_actor(lg_code),
                action=AuditAction.RESIDENT_LOGIN_FAILED,
                target_kind="person",
                target_id="unknown",
                outcome=Outcome.FAILURE,
                detail=f"{card} not a resident here",
            )
            raise ResidentAuthenticationFailed(
                "このカードの方は、選択された市区町村の住民基本台帳に記録されていません。"
                "住所地の市区町村を選び直してください。",
                field="lg_code",
            )
        audit.record(
            session,
            actor=resident_actor(lg_code, person_id),
            action=AuditAction.RESIDENT_LOGIN_SUCCEEDED,
            target_kind="person",
            target_id=str(person_id),
            detail=card,
        )
        return AuthenticatedResident(person_id=person_id, lg_code=lg_code, method="card")


class PinAuthenticator:
    """Resident code + the PIN set at the window; locks after three wrong PINs."""

    def __init__(self, network: NetworkClient, *, now: dt.datetime | None = None) -> None:
        self.network = network
        self.now = now

    def _person_id(self, session: Session, lg_code: str, resident_code: str) -> int | None:
        return _find_resident(session, self.network, lg_code, resident_code, "コンビニ交付の本人確認")

    def _fail(self, session: Session, lg_code: str, target: str, detail: str) -> ResidentAuthenticationFailed:
        audit.record(
            session,
            actor=kiosk_actor(lg_code),
            action=AuditAction.RESIDENT_LOGIN_FAILED,
            target_kind="person",
            target_id=target,
            outcome=Outcome.FAILURE,
            detail=detail,
        )
        return ResidentAuthenticationFailed(GENERIC_RESIDENT_FAILURE)

    def authenticate(
        self, session: Session, *, lg_code: str, credentials: PinCredentials
    ) -> AuthenticatedResident:
        now = self.now or utcnow()
        person_id = self._person_id(session, lg_code, credentials.resident_code)
        row: ResidentPin | None = None
        if person_id is not None:
            row = repository.pin_for(session, person_id, lock=True)
        if person_id is None or row is None:
            _matches(_DUMMY, _material(0, credentials.pin))
            raise self._fail(session, lg_code, str(person_id or "unknown"), "no pin registered")
        if row.locked_at is not None:
            audit.record(
                session,
                actor=kiosk_actor(lg_code),
                action=AuditAction.RESIDENT_LOGIN_FAILED,
                target_kind="person",
                target_id=str(person_id),
                outcome=Outcome.DENIED,
                detail="locked",
            )
            raise ResidentLocked(
                f"暗証番号を{MAX_PIN_ATTEMPTS}回続けて誤ったため、利用できません。"
                "市区町村の窓口で暗証番号を再設定してください。",
                field="pin",
            )
        if not _matches(row.pin_hash, _material(person_id, credentials.pin)):
            row.failed_attempts += 1
            if row.failed_attempts >= MAX_PIN_ATTEMPTS:
                row.locked_at = now
                audit.record(
                    session,
                    actor=kiosk_actor(lg_code),
                    action=AuditAction.RESIDENT_LOCKED_OUT,
                    target_kind="person",
                    target_id=str(person_id),
                    outcome=Outcome.DENIED,
                )
            raise self._fail(session, lg_code, str(person_id), f"wrong pin ({row.failed_attempts})")
        row.failed_attempts = 0
        session.flush()
        audit.record(
            session,
            actor=resident_actor(lg_code, person_id),
            action=AuditAction.RESIDENT_LOGIN_SUCCEEDED,
            target_kind="person",
            target_id=str(person_id),
            detail="method=pin",
        )
        return AuthenticatedResident(person_id=person_id, lg_code=lg_code, method="pin")
