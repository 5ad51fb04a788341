"""最新4情報提供: the new four facts, to businesses the resident consented to.

A business (署名検証者) is registered by the national operator and gets an API key (for
pulling) and a webhook secret (to check pushed deliveries). A resident logged in with
their card consents to one business for a scope of facts, and may withdraw. When the
sweeper revokes the resident's signing certificate because the four facts changed, one
provision per active consent is queued; no consent, nothing is queued.

Delivery is at least once: a business pulls with a cursor (the provision id), or
receives a webhook POST whose body is signed with HMAC-SHA256 under its secret
(``X-Jumin-Signature: sha256=<hex>``), retried with exponential back-off until it
answers 2xx. The payload names the revoked certificate's serial (which the business
holds from the resident's signature), never the resident code. Each provision is
audited when queued and when handed over.

A consent belongs to the person (the national identity id of the card it was given
with), not to the 住民票コード: after a 住民票コードの変更 it still holds, and the
business hears of the next change as before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.card import repository
from jumin.card.domain import (
    CertificateKind,
    CertificateStatus,
    FourFacts,
    NotEligible,
    ResidentPrincipal,
    parse_scope,
    today_jst,
)
from jumin.card.models import FourFactsConsent, FourFactsProvision, VerifierBusiness
from jumin.core.errors import Conflict, InvalidValue, NotFound, Unauthenticated
from jumin.db import utcnow
from jumin.keys import data_keyring

__all__ = [
    "BusinessPrincipal",
    "BusinessView",
    "ConsentView",
    "DeliveryReport",
    "NewBusiness",
    "ProvisionView",
    "authenticate_business",
    "consent",
    "consents_of",
    "deliver_webhooks",
    "pull",
    "queue_provisions",
    "register_business",
    "sign_body",
    "verifier_businesses",
    "withdraw",
]

NATIONAL = "national"
PURPOSE = "最新4情報提供 (公的個人認証法)"
SIGNATURE_HEADER = "X-Jumin-Signature"
MAX_ATTEMPTS = 10
_BACKOFF_BASE = dt.timedelta(minutes=1)
_BACKOFF_MAX = dt.timedelta(hours=6)
_SECRET_AAD = "four-facts-webhook:"  # noqa: S105 (associated data, not a secret)
_PAYLOAD_AAD = "four-facts-provision:"


@dataclass(frozen=True, slots=True)
class BusinessPrincipal:
    business_id: int
    code: str


@dataclass(frozen=True, slots=True)
class BusinessView:
    """What a resident sees of a business when choosing whom to consent to."""

    code: str
    name: str


@dataclass(frozen=True, slots=True)
class NewBusiness:
    code: str
    name: str
    webhook_url: str | None
    api_key: str  # shown once
    webhook_secret: str  # shown once


@dataclass(frozen=True, slots=True)
class ConsentView:
    id: int
    business_code: str
    business_name: str
    scope: tuple[str, ...]
    consented_on: dt.date
    withdrawn_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ProvisionView:
    delivery_id: int
    certificate_serial: str
    changed_on: dt.date
    facts: dict[str, str]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    attempted: int
    delivered: int
    failed: int
    given_up: int


def _business_actor(business: VerifierBusiness) -> Actor:
    # ActorKind has no business member yet; the system actor with the business's code
    # keeps the chain per the national organisation and says who received.
    return Actor(kind=ActorKind.SYSTEM, actor_id=f"business:{business.code}", organisation_code=NATIONAL)


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def register_business(
    session: Session,
    *,
    actor: Actor,
    code: str,
    name: str,
    webhook_url: str | None,
    now: dt.datetime | None = None,
) -> NewBusiness:
    now = now or utcnow()
    if not (3 <= len(code) <= 32) or not all(c.isascii() and (c.isalnum() or c in "-_") for c in code):
        raise InvalidValue("事業者コードは3〜32文字の半角英数字と - _ で指定してください。", field="code")
    if webhook_url is not None and not webhook_url.startswith(("https://", "http://")):
        raise InvalidValue("Webhook URL は http(s):// で始めてください。", field="webhook_url")
    if repository.business_by_code(session, code) is not None:
        raise Conflict(f"事業者コード {code} は登録済みです。", field="code")
    api_key = "ffk_" + secrets.token_urlsafe(32)
    secret = secrets.token_urlsafe(32)
    repository.add(
        session,
        VerifierBusiness(
            code=code,
            name=name,
            webhook_url=webhook_url,
            webhook_secret_encrypted=data_keyring().encrypt(secret, _SECRET_AAD + code),
            api_key_hash=_key_hash(api_key),
            active=True,
            registered_at=now,
        ),
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.FOUR_FACTS_BUSINESS_REGISTERED,
        target_kind="verifier_business",
        target_id=code,
        detail="webhook" if webhook_url else "pull",
    )
    return NewBusiness(code=code, name=name, webhook_url=webhook_url, api_key=api_key, webhook_secret=secret)


def authenticate_business(session: Session, api_key: str) -> BusinessPrincipal:
    business = repository.business_by_key_hash(session, _key_hash(api_key))
    if business is None or not business.active:
        raise Unauthenticated("事業者のAPIキーが無効です。")
    return BusinessPrincipal(business_id=business.id, code=business.code)


def verifier_businesses(session: Session) -> list[BusinessView]:
    """The active businesses a resident may consent to (the portal's choice list).

    Public registration facts only (code and name), so nothing is audited.
    """
    return [BusinessView(code=b.code, name=b.name) for b in repository.businesses(session) if b.active]


def _identity_id_of(session: Session, resident: ResidentPrincipal) -> int | None:
    """The logged-in resident's national identity id, through the card they logged in with."""
    return repository.card(session, resident.card_id).identity_id


def _resident_actor(resident: ResidentPrincipal) -> Actor:
    return Actor(kind=ActorKind.RESIDENT, actor_id=resident.resident_code, organisation_code=NATIONAL)


def _consent_view(row: FourFactsConsent, business: VerifierBusiness) -> ConsentView:
    return ConsentView(
        id=row.id,
        business_code=business.code,
        business_name=business.name,
        scope=tuple(row.scope.split(",")),
        consented_on=row.consented_on,
        withdrawn_at=row.withdrawn_at,
    )


def consent(
    session: Session,
    *,
    resident: ResidentPrincipal,
    business_code: str,
    scope: list[str],
    now: dt.datetime | None = None,
) -> ConsentView:
    """The resident (logged in with the card) agrees that ``business_code`` receives the
    new four facts in ``scope`` whenever their signing certificate is revoked because
    one of them changed.

    ``scope`` is a non-empty subset of name, birth_date, sex, address (InvalidValue,
    400, otherwise). The business knows the resident by the serial of the signing
    certificate they signed with, so a ``good`` signing certificate on the logged-in
    card is required (NotEligible, 409) and its serial is kept with the consent: every
    later provision names that serial. One active consent per business (Conflict, 409);
    an unknown or inactive business is NotFound (404). The consent, its scope and its
    date (JST) are audited ``four_facts.consented``.
    """
    now = now or utcnow()
    fields = parse_scope(scope)
    business = repository.business_by_code(session, business_code)
    if business is None or not business.active:
        raise NotFound("事業者が見つかりません。", field="business_code")
    signing = [
        c
        for c in repository.certificates_of_card(session, resident.card_id, kinds=(CertificateKind.SIGNING,))
        if c.status == CertificateStatus.GOOD
    ]
    if not signing:
        raise NotEligible("有効な署名用電子証明書がないため、同意を登録できません。", field="business_code")
    identity_id = _identity_id_of(session, resident)
    if identity_id is None:
        raise NotEligible("本人確認情報が見つからないため、同意を登録できません。", field="business_code")
    if repository.active_consent(session, identity_id, business.id) is not None:
        raise Conflict("この事業者への同意は登録済みです。", field="business_code")
    row = FourFactsConsent(
        business_id=business.id,
        resident_code=resident.resident_code,
        identity_id=identity_id,
        prefecture_code=resident.prefecture_code,
        scope=",".join(sorted(fields)),
        consented_on=today_jst(now),
        certificate_serial=signing[-1].serial,
        created_at=now,
    )
    repository.add(session, row)
    audit.record(
        session,
        actor=_resident_actor(resident),
        action=AuditAction.FOUR_FACTS_CONSENTED,
        target_kind="resident_code",
        target_id=resident.resident_code,
        purpose=PURPOSE,
        detail=f"business={business.code} scope={row.scope}",
    )
    return _consent_view(row, business)


def withdraw(
    session: Session, *, resident: ResidentPrincipal, consent_id: int, now: dt.datetime | None = None
) -> ConsentView:
    """The resident withdraws a consent: nothing is queued for that business from now on.

    Only the resident's own consents (another's id is NotFound, 404, as an unknown one).
    Withdrawing twice is harmless and audited once (``four_facts.consent_withdrawn``).
    """
    now = now or utcnow()
    row = repository.consent(session, consent_id)
    identity_id = _identity_id_of(session, resident)
    if row is None or identity_id is None or row.identity_id != identity_id:
        raise NotFound("同意が見つかりません。", field="consent_id")
    business = repository.business(session, row.business_id)
    if row.withdrawn_at is None:
        row.withdrawn_at = now
        session.flush()
        audit.record(
            session,
            actor=_resident_actor(resident),
            action=AuditAction.FOUR_FACTS_CONSENT_WITHDRAWN,
            target_kind="resident_code",
            target_id=resident.resident_code,
            purpose=PURPOSE,
            detail=f"business={business.code}",
        )
    return _consent_view(row, business)


def consents_of(session: Session, *, resident: ResidentPrincipal) -> list[ConsentView]:
    """The resident's active consents (withdrawn ones are not listed); audited as a read."""
    identity_id = _identity_id_of(session, resident)
    audit.record(
        session,
        actor=_resident_actor(resident),
        action=AuditAction.CARD_VIEWED,
        target_kind="resident_code",
        target_id=resident.resident_code,
        purpose=PURPOSE,
        detail="four-facts consents",
    )
    return [
        _consent_view(row, repository.business(session, row.business_id))
        for row in (repository.active_consents_of(session, identity_id) if identity_id is not None else ())
    ]


def queue_provisions(
    session: Session,
    *,
    identity_id: int,
    resident_code: str,
    prefecture_code: str,
    revoked_serial: str,
    facts: FourFacts,
    changed_on: dt.date,
    now: dt.datetime,
) -> int:
    """One provision per active consent; each audited. Returns how many were queued.

    Each provision names the serial the consent was given with (the certificate the
    business holds from the resident), not necessarily ``revoked_serial``: after a
    second change the revoked certificate is one issued later, which the business may
    never have seen. ``revoked_serial`` goes into the audit entry. ``resident_code`` is
    the person's code now, which the audit entries name.
    """
    queued = 0
    for row in repository.active_consents_of(session, identity_id):
        business = repository.business(session, row.business_id)
        if not business.active:
            continue
        provision = FourFactsProvision(
            business_id=business.id,
            consent_id=row.id,
            resident_code=resident_code,
            prefecture_code=prefecture_code,
            certificate_serial=row.certificate_serial,
            changed_on=changed_on,
            payload_encrypted="",
            created_at=now,
            attempts=0,
        )
        repository.add(session, provision)
        scoped = facts.scoped(frozenset(row.scope.split(",")))
        provision.payload_encrypted = data_keyring().encrypt(
            json.dumps(scoped, ensure_ascii=False), f"{_PAYLOAD_AAD}{provision.id}"
        )
        session.flush()
        audit.record(
            session,
            actor=Actor.system(NATIONAL),
            action=AuditAction.FOUR_FACTS_QUEUED,
            target_kind="resident_code",
            target_id=resident_code,
            purpose=PURPOSE,
            detail=f"business={business.code} delivery={provision.id} scope={row.scope}"
            f" revoked={revoked_serial}",
        )
        queued += 1
    return queued


def _view(row: FourFactsProvision) -> ProvisionView:
    facts: dict[str, str] = json.loads(
        data_keyring().decrypt(row.payload_encrypted, f"{_PAYLOAD_AAD}{row.id}")
    )
    return ProvisionView(
        delivery_id=row.id, certificate_serial=row.certificate_serial, changed_on=row.changed_on, facts=facts
    )


def _provided(session: Session, business: VerifierBusiness, row: FourFactsProvision, channel: str) -> None:
    audit.record(
        session,
        actor=_business_actor(business),
        action=AuditAction.FOUR_FACTS_PROVIDED,
        target_kind="resident_code",
        target_id=row.resident_code,
        purpose=PURPOSE,
        detail=f"business={business.code} delivery={row.id} channel={channel}",
    )


def pull(
    session: Session,
    *,
    business: BusinessPrincipal,
    after: int,
    limit: int = 100,
    now: dt.datetime | None = None,
) -> list[ProvisionView]:
    """The business's provisions after its cursor, oldest first; each read is audited."""
    now = now or utcnow()
    row_business = repository.business(session, business.business_id)
    rows = repository.provisions_after(session, business.business_id, after, min(max(limit, 1), 1000))
    views = []
    for row in rows:
        views.append(_view(row))
        if row.delivered_at is None:
            row.delivered_at = now
        _provided(session, row_business, row, "pull")
    session.flush()
    return views


def payload_of(view: ProvisionView, business_code: str, sent_at: dt.datetime) -> bytes:
    return json.dumps(
        {
            "delivery_id": view.delivery_id,
            "business": business_code,
            "certificate_serial": view.certificate_serial,
            "changed_on": view.changed_on.isoformat(),
            "facts": view.facts,
            "sent_at": sent_at.isoformat(),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def sign_body(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> dt.timedelta:
    """1, 2, 4 … minutes after each failure, at most six hours."""
    delay: dt.timedelta = _BACKOFF_BASE * 2 ** max(attempts - 1, 0)
    return min(delay, _BACKOFF_MAX)


Poster = Callable[[str, bytes, dict[str, str]], int]


def deliver_webhooks(
    session: Session, *, post: Poster, limit: int = 500, now: dt.datetime | None = None
) -> DeliveryReport:
    """Push due provisions to webhook businesses; ``post`` returns the HTTP status (or raises).

    The POST happens inside the unit of work: if the process dies after a 2xx and before
    the commit, the delivery is repeated — at least once, which ``delivery_id`` lets the
    business deduplicate.
    """
    now = now or utcnow()
    attempted = delivered = failed = given_up = 0
    for row in repository.due_webhook_provisions(session, now, limit):
        business = repository.business(session, row.business_id)
        assert business.webhook_url is not None
        secret = data_keyring().decrypt(business.webhook_secret_encrypted, _SECRET_AAD + business.code)
        body = payload_of(_view(row), business.code, now)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(secret, body),
            "X-Jumin-Delivery": str(row.id),
        }
        attempted += 1
        row.attempts += 1
        error: str | None
        try:
            status = post(business.webhook_url, body, headers)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # any transport failure is a retry, never a crash
            error = type(exc).__name__
        if error is None:
            row.delivered_at = now
            row.next_attempt_at = None
            row.last_error = None
            delivered += 1
            _provided(session, business, row, "webhook")
            continue
        row.last_error = error[:200]
        if row.attempts >= MAX_ATTEMPTS:
            row.given_up_at = now
            given_up += 1
        else:
            row.next_attempt_at = now + backoff(row.attempts)
            failed += 1
        audit.record(
            session,
            actor=_business_actor(business),
            action=AuditAction.FOUR_FACTS_DELIVERY_FAILED,
            target_kind="four_facts_delivery",
            target_id=str(row.id),
            purpose=PURPOSE,
            outcome=Outcome.FAILURE,
            detail=f"business={business.code} attempt={row.attempts} error={row.last_error}",
        )
    session.flush()
    return DeliveryReport(attempted=attempted, delivered=delivered, failed=failed, given_up=given_up)


def httpx_poster(timeout: float = 5.0) -> Poster:
    import httpx

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            return client.post(url, content=body, headers=headers).status_code

    return post
