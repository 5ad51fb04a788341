"""Card use cases: application, production, pre-issuance setup, hand-over, PINs, suspension,
renewal notices, revocation, the identity-change sweeper, card login and reports.

Services flush; the entry point commits (DESIGN.md). Window operations take the clerk's
municipality (``lg_code``) and refuse residents of another one.

The card service follows a person by the national identity id, never by the 住民票コード a
row was written under: after a 住民票コードの変更 the window finds the card under the new
code (the old one finds nobody), the sweeper still acts on the person's later changes,
and audit entries and resident sessions name the person by the code they hold now. Every read or change of
personal data writes an audit entry in the same transaction; batch operations write one
entry per chunk, naming the batch and its counts, instead of one per card (a day's
national volume would otherwise serialise on the audit chain).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from base64 import b64decode, b64encode
from dataclasses import dataclass, field

from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.card import fourfacts, repository
from jumin.card.chip import SECRET_HASHER, ChipImage, SoftwareChip
from jumin.card.domain import (
    CARD_GONE_REASONS,
    EXPRESS_DAYS,
    LIVE_CARD_STATUSES,
    ApplicationChannel,
    ApplicationReason,
    ApplicationStatus,
    CardAuthenticationFailed,
    CardNotFound,
    CardRevocationReason,
    CardStateError,
    CardStatus,
    CertificateKind,
    CertificateRevocationReason,
    CertificateStatus,
    ExpressReason,
    FourFacts,
    IdentityDocument,
    NotEligible,
    PinLocked,
    ResidentPrincipal,
    WrongPin,
    add_months,
    card_valid_until,
    certificate_valid_until,
    check_auth_pin,
    check_identity_documents,
    check_signing_pin,
    fiscal_year,
    is_card_number,
    new_application_no,
    new_card_number,
    new_form_id,
    photo_required,
    renewal_opens_on,
    signing_certificate_allowed,
    today_jst,
)
from jumin.card.jpki import service as jpki
from jumin.card.models import (
    Card,
    CardApplication,
    CardChip,
    CardCursor,
    CardLoginChallenge,
    CardNotice,
    JpkiCertificate,
    ResidentSession,
)
from jumin.core.errors import Conflict, Forbidden, InvalidValue, NotFound
from jumin.core.municipalities import MunicipalityKind, load_master
from jumin.core.names import legal_age
from jumin.db import utcnow
from jumin.keys import data_keyring
from jumin.network.identity import lookup
from jumin.network.identity.lookup import CurrentIdentity

NATIONAL = "national"
PURPOSE = "公的個人認証法・番号法に基づくカード事務"
SWEEP_CURSOR = "identity_history"
CHALLENGE_TTL = dt.timedelta(minutes=5)
RESIDENT_SESSION_TTL = dt.timedelta(minutes=30)
LOGIN_CONTEXT = b"jumin-card-login-v1\n"
# No 0/O or 1/I: the code may be read out over the phone.
_SECRET_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # noqa: S105 (an alphabet)
SUSPENSION_SECRET_LENGTH = 16
# A hash to burn time on for an unknown card number, so that timing does not tell
# which card numbers exist.
_DUMMY_SECRET_HASH = SECRET_HASHER.hash(secrets.token_urlsafe(16))


def national_actor() -> Actor:
    return Actor.system(NATIONAL)


def resident_actor(resident: ResidentPrincipal) -> Actor:
    return Actor(kind=ActorKind.RESIDENT, actor_id=resident.resident_code, organisation_code=NATIONAL)


# --- views ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplicationView:
    application_no: str
    status: ApplicationStatus
    channel: ApplicationChannel
    reason: ApplicationReason
    express: bool
    express_reason: ExpressReason | None
    due_on: dt.date | None
    applied_at: dt.datetime
    has_photo: bool


@dataclass(frozen=True, slots=True)
class CertificateView:
    kind: CertificateKind
    serial: str
    status: CertificateStatus
    valid_until: dt.date
    revocation_reason: str | None


@dataclass(frozen=True, slots=True)
class CardView:
    card_number: str
    status: CardStatus
    lg_code: str
    issued_on: dt.date | None
    valid_until: dt.date | None
    renewal_opens_on: dt.date | None
    revocation_reason: str | None
    signing_tries_left: int | None
    auth_tries_left: int | None
    certificates: tuple[CertificateView, ...]


@dataclass(frozen=True, slots=True)
class HandOverResult:
    card: CardView
    suspension_secret: str  # shown once: the resident keeps it to suspend the card by phone or web


@dataclass(frozen=True, slots=True)
class ProductionReport:
    batch_id: str
    cards: int
    express: int


@dataclass(frozen=True, slots=True)
class SetupReport:
    batch_id: str
    examined: int
    ready: int
    mismatched: int
    chunks: int
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkItemView:
    id: int
    card_number: str
    reason: str
    created_at: dt.datetime
    batch_id: str


@dataclass(frozen=True, slots=True)
class NoticeBatchReport:
    batch_id: str
    card_notices: int
    certificate_notices: int
    skipped_not_live: int


@dataclass(frozen=True, slots=True)
class SweepReport:
    history_rows: int
    signing_revoked: int
    cards_revoked: int
    provisions: int
    position: int


@dataclass(frozen=True, slots=True)
class Challenge:
    challenge_id: str
    to_sign: bytes
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ResidentLogin:
    access_token: str
    expires_at: dt.datetime
    principal: ResidentPrincipal


@dataclass(frozen=True, slots=True)
class ExpiryRow:
    fiscal_year: int
    cards: int
    certificates: int


@dataclass(frozen=True, slots=True)
class RateRow:
    kind: str
    rank: int
    lg_code: str
    name: str
    population: int
    applied: int
    holders: int

    @property
    def application_rate_pct(self) -> float:
        return round(100 * self.applied / self.population, 1) if self.population else 0.0

    @property
    def issuance_rate_pct(self) -> float:
        return round(100 * self.holders / self.population, 1) if self.population else 0.0


# --- helpers -----------------------------------------------------------------------------------------


def _identity(session: Session, resident_code: str) -> CurrentIdentity:
    """The person who holds ``resident_code`` now; a code given up in a change finds nobody."""
    identity = lookup.current_identity(session, resident_code)
    if identity is None:
        raise NotFound("住民票コードに該当する本人確認情報がありません。", field="resident_code")
    return identity


def _identity_by_id(session: Session, identity_id: int | None) -> CurrentIdentity | None:
    return None if identity_id is None else lookup.current_identity_by_id(session, identity_id)


def _holder(session: Session, card: Card) -> CurrentIdentity:
    """The card's holder as the identity store knows them now, under their current code."""
    identity = _identity_by_id(session, card.identity_id)
    if identity is None:
        raise NotFound("カードの所有者の本人確認情報がありません。", field="card_number")
    return identity


def _code_now(session: Session, identity_id: int | None, written: str) -> str:
    """The 住民票コード the person holds now (what audit entries name them by); the code
    the row was written under when the identity store does not know the person."""
    identity = _identity_by_id(session, identity_id)
    return identity.resident_code if identity is not None else written


def _card_code(session: Session, card: Card) -> str:
    return _code_now(session, card.identity_id, card.resident_code)


def _require_live(identity: CurrentIdentity) -> None:
    if identity.status != lookup.STATUS_LIVE:
        raise NotEligible("住民票が消除されているため、カードの事務を行えません。", field="resident_code")


def _require_own(identity: CurrentIdentity, lg_code: str) -> None:
    if identity.lg_code != lg_code:
        raise Forbidden("他の市区町村の住民のカード事務は行えません。", field="resident_code")


def _facts(identity: CurrentIdentity) -> FourFacts:
    return FourFacts(
        name=identity.name, birth_date=identity.birth_date, sex=identity.sex, address=identity.address
    )


def _card_facts(card: Card) -> FourFacts:
    return FourFacts(name=card.name, birth_date=card.birth_date, sex=card.sex, address=card.address)


def _certificate_facts(cert: JpkiCertificate) -> FourFacts:
    if cert.name is None or cert.birth_date is None or cert.sex is None or cert.address is None:
        raise ValueError("a signing certificate row without its four facts")
    return FourFacts(name=cert.name, birth_date=cert.birth_date, sex=cert.sex, address=cert.address)


def _card(session: Session, card_number: str) -> Card:
    card = (
        repository.card_by_number(session, card_number, for_update=True)
        if is_card_number(card_number)
        else None
    )
    if card is None:
        raise CardNotFound("カード番号に該当するカードがありません。", field="card_number")
    return card


def _chip(session: Session, card: Card) -> tuple[CardChip, SoftwareChip]:
    row = repository.chip(session, card.id)
    if row is None:
        raise CardStateError("このカードにはICチップの情報がありません。", field="card_number")
    image = ChipImage(
        wrapped_secret=row.wrapped_secret,
        sealed=row.sealed,
        public_keys=row.public_keys,
        signing_tries_left=row.signing_tries_left,
        auth_tries_left=row.auth_tries_left,
    )
    return row, SoftwareChip.load(card.card_number, image, data_keyring())


def _save_chip(session: Session, row: CardChip, chip: SoftwareChip, now: dt.datetime) -> None:
    image = chip.image()
    row.sealed = image.sealed
    row.public_keys = image.public_keys
    row.signing_tries_left = image.signing_tries_left
    row.auth_tries_left = image.auth_tries_left
    row.updated_at = now
    session.flush()


def _record(
    session: Session,
    actor: Actor,
    action: AuditAction,
    resident_code: str,
    detail: str,
    *,
    outcome: Outcome = Outcome.SUCCESS,
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        target_kind="resident_code",
        target_id=resident_code,
        purpose=PURPOSE,
        outcome=outcome,
        detail=detail,
    )


def card_view(session: Session, card: Card) -> CardView:
    certs = repository.all_certificates_of_card(session, card.id)
    chip = session.get(CardChip, card.id)
    return CardView(
        card_number=card.card_number,
        status=CardStatus(card.status),
        lg_code=card.lg_code,
        issued_on=card.issued_on,
        valid_until=card.valid_until,
        renewal_opens_on=renewal_opens_on(card.valid_until) if card.valid_until else None,
        revocation_reason=card.revocation_reason,
        signing_tries_left=chip.signing_tries_left if chip else None,
        auth_tries_left=chip.auth_tries_left if chip else None,
        certificates=tuple(
            CertificateView(
                kind=CertificateKind(c.kind),
                serial=c.serial,
                status=CertificateStatus(c.status),
                valid_until=c.valid_until,
                revocation_reason=c.revocation_reason,
            )
            for c in certs
        ),
    )


def _application_view(app: CardApplication) -> ApplicationView:
    return ApplicationView(
        application_no=app.application_no,
        status=ApplicationStatus(app.status),
        channel=ApplicationChannel(app.channel),
        reason=ApplicationReason(app.reason),
        express=app.express,
        express_reason=ExpressReason(app.express_reason) if app.express_reason else None,
        due_on=app.due_on,
        applied_at=app.applied_at,
        has_photo=app.photo_ref is not None,
    )


# --- application ---------------------------------------------------------------------------------


def apply(
    session: Session,
    *,
    actor: Actor,
    lg_code: str | None,
    resident_code: str,
    reason: ApplicationReason,
    channel: ApplicationChannel = ApplicationChannel.WINDOW,
    photo_ref: str | None,
    reissue_reason: ExpressReason | None = None,
    express_reason: ExpressReason | None = None,
    stay_ends_on: dt.date | None = None,
    now: dt.datetime | None = None,
) -> ApplicationView:
    """交付申請. ``lg_code`` is the clerk's municipality (None for an online application).

    A reissue for loss, theft or fire revokes the old card at once: it may be in other
    hands. Express issuance (特急発行) is accepted only for its eligible reasons.
    """
    now = now or utcnow()
    today = today_jst(now)
    identity = _identity(session, resident_code)
    _require_live(identity)
    if lg_code is not None:
        _require_own(identity, lg_code)
    if repository.open_application_for(session, identity.identity_id) is not None:
        raise Conflict("この方の申請は既に受け付けています (製造中または交付待ち)。", field="resident_code")
    live = list(repository.live_cards_of(session, identity.identity_id))
    previous = live[-1] if live else None
    if reason is ApplicationReason.NEW and previous is not None:
        raise NotEligible(
            "有効なカードをお持ちです。更新または再交付として申請してください。", field="reason"
        )
    if reason is not ApplicationReason.NEW and previous is None:
        raise NotEligible("有効なカードがないため、新規として申請してください。", field="reason")
    if reason is ApplicationReason.RENEWAL:
        assert previous is not None
        assert previous.valid_until is not None
        opens = renewal_opens_on(previous.valid_until)
        if today < opens:
            raise NotEligible(
                f"更新の申請は有効期限の3か月前 ({opens.isoformat()}) から受け付けます。", field="reason"
            )
    if reason is ApplicationReason.REISSUE and reissue_reason not in (
        ExpressReason.LOSS,
        ExpressReason.THEFT,
        ExpressReason.FIRE,
        ExpressReason.DAMAGE,
    ):
        raise InvalidValue(
            "再交付の理由 (紛失・盗難・焼失・破損) を指定してください。", field="reissue_reason"
        )
    if express_reason is not None:
        _check_express(express_reason, reason, reissue_reason, identity, today)
    if photo_ref is None and photo_required(identity.birth_date, today):
        raise InvalidValue("顔写真が必要です (顔写真なしのカードは1歳未満の方のみ)。", field="photo_ref")
    if identity.resident_kind == "foreign" and stay_ends_on is not None and stay_ends_on < today:
        raise NotEligible("在留期間が満了しています。", field="stay_ends_on")
    app = CardApplication(
        application_no=new_application_no(),
        resident_code=identity.resident_code,
        identity_id=identity.identity_id,
        prefecture_code=identity.prefecture_code,
        lg_code=identity.lg_code,
        channel=channel.value,
        reason=reason.value,
        express=express_reason is not None,
        express_reason=express_reason.value if express_reason else None,
        due_on=today + dt.timedelta(days=EXPRESS_DAYS) if express_reason else None,
        photo_ref=photo_ref,
        name=identity.name,
        name_kana=identity.name_kana,
        birth_date=identity.birth_date,
        sex=identity.sex,
        address=identity.address,
        resident_kind=identity.resident_kind,
        stay_ends_on=stay_ends_on if identity.resident_kind == "foreign" else None,
        previous_card_id=previous.id if previous else None,
        status=ApplicationStatus.RECEIVED.value,
        applied_at=now,
        applied_by=actor.actor_id,
    )
    repository.add(session, app)
    if previous is not None and reissue_reason in CARD_GONE_REASONS:
        _revoke_card(
            session, previous, CardRevocationReason.LOST, actor=actor, now=now, code=identity.resident_code
        )
    _record(
        session,
        actor,
        AuditAction.CARD_APPLIED,
        resident_code,
        f"application={app.application_no} channel={channel.value} reason={reason.value}"
        + (f" express={express_reason.value}" if express_reason else ""),
    )
    return _application_view(app)


def _check_express(
    express: ExpressReason,
    reason: ApplicationReason,
    reissue_reason: ExpressReason | None,
    identity: CurrentIdentity,
    today: dt.date,
) -> None:
    if express is ExpressReason.NEWBORN:
        ok = legal_age(identity.birth_date, today) < 1
    elif express is ExpressReason.ARRIVAL_FROM_ABROAD:
        ok = reason is ApplicationReason.NEW
    else:
        ok = reason is ApplicationReason.REISSUE and reissue_reason is express
    if not ok:
        raise NotEligible(
            "特急発行の対象ではありません (新生児、紛失等による再交付、国外からの転入の方が対象です)。",
            field="express_reason",
        )


def issue_application_form(
    session: Session, *, actor: Actor, lg_code: str, resident_code: str, now: dt.datetime | None = None
) -> str:
    """A 交付申請書 with its 申請書ID, for applying online or by post."""
    now = now or utcnow()
    identity = _identity(session, resident_code)
    _require_live(identity)
    _require_own(identity, lg_code)
    form_id = new_form_id()
    repository.add_notice(
        session,
        CardNotice(
            kind="application_form",
            form_id=form_id,
            resident_code=identity.resident_code,
            identity_id=identity.identity_id,
            prefecture_code=identity.prefecture_code,
            lg_code=identity.lg_code,
            mailing_name=identity.name,
            mailing_address=identity.address,
            created_at=now,
        ),
    )
    _record(session, actor, AuditAction.CARD_APPLICATION_FORM_ISSUED, resident_code, "kind=application_form")
    return form_id


def apply_online(
    session: Session,
    *,
    form_id: str,
    photo_ref: str | None,
    stay_ends_on: dt.date | None = None,
    now: dt.datetime | None = None,
) -> ApplicationView:
    """Online application with the 申請書ID from a renewal notice or an application form."""
    now = now or utcnow()
    notice = (
        repository.notice_by_form_id(session, form_id) if form_id.isdigit() and len(form_id) == 23 else None
    )
    if notice is None or notice.used_at is not None:
        raise NotFound("申請書IDが見つからないか、既に使用されています。", field="form_id")
    # The form names the person by identity: a 住民票コードの変更 since it was printed
    # does not void it.
    holder = _identity_by_id(session, notice.identity_id)
    if holder is None:
        raise NotFound("申請書IDの方の本人確認情報がありません。", field="form_id")
    live = repository.live_cards_of(session, holder.identity_id)
    reason = ApplicationReason.RENEWAL if live else ApplicationReason.NEW
    view = apply(
        session,
        actor=Actor(kind=ActorKind.RESIDENT, actor_id=holder.resident_code, organisation_code=NATIONAL),
        lg_code=None,
        resident_code=holder.resident_code,
        reason=reason,
        channel=ApplicationChannel.ONLINE,
        photo_ref=photo_ref,
        stay_ends_on=stay_ends_on,
        now=now,
    )
    notice.used_at = now
    return view


def application_status(
    session: Session, *, actor: Actor, lg_code: str, application_no: str
) -> ApplicationView:
    app = repository.application_by_no(session, application_no)
    if app is None or app.lg_code != lg_code:
        raise NotFound("申請番号に該当する申請がありません。", field="application_no")
    _record(
        session,
        actor,
        AuditAction.CARD_VIEWED,
        _code_now(session, app.identity_id, app.resident_code),
        f"application={application_no}",
    )
    return _application_view(app)


# --- production and pre-issuance setup -------------------------------------------------------------


def _batch_id(prefix: str, now: dt.datetime) -> str:
    return f"{prefix}-{now.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"


def produce(
    session: Session,
    *,
    actor: Actor,
    limit: int = 10_000,
    express_only: bool = False,
    now: dt.datetime | None = None,
) -> ProductionReport:
    """Make cards for waiting applications (express first): numbers, printed facts, chips.

    Each chip generates its own key pairs (``SoftwareChip.manufacture``); the national
    side keeps only the sealed image, which stands for the physical card.
    """
    now = now or utcnow()
    batch_id = _batch_id("P", now)
    apps = repository.applications_to_produce(session, limit=limit, express_only=express_only)
    keyring = data_keyring()
    made = 0
    for start in range(0, len(apps), 1000):
        chunk = apps[start : start + 1000]
        numbers = _unique_card_numbers(session, len(chunk))
        repository.add_cards(
            session,
            [
                {
                    "card_number": number,
                    "application_id": a.id,
                    "resident_code": a.resident_code,
                    "identity_id": a.identity_id,
                    "prefecture_code": a.prefecture_code,
                    "lg_code": a.lg_code,
                    "name": a.name,
                    "name_kana": a.name_kana,
                    "birth_date": a.birth_date,
                    "sex": a.sex,
                    "address": a.address,
                    "resident_kind": a.resident_kind,
                    "stay_ends_on": a.stay_ends_on,
                    "has_photo": a.photo_ref is not None,
                    "status": CardStatus.PRODUCED.value,
                    "production_batch": batch_id,
                    "produced_at": now,
                }
                for a, number in zip(chunk, numbers, strict=True)
            ],
        )
        ids = repository.card_ids_by_number(session, numbers)
        chips = []
        for a, number in zip(chunk, numbers, strict=True):
            image = SoftwareChip.manufacture(number, keyring).image()
            chips.append(
                {
                    "card_id": ids[number],
                    "prefecture_code": a.prefecture_code,
                    "wrapped_secret": image.wrapped_secret,
                    "sealed": image.sealed,
                    "public_keys": image.public_keys,
                    "signing_tries_left": image.signing_tries_left,
                    "auth_tries_left": image.auth_tries_left,
                    "updated_at": now,
                }
            )
        repository.add_chips(session, chips)
        repository.mark_applications(
            session, [a.id for a in chunk], ApplicationStatus.PRODUCED, produced_at=now
        )
        made += len(chunk)
    express = sum(1 for a in apps if a.express)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CARD_BATCH_PRODUCED,
        target_kind="card_batch",
        target_id=batch_id,
        purpose=PURPOSE,
        detail=f"cards={made} express={express}",
    )
    session.expire_all()
    return ProductionReport(batch_id=batch_id, cards=made, express=express)


def _unique_card_numbers(session: Session, n: int) -> list[str]:
    numbers: set[str] = set()
    while len(numbers) < n:
        candidates = {new_card_number() for _ in range(n - len(numbers))} - numbers
        numbers |= candidates - repository.card_number_taken(session, sorted(candidates))
    return sorted(numbers)


def pre_issuance_setup(
    session: Session, *, actor: Actor, chunk_size: int = 5000, now: dt.datetime | None = None
) -> SetupReport:
    """交付前設定, centrally, for every produced card: one set-based statement per chunk.

    A card is ready when the identity store still says what is printed on it (the four
    facts), the record is live, and no later card of the person was set up already.
    Others go to the work list of the municipality where the person is registered now.
    """
    now = now or utcnow()
    batch_id = _batch_id("S", now)
    after = 0
    examined = ready = mismatched = chunks = 0
    reasons: dict[str, int] = {}
    while (window := repository.produced_card_range(session, after_id=after, limit=chunk_size)) is not None:
        lo, hi, count = window
        done, bad = repository.apply_setup(session, lo, hi, batch_id=batch_id, now=now)
        for item in bad:
            reasons[item[4]] = reasons.get(item[4], 0) + 1
        examined += count
        ready += done
        mismatched += len(bad)
        chunks += 1
        audit.record(
            session,
            actor=actor,
            action=AuditAction.CARD_SETUP_BATCH,
            target_kind="card_batch",
            target_id=batch_id,
            purpose=PURPOSE,
            detail=f"chunk={chunks} cards={lo}-{hi} examined={count} ready={done} mismatched={len(bad)}",
        )
        after = hi
    session.expire_all()
    return SetupReport(
        batch_id=batch_id,
        examined=examined,
        ready=ready,
        mismatched=mismatched,
        chunks=chunks,
        reasons=reasons,
    )


def work_list(session: Session, *, actor: Actor, lg_code: str, limit: int = 100) -> list[WorkItemView]:
    items = repository.open_work_items(session, lg_code, limit=limit)
    views = []
    for item in items:
        card = repository.card(session, item.card_id)
        views.append(
            WorkItemView(
                id=item.id,
                card_number=card.card_number,
                reason=item.reason,
                created_at=item.created_at,
                batch_id=item.batch_id,
            )
        )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CARD_WORK_LIST_VIEWED,
        target_kind="card_work_list",
        target_id=lg_code,
        purpose=PURPOSE,
        detail=f"items={len(views)}",
    )
    return views


@dataclass(frozen=True, slots=True)
class WaitingCard:
    card_number: str
    application_no: str
    express: bool
    due_on: dt.date | None
    setup_at: dt.datetime | None


def cards_awaiting_hand_over(
    session: Session, *, actor: Actor, lg_code: str, limit: int = 100
) -> list[WaitingCard]:
    """Cards set up and delivered to the municipality, waiting at the window (交付待ち)."""
    rows = repository.ready_cards(session, lg_code, limit=limit)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CARD_WORK_LIST_VIEWED,
        target_kind="card_ready_list",
        target_id=lg_code,
        purpose=PURPOSE,
        detail=f"cards={len(rows)}",
    )
    return [
        WaitingCard(
            card_number=card.card_number,
            application_no=app.application_no,
            express=app.express,
            due_on=app.due_on,
            setup_at=card.setup_at,
        )
        for card, app in rows
    ]


def resolve_work_item(
    session: Session, *, actor: Actor, lg_code: str, item_id: int, retry: bool, now: dt.datetime | None = None
) -> CardView:
    """Retry (the register was corrected: back to setup) or reject (the card is destroyed)."""
    now = now or utcnow()
    item = repository.work_item(session, item_id)
    if item is None or item.lg_code != lg_code:
        raise NotFound("作業リストに該当する項目がありません。", field="item_id")
    if item.resolved_at is not None:
        raise Conflict("この項目は処理済みです。", field="item_id")
    card = repository.card(session, item.card_id, for_update=True)
    app = repository.application(session, card.application_id)
    if retry:
        identity = _holder(session, card)
        _require_live(identity)
        if _facts(identity).differences(_card_facts(card)):
            raise NotEligible(
                "券面の4情報と住民票が一致しません。カードを廃止し、再度申請を受け付けてください。",
                field="item_id",
            )
        card.status = CardStatus.PRODUCED.value
        app.status = ApplicationStatus.PRODUCED.value
    else:
        card.status = CardStatus.REVOKED.value
        card.revoked_at = now
        card.revocation_reason = CardRevocationReason.REJECTED.value
        app.status = ApplicationStatus.CANCELLED.value
        app.closed_at = now
    item.resolved_at = now
    item.resolved_by = actor.actor_id
    item.resolution = "retry" if retry else "reject"
    session.flush()
    _record(
        session,
        actor,
        AuditAction.CARD_WORK_ITEM_RESOLVED,
        _card_code(session, card),
        f"card={card.card_number} item={item_id} resolution={item.resolution}",
    )
    return card_view(session, card)


# --- hand-over at the window --------------------------------------------------------------------------


def _new_suspension_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SUSPENSION_SECRET_LENGTH))


def hand_over(
    session: Session,
    *,
    actor: Actor,
    lg_code: str,
    card_number: str,
    identity_documents: list[IdentityDocument],
    auth_pin: str,
    signing_pin: str | None,
    under_guardianship: bool = False,
    now: dt.datetime | None = None,
) -> HandOverResult:
    """交付: identity checked, PINs set on the chip, certificates issued, validity fixed.

    The certificates are issued now, not at setup, so that no valid certificate exists
    for a card that has not reached its holder. The previous card, if any, is revoked.
    ``signing_pin`` None means the resident does not want a signing certificate (or may
    not have one: under 15 or under guardianship).
    """
    now = now or utcnow()
    today = today_jst(now)
    card = _card(session, card_number)
    if card.status != CardStatus.READY:
        raise CardStateError(
            "交付前設定が済んでいないか、既に交付・廃止されたカードです。", field="card_number"
        )
    identity = _holder(session, card)
    _require_live(identity)
    _require_own(identity, lg_code)
    if _facts(identity).differences(_card_facts(card)):
        raise NotEligible(
            "交付前設定の後に4情報が変わりました。券面と一致しないため交付できません。", field="card_number"
        )
    check_identity_documents(identity_documents)
    check_auth_pin(auth_pin)
    may_sign = signing_certificate_allowed(identity.birth_date, today, under_guardianship=under_guardianship)
    if signing_pin is not None:
        if not may_sign:
            raise NotEligible(
                "15歳未満の方・成年被後見人の方には署名用電子証明書を発行できません。", field="signing_pin"
            )
        check_signing_pin(signing_pin)
    valid_until = card_valid_until(identity.birth_date, today, card.stay_ends_on)
    for old in repository.live_cards_of(session, identity.identity_id):
        if old.id != card.id:
            _revoke_card(
                session, old, CardRevocationReason.REPLACED, actor=actor, now=now, code=identity.resident_code
            )
    row, chip = _chip(session, card)
    chip.set_initial_pin(CertificateKind.AUTH, auth_pin)
    kinds = [CertificateKind.AUTH]
    if signing_pin is not None:
        chip.set_initial_pin(CertificateKind.SIGNING, signing_pin)
        kinds.append(CertificateKind.SIGNING)
    _save_chip(session, row, chip, now)
    secret = _new_suspension_secret()
    card.status = CardStatus.ACTIVE.value
    card.issued_on = today
    card.valid_until = valid_until
    card.handed_over_at = now
    card.handed_over_by = actor.actor_id
    card.identity_check = ",".join(sorted(d.value for d in identity_documents))
    card.suspension_secret_hash = SECRET_HASHER.hash(secret)
    app = repository.application(session, card.application_id)
    app.status = ApplicationStatus.HANDED_OVER.value
    app.closed_at = now
    session.flush()
    for kind in kinds:
        _issue_certificate(session, card, chip, kind, identity, actor=actor, now=now)
    _record(
        session,
        actor,
        AuditAction.CARD_HANDED_OVER,
        identity.resident_code,
        f"card={card.card_number} documents={card.identity_check}"
        f" certificates={','.join(k.value for k in kinds)}",
    )
    return HandOverResult(card=card_view(session, card), suspension_secret=secret)


def _issue_certificate(
    session: Session,
    card: Card,
    chip: SoftwareChip,
    kind: CertificateKind,
    identity: CurrentIdentity,
    *,
    actor: Actor,
    now: dt.datetime,
) -> JpkiCertificate:
    assert card.valid_until is not None
    cert = jpki.issue(
        session,
        kind=kind,
        card_id=card.id,
        resident_code=identity.resident_code,
        prefecture_code=card.prefecture_code,
        public_key=chip.public_key(kind),
        facts=_facts(identity) if kind is CertificateKind.SIGNING else None,
        valid_until=certificate_valid_until(identity.birth_date, today_jst(now), card.valid_until),
        now=now,
    )
    _record(
        session,
        actor,
        AuditAction.JPKI_CERTIFICATE_ISSUED,
        identity.resident_code,
        f"card={card.card_number} kind={kind.value} serial={cert.serial}",
    )
    return cert


def issue_certificates(
    session: Session,
    *,
    actor: Actor,
    lg_code: str,
    card_number: str,
    identity_documents: list[IdentityDocument],
    auth_pin: str | None,
    signing_pin: str | None,
    under_guardianship: bool = False,
    now: dt.datetime | None = None,
) -> CardView:
    """New certificates on a card in use: renewal (from three months before expiry), a
    signing certificate after a change of the four facts, or one first asked for later.

    The chip makes a new key pair for each; the PIN given is set anew. The printed
    facts are brought up to date (the card's 追記欄) when a signing certificate is issued.
    """
    now = now or utcnow()
    today = today_jst(now)
    card = _card(session, card_number)
    if card.status != CardStatus.ACTIVE:
        raise CardStateError("利用中のカードではありません。", field="card_number")
    identity = _holder(session, card)
    _require_live(identity)
    _require_own(identity, lg_code)
    check_identity_documents(identity_documents)
    wanted: dict[CertificateKind, str] = {}
    if auth_pin is not None:
        check_auth_pin(auth_pin)
        wanted[CertificateKind.AUTH] = auth_pin
    if signing_pin is not None:
        if not signing_certificate_allowed(identity.birth_date, today, under_guardianship=under_guardianship):
            raise NotEligible(
                "15歳未満の方・成年被後見人の方には署名用電子証明書を発行できません。", field="signing_pin"
            )
        check_signing_pin(signing_pin)
        wanted[CertificateKind.SIGNING] = signing_pin
    if not wanted:
        raise InvalidValue("発行する証明書の暗証番号を指定してください。", field="auth_pin")
    current = {CertificateKind(c.kind): c for c in repository.certificates_of_card(session, card.id)}
    for kind in wanted:
        existing = current.get(kind)
        if existing is not None and today < (opens := renewal_opens_on(existing.valid_until)):
            raise NotEligible(
                f"有効な証明書があります。更新は有効期限の3か月前 ({opens}) からです。",
                field=f"{kind.value}_pin",
            )
    row, chip = _chip(session, card)
    for kind, pin in wanted.items():
        existing = current.get(kind)
        if existing is not None:
            _set_certificate_status(
                session,
                existing,
                CertificateStatus.REVOKED,
                CertificateRevocationReason.SUPERSEDED,
                actor,
                now,
                code=identity.resident_code,
            )
        chip.regenerate(kind)
        chip.reset_pin(kind, pin)
    _save_chip(session, row, chip, now)
    if CertificateKind.SIGNING in wanted:
        card.name, card.address = identity.name, identity.address
    for kind in wanted:
        _issue_certificate(session, card, chip, kind, identity, actor=actor, now=now)
    return card_view(session, card)


def reset_pin(
    session: Session,
    *,
    actor: Actor,
    lg_code: str,
    card_number: str,
    kind: CertificateKind,
    new_pin: str,
    identity_documents: list[IdentityDocument],
    now: dt.datetime | None = None,
) -> CardView:
    """暗証番号の再設定 at the window: a new PIN for one slot, which also unlocks it.

    The card is at the counter and the holder identified (one photo document or two
    without, ``check_identity_documents``); the clerk's municipality must be the
    holder's. The new PIN must follow the slot's rule (signing: 6–16 upper-case letters
    and digits, both present; auth: 4 digits) and is stored only as an argon2id verifier
    inside the chip; the try counter is full again (5 / 3). Works on an active or a
    suspended card, not on a revoked one (CardStateError, 409). Audited
    ``card.pin_reset``.
    """
    now = now or utcnow()
    card = _card(session, card_number)
    if card.status not in LIVE_CARD_STATUSES:
        raise CardStateError("利用中のカードではありません。", field="card_number")
    identity = _holder(session, card)
    _require_own(identity, lg_code)
    check_identity_documents(identity_documents)
    (check_signing_pin if kind is CertificateKind.SIGNING else check_auth_pin)(new_pin)
    row, chip = _chip(session, card)
    chip.reset_pin(kind, new_pin)
    _save_chip(session, row, chip, now)
    _record(
        session,
        actor,
        AuditAction.CARD_PIN_RESET,
        identity.resident_code,
        f"card={card_number} kind={kind.value}",
    )
    return card_view(session, card)


def view_card(session: Session, *, actor: Actor, lg_code: str, card_number: str) -> CardView:
    card = _card(session, card_number)
    identity = _holder(session, card)
    if identity.lg_code != lg_code and card.lg_code != lg_code:
        raise CardNotFound("カード番号に該当するカードがありません。", field="card_number")
    _record(session, actor, AuditAction.CARD_VIEWED, identity.resident_code, f"card={card_number}")
    return card_view(session, card)


def cards_of_resident(session: Session, *, actor: Actor, lg_code: str, resident_code: str) -> list[CardView]:
    """The cards of the person who holds ``resident_code`` now, oldest first (the window's
    search by code): found by the person, so after a 住民票コードの変更 the new code finds
    the cards issued under the old one, and the old code finds nobody (NotFound, 404).
    Only a municipality's own residents (Forbidden, 403). Audited ``card.viewed``."""
    identity = _identity(session, resident_code)
    _require_own(identity, lg_code)
    cards = repository.cards_of_identity(session, identity.identity_id)
    _record(session, actor, AuditAction.CARD_VIEWED, identity.resident_code, f"cards={len(cards)} by=code")
    return [card_view(session, card) for card in cards]


@dataclass(frozen=True, slots=True)
class CardFace:
    """A card with what is printed on it (券面): the clerk matches it to the person at the window.

    ``resident_code`` is the holder's code now (the card does not carry it)."""

    card: CardView
    resident_code: str
    name: str
    name_kana: str | None
    birth_date: dt.date
    sex: str
    address: str


def card_face(session: Session, *, actor: Actor, lg_code: str, card_number: str) -> CardFace:
    """``view_card`` with the printed four facts, for the window's screens (audited as a view)."""
    view = view_card(session, actor=actor, lg_code=lg_code, card_number=card_number)
    card = _card(session, card_number)
    return CardFace(
        card=view,
        resident_code=_card_code(session, card),
        name=card.name,
        name_kana=card.name_kana,
        birth_date=card.birth_date,
        sex=card.sex,
        address=card.address,
    )


# 番号法 第17条・施行令 第14条 (unconfirmed article numbers): a card holder who moves in must
# present the card within 90 days of the 転入届 for its continued use (継続利用), else it
# loses its validity. The date of the move-in stands in for the notification date: never
# earlier than it, so the check can only be the lenient side.
CONTINUED_USE_DAYS = 90


@dataclass(frozen=True, slots=True)
class CardAfterMoveIn:
    """Where a moved-in card holder stands for the card's continued use (継続利用)."""

    registered_here: bool  # the identity store has the person live in this municipality
    card: CardFace | None  # the live card, once registered here
    new_address: str | None  # the address the register now gives
    continued: bool  # the card already serves this municipality with the new address
    deadline: dt.date | None  # the last day for the continued use


def card_after_move_in(
    session: Session, *, actor: Actor, lg_code: str, resident_code: str, now: dt.datetime | None = None
) -> CardAfterMoveIn:
    """The card of someone who just moved in, once the move has reached the identity store.

    Until the replication has brought the 転入 here, nothing is read and nothing said about
    the person: ``registered_here`` is False and the window waits.
    """
    now = now or utcnow()
    identity = lookup.current_identity(session, resident_code)
    if identity is None or identity.lg_code != lg_code or identity.status != lookup.STATUS_LIVE:
        return CardAfterMoveIn(False, None, None, False, None)
    live = list(repository.live_cards_of(session, identity.identity_id))
    deadline = identity.changed_on + dt.timedelta(days=CONTINUED_USE_DAYS)
    if not live:
        _record(session, actor, AuditAction.CARD_VIEWED, resident_code, "card=none after=move_in")
        return CardAfterMoveIn(True, None, identity.address, False, deadline)
    card = live[-1]
    face = card_face(session, actor=actor, lg_code=lg_code, card_number=card.card_number)
    continued = card.lg_code == lg_code and card.address == identity.address
    return CardAfterMoveIn(True, face, identity.address, continued, deadline)


def continue_use(
    session: Session,
    *,
    actor: Actor,
    lg_code: str,
    card_number: str,
    identity_documents: list[IdentityDocument],
    now: dt.datetime | None = None,
) -> CardView:
    """継続利用: after a 転入 the card is presented, the new address is written on its 追記欄
    and the card serves the new municipality from now on.

    The signing certificate, which carries the old address, is not touched here: the
    identity sweep revokes it (and informs consenting businesses); a new one is issued
    with ``issue_certificates``. CardStateError (409) when there is nothing to continue
    (the card already serves here) or the card is not in use; NotEligible (409) after the
    90 days. Audited ``card.continued_use``.
    """
    now = now or utcnow()
    card = _card(session, card_number)
    if card.status not in LIVE_CARD_STATUSES:
        raise CardStateError("利用中のカードではありません。", field="card_number")
    identity = _holder(session, card)
    _require_live(identity)
    _require_own(identity, lg_code)
    check_identity_documents(identity_documents)
    if card.lg_code == lg_code and card.address == identity.address:
        raise CardStateError(
            "このカードは既にこの市区町村で利用できる状態です (継続利用の手続きは不要です)。",
            field="card_number",
        )
    deadline = identity.changed_on + dt.timedelta(days=CONTINUED_USE_DAYS)
    if today_jst(now) > deadline:
        raise NotEligible(
            f"転入から{CONTINUED_USE_DAYS}日 ({deadline.isoformat()}) を過ぎたため継続利用できません。"
            "カードの再交付を申請してください。",
            field="card_number",
        )
    previous = card.lg_code
    card.lg_code = lg_code
    card.address = identity.address
    session.flush()
    documents = ",".join(sorted(d.value for d in identity_documents))
    _record(
        session,
        actor,
        AuditAction.CARD_CONTINUED_USE,
        identity.resident_code,
        f"card={card.card_number} from={previous} documents={documents}",
    )
    return card_view(session, card)


# --- the software card reader -------------------------------------------------------------------------


def read_certificate(session: Session, *, card_number: str, kind: CertificateKind) -> bytes:
    """The certificate a card presents (readable without a PIN, as on a real card): the
    latest of its kind, revoked or not — a revoked one stays on the chip until replaced."""
    card = _card(session, card_number)
    certs = [c for c in repository.all_certificates_of_card(session, card.id) if c.kind == kind]
    if not certs:
        raise NotFound("このカードには該当する電子証明書がありません。", field="kind")
    # The signing certificate carries the four facts: reading it is a read of personal data.
    _record(
        session,
        national_actor(),
        AuditAction.CARD_VIEWED,
        _card_code(session, card),
        f"card={card_number} reader={kind.value}",
    )
    return certs[-1].der


def sign_with_card(
    session: Session,
    *,
    card_number: str,
    kind: CertificateKind,
    pin: str,
    data: bytes,
    now: dt.datetime | None = None,
) -> bytes:
    """Have the card's chip sign ``data`` after the PIN (the client side of a card login).

    A wrong PIN lowers the chip's counter and that is kept, even though the call fails.
    """
    now = now or utcnow()
    card = _card(session, card_number)
    row, chip = _chip(session, card)
    try:
        signature = chip.sign(kind, pin, data)
    except (WrongPin, PinLocked) as exc:
        _save_chip(session, row, chip, now)
        _record(
            session,
            national_actor(),
            AuditAction.CARD_PIN_FAILED,
            _card_code(session, card),
            f"card={card_number} kind={kind.value} tries_left={chip.tries_left(kind)}",
            outcome=Outcome.FAILURE,
        )
        raise exc from None
    _save_chip(session, row, chip, now)
    return signature


# --- suspension, lifting and revocation -------------------------------------------------------------


def _set_certificate_status(
    session: Session,
    cert: JpkiCertificate,
    status: CertificateStatus,
    reason: CertificateRevocationReason | None,
    actor: Actor,
    now: dt.datetime,
    *,
    code: str,
) -> bool:
    """``code``: the holder's 住民票コード now, which the audit entry names."""
    changed = jpki.set_status(session, cert, status=status, reason=reason, now=now)
    if changed and status is CertificateStatus.REVOKED:
        _record(
            session,
            actor,
            AuditAction.JPKI_CERTIFICATE_REVOKED,
            code,
            f"kind={cert.kind} serial={cert.serial} reason={reason.value if reason else ''}",
        )
    return changed


_CERT_REASON_FOR_CARD = {
    CardRevocationReason.DEATH: CertificateRevocationReason.DEATH,
    CardRevocationReason.LOST: CertificateRevocationReason.KEY_COMPROMISE,
    CardRevocationReason.REPLACED: CertificateRevocationReason.SUPERSEDED,
}


def _revoke_card(
    session: Session,
    card: Card,
    reason: CardRevocationReason,
    *,
    actor: Actor,
    now: dt.datetime,
    code: str | None = None,
) -> None:
    """``code``: the holder's 住民票コード now when the caller has it (looked up otherwise)."""
    code = code or _card_code(session, card)
    card.status = CardStatus.REVOKED.value
    card.revoked_at = now
    card.revocation_reason = reason.value
    cert_reason = _CERT_REASON_FOR_CARD.get(reason, CertificateRevocationReason.CARD_REVOKED)
    for cert in repository.certificates_of_card(session, card.id):
        _set_certificate_status(session, cert, CertificateStatus.REVOKED, cert_reason, actor, now, code=code)
    repository.revoke_resident_sessions_of_card(session, card.id, now)
    session.flush()
    _record(
        session,
        actor,
        AuditAction.CARD_REVOKED,
        code,
        f"card={card.card_number} reason={reason.value}",
    )


def _suspend(session: Session, card: Card, *, actor: Actor, via: str, now: dt.datetime) -> CardView:
    if card.status == CardStatus.ACTIVE:
        code = _card_code(session, card)
        card.status = CardStatus.SUSPENDED.value
        card.suspended_at = now
        for cert in repository.certificates_of_card(session, card.id):
            _set_certificate_status(session, cert, CertificateStatus.HOLD, None, actor, now, code=code)
        repository.revoke_resident_sessions_of_card(session, card.id, now)
        session.flush()
        _record(
            session,
            actor,
            AuditAction.CARD_SUSPENDED,
            code,
            f"card={card.card_number} via={via}",
        )
    elif card.status != CardStatus.SUSPENDED:
        raise CardStateError("利用中のカードではないため、一時停止できません。", field="card_number")
    return card_view(session, card)


def suspend_with_secret(
    session: Session, *, card_number: str, secret: str, now: dt.datetime | None = None
) -> CardView:
    """一時利用停止 at any hour, without logging in: the card number plus the 16-character
    suspension secret handed out with the card (case and surrounding spaces ignored).

    Both certificates go on hold (certificateHold on the CRL, revoked in OCSP) and the
    card's resident sessions end. Suspending a suspended card again is harmless.
    A wrong secret and an unknown card number get the same CardAuthenticationFailed
    (401) after the same argon2 work, so the answer does not tell which card numbers
    exist; the refusal is audited ``card.suspension_refused``. Lifting is
    ``lift_suspension``, at the window only.
    """
    now = now or utcnow()
    card = (
        repository.card_by_number(session, card_number, for_update=True)
        if is_card_number(card_number)
        else None
    )
    stored = card.suspension_secret_hash if card is not None else None
    ok = False
    try:
        ok = SECRET_HASHER.verify(stored or _DUMMY_SECRET_HASH, secret.strip().upper())
    except (VerificationError, InvalidHashError):
        ok = False
    if card is None or stored is None or not ok:
        audit.record(
            session,
            actor=Actor(kind=ActorKind.RESIDENT, actor_id="anonymous", organisation_code=NATIONAL),
            action=AuditAction.CARD_SUSPENSION_REFUSED,
            target_kind="card",
            target_id=_card_code(session, card) if card is not None else "unknown",
            outcome=Outcome.FAILURE,
            detail="wrong card number or secret",
        )
        raise CardAuthenticationFailed("カード番号または一時停止用の確認コードが正しくありません。")
    actor = Actor(kind=ActorKind.RESIDENT, actor_id=_card_code(session, card), organisation_code=NATIONAL)
    return _suspend(session, card, actor=actor, via="secret", now=now)


def suspend_as_resident(
    session: Session, *, resident: ResidentPrincipal, now: dt.datetime | None = None
) -> CardView:
    """一時利用停止 by the resident logged in with the card (e.g. before travelling, or a
    card left somewhere after logging in): as ``suspend_with_secret``, this session ends
    with it. CardStateError (409) when the card is already revoked."""
    now = now or utcnow()
    card = repository.card(session, resident.card_id, for_update=True)
    return _suspend(session, card, actor=resident_actor(resident), via="resident_session", now=now)


def lift_suspension(
    session: Session,
    *,
    actor: Actor,
    lg_code: str,
    card_number: str,
    identity_documents: list[IdentityDocument],
    now: dt.datetime | None = None,
) -> CardView:
    """一時停止の解除, at the window only: the holder shows the card and is identified."""
    now = now or utcnow()
    card = _card(session, card_number)
    if card.status != CardStatus.SUSPENDED:
        raise CardStateError("一時停止中のカードではありません。", field="card_number")
    identity = _holder(session, card)
    _require_live(identity)
    _require_own(identity, lg_code)
    check_identity_documents(identity_documents)
    card.status = CardStatus.ACTIVE.value
    card.suspended_at = None
    for cert in repository.certificates_of_card(session, card.id):
        if cert.status == CertificateStatus.HOLD:
            _set_certificate_status(
                session, cert, CertificateStatus.GOOD, None, actor, now, code=identity.resident_code
            )
    session.flush()
    _record(session, actor, AuditAction.CARD_SUSPENSION_LIFTED, identity.resident_code, f"card={card_number}")
    return card_view(session, card)


def return_card(
    session: Session, *, actor: Actor, lg_code: str, card_number: str, now: dt.datetime | None = None
) -> CardView:
    """返納: the holder gives the card back; it and its certificates are revoked."""
    now = now or utcnow()
    card = _card(session, card_number)
    if card.status not in LIVE_CARD_STATUSES:
        raise CardStateError("利用中のカードではありません。", field="card_number")
    identity = _holder(session, card)
    _require_own(identity, lg_code)
    _revoke_card(
        session, card, CardRevocationReason.RETURNED, actor=actor, now=now, code=identity.resident_code
    )
    return card_view(session, card)


def expire(
    session: Session, *, actor: Actor, now: dt.datetime | None = None, limit: int = 10_000
) -> tuple[int, int]:
    """Cards past their last valid day are revoked; certificates past notAfter expire."""
    now = now or utcnow()
    today = today_jst(now)
    cards = repository.expired_live_cards(session, before=today, limit=limit)
    for card in cards:
        _revoke_card(session, card, CardRevocationReason.EXPIRY, actor=actor, now=now)
    certs = repository.expire_certificates(session, now=now)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CARD_EXPIRY_RUN,
        target_kind="card_batch",
        target_id=today.isoformat(),
        purpose=PURPOSE,
        detail=f"cards={len(cards)} certificates={certs}",
    )
    return len(cards), certs


# --- renewal notices ----------------------------------------------------------------------------------


def renewal_notices(
    session: Session,
    *,
    actor: Actor,
    months_ahead: int = 3,
    chunk_size: int = 5000,
    now: dt.datetime | None = None,
) -> NoticeBatchReport:
    """有効期限通知書 for cards and certificates expiring within ``months_ahead`` months.

    The mailing name and address are read from the identity store now, in the same
    statement that picks the cards (送付先情報の最新化): a move after the card was issued
    is followed, and no notice goes to someone no longer registered.
    """
    now = now or utcnow()
    until = add_months(today_jst(now), months_ahead)
    batch_id = _batch_id("N", now)
    cards = certs = skipped = 0
    after = 0
    while rows := repository.card_renewal_candidates(session, until=until, after_id=after, limit=chunk_size):
        batch: list[dict[str, object]] = []
        for card_id, code, pref, expires_on, lg, name, address, status, identity_id in rows:
            if status != lookup.STATUS_LIVE or lg is None:
                skipped += 1
                continue
            batch.append(
                {
                    "kind": "card_renewal",
                    "form_id": new_form_id(),
                    "resident_code": code,
                    "identity_id": identity_id,
                    "prefecture_code": pref,
                    "lg_code": lg,
                    "card_id": card_id,
                    "expires_on": expires_on,
                    "mailing_name": name,
                    "mailing_address": address,
                    "batch_id": batch_id,
                    "created_at": now,
                }
            )
        repository.add_notices(session, batch)
        cards += len(batch)
        after = rows[-1][0]
        audit.record(
            session,
            actor=actor,
            action=AuditAction.CARD_RENEWAL_NOTICES,
            target_kind="card_batch",
            target_id=batch_id,
            purpose=PURPOSE,
            detail=f"kind=card rows={len(rows)} notices={len(batch)}",
        )
    after = 0
    while crows := repository.certificate_renewal_candidates(
        session, until=until, after_id=after, limit=chunk_size
    ):
        batch = []
        for _cert_id, card_id, code, pref, expires_on, lg, name, address, status, identity_id in crows:
            if status != lookup.STATUS_LIVE or lg is None:
                skipped += 1
                continue
            batch.append(
                {
                    "kind": "certificate_renewal",
                    "form_id": None,
                    "resident_code": code,
                    "identity_id": identity_id,
                    "prefecture_code": pref,
                    "lg_code": lg,
                    "card_id": card_id,
                    "expires_on": expires_on,
                    "mailing_name": name,
                    "mailing_address": address,
                    "batch_id": batch_id,
                    "created_at": now,
                }
            )
        repository.add_notices(session, batch)
        certs += len(batch)
        after = crows[-1][0]
        audit.record(
            session,
            actor=actor,
            action=AuditAction.CARD_RENEWAL_NOTICES,
            target_kind="card_batch",
            target_id=batch_id,
            purpose=PURPOSE,
            detail=f"kind=certificate rows={len(crows)} notices={len(batch)}",
        )
    return NoticeBatchReport(
        batch_id=batch_id, card_notices=cards, certificate_notices=certs, skipped_not_live=skipped
    )


@dataclass(frozen=True, slots=True)
class NoticeView:
    kind: str
    form_id: str | None
    lg_code: str
    expires_on: dt.date | None
    mailing_name: str | None
    mailing_address: str | None


def notices_of_batch(session: Session, *, actor: Actor, batch_id: str) -> list[NoticeView]:
    """The notices of one batch, for printing and mailing (a read of names and addresses)."""
    rows = repository.notices_of_batch(session, batch_id)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CARD_RENEWAL_NOTICES,
        target_kind="card_batch",
        target_id=batch_id,
        purpose=PURPOSE,
        detail=f"exported={len(rows)}",
    )
    return [
        NoticeView(
            kind=n.kind,
            form_id=n.form_id,
            lg_code=n.lg_code,
            expires_on=n.expires_on,
            mailing_name=n.mailing_name,
            mailing_address=n.mailing_address,
        )
        for n in rows
    ]


# --- identity changes: automatic revocation -----------------------------------------------------------

_CARD_REASON_FOR_REMOVAL = {
    "death": CardRevocationReason.DEATH,
    "declared_missing": CardRevocationReason.DEATH,
    "move_out_abroad": CardRevocationReason.EMIGRATION,
}


def sweep_identity_changes(
    session: Session, *, batch_size: int = 1000, max_batches: int = 1000, now: dt.datetime | None = None
) -> SweepReport:
    """Read the identity history past the cursor and act on what changed.

    For each person with a new history row, the current record decides: removed (death,
    emigration, other removal except a move-out, which the card survives) revokes the
    card and both certificates; four facts that differ from an unrevoked signing
    certificate revoke that certificate (affiliationChanged) and queue the new facts for
    every business the resident consented to. The current record, not the history row,
    is compared, so corrections and out-of-order arrivals settle on the truth.

    People are followed by identity id: a 住民票コードの変更 is a history row under the new
    code for the same identity, which changes none of the four facts (nothing is revoked
    for it), and every later change still reaches the cards, certificates and consents
    made under the old code.
    """
    now = now or utcnow()
    actor = national_actor()
    cursor = repository.cursor(session, SWEEP_CURSOR)
    if cursor is None:
        cursor = repository.add_cursor(session, CardCursor(name=SWEEP_CURSOR, position=0, updated_at=now))
    rows = signing = cards = provisions = 0
    for _ in range(max_batches):
        marks = lookup.history_after(session, cursor.position, batch_size)
        if not marks:
            break
        changed_on: dict[int, dt.date] = {}
        for mark in marks:
            changed_on[mark.identity_id] = max(
                mark.valid_from, changed_on.get(mark.identity_id, mark.valid_from)
            )
        identities = lookup.current_identities_by_id(session, changed_on)
        for identity_id, identity in identities.items():
            if identity.status != lookup.STATUS_LIVE and identity.removal_reason != "move_out":
                reason = _CARD_REASON_FOR_REMOVAL.get(
                    identity.removal_reason or "", CardRevocationReason.REMOVED
                )
                for card in repository.live_cards_of(session, identity_id):
                    _revoke_card(session, card, reason, actor=actor, now=now, code=identity.resident_code)
                    cards += 1
        for cert, identity_id in repository.unrevoked_signing_certificates_of(session, sorted(identities)):
            identity = identities[identity_id]
            issued = _certificate_facts(cert)
            new = _facts(identity)
            if not issued.differences(new):
                continue
            _set_certificate_status(
                session,
                cert,
                CertificateStatus.REVOKED,
                CertificateRevocationReason.FOUR_FACTS_CHANGED,
                actor,
                now,
                code=identity.resident_code,
            )
            signing += 1
            if identity.status == lookup.STATUS_LIVE:
                provisions += fourfacts.queue_provisions(
                    session,
                    identity_id=identity_id,
                    resident_code=identity.resident_code,
                    prefecture_code=cert.prefecture_code,
                    revoked_serial=cert.serial,
                    facts=new,
                    changed_on=changed_on[identity_id],
                    now=now,
                )
        rows += len(marks)
        cursor.position = marks[-1].history_id
        cursor.updated_at = now
        session.flush()
    if rows:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.CARD_IDENTITY_SWEEP,
            target_kind="card_cursor",
            target_id=SWEEP_CURSOR,
            purpose=PURPOSE,
            detail=f"rows={rows} signing_revoked={signing} cards_revoked={cards} provisions={provisions}",
        )
    return SweepReport(
        history_rows=rows,
        signing_revoked=signing,
        cards_revoked=cards,
        provisions=provisions,
        position=cursor.position,
    )


# --- card login ----------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login_challenge(session: Session, *, now: dt.datetime | None = None) -> Challenge:
    """Step 1 of a card login: a fresh 32-byte nonce, good once, for five minutes.

    The card signs ``Challenge.to_sign`` (a fixed context prefix + the nonce, so that a
    login signature can never be replayed as anything else) with its authentication key.
    Anonymous and not audited: it reads no personal data.
    """
    now = now or utcnow()
    nonce = secrets.token_bytes(32)
    row = CardLoginChallenge(
        id=secrets.token_hex(16), nonce=nonce.hex(), created_at=now, expires_at=now + CHALLENGE_TTL
    )
    repository.add_challenge(session, row)
    return Challenge(challenge_id=row.id, to_sign=LOGIN_CONTEXT + nonce, expires_at=row.expires_at)


def _login_failed(session: Session, reason: str, who: str = "unknown") -> CardAuthenticationFailed:
    audit.record(
        session,
        actor=Actor(kind=ActorKind.RESIDENT, actor_id="anonymous", organisation_code=NATIONAL),
        action=AuditAction.CARD_LOGIN_FAILED,
        target_kind="resident_code",
        target_id=who,
        outcome=Outcome.FAILURE,
        detail=reason,
    )
    return CardAuthenticationFailed(
        "カードによる認証に失敗しました。カードの状態と暗証番号を確認してください。"
    )


def login(
    session: Session,
    *,
    challenge_id: str,
    certificate_der: bytes,
    signature: bytes,
    now: dt.datetime | None = None,
) -> ResidentLogin:
    """Step 2 of a card login: verify a signed challenge and open a resident session.

    Checked, in order: the challenge (known, unused, unexpired; it is spent even when the
    login then fails), the certificate (an authentication certificate chaining to the JPKI
    root, within its validity, ``good`` in a signed OCSP answer — so a suspended, revoked
    or expired one is refused), the ECDSA signature over ``Challenge.to_sign`` with that
    certificate's key, and the card (active). Returns a bearer token for 30 minutes;
    only its SHA-256 is stored.

    Raises CardAuthenticationFailed (401) for every refusal, with one audit entry
    ``card.login_failed`` naming the reason; the entry point commits it. Success is
    audited as ``card.login_succeeded``.
    """
    now = now or utcnow()
    challenge = repository.challenge(session, challenge_id[:32])
    if challenge is None or challenge.used_at is not None or challenge.expires_at <= now:
        raise _login_failed(session, "unknown, used or expired challenge")
    challenge.used_at = now
    checked = jpki.check_certificate(session, certificate_der, kind=CertificateKind.AUTH, now=now)
    if isinstance(checked, str):
        raise _login_failed(session, checked)
    public_key = checked.certificate.public_key()
    card = repository.card(session, checked.row.card_id)
    # The holder's code now, not the one the card was issued under: the portal finds the
    # person's register record by it.
    code = _card_code(session, card)
    try:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(
            signature, LOGIN_CONTEXT + bytes.fromhex(challenge.nonce), ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, AssertionError):
        raise _login_failed(session, "bad signature", code) from None
    if card.status != CardStatus.ACTIVE:
        raise _login_failed(session, f"card {card.status}", code)
    token = secrets.token_urlsafe(32)
    row = repository.add_resident_session(
        session,
        ResidentSession(
            token_hash=_token_hash(token),
            card_id=card.id,
            resident_code=code,
            prefecture_code=card.prefecture_code,
            certificate_serial=checked.row.serial,
            issued_at=now,
            expires_at=now + RESIDENT_SESSION_TTL,
        ),
    )
    principal = ResidentPrincipal(
        resident_code=code,
        card_id=card.id,
        prefecture_code=card.prefecture_code,
        session_id=row.id,
        certificate_serial=row.certificate_serial,
    )
    _record(
        session,
        resident_actor(principal),
        AuditAction.CARD_LOGIN_SUCCEEDED,
        code,
        f"card={card.card_number}",
    )
    return ResidentLogin(access_token=token, expires_at=row.expires_at, principal=principal)


def login_with_card(
    session: Session, *, card_number: str, pin: str, now: dt.datetime | None = None
) -> ResidentLogin:
    """Card login with the software card, in one call (the portal's and the kiosk's login).

    Runs the real protocol with the card in the reader: ``login_challenge``, the card's
    chip signs it after the 4-digit authentication PIN (``sign_with_card``), the card's
    authentication certificate is read (``read_certificate``) and ``login`` verifies both
    exactly as it would for a physical card — the card number only says which chip
    signs, it is never trusted on its own.

    Raises:
        WrongPin (401): the PIN was wrong; the detail says how many tries are left. The
            lowered counter is kept (the error commits the recorded work).
        PinLocked (423): the third wrong PIN, or already locked; only the window unlocks
            it (``reset_pin``).
        CardAuthenticationFailed (401): no such card, no PIN or certificate on it yet, or
            ``login`` refused (suspended, revoked, expired...). Audited.
    """
    now = now or utcnow()
    challenge = login_challenge(session, now=now)
    try:
        signature = sign_with_card(
            session,
            card_number=card_number,
            kind=CertificateKind.AUTH,
            pin=pin,
            data=challenge.to_sign,
            now=now,
        )
        certificate = read_certificate(session, card_number=card_number, kind=CertificateKind.AUTH)
    except (CardNotFound, CardStateError, NotFound):
        raise _login_failed(session, "no usable card in the reader") from None
    return login(
        session,
        challenge_id=challenge.challenge_id,
        certificate_der=certificate,
        signature=signature,
        now=now,
    )


def authenticate_resident(
    session: Session, token: str, *, now: dt.datetime | None = None
) -> ResidentPrincipal:
    """The resident behind a session token (``RESIDENT`` AccessRule): 401 when unknown,
    expired, logged out, or ended by a suspension or revocation of the card.

    The principal names the resident by the code they hold now, even when it was changed
    during the session."""
    now = now or utcnow()
    row = repository.resident_session_by_hash(session, _token_hash(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise CardAuthenticationFailed(
            "ログインの有効期限が切れたか、無効です。カードで再度ログインしてください。"
        )
    card = repository.card(session, row.card_id)
    return ResidentPrincipal(
        resident_code=_code_now(session, card.identity_id, row.resident_code),
        card_id=row.card_id,
        prefecture_code=row.prefecture_code,
        session_id=row.id,
        certificate_serial=row.certificate_serial,
    )


def logout_resident(session: Session, *, resident: ResidentPrincipal, now: dt.datetime | None = None) -> None:
    """End the resident's session: the token is refused from now on."""
    row = session.get_one(ResidentSession, resident.session_id)
    row.revoked_at = now or utcnow()
    session.flush()


@dataclass(frozen=True, slots=True)
class MyCard:
    card: CardView
    facts: FourFacts


def my_card(session: Session, *, resident: ResidentPrincipal) -> MyCard:
    """The resident's own card (status, validity, certificates, PIN tries left) and the
    four facts the identity store holds now; audited as the resident's read."""
    card = repository.card(session, resident.card_id)
    identity = _holder(session, card)
    _record(session, resident_actor(resident), AuditAction.CARD_VIEWED, identity.resident_code, "self")
    return MyCard(card=card_view(session, card), facts=_facts(identity))


def encode(data: bytes) -> str:
    return b64encode(data).decode()


def decode(text: str, field_name: str) -> bytes:
    try:
        return b64decode(text, validate=True)
    except ValueError:
        raise InvalidValue("Base64 として読めません。", field=field_name) from None


# --- reports --------------------------------------------------------------------------------------------


def expiring_by_fiscal_year(
    session: Session, *, actor: Actor, from_year: int | None = None
) -> list[ExpiryRow]:
    """Cards and certificates (unrevoked) expiring per fiscal year: the renewal table's shape."""
    cards = repository.cards_expiring_by_fiscal_year(session)
    certs = repository.certificates_expiring_by_fiscal_year(session)
    years = sorted(y for y in set(cards) | set(certs) if from_year is None or y >= from_year)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CARD_REPORT_VIEWED,
        target_kind="card_report",
        target_id="expiry_by_fiscal_year",
        purpose=PURPOSE,
    )
    return [ExpiryRow(fiscal_year=y, cards=cards.get(y, 0), certificates=certs.get(y, 0)) for y in years]


def current_fiscal_year(now: dt.datetime | None = None) -> int:
    return fiscal_year(today_jst(now or utcnow()))


_REPORT_KINDS = {
    MunicipalityKind.DESIGNATED_CITY: "designated_city",
    MunicipalityKind.SPECIAL_WARD: "special_ward",
    MunicipalityKind.CITY: "city",
    MunicipalityKind.TOWN: "town",
    MunicipalityKind.VILLAGE: "village",
}
REPORT_KIND_ORDER = ("prefecture", "designated_city", "special_ward", "city", "town", "village")


def issuance_rates(session: Session, *, actor: Actor) -> list[RateRow]:
    """Application and issuance rates per prefecture and municipality, ranked by
    application rate within each kind — the columns of the published table
    (data/card_rates_2022-12.csv). Designated cities add up their wards."""
    master = load_master()
    population = lookup.live_population_by_lg(session)
    counts = repository.applicants_and_holders_by_lg(session)
    totals: dict[tuple[str, str], list[int]] = {}
    for lg, pop in population.items():
        applied, holders = counts.get(lg, (0, 0))
        entry = master.find(lg)
        if entry is None:
            continue
        targets = [("prefecture", entry.prefecture_code)]
        if entry.kind is MunicipalityKind.WARD and entry.parent_code is not None:
            targets.append(("designated_city", entry.parent_code))
        elif entry.kind in _REPORT_KINDS:
            targets.append((_REPORT_KINDS[entry.kind], entry.code))
        for key in targets:
            t = totals.setdefault(key, [0, 0, 0])
            t[0] += pop
            t[1] += applied
            t[2] += holders
    rows: list[RateRow] = []
    for kind in REPORT_KIND_ORDER:
        group = [
            RateRow(
                kind=kind,
                rank=0,
                lg_code=code,
                name=master.get(code).name,
                population=t[0],
                applied=t[1],
                holders=t[2],
            )
            for (k, code), t in totals.items()
            if k == kind
        ]
        group.sort(key=lambda r: (-r.application_rate_pct, -r.issuance_rate_pct, r.lg_code))
        rows.extend(
            RateRow(
                kind=r.kind,
                rank=i,
                lg_code=r.lg_code,
                name=r.name,
                population=r.population,
                applied=r.applied,
                holders=r.holders,
            )
            for i, r in enumerate(group, start=1)
        )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CARD_REPORT_VIEWED,
        target_kind="card_report",
        target_id="issuance_rates",
        purpose=PURPOSE,
    )
    return rows


def card_statuses(session: Session) -> dict[str, int]:
    return repository.card_counts_by_status(session)
