"""Every query of the card service and JPKI. Takes the session; flushes, never commits.

A person is reached by ``identity_id`` (the national identity's stable id), never by the
``resident_code`` a row was written under: the 住民票コード can be changed, and the
joins with the identity store (``lookup.current_identities``) go by the id too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from jumin.card.domain import (
    LIVE_CARD_STATUSES,
    ApplicationStatus,
    CardStatus,
    CertificateKind,
    CertificateStatus,
)
from jumin.card.models import (
    Card,
    CardApplication,
    CardChip,
    CardCursor,
    CardLoginChallenge,
    CardNotice,
    CardWorkItem,
    FourFactsConsent,
    FourFactsProvision,
    JpkiAuthority,
    JpkiCertificate,
    JpkiCrl,
    ResidentSession,
    VerifierBusiness,
)
from jumin.network.identity import lookup

OPEN_APPLICATION = (
    ApplicationStatus.RECEIVED,
    ApplicationStatus.PRODUCED,
    ApplicationStatus.READY,
    ApplicationStatus.NEEDS_REVIEW,
)
UNREVOKED = (CertificateStatus.GOOD, CertificateStatus.HOLD)


# --- applications and cards ----------------------------------------------------------------------


def open_application_for(session: Session, identity_id: int) -> CardApplication | None:
    return session.scalars(
        select(CardApplication).where(
            CardApplication.identity_id == identity_id,
            CardApplication.status.in_(OPEN_APPLICATION),
        )
    ).first()


def application(session: Session, application_id: int) -> CardApplication:
    return session.get_one(CardApplication, application_id)


def application_by_no(session: Session, application_no: str) -> CardApplication | None:
    return session.scalars(
        select(CardApplication).where(CardApplication.application_no == application_no)
    ).first()


def applications_to_produce(session: Session, *, limit: int, express_only: bool) -> Sequence[CardApplication]:
    """The queue: express applications first, then in order of arrival; rows locked."""
    query = select(CardApplication).where(CardApplication.status == ApplicationStatus.RECEIVED)
    if express_only:
        query = query.where(CardApplication.express.is_(True))
    query = query.order_by(CardApplication.express.desc(), CardApplication.id).limit(limit)
    return session.scalars(query.with_for_update(skip_locked=True)).all()


def card_number_taken(session: Session, numbers: Sequence[str]) -> set[str]:
    return set(session.scalars(select(Card.card_number).where(Card.card_number.in_(numbers))))


def card_by_number(session: Session, card_number: str, *, for_update: bool = False) -> Card | None:
    query = select(Card).where(Card.card_number == card_number)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def card(session: Session, card_id: int, *, for_update: bool = False) -> Card:
    return session.get_one(Card, card_id, with_for_update=for_update)


def cards_of(session: Session, resident_code: str) -> Sequence[Card]:
    """The cards written under ``resident_code`` (tools and tests; the service goes by identity)."""
    return session.scalars(select(Card).where(Card.resident_code == resident_code).order_by(Card.id)).all()


def cards_of_identity(session: Session, identity_id: int) -> Sequence[Card]:
    return session.scalars(select(Card).where(Card.identity_id == identity_id).order_by(Card.id)).all()


def live_cards_of(session: Session, identity_id: int) -> Sequence[Card]:
    return session.scalars(
        select(Card)
        .where(Card.identity_id == identity_id, Card.status.in_(LIVE_CARD_STATUSES))
        .order_by(Card.id)
        .with_for_update()
    ).all()


def add_cards(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(Card), rows)


def card_ids_by_number(session: Session, numbers: Sequence[str]) -> dict[str, int]:
    return dict(session.execute(select(Card.card_number, Card.id).where(Card.card_number.in_(numbers))).all())


def add_chips(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(CardChip), rows)


def chip(session: Session, card_id: int) -> CardChip | None:
    return session.get(CardChip, card_id, with_for_update=True)


def mark_applications(
    session: Session, ids: Sequence[int], status: ApplicationStatus, *, produced_at: dt.datetime | None = None
) -> None:
    values: dict[str, Any] = {"status": status.value}
    if produced_at is not None:
        values["produced_at"] = produced_at
    session.execute(update(CardApplication).where(CardApplication.id.in_(ids)).values(**values))


# --- pre-issuance setup (set-based) ----------------------------------------------------------------


def produced_card_range(session: Session, *, after_id: int, limit: int) -> tuple[int, int, int] | None:
    """(first id, last id, count) of the next ``limit`` cards waiting for setup after ``after_id``."""
    ids = (
        select(Card.id)
        .where(Card.status == CardStatus.PRODUCED, Card.id > after_id)
        .order_by(Card.id)
        .limit(limit)
        .subquery()
    )
    row = session.execute(select(func.min(ids.c.id), func.max(ids.c.id), func.count())).one()
    return None if row[0] is None else (int(row[0]), int(row[1]), int(row[2]))


def setup_verdicts(lo: int, hi: int) -> Any:
    """Per produced card in [lo, hi]: what setup needs to judge it, in one statement.

    Columns: id, resident_code (the person's code now, else the card's), prefecture_code,
    lg_code (where the person is registered now), reason, card_address, address_lg_code,
    address_line. ``reason`` is NULL when
    the identity is live, its name, birth date and sex equal those printed on the card,
    and no other card of the same person, from a later application, is already set up or
    handed over. The address is compared by the caller, on the full written form
    (``lookup.full_address``), which SQL cannot compose.
    """
    ident = lookup.current_identities()
    other = aliased(Card)
    newer_card = exists().where(
        other.identity_id == Card.identity_id,
        other.status.in_((CardStatus.READY, CardStatus.ACTIVE, CardStatus.SUSPENDED)),
        other.application_id > Card.application_id,
    )
    reason = case(
        (ident.c.identity_id.is_(None), "identity_missing"),
        (ident.c.status != lookup.STATUS_LIVE, "record_not_live"),
        (
            or_(
                ident.c.name != Card.name,
                ident.c.birth_date != Card.birth_date,
                ident.c.sex != Card.sex,
            ),
            "four_facts_mismatch",
        ),
        (newer_card, "already_issued"),
        else_=None,
    )
    return (
        select(
            Card.id,
            func.coalesce(ident.c.resident_code, Card.resident_code).label("resident_code"),
            Card.prefecture_code,
            func.coalesce(ident.c.lg_code, Card.lg_code).label("lg_code"),
            reason.label("reason"),
            Card.address.label("card_address"),
            ident.c.address_lg_code,
            ident.c.address.label("address_line"),
        )
        .outerjoin(ident, ident.c.identity_id == Card.identity_id)
        .where(Card.status == CardStatus.PRODUCED, Card.id.between(lo, hi))
    )


def apply_setup(
    session: Session, lo: int, hi: int, *, batch_id: str, now: dt.datetime
) -> tuple[int, list[tuple[int, str, str, str, str]]]:
    """Mark every matching card in [lo, hi] ready; return (count ready, mismatched rows).

    A fixed number of statements whatever the chunk holds: the verdicts, two updates for
    the matching cards and their applications, three for the others and the work list.
    """
    matched: list[int] = []
    mismatched: list[tuple[int, str, str, str, str]] = []
    for r in session.execute(setup_verdicts(lo, hi)):
        why = r.reason
        if why is None and lookup.full_address(r.address_lg_code, r.address_line) != r.card_address:
            why = "four_facts_mismatch"
        if why is None:
            matched.append(int(r.id))
        else:
            mismatched.append((int(r.id), r.resident_code, r.prefecture_code, r.lg_code, why))
    ready = 0
    if matched:
        result = session.execute(
            update(Card)
            .where(Card.id.in_(matched))
            .values(status=CardStatus.READY, setup_batch=batch_id, setup_at=now)
            .execution_options(synchronize_session=False)
        )
        ready = int(getattr(result, "rowcount", 0) or 0)
        session.execute(
            update(CardApplication)
            .where(CardApplication.id.in_(select(Card.application_id).where(Card.id.in_(matched))))
            .where(CardApplication.status == ApplicationStatus.PRODUCED)
            .values(status=ApplicationStatus.READY)
            .execution_options(synchronize_session=False)
        )
    if mismatched:
        ids = [m[0] for m in mismatched]
        session.execute(
            update(Card)
            .where(Card.id.in_(ids))
            .values(status=CardStatus.NEEDS_REVIEW, setup_batch=batch_id, setup_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(CardApplication)
            .where(CardApplication.id.in_(select(Card.application_id).where(Card.id.in_(ids))))
            .values(status=ApplicationStatus.NEEDS_REVIEW)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(CardWorkItem),
            [
                {
                    "card_id": card_id,
                    "resident_code": code,
                    "prefecture_code": pref,
                    "lg_code": lg,
                    "reason": why,
                    "batch_id": batch_id,
                    "created_at": now,
                }
                for card_id, code, pref, lg, why in mismatched
            ],
        )
    return ready, mismatched


def open_work_items(session: Session, lg_code: str, *, limit: int) -> Sequence[CardWorkItem]:
    return session.scalars(
        select(CardWorkItem)
        .where(CardWorkItem.lg_code == lg_code, CardWorkItem.resolved_at.is_(None))
        .order_by(CardWorkItem.id)
        .limit(limit)
    ).all()


def ready_cards(session: Session, lg_code: str, *, limit: int) -> Sequence[tuple[Card, CardApplication]]:
    rows = session.execute(
        select(Card, CardApplication)
        .join(CardApplication, CardApplication.id == Card.application_id)
        .where(Card.status == CardStatus.READY, Card.lg_code == lg_code)
        .order_by(CardApplication.express.desc(), Card.id)
        .limit(limit)
    )
    return [(c, a) for c, a in rows]


def work_item(session: Session, item_id: int) -> CardWorkItem | None:
    return session.get(CardWorkItem, item_id, with_for_update=True)


def open_work_items_for_card(session: Session, card_id: int) -> Sequence[CardWorkItem]:
    return session.scalars(
        select(CardWorkItem).where(CardWorkItem.card_id == card_id, CardWorkItem.resolved_at.is_(None))
    ).all()


# --- notices ------------------------------------------------------------------------------------------


def notice_by_form_id(session: Session, form_id: str) -> CardNotice | None:
    return session.scalars(select(CardNotice).where(CardNotice.form_id == form_id).with_for_update()).first()


def add_notice(session: Session, notice: CardNotice) -> CardNotice:
    session.add(notice)
    session.flush()
    return notice


def card_renewal_candidates(
    session: Session, *, until: dt.date, after_id: int, limit: int
) -> list[tuple[int, str, str, dt.date, str | None, str | None, str | None, str | None, int | None]]:
    """Live cards expiring by ``until`` without a notice, with the address as it is now.

    (card id, resident code now, prefecture, expires on, lg code now, name now, full
    address now, status now, identity id): the mailing address comes from the identity
    store at this moment, not from the card (送付先情報の最新化).
    """
    ident = lookup.current_identities()
    noticed = exists().where(
        CardNotice.card_id == Card.id,
        CardNotice.kind == "card_renewal",
        CardNotice.expires_on == Card.valid_until,
    )
    rows = session.execute(
        select(
            Card.id,
            func.coalesce(ident.c.resident_code, Card.resident_code),
            Card.prefecture_code,
            Card.valid_until,
            ident.c.lg_code,
            ident.c.name,
            ident.c.address,
            ident.c.status,
            ident.c.address_lg_code,
            Card.identity_id,
        )
        .outerjoin(ident, ident.c.identity_id == Card.identity_id)
        .where(
            Card.status.in_(LIVE_CARD_STATUSES),
            Card.valid_until <= until,
            Card.id > after_id,
            ~noticed,
        )
        .order_by(Card.id)
        .limit(limit)
    )
    return [(int(r[0]), r[1], r[2], r[3], r[4], r[5], _written(r[8], r[6]), r[7], r[9]) for r in rows]


def certificate_renewal_candidates(
    session: Session, *, until: dt.date, after_id: int, limit: int
) -> list[tuple[int, int, str, str, dt.date, str | None, str | None, str | None, str | None, int | None]]:
    """Unrevoked authentication certificates expiring by ``until`` (one per card) on cards
    that outlive them, without a notice; the code, name and full address as they are now,
    and the identity id."""
    ident = lookup.current_identities()
    noticed = exists().where(
        CardNotice.card_id == JpkiCertificate.card_id,
        CardNotice.kind == "certificate_renewal",
        CardNotice.expires_on == JpkiCertificate.valid_until,
    )
    rows = session.execute(
        select(
            JpkiCertificate.id,
            JpkiCertificate.card_id,
            func.coalesce(ident.c.resident_code, JpkiCertificate.resident_code),
            JpkiCertificate.prefecture_code,
            JpkiCertificate.valid_until,
            ident.c.lg_code,
            ident.c.name,
            ident.c.address,
            ident.c.status,
            ident.c.address_lg_code,
            Card.identity_id,
        )
        .join(Card, Card.id == JpkiCertificate.card_id)
        .outerjoin(ident, ident.c.identity_id == Card.identity_id)
        .where(
            JpkiCertificate.kind == CertificateKind.AUTH,
            JpkiCertificate.status.in_(UNREVOKED),
            JpkiCertificate.valid_until <= until,
            JpkiCertificate.valid_until < Card.valid_until,
            Card.status.in_(LIVE_CARD_STATUSES),
            JpkiCertificate.id > after_id,
            ~noticed,
        )
        .order_by(JpkiCertificate.id)
        .limit(limit)
    )
    return [
        (int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], _written(r[9], r[7]), r[8], r[10]) for r in rows
    ]


def _written(address_lg_code: str | None, line: str | None) -> str | None:
    return None if address_lg_code is None or line is None else lookup.full_address(address_lg_code, line)


def add_notices(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(CardNotice), rows)


def notices_of_batch(session: Session, batch_id: str) -> Sequence[CardNotice]:
    return session.scalars(
        select(CardNotice).where(CardNotice.batch_id == batch_id).order_by(CardNotice.id)
    ).all()


def expired_live_cards(session: Session, *, before: dt.date, limit: int) -> Sequence[Card]:
    return session.scalars(
        select(Card)
        .where(Card.status.in_(LIVE_CARD_STATUSES), Card.valid_until < before)
        .order_by(Card.id)
        .limit(limit)
        .with_for_update()
    ).all()


def expire_certificates(session: Session, *, now: dt.datetime) -> int:
    """Certificates past notAfter leave the CRL: they are marked, not revoked.

    The session's loaded rows are brought up to date ("fetch"): an OCSP answer or a
    login later in the same unit of work must not see them as good.
    """
    result = session.execute(
        update(JpkiCertificate)
        .where(JpkiCertificate.status == CertificateStatus.GOOD, JpkiCertificate.not_after < now)
        .values(status=CertificateStatus.EXPIRED)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- JPKI --------------------------------------------------------------------------------------------


def authority(session: Session, name: str, *, for_update: bool = False) -> JpkiAuthority | None:
    query = select(JpkiAuthority).where(JpkiAuthority.name == name)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def authorities(session: Session) -> Sequence[JpkiAuthority]:
    return session.scalars(select(JpkiAuthority).order_by(JpkiAuthority.id)).all()


def add_authority(session: Session, row: JpkiAuthority) -> JpkiAuthority:
    session.add(row)
    session.flush()
    return row


def mark_crl_dirty(session: Session, authority_id: int) -> None:
    session.execute(update(JpkiAuthority).where(JpkiAuthority.id == authority_id).values(crl_dirty=True))


def latest_crl(session: Session, authority_id: int) -> JpkiCrl | None:
    return session.scalars(
        select(JpkiCrl)
        .where(JpkiCrl.authority_id == authority_id)
        .order_by(JpkiCrl.crl_number.desc())
        .limit(1)
    ).first()


def add_crl(session: Session, row: JpkiCrl) -> None:
    session.add(row)
    session.flush()


def listed_on_crl(session: Session, authority_id: int, now: dt.datetime) -> Sequence[JpkiCertificate]:
    """Revoked or held certificates still within their validity (expired ones drop off)."""
    return session.scalars(
        select(JpkiCertificate)
        .where(
            JpkiCertificate.authority_id == authority_id,
            JpkiCertificate.status.in_((CertificateStatus.REVOKED, CertificateStatus.HOLD)),
            JpkiCertificate.not_after >= now,
        )
        .order_by(JpkiCertificate.id)
    ).all()


def add_certificate(session: Session, row: JpkiCertificate) -> JpkiCertificate:
    session.add(row)
    session.flush()
    return row


def certificate_by_serial(session: Session, serial: str) -> JpkiCertificate | None:
    return session.scalars(select(JpkiCertificate).where(JpkiCertificate.serial == serial)).first()


def certificates_of_card(
    session: Session, card_id: int, *, kinds: Sequence[CertificateKind] = tuple(CertificateKind)
) -> Sequence[JpkiCertificate]:
    return session.scalars(
        select(JpkiCertificate)
        .where(
            JpkiCertificate.card_id == card_id,
            JpkiCertificate.kind.in_(kinds),
            JpkiCertificate.status.in_(UNREVOKED),
        )
        .order_by(JpkiCertificate.id)
        .with_for_update()
    ).all()


def all_certificates_of_card(session: Session, card_id: int) -> Sequence[JpkiCertificate]:
    return session.scalars(
        select(JpkiCertificate).where(JpkiCertificate.card_id == card_id).order_by(JpkiCertificate.id)
    ).all()


def unrevoked_signing_certificates_of(
    session: Session, identity_ids: Sequence[int]
) -> list[tuple[JpkiCertificate, int]]:
    """(certificate, identity id) for the unrevoked signing certificates of these people,
    found through their cards."""
    rows = session.execute(
        select(JpkiCertificate, Card.identity_id)
        .join(Card, Card.id == JpkiCertificate.card_id)
        .where(
            Card.identity_id.in_(identity_ids),
            JpkiCertificate.kind == CertificateKind.SIGNING,
            JpkiCertificate.status.in_(UNREVOKED),
        )
        .order_by(JpkiCertificate.id)
        .with_for_update(of=JpkiCertificate)
    )
    return [(cert, identity_id) for cert, identity_id in rows if identity_id is not None]


# --- login and resident sessions ------------------------------------------------------------------


def add_challenge(session: Session, row: CardLoginChallenge) -> None:
    session.add(row)
    session.flush()


def challenge(session: Session, challenge_id: str) -> CardLoginChallenge | None:
    return session.get(CardLoginChallenge, challenge_id, with_for_update=True)


def add_resident_session(session: Session, row: ResidentSession) -> ResidentSession:
    session.add(row)
    session.flush()
    return row


def resident_session_by_hash(session: Session, token_hash: str) -> ResidentSession | None:
    return session.scalars(select(ResidentSession).where(ResidentSession.token_hash == token_hash)).first()


def revoke_resident_sessions_of_card(session: Session, card_id: int, now: dt.datetime) -> None:
    session.execute(
        update(ResidentSession)
        .where(ResidentSession.card_id == card_id, ResidentSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# --- cursors -------------------------------------------------------------------------------------------


def cursor(session: Session, name: str) -> CardCursor | None:
    return session.get(CardCursor, name, with_for_update=True)


def add_cursor(session: Session, row: CardCursor) -> CardCursor:
    session.add(row)
    session.flush()
    return row


# --- four-facts update service -------------------------------------------------------------------


def business_by_code(session: Session, code: str) -> VerifierBusiness | None:
    return session.scalars(select(VerifierBusiness).where(VerifierBusiness.code == code)).first()


def business_by_key_hash(session: Session, key_hash: str) -> VerifierBusiness | None:
    return session.scalars(select(VerifierBusiness).where(VerifierBusiness.api_key_hash == key_hash)).first()


def business(session: Session, business_id: int) -> VerifierBusiness:
    return session.get_one(VerifierBusiness, business_id)


def businesses(session: Session) -> Sequence[VerifierBusiness]:
    return session.scalars(select(VerifierBusiness).order_by(VerifierBusiness.id)).all()


def add(session: Session, row: Any) -> None:
    session.add(row)
    session.flush()


def consent(session: Session, consent_id: int) -> FourFactsConsent | None:
    return session.get(FourFactsConsent, consent_id, with_for_update=True)


def active_consents_of(session: Session, identity_id: int) -> Sequence[FourFactsConsent]:
    return session.scalars(
        select(FourFactsConsent)
        .where(FourFactsConsent.identity_id == identity_id, FourFactsConsent.withdrawn_at.is_(None))
        .order_by(FourFactsConsent.id)
    ).all()


def active_consent(session: Session, identity_id: int, business_id: int) -> FourFactsConsent | None:
    return session.scalars(
        select(FourFactsConsent).where(
            FourFactsConsent.identity_id == identity_id,
            FourFactsConsent.business_id == business_id,
            FourFactsConsent.withdrawn_at.is_(None),
        )
    ).first()


def provisions_after(
    session: Session, business_id: int, after: int, limit: int
) -> Sequence[FourFactsProvision]:
    return session.scalars(
        select(FourFactsProvision)
        .where(FourFactsProvision.business_id == business_id, FourFactsProvision.id > after)
        .order_by(FourFactsProvision.id)
        .limit(limit)
    ).all()


def due_webhook_provisions(session: Session, now: dt.datetime, limit: int) -> Sequence[FourFactsProvision]:
    return session.scalars(
        select(FourFactsProvision)
        .join(VerifierBusiness, VerifierBusiness.id == FourFactsProvision.business_id)
        .where(
            VerifierBusiness.webhook_url.is_not(None),
            VerifierBusiness.active.is_(True),
            FourFactsProvision.delivered_at.is_(None),
            FourFactsProvision.given_up_at.is_(None),
            or_(FourFactsProvision.next_attempt_at.is_(None), FourFactsProvision.next_attempt_at <= now),
        )
        .order_by(FourFactsProvision.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


# --- reports ------------------------------------------------------------------------------------------


def _fiscal_year(column: Any) -> Any:
    year = func.extract("year", column)
    return year - case((func.extract("month", column) < 4, 1), else_=0)


def cards_expiring_by_fiscal_year(session: Session) -> dict[int, int]:
    fy = _fiscal_year(Card.valid_until).label("fy")
    rows = session.execute(select(fy, func.count()).where(Card.status.in_(LIVE_CARD_STATUSES)).group_by(fy))
    return {int(y): int(n) for y, n in rows}


def certificates_expiring_by_fiscal_year(session: Session) -> dict[int, int]:
    fy = _fiscal_year(JpkiCertificate.valid_until).label("fy")
    rows = session.execute(select(fy, func.count()).where(JpkiCertificate.status.in_(UNREVOKED)).group_by(fy))
    return {int(y): int(n) for y, n in rows}


def applicants_and_holders_by_lg(session: Session) -> dict[str, tuple[int, int]]:
    """Per municipality of residence: live residents who applied, and who hold a card."""
    ident = lookup.current_identities()
    applied = exists().where(
        CardApplication.identity_id == ident.c.identity_id,
        CardApplication.status != ApplicationStatus.CANCELLED,
    )
    holds = exists().where(Card.identity_id == ident.c.identity_id, Card.status.in_(LIVE_CARD_STATUSES))
    rows = session.execute(
        select(
            ident.c.lg_code,
            func.sum(case((or_(applied, holds), 1), else_=0)),
            func.sum(case((holds, 1), else_=0)),
        )
        .where(ident.c.status == lookup.STATUS_LIVE)
        .group_by(ident.c.lg_code)
    )
    return {lg: (int(a or 0), int(h or 0)) for lg, a, h in rows}


def card_counts_by_status(session: Session) -> dict[str, int]:
    return {s: int(n) for s, n in session.execute(select(Card.status, func.count()).group_by(Card.status))}
