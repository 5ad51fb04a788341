"""Use cases of certificate issuance: four channels, protection orders, PINs, verification.

Every channel ends in :func:`_issue`: take the next issue number, lay out what the
register says, render, sign, hash, record the issuance and audit it — in the caller's
transaction, so a failure anywhere leaves no number used, no ledger row and no audit
entry of an issuance that did not happen. Refusals that are evidence (a protection
order, a kiosk rule, an official request outside its granted task) are audited and kept
(``commits_recorded_work``).

For the staff window's screens: :func:`preview_at_window` (the rows, the fee),
:func:`preview_pdf` (the same as 見本 pages), :func:`issue_at_window` (the signed PDF to
print or download, in :class:`IssuedCertificate`), then :func:`get_issuance` and
:func:`list_issuances` for the ledger. Certificates are not voided or reissued: an
issued PDF stays valid as issued, and a corrected one is simply a new issuance.

The register is read only through ``registry.service`` with a ``RegistryContext`` whose
municipality is the persons' own: the clerk's for the window, the resident's for the
kiosk, the home municipality's for 公用請求 (the home issues those itself).

広域交付 never reads the home register: :func:`issue_wide_area` asks the national network
(``ctx.network.request_wide_area_record``), which forwards the request to the home
municipality's system; the home answers from its own database with the items a
広域交付住民票 may carry, having checked its protection orders and audited the read
(certificates.widearea). The issuer renders and signs with its own key, and queues a
copy-issued notice for the home in the issuance's own transaction; the relay delivers it
(core.widearea describes the exchange). No transaction needs to be open while the
network answers: the HTTP route ends its authentication's transaction before asking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind
from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.certificates import repository, signing, widearea_repository
from jumin.certificates.authentication import (
    CardAuthenticator,
    PinAuthenticator,
    ResidentAuthenticator,
    hash_pin,
    resident_actor,
)
from jumin.certificates.domain import (
    CHANNEL_LABELS,
    VERIFICATION_CODE_ALPHABET,
    VERIFICATION_CODE_LENGTH,
    AuthenticatedResident,
    CardCredentials,
    Channel,
    DocumentKind,
    Form,
    Item,
    KioskRefused,
    OfficialTask,
    OfficialTaskNotGranted,
    PinCredentials,
    ProtectedRecord,
    ProtectionOrderView,
    Requester,
    RequesterKind,
    RestrictedParty,
    UnknownCertificate,
    check_pin_format,
    check_requester,
    issue_number,
    normalize_verification_code,
    select_items,
)
from jumin.certificates.fonts import load_fonts
from jumin.certificates.layout import (
    CertificateContent,
    HistoryEntry,
    Issuer,
    PrintedPerson,
    address_text,
    build_content,
)
from jumin.certificates.models import (
    CertificateIssuance,
    OfficialRequestGrant,
    ProtectionOrder,
    ProtectionOrderParty,
    ResidentPin,
)
from jumin.certificates.pdf import render_pdf
from jumin.certificates.schemas import (
    KioskCardIssueRequest,
    KioskIssueRequest,
    KioskSelection,
    OfficialIssueRequest,
    ProtectionOrderRequest,
    WideAreaIssueRequest,
    WindowIssueRequest,
)
from jumin.certificates.settings import load_settings
from jumin.certificates.widearea_models import WideAreaNotice
from jumin.core.errors import Conflict, DomainError, InvalidValue, NotFound, RuleViolation
from jumin.core.municipalities import load_master
from jumin.core.replication import format_instant, parse_instant
from jumin.core.widearea import IssuedNotice, RecordAnswer, RecordRequest, WideAreaProtected
from jumin.db import utcnow
from jumin.keys import lookup_hash
from jumin.network_client import NetworkClient
from jumin.registry import service as registry
from jumin.registry.domain import (
    EVENT_LABELS,
    EventKind,
    RecordStatus,
    RemovalReason,
    ResidentRecord,
    record_from_json,
)
from jumin.request_context import current_request_id

PURPOSE = "証明書の交付"
_CODE_PURPOSE = "certificate-verification-code"


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate just issued: the signed PDF to hand over (print or download) and its record.

    The PDF exists only here: the ledger keeps its hash, never the file, so a screen that
    offers "print" and "download" must do so from this object, in the same request.
    """

    issue_number: str
    pdf: bytes
    sha256: str
    fee_yen: int
    page_count: int
    channel: Channel
    kind: DocumentKind
    form: Form
    lg_code: str
    home_lg_code: str
    person_ids: tuple[int, ...]
    issue_date: dt.date
    issued_at: dt.datetime
    as_of: dt.date | None = None

    @property
    def file_name(self) -> str:
        """``131016-2026-0000001.pdf``: what a download should be called."""
        return f"{self.issue_number}.pdf"


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Everything decided before a number is taken: whom, what, for whom, by which channel."""

    ctx: registry.RegistryContext  # the home register, read as the acting party
    channel: Channel
    kind: DocumentKind
    form: Form
    items: frozenset[Item]
    persons: tuple[registry.RecordView, ...]
    head_name: str | None
    requester: Requester
    as_of: dt.date | None = None  # 基準日: the register of that date; None: of the issue date
    # 広域交付: the home's answer (its history lines, by its person ids) and the request it answered.
    histories: Mapping[int, tuple[HistoryEntry, ...]] | None = None
    wide_area: RecordRequest | None = None


# ---------------------------------------------------------------------------
# Reading the register


def _places(codes: Iterable[str]) -> dict[str, str]:
    """東京都千代田区 for 131016: the prefix an address is printed with."""
    master = load_master()
    found: dict[str, str] = {}
    for code in set(codes):
        entry = master.find(code)
        if entry is None:
            continue
        prefecture = master.find(entry.prefecture_code)
        found[code] = (prefecture.name if prefecture and prefecture.code != entry.code else "") + entry.name
    return found


def _place_codes(records: Iterable[ResidentRecord]) -> set[str]:
    codes: set[str] = set()
    for r in records:
        codes.add(r.address.lg_code)
        if r.foreign is not None:
            for a in r.foreign.alias_history:
                codes.add(a.recorded_lg_code)
                if a.deleted_lg_code:
                    codes.add(a.deleted_lg_code)
    return codes


def _check_as_of(as_of: dt.date | None, today: dt.date) -> None:
    if as_of is not None and as_of > today:
        raise InvalidValue(
            "基準日に将来の日付は指定できません。記載事項は発行日までのものを証明します。", field="as_of"
        )


def _load_persons(
    session: Session,
    ctx: registry.RegistryContext,
    person_ids: Sequence[int],
    kind: DocumentKind,
    *,
    on: dt.date | None = None,
) -> tuple[registry.RecordView, ...]:
    """The persons' records (as of ``on``), refused when the kind does not fit their status then."""
    if len(set(person_ids)) != len(person_ids):
        raise InvalidValue("同じ住民が重複して指定されています。", field="person_ids")
    views = tuple(
        registry.get_record(session, ctx=ctx, person_id=p, on=on, purpose=PURPOSE) for p in person_ids
    )
    for view in views:
        removed = view.record.status is RecordStatus.REMOVED
        if kind.for_removed and not removed:
            raise RuleViolation(
                f"住民 {view.person_id} の住民票は消除されていません。"
                f"{DocumentKind.RECORD_COPY.label}等を請求してください。",
                field="kind",
            )
        if not kind.for_removed and removed:
            raise RuleViolation(
                f"住民 {view.person_id} の住民票は消除されています (除票)。"
                f"{DocumentKind.REMOVED_RECORD_COPY.label}等を請求してください。",
                field="kind",
            )
    return views


def _check_form(form: Form, views: Sequence[registry.RecordView]) -> None:
    if form is Form.INDIVIDUAL and len(views) != 1:
        raise InvalidValue("個人票は1人ずつ発行します。住民を1人だけ指定してください。", field="form")
    households = {v.record.household_id for v in views}
    if len(households) > 1:
        raise RuleViolation(
            "世帯連記式には同じ世帯の住民だけを記載できます。別の世帯の住民は別の証明書にしてください。",
            field="person_ids",
        )


def _head_name(
    session: Session,
    ctx: registry.RegistryContext,
    views: Sequence[registry.RecordView],
    items: frozenset[Item],
    *,
    on: dt.date | None = None,
) -> str | None:
    if Item.HEAD_AND_RELATIONSHIP not in items:
        return None
    for v in views:
        if v.record.is_head:
            return v.record.name
    first = views[0].record
    if first.status is RecordStatus.REMOVED:
        return None  # the head at the time of removal is not recorded apart from the members
    household = registry.get_household(
        session, ctx=ctx, household_id=first.household_id, on=on, purpose=PURPOSE
    )
    head = next((m for m in household.members if m.person_id == household.head_person_id), None)
    return head.record.name if head else None


def _history(
    session: Session, ctx: registry.RegistryContext, person_id: int, places: dict[str, str]
) -> tuple[HistoryEntry, ...]:
    """The person's standing events, each with the address it set when it set one."""
    events = registry.events_of(session, ctx=ctx, person_id=person_id, purpose=PURPOSE)
    versions = sorted(
        (
            v
            for v in registry.history(session, ctx=ctx, person_id=person_id, purpose=PURPOSE)
            if v.superseded_at is None
        ),
        key=lambda v: v.valid_from,
    )
    new_address: dict[dt.date, str] = {}
    previous = None
    for v in versions:
        record = registry.version_summary(v)
        if record.address != previous:
            places.update(_places([record.address.lg_code]))
            new_address[v.valid_from] = address_text(record, places)
        previous = record.address
    entries = [
        HistoryEntry(
            effective_on=e.effective_on,
            notified_on=e.notified_on,
            label=EVENT_LABELS[EventKind(e.kind)],
            address=new_address.get(e.effective_on),
        )
        for e in sorted(events, key=lambda e: (e.effective_on, e.id))
        if e.cancelled_by_event_id is None and e.cancels_event_id is None
    ]
    return tuple(entries)


# ---------------------------------------------------------------------------
# Protection orders


def _order_view(order: ProtectionOrder, parties: Sequence[ProtectionOrderParty]) -> ProtectionOrderView:
    return ProtectionOrderView(
        order_id=order.id,
        lg_code=order.lg_code,
        person_id=order.person_id,
        reason=order.reason,
        valid_until=order.valid_until,
        registered_at=order.registered_at,
        registered_by=order.registered_by,
        ended_at=order.ended_at,
        parties=tuple(RestrictedParty(p.name, p.resident_code, p.organisation_code) for p in parties),
    )


def _active_orders(session: Session, person_ids: Sequence[int], today: dt.date) -> list[ProtectionOrderView]:
    views = [_order_view(o, p) for o, p in repository.orders_for(session, person_ids=person_ids)]
    return [v for v in views if v.active_on(today)]


def _refuse(
    session: Session,
    actor: Actor,
    error: Exception,
    *,
    target: str,
    detail: str,
    target_kind: str = "person",
) -> NoReturn:
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CERTIFICATE_REFUSED,
        target_kind=target_kind,
        target_id=target,
        outcome=Outcome.DENIED,
        purpose=PURPOSE,
        detail=detail,
    )
    raise error


def _check_protection(session: Session, prepared: _Prepared) -> None:
    """A registered order blocks its named parties at every channel, and the kiosk entirely."""
    ids = [v.person_id for v in prepared.persons]
    for order in _active_orders(session, ids, prepared.ctx.today):
        detail = f"protection_order={order.order_id} channel={prepared.channel.value}"
        if prepared.channel is Channel.KIOSK:
            _refuse(
                session,
                prepared.ctx.actor,
                KioskRefused(
                    "この世帯の証明書はコンビニ交付・キオスク端末では交付できません。市区町村の窓口で請求してください。"
                ),
                target=str(order.person_id),
                detail=detail,
            )
        if order.restricts(prepared.requester):
            _refuse(
                session,
                prepared.ctx.actor,
                ProtectedRecord(
                    f"住民 {order.person_id} には支援措置 (受付番号 {order.order_id}) が登録されており、"
                    "この請求者には交付・閲覧できません。監督職員に相談してください。"
                ),
                target=str(order.person_id),
                detail=detail,
            )


# ---------------------------------------------------------------------------
# The common path


def _issuer(lg_code: str) -> Issuer:
    m = load_settings().municipality(lg_code)
    return Issuer(lg_code=lg_code, name=m.name, mayor_title=m.mayor_title, mayor_name=m.mayor_name)


def _content(
    session: Session,
    prepared: _Prepared,
    *,
    issuer: Issuer,
    number: str,
    code: str,
    url: str,
    issue_date: dt.date,
) -> CertificateContent:
    records = [v.record for v in prepared.persons]
    places = _places(_place_codes(records))

    def history(person_id: int) -> tuple[HistoryEntry, ...]:
        if Item.HISTORY not in prepared.items:
            return ()
        if prepared.histories is not None:  # 広域交付: as the home register stated it
            return prepared.histories.get(person_id, ())
        return _history(session, prepared.ctx, person_id, places)

    printed = [PrintedPerson(v.record, history(v.person_id)) for v in prepared.persons]
    return build_content(
        kind=prepared.kind,
        form=prepared.form,
        persons=printed,
        items=prepared.items,
        head_name=prepared.head_name,
        issue_number=number,
        issue_date=issue_date,
        verification_code=code,
        verification_url=url,
        issuer=issuer,
        places=places,
        as_of=prepared.as_of,
    )


def _new_code() -> str:
    return "".join(secrets.choice(VERIFICATION_CODE_ALPHABET) for _ in range(VERIFICATION_CODE_LENGTH))


def _issue(session: Session, prepared: _Prepared, *, issuer_lg: str) -> IssuedCertificate:
    ctx = prepared.ctx
    now = ctx.now
    issue_date = ctx.today  # a Japanese calendar date, as every date of the register
    settings = load_settings()
    municipality = settings.municipality(issuer_lg)
    issuer = _issuer(issuer_lg)
    fonts = load_fonts()
    seq = repository.next_sequence(session, issuer_lg, issue_date.year)
    number = issue_number(issuer_lg, issue_date.year, seq)
    code = _new_code()
    url = f"{settings.verify_base_url}?no={number}&code={code}"
    content = _content(
        session, prepared, issuer=issuer, number=number, code=code, url=url, issue_date=issue_date
    )
    pdf, pages = render_pdf(fonts, content)
    signer = signing.signer_for(
        lg_code=issuer_lg, municipality=municipality.name, mayor_title=municipality.mayor_title, now=now
    )
    if signer.created:
        audit.record(
            session,
            actor=Actor.system(issuer_lg),
            action=AuditAction.CERTIFICATE_SIGNER_CREATED,
            target_kind="signing_certificate",
            target_id=signer.fingerprint,
            detail=signer.subject,
        )
    signed = signing.sign_pdf(pdf, signer, reason=f"{prepared.kind.label}の交付", location=municipality.name)
    sha = hashlib.sha256(signed).hexdigest()
    fee = municipality.fees.for_channel(prepared.channel)
    person_ids = tuple(v.person_id for v in prepared.persons)
    requester = prepared.requester
    repository.add_issuance(
        session,
        CertificateIssuance(
            issue_number=number,
            lg_code=issuer_lg,
            home_lg_code=ctx.lg_code,
            channel=prepared.channel.value,
            document_kind=prepared.kind.value,
            form=prepared.form.value,
            items=",".join(sorted(i.value for i in prepared.items)),
            requester_kind=requester.kind.value,
            requester_name=requester.name,
            requester_person_id=requester.person_id,
            requester_organisation=requester.organisation_code,
            authority=requester.authority,
            reason=requester.reason,
            task_code=requester.task_code,
            actor_kind=ctx.actor.kind.value,
            actor_id=ctx.actor.actor_id,
            actor_organisation=ctx.actor.organisation_code,
            fee_yen=fee,
            page_count=pages,
            issue_date=issue_date,
            issued_at=now,
            as_of=prepared.as_of,
            document_sha256=sha,
            verification_code_hash=lookup_hash(code, _CODE_PURPOSE),
            signer_fingerprint=signer.fingerprint,
            request_id=current_request_id(),
        ),
        person_ids,
    )
    detail = (
        f"channel={prepared.channel.value} kind={prepared.kind.value} form={prepared.form.value} "
        f"persons={','.join(map(str, person_ids))} requester={requester.kind.value} fee={fee} sha256={sha}"
        + (f" as_of={prepared.as_of.isoformat()}" if prepared.as_of else "")
        + (f" home={ctx.lg_code} request={prepared.wide_area.request_id}" if prepared.wide_area else "")
    )
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.CERTIFICATE_ISSUED,
        target_kind="certificate",
        target_id=number,
        purpose=requester.task_code or PURPOSE,
        detail=detail,
    )
    if prepared.wide_area is not None:
        # The home keeps its own record of the copy: told through the network by the relay,
        # from this row written in the issuance's own transaction.
        _queue_issued_notice(
            session,
            IssuedNotice(
                request_id=prepared.wide_area.request_id,
                issuer_lg_code=issuer_lg,
                home_lg_code=ctx.lg_code,
                issue_number=number,
                issue_date=issue_date,
                issued_at=format_instant(now),
                fee_yen=fee,
                page_count=pages,
                document_sha256=sha,
                form=prepared.form.value,
                items=tuple(sorted(i.value for i in prepared.items)),
                person_ids=person_ids,
                clerk=prepared.wide_area.clerk,
            ),
            now,
        )
    elif ctx.actor.organisation_code != ctx.lg_code:
        # The home end of 公用請求: the municipality whose register was read
        # has its own entry in its own chain, naming who took what.
        audit.record(
            session,
            actor=Actor.system(ctx.lg_code),
            action=AuditAction.CERTIFICATE_RECORD_PROVIDED,
            target_kind="certificate",
            target_id=number,
            purpose=requester.task_code or PURPOSE,
            detail=(
                f"{CHANNEL_LABELS[prepared.channel]} issued_by={issuer_lg} "
                f"actor={ctx.actor.kind.value}:{ctx.actor.actor_id}@{ctx.actor.organisation_code} "
                f"persons={','.join(map(str, person_ids))}"
            ),
        )
    return IssuedCertificate(
        issue_number=number,
        pdf=signed,
        sha256=sha,
        fee_yen=fee,
        page_count=pages,
        channel=prepared.channel,
        kind=prepared.kind,
        form=prepared.form,
        lg_code=issuer_lg,
        home_lg_code=ctx.lg_code,
        person_ids=person_ids,
        issue_date=issue_date,
        issued_at=now,
        as_of=prepared.as_of,
    )


# ---------------------------------------------------------------------------
# Window (窓口)


def _window_requester(
    session: Session,
    ctx: registry.RegistryContext,
    request: WindowIssueRequest,
    persons: Sequence[registry.RecordView],
) -> Requester:
    given = request.requester
    requester = Requester(
        kind=given.kind,
        name=given.name.strip(),
        resident_code=given.resident_code,
        person_id=given.person_id,
        authority=given.authority,
        reason=given.reason,
    )
    if requester.kind is RequesterKind.OFFICIAL:
        raise InvalidValue(
            "公用請求は機関のAPI (POST /certificates/official) から行ってください。", field="requester.kind"
        )
    check_requester(requester)
    if requester.kind in (RequesterKind.SELF, RequesterKind.HOUSEHOLD_MEMBER):
        assert requester.person_id is not None
        own = registry.get_record(session, ctx=ctx, person_id=requester.person_id, purpose=PURPOSE).record
        requester = replace(requester, name=own.name, resident_code=own.resident_code)
        ids = {v.person_id for v in persons}
        if request.as_of is not None:
            # Who may ask is decided by the register today, whatever date is certified.
            persons = [
                registry.get_record(session, ctx=ctx, person_id=p, purpose=PURPOSE) for p in sorted(ids)
            ]
        if requester.kind is RequesterKind.SELF and requester.person_id not in ids:
            raise RuleViolation(
                "本人の請求ですが、請求者が記載する住民に含まれていません。請求者の区分を確認してください。",
                field="requester.kind",
            )
        if requester.kind is RequesterKind.HOUSEHOLD_MEMBER and (
            own.status is not RecordStatus.LIVE
            or any(v.record.household_id != own.household_id for v in persons)
        ):
            raise RuleViolation(
                "請求者は記載する住民と同じ世帯の住民ではありません。代理人または第三者として請求してください。",
                field="requester.kind",
            )
    return requester


def _prepare_window(
    session: Session, ctx: registry.RegistryContext, request: WindowIssueRequest
) -> _Prepared:
    as_of = request.as_of
    _check_as_of(as_of, ctx.today)
    if request.household_id is not None:
        if request.kind.for_removed:
            raise InvalidValue("除票は住民ID (person_ids) で指定してください。", field="household_id")
        household = registry.get_household(
            session, ctx=ctx, household_id=request.household_id, on=as_of, purpose=PURPOSE
        )
        if not household.members:
            when = "基準日に" if as_of else "現在"
            raise RuleViolation(f"この世帯には{when}住民がいません。", field="household_id")
        persons = tuple(household.members)
    else:
        assert request.person_ids is not None
        persons = _load_persons(session, ctx, request.person_ids, request.kind, on=as_of)
    _check_form(request.form, persons)
    requester = _window_requester(session, ctx, request, persons)
    items = select_items(
        request.kind,
        include=request.include,
        omit=request.omit,
        requester=requester.kind,
        channel=Channel.WINDOW,
    )
    prepared = _Prepared(
        ctx=ctx,
        channel=Channel.WINDOW,
        kind=request.kind,
        form=request.form,
        items=items,
        persons=persons,
        head_name=_head_name(session, ctx, persons, items, on=as_of),
        requester=requester,
        as_of=as_of,
    )
    _check_protection(session, prepared)
    return prepared


def issue_at_window(
    session: Session, *, ctx: registry.RegistryContext, request: WindowIssueRequest
) -> IssuedCertificate:
    """窓口交付: a clerk issues for the requester standing at the window.

    ``ctx`` is the clerk's (``context(actor=..., lg_code=<the clerk's municipality>)``);
    ``request`` names the persons (some members) or the household (all of them), the
    document, the items, the 基準日 (``as_of``, optional) and the requester as the clerk
    checked them. Refuses with a ``DomainError`` (nothing issued, no number used) when a
    rule forbids it; a protection-order refusal is audited and kept. Returns the signed
    PDF to print or download (see :class:`IssuedCertificate`), already in the ledger.
    """
    return _issue(session, _prepare_window(session, ctx, request), issuer_lg=ctx.lg_code)


@dataclass(frozen=True, slots=True)
class Preview:
    """What a certificate would print, row by row, and what it would cost."""

    content: CertificateContent  # header rows, a section per person, the 認証文
    fee_yen: int


def preview_at_window(
    session: Session, *, ctx: registry.RegistryContext, request: WindowIssueRequest
) -> Preview:
    """What :func:`issue_at_window` would print for the same request, without issuing it.

    The same checks run (requester, items, protection orders, a character no font can
    print), so a preview that succeeds is a request that can be issued; no number is
    taken and nothing enters the ledger. The read of personal data is audited.
    """
    prepared = _prepare_window(session, ctx, request)
    content = _content(
        session,
        prepared,
        issuer=_issuer(ctx.lg_code),
        number="(未発行)",
        code="",
        url="",
        issue_date=ctx.today,
    )
    fonts = load_fonts()
    for text in content.texts():
        fonts.check(text)
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.CERTIFICATE_PREVIEWED,
        target_kind="person",
        target_id=",".join(str(v.person_id) for v in prepared.persons),
        purpose=PURPOSE,
        detail=f"kind={prepared.kind.value} requester={prepared.requester.kind.value}",
    )
    fee = load_settings().municipality(ctx.lg_code).fees.for_channel(Channel.WINDOW)
    return Preview(content, fee)


def preview_pdf(preview: Preview) -> bytes:
    """The preview as pages (見本): laid out as the certificate will be, marked as no certificate.

    Same rows, same pagination (``ページ x/y``), but 「見本」 across every page, no issue
    number, QR code or seal, unsigned and in no ledger: for showing the clerk what will be
    printed. The certificate itself comes only from :func:`issue_at_window`.
    """
    pdf, _pages = render_pdf(load_fonts(), preview.content, specimen=True)
    return pdf


# ---------------------------------------------------------------------------
# Kiosk (コンビニ交付)


def issue_at_kiosk(
    session: Session,
    *,
    network: NetworkClient,
    request: KioskIssueRequest,
    authenticator: ResidentAuthenticator[PinCredentials] | None = None,
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """コンビニ交付 for a resident without a card: resident code + the PIN set at the window."""
    resident = (authenticator or PinAuthenticator(network, now=now)).authenticate(
        session,
        lg_code=request.lg_code,
        credentials=PinCredentials(resident_code=request.resident_code, pin=request.pin),
    )
    return _kiosk(session, network=network, resident=resident, selection=request, now=now)


def issue_at_kiosk_with_card(
    session: Session,
    *,
    network: NetworkClient,
    request: KioskCardIssueRequest,
    card: CardCredentials,
    authenticator: ResidentAuthenticator[CardCredentials] | None = None,
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """コンビニ交付 with the My Number Card: ``card`` is a login the card service verified."""
    resident = (authenticator or CardAuthenticator(network)).authenticate(
        session, lg_code=request.lg_code, credentials=card
    )
    return _kiosk(session, network=network, resident=resident, selection=request, now=now)


def _kiosk(
    session: Session,
    *,
    network: NetworkClient,
    resident: AuthenticatedResident,
    selection: KioskSelection,
    now: dt.datetime | None,
) -> IssuedCertificate:
    """The kiosk's rules once the resident is known: household form only; refusals audited."""
    ctx = registry.RegistryContext(
        actor=resident_actor(resident.lg_code, resident.person_id),
        lg_code=resident.lg_code,
        network=network,
        now=now or utcnow(),
    )
    target = str(resident.person_id)
    if selection.kind is not DocumentKind.RECORD_COPY or selection.form is not Form.HOUSEHOLD:
        _refuse(
            session,
            ctx.actor,
            KioskRefused("コンビニ交付・キオスク端末で交付できるのは住民票の写し (世帯連記式) だけです。"),
            target=target,
            detail=f"kind={selection.kind.value} form={selection.form.value}",
        )
    own = registry.get_record(session, ctx=ctx, person_id=resident.person_id, purpose=PURPOSE)
    if own.record.status is RecordStatus.REMOVED:
        why = (
            "死亡により消除された方の証明書は"
            if own.record.removal_reason is RemovalReason.DEATH
            else "消除された住民票 (除票) の証明書は"
        )
        _refuse(
            session,
            ctx.actor,
            KioskRefused(
                f"{why}コンビニ交付・キオスク端末では交付できません。市区町村の窓口で請求してください。"
            ),
            target=target,
            detail=f"removed reason={own.record.removal_reason}",
        )
    if selection.whole_household:
        persons = tuple(
            registry.get_household(
                session, ctx=ctx, household_id=own.record.household_id, purpose=PURPOSE
            ).members
        )
    else:
        persons = (own,)
    for view in persons:
        if view.record.planned_move_out is not None:
            _refuse(
                session,
                ctx.actor,
                KioskRefused(
                    "転出届を提出された方が含まれるため、コンビニ交付・キオスク端末では交付できません。"
                    "市区町村の窓口で請求してください。"
                ),
                target=str(view.person_id),
                detail="move-out filed",
            )
    requester = Requester(
        kind=RequesterKind.SELF,
        name=own.record.name,
        resident_code=own.record.resident_code,
        person_id=own.person_id,
    )
    items = select_items(
        selection.kind,
        include=selection.include,
        omit=selection.omit,
        requester=requester.kind,
        channel=Channel.KIOSK,
    )
    prepared = _Prepared(
        ctx=ctx,
        channel=Channel.KIOSK,
        kind=selection.kind,
        form=Form.HOUSEHOLD,
        items=items,
        persons=persons,
        head_name=_head_name(session, ctx, persons, items),
        requester=requester,
    )
    _check_protection(session, prepared)
    return _issue(session, prepared, issuer_lg=ctx.lg_code)


def set_pin(session: Session, *, ctx: registry.RegistryContext, person_id: int, pin: str) -> dt.datetime:
    """The window sets (or resets, unlocking) a resident's kiosk PIN after checking identity."""
    check_pin_format(pin)
    view = registry.get_record(session, ctx=ctx, person_id=person_id, purpose="コンビニ交付の暗証番号設定")
    if view.record.status is not RecordStatus.LIVE:
        raise RuleViolation("消除された住民には暗証番号を設定できません。", field="person_id")
    now = ctx.now
    row = repository.pin_for(session, person_id, lock=True)
    if row is None:
        repository.add_pin(
            session,
            ResidentPin(
                lg_code=ctx.lg_code,
                person_id=person_id,
                pin_hash=hash_pin(person_id, pin),
                failed_attempts=0,
                locked_at=None,
                set_at=now,
                set_by=ctx.actor.actor_id,
            ),
        )
    else:
        row.pin_hash = hash_pin(person_id, pin)
        row.failed_attempts = 0
        row.locked_at = None
        row.set_at = now
        row.set_by = ctx.actor.actor_id
        session.flush()
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.RESIDENT_PIN_SET,
        target_kind="person",
        target_id=str(person_id),
    )
    return now


# ---------------------------------------------------------------------------
# Wide-area (広域交付) and official requests (公用請求)


def _home_context(ctx: registry.RegistryContext, home_lg_code: str) -> registry.RegistryContext:
    """The home register, read by the acting party: the registry audits the read under them."""
    return replace(ctx, lg_code=home_lg_code)


def _by_resident_code(
    session: Session, ctx: registry.RegistryContext, resident_code: str, *, include_removed: bool
) -> registry.RecordView:
    found = registry.search(
        session,
        ctx=ctx,
        resident_code=resident_code,
        include_removed=include_removed,
        limit=5,
        purpose=PURPOSE,
    )
    if not found.results:
        raise NotFound(
            f"地方公共団体 {ctx.lg_code} の住民基本台帳にこの住民票コードの住民はいません。",
            field="resident_code",
        )
    live = [v for v in found.results if v.record.status is RecordStatus.LIVE]
    return (live or list(found.results))[-1]


def issue_wide_area(
    session: Session, *, ctx: registry.RegistryContext, request: WideAreaIssueRequest
) -> IssuedCertificate:
    """広域交付: this municipality's clerk issues a record copy for another's resident.

    The home register is asked through the national network (``ctx.network``), never
    read here. What the rules of this window decide (not one's own resident, no 本籍 or
    個人番号) is refused before anything leaves; what the home decides (not a resident
    there, a protection order) comes back as its refusal, audited here too. The copy is
    issued by this municipality, signed with its key, its fee; the home is told by the
    relay (a notice queued in this transaction).
    """
    if request.home_lg_code == ctx.lg_code:
        raise InvalidValue(
            "自団体の住民には窓口交付 (POST /certificates/window) を使ってください。", field="home_lg_code"
        )
    items = select_items(
        DocumentKind.RECORD_COPY,
        include=request.include,
        omit=request.omit,
        requester=RequesterKind.SELF,
        channel=Channel.WIDE_AREA,
    )
    if request.form is Form.INDIVIDUAL and request.whole_household:
        raise InvalidValue("個人票は1人ずつ発行します。本人のみを請求してください。", field="form")
    asked = RecordRequest(
        request_id=secrets.token_hex(16),
        issuer_lg_code=ctx.lg_code,
        home_lg_code=request.home_lg_code,
        resident_code=request.resident_code,
        whole_household=request.whole_household,
        form=request.form.value,
        include=tuple(i.value for i in request.include),
        omit=tuple(i.value for i in request.omit),
        clerk=f"{ctx.actor.kind.value}:{ctx.actor.actor_id}",
    )
    try:
        answer = ctx.network.request_wide_area_record(request=asked)
    except DomainError as exc:
        _wide_area_refused(session, ctx, asked, exc)
    if not {i.value for i in items} >= set(answer.items):
        raise InvalidValue("住所地の回答に請求していない項目が含まれています。", field="include")
    home = _home_context(ctx, request.home_lg_code)
    persons = _provided_persons(answer, home)
    _check_form(request.form, persons)
    own = next((v for v in persons if v.person_id == answer.subject_person_id), persons[0])
    requester = Requester(
        kind=RequesterKind.SELF,
        name=own.record.name,
        resident_code=request.resident_code,
        person_id=own.person_id,
    )
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.CERTIFICATE_WIDE_AREA_REQUESTED,
        target_kind="resident_code",
        target_id=request.resident_code,
        purpose=PURPOSE,
        detail=f"home={request.home_lg_code} request={asked.request_id} persons={len(persons)}",
    )
    prepared = _Prepared(
        ctx=home,
        channel=Channel.WIDE_AREA,
        kind=DocumentKind.RECORD_COPY,
        form=request.form,
        items=items,
        persons=persons,
        head_name=answer.head_name if Item.HEAD_AND_RELATIONSHIP in items else None,
        requester=requester,
        histories={p.person_id: tuple(_history_entry(h) for h in p.history or ()) for p in answer.persons},
        wide_area=asked,
    )
    return _issue(session, prepared, issuer_lg=ctx.lg_code)


def _wide_area_refused(
    session: Session, ctx: registry.RegistryContext, asked: RecordRequest, error: DomainError
) -> NoReturn:
    """The home's or the network's refusal, audited here as well; a protection order as such."""
    detail = (
        f"channel=wide_area home={asked.home_lg_code} request={asked.request_id} problem={error.type_slug}"
    )
    if isinstance(error, WideAreaProtected):
        _refuse(
            session,
            ctx.actor,
            ProtectedRecord(error.detail, field="resident_code"),
            target=asked.resident_code,
            target_kind="resident_code",
            detail=detail,
        )
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.CERTIFICATE_WIDE_AREA_REQUESTED,
        target_kind="resident_code",
        target_id=asked.resident_code,
        outcome=Outcome.FAILURE if error.status >= 500 else Outcome.DENIED,
        purpose=PURPOSE,
        detail=detail,
    )
    raise error


def _provided_persons(
    answer: RecordAnswer, home: registry.RegistryContext
) -> tuple[registry.RecordView, ...]:
    """The home's records as views of its register at the moment it answered (ids are the home's)."""
    at = parse_instant(answer.provided_at) or home.now
    try:
        return tuple(
            registry.RecordView(
                person_id=p.person_id,
                lg_code=answer.home_lg_code,
                version=0,  # the home's version numbers stay at home
                valid_from=home.today,
                valid_to=None,
                recorded_at=at,
                record=record_from_json(p.record),
            )
            for p in answer.persons
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidValue("住所地の回答の住民票の形式が正しくありません。", field="persons") from exc


def _history_entry(d: Mapping[str, object]) -> HistoryEntry:
    notified = d.get("notified_on")
    address = d.get("address")
    return HistoryEntry(
        effective_on=dt.date.fromisoformat(str(d["effective_on"])),
        notified_on=dt.date.fromisoformat(notified) if isinstance(notified, str) else None,
        label=str(d["label"]),
        address=address if isinstance(address, str) else None,
    )


def _queue_issued_notice(session: Session, notice: IssuedNotice, now: dt.datetime) -> None:
    widearea_repository.add(
        session,
        WideAreaNotice(
            issuer_lg_code=notice.issuer_lg_code,
            home_lg_code=notice.home_lg_code,
            issue_number=notice.issue_number,
            payload=json.dumps(notice.as_json(), ensure_ascii=False, sort_keys=True),
            created_at=now,
            attempts=0,
        ),
    )


# The home end of 広域交付 (certificates.widearea) reads its own register with the same rules.
by_resident_code = _by_resident_code
active_orders = _active_orders
head_name = _head_name
history_entries = _history


def _check_official(
    session: Session, ctx: registry.RegistryContext, request: OfficialIssueRequest
) -> OfficialTask:
    """The agency holds a grant of this municipality for the task, and the task allows the request.

    Each refusal is audited under the agency and kept (evidence of a request outside its
    purpose), as the national network does for its statutory tasks.
    """
    agency = ctx.actor.organisation_code
    task = load_settings().official_task(request.task_code)
    grant = repository.official_grant(
        session, lg_code=request.lg_code, agency_code=agency, task_code=request.task_code
    )
    detail = f"official task={request.task_code[:64]} kind={request.kind.value}"
    refusal: OfficialTaskNotGranted | None = None
    if task is None:
        refusal = OfficialTaskNotGranted(
            f"公用請求の事務「{request.task_code}」は登録されていません。", field="task_code"
        )
    elif grant is None or grant.revoked_at is not None:
        refusal = OfficialTaskNotGranted(
            f"この機関は地方公共団体 {request.lg_code} に事務「{task.title}」({task.code}) の公用請求を"
            "認められていません。請求先の市区町村に事務の登録を依頼してください。",
            field="task_code",
        )
    else:
        try:
            task.check(request.kind, request.include)
        except OfficialTaskNotGranted as exc:
            refusal = exc
    if refusal is not None:
        _refuse(
            session,
            ctx.actor,
            refusal,
            target=request.resident_code,
            target_kind="resident_code",
            detail=detail,
        )
    assert task is not None
    return task


def _organisation_name(session: Session, code: str) -> str:
    for org in accounts.list_organisations(session):
        if org.code == code:
            return org.name
    return code


def issue_official(
    session: Session, *, ctx: registry.RegistryContext, request: OfficialIssueRequest
) -> IssuedCertificate:
    """公用請求: an agency client's request for a resident of ``request.lg_code``.

    ``ctx`` carries the agency client as actor and the resident's municipality as
    ``lg_code``. The agency must hold that municipality's grant for ``task_code``
    (:func:`grant_official_task`), and the task must allow the document and the items.
    The home municipality issues (its mayor certifies, its fee — usually ¥0 — applies).
    """
    _check_as_of(request.as_of, ctx.today)
    _check_official(session, ctx, request)
    home = _home_context(ctx, request.lg_code)
    own = _by_resident_code(session, home, request.resident_code, include_removed=request.kind.for_removed)
    person_ids = [own.person_id]
    if request.whole_household and not request.kind.for_removed:
        then = own
        if request.as_of is not None:
            then = registry.get_record(
                session, ctx=home, person_id=own.person_id, on=request.as_of, purpose=PURPOSE
            )
        members = registry.get_household(
            session, ctx=home, household_id=then.record.household_id, on=request.as_of, purpose=PURPOSE
        ).members
        person_ids = [m.person_id for m in members] or person_ids
    persons = _load_persons(session, home, person_ids, request.kind, on=request.as_of)
    _check_form(request.form, persons)
    agency = ctx.actor.organisation_code
    requester = Requester(
        kind=RequesterKind.OFFICIAL,
        name=_organisation_name(session, agency),
        organisation_code=agency,
        reason=request.reason,
        task_code=request.task_code,
    )
    items = select_items(
        request.kind,
        include=request.include,
        omit=request.omit,
        requester=requester.kind,
        channel=Channel.OFFICIAL,
    )
    prepared = _Prepared(
        ctx=home,
        channel=Channel.OFFICIAL,
        kind=request.kind,
        form=request.form,
        items=items,
        persons=persons,
        head_name=_head_name(session, home, persons, items, on=request.as_of),
        requester=requester,
        as_of=request.as_of,
    )
    _check_protection(session, prepared)
    return _issue(session, prepared, issuer_lg=request.lg_code)


# ---------------------------------------------------------------------------
# Grants of official-request tasks (which agencies may make 公用請求 here, for what)


@dataclass(frozen=True, slots=True)
class OfficialGrantView:
    lg_code: str
    agency_code: str
    task_code: str
    task_title: str
    granted_at: dt.datetime
    granted_by: str
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _grant_view(row: OfficialRequestGrant) -> OfficialGrantView:
    task = load_settings().official_task(row.task_code)
    return OfficialGrantView(
        lg_code=row.lg_code,
        agency_code=row.agency_code,
        task_code=row.task_code,
        task_title=task.title if task else "",
        granted_at=row.granted_at,
        granted_by=row.granted_by,
        revoked_at=row.revoked_at,
    )


def official_tasks() -> tuple[OfficialTask, ...]:
    """The tasks 公用請求 may be made for, as configured (``[official_tasks.*]``)."""
    return load_settings().official_tasks()


def grant_official_task(
    session: Session, *, ctx: registry.RegistryContext, agency_code: str, task_code: str
) -> OfficialGrantView:
    """Accept 公用請求 from ``agency_code`` for ``task_code`` at ``ctx.lg_code`` (a supervisor's act).

    Granting an active grant again changes nothing; a revoked one is granted anew.
    """
    task = load_settings().official_task(task_code)
    if task is None:
        raise InvalidValue(f"公用請求の事務「{task_code}」は登録されていません。", field="task_code")
    agencies = {o.code for o in accounts.list_organisations(session) if o.kind is OrganisationKind.AGENCY}
    if agency_code not in agencies:
        raise NotFound(f"機関コード「{agency_code}」の機関は登録されていません。", field="agency_code")
    row = repository.official_grant(
        session, lg_code=ctx.lg_code, agency_code=agency_code, task_code=task_code, lock=True
    )
    if row is not None and row.revoked_at is None:
        return _grant_view(row)
    if row is None:
        row = OfficialRequestGrant(
            lg_code=ctx.lg_code,
            agency_code=agency_code,
            task_code=task_code,
            granted_at=ctx.now,
            granted_by=ctx.actor.actor_id,
        )
        try:
            with session.begin_nested():
                repository.add_official_grant(session, row)
        except IntegrityError as exc:  # the same grant made at the same moment
            raise Conflict("同じ登録が同時に行われました。再度お試しください。", field="task_code") from exc
    else:
        row.revoked_at = None
        row.revoked_by = None
        row.granted_at = ctx.now
        row.granted_by = ctx.actor.actor_id
        session.flush()
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.AGENCY_TASK_GRANTED,
        target_kind="organisation",
        target_id=agency_code,
        purpose=task_code,
        detail=f"certificates official request lg={ctx.lg_code}",
    )
    return _grant_view(row)


def revoke_official_task(
    session: Session, *, ctx: registry.RegistryContext, agency_code: str, task_code: str
) -> OfficialGrantView:
    """Stop accepting 公用請求 from ``agency_code`` for ``task_code``; the grant is kept, revoked."""
    row = repository.official_grant(
        session, lg_code=ctx.lg_code, agency_code=agency_code, task_code=task_code, lock=True
    )
    if row is None or row.revoked_at is not None:
        raise NotFound(
            f"機関「{agency_code}」に事務「{task_code}」の公用請求の登録はありません。", field="task_code"
        )
    row.revoked_at = ctx.now
    row.revoked_by = ctx.actor.actor_id
    session.flush()
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.AGENCY_TASK_REVOKED,
        target_kind="organisation",
        target_id=agency_code,
        purpose=task_code,
        detail=f"certificates official request lg={ctx.lg_code}",
    )
    return _grant_view(row)


def official_grants(
    session: Session, *, ctx: registry.RegistryContext, agency_code: str | None = None
) -> list[OfficialGrantView]:
    """The grants of ``ctx.lg_code`` (revoked ones too), optionally of one agency."""
    return [
        _grant_view(r)
        for r in repository.official_grants(session, lg_code=ctx.lg_code, agency_code=agency_code)
    ]


def context(*, actor: Actor, lg_code: str, network: NetworkClient) -> registry.RegistryContext:
    """The register as ``actor`` reads it for ``lg_code`` (the API and CLI build theirs here)."""
    return registry.RegistryContext(actor=actor, lg_code=lg_code, network=network)


# ---------------------------------------------------------------------------
# Protection orders (支援措置)


def register_protection_order(
    session: Session, *, ctx: registry.RegistryContext, request: ProtectionOrderRequest
) -> ProtectionOrderView:
    view = registry.get_record(session, ctx=ctx, person_id=request.person_id, purpose="支援措置の登録")
    if request.valid_until is not None and request.valid_until < ctx.today:
        raise InvalidValue("期間の終期に過去の日付は指定できません。", field="valid_until")
    order = ProtectionOrder(
        lg_code=ctx.lg_code,
        person_id=view.person_id,
        reason=request.reason,
        valid_until=request.valid_until,
        registered_at=ctx.now,
        registered_by=ctx.actor.actor_id,
    )
    parties = [
        ProtectionOrderParty(
            name=p.name.strip(), resident_code=p.resident_code, organisation_code=p.organisation_code
        )
        for p in request.parties
    ]
    repository.add_order(session, order, parties)
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.PROTECTION_ORDER_REGISTERED,
        target_kind="person",
        target_id=str(view.person_id),
        detail=f"order={order.id} parties={len(parties)} valid_until={request.valid_until}",
    )
    return _order_view(order, parties)


def protection_orders(
    session: Session, *, ctx: registry.RegistryContext, person_id: int | None
) -> list[ProtectionOrderView]:
    if person_id is not None:
        registry.get_record(session, ctx=ctx, person_id=person_id, purpose="支援措置の確認")
    rows = repository.orders_for(
        session, person_ids=None if person_id is None else [person_id], lg_code=ctx.lg_code
    )
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.PROTECTION_ORDER_VIEWED,
        target_kind="person" if person_id else "register",
        target_id=str(person_id) if person_id else "protection_orders",
        detail=f"orders={len(rows)}",
    )
    return [_order_view(o, p) for o, p in rows]


def end_protection_order(
    session: Session, *, ctx: registry.RegistryContext, order_id: int
) -> ProtectionOrderView:
    order = repository.order(session, order_id)
    if order is None or order.lg_code != ctx.lg_code:
        raise NotFound(f"支援措置 {order_id} はこの団体に登録されていません。", field="order_id")
    if order.ended_at is not None:
        raise RuleViolation("この支援措置は既に終了しています。", field="order_id")
    order.ended_at = ctx.now
    order.ended_by = ctx.actor.actor_id
    session.flush()
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.PROTECTION_ORDER_ENDED,
        target_kind="person",
        target_id=str(order.person_id),
        detail=f"order={order.id}",
    )
    parties = next(
        p for o, p in repository.orders_for(session, person_ids=[order.person_id]) if o.id == order.id
    )
    return _order_view(order, parties)


# ---------------------------------------------------------------------------
# The ledger and statistics


@dataclass(frozen=True, slots=True)
class IssuanceView:
    issue_number: str
    lg_code: str
    home_lg_code: str
    channel: Channel
    kind: DocumentKind
    form: Form
    items: tuple[Item, ...]
    person_ids: tuple[int, ...]
    requester_kind: RequesterKind
    requester_name: str
    authority: str | None  # an agent's 委任状等, as the clerk recorded it
    reason: str | None
    task_code: str | None
    issued_by: str
    fee_yen: int
    page_count: int
    issue_date: dt.date
    issued_at: dt.datetime
    as_of: dt.date | None
    document_sha256: str


def _issuance_view(row: CertificateIssuance, person_ids: Sequence[int]) -> IssuanceView:
    return IssuanceView(
        issue_number=row.issue_number,
        lg_code=row.lg_code,
        home_lg_code=row.home_lg_code,
        channel=Channel(row.channel),
        kind=DocumentKind(row.document_kind),
        form=Form(row.form),
        items=tuple(Item(i) for i in row.items.split(",") if i),
        person_ids=tuple(person_ids),
        requester_kind=RequesterKind(row.requester_kind),
        requester_name=row.requester_name,
        authority=row.authority,
        reason=row.reason,
        task_code=row.task_code,
        issued_by=f"{row.actor_kind}:{row.actor_id}@{row.actor_organisation}",
        fee_yen=row.fee_yen,
        page_count=row.page_count,
        issue_date=row.issue_date,
        issued_at=row.issued_at,
        as_of=row.as_of,
        document_sha256=row.document_sha256,
    )


def list_issuances(
    session: Session,
    *,
    actor: Actor,
    lg_code: str,
    since: dt.date | None = None,
    until: dt.date | None = None,
    channel: Channel | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[IssuanceView]]:
    total, rows = repository.issuances(
        session,
        lg_code=lg_code,
        since=since,
        until=until,
        channel=channel.value if channel else None,
        limit=limit,
        offset=offset,
    )
    persons = repository.persons_of_many(session, [r.id for r in rows])
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CERTIFICATE_ISSUANCES_VIEWED,
        target_kind="register",
        target_id="certificate_issuances",
        detail=f"results={len(rows)} total={total}",
    )
    return total, [_issuance_view(r, persons[r.id]) for r in rows]


def get_issuance(session: Session, *, actor: Actor, lg_code: str, number: str) -> IssuanceView:
    row = repository.issuance_by_number(session, number)
    if row is None or lg_code not in (row.lg_code, row.home_lg_code):
        raise NotFound(f"発行番号 {number} の交付記録はこの団体にありません。", field="issue_number")
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CERTIFICATE_ISSUANCES_VIEWED,
        target_kind="certificate",
        target_id=number,
    )
    return _issuance_view(row, repository.persons_of(session, row.id))


@dataclass(frozen=True, slots=True)
class StatisticsView:
    rows: tuple[tuple[Channel, DocumentKind, int, int], ...]

    @property
    def total_count(self) -> int:
        return sum(r[2] for r in self.rows)

    @property
    def total_fees(self) -> int:
        return sum(r[3] for r in self.rows)


def statistics(
    session: Session, *, lg_code: str, since: dt.date | None = None, until: dt.date | None = None
) -> StatisticsView:
    """Counts and fees of what a municipality issued, by channel and kind (no personal data)."""
    rows = repository.statistics(session, lg_code=lg_code, since=since, until=until)
    return StatisticsView(tuple((Channel(c), DocumentKind(k), n, fees) for c, k, n, fees in rows))


# ---------------------------------------------------------------------------
# Verification (public)


VERIFIER = "public-verification"


def _verifier(lg_code: str | None) -> Actor:
    return Actor(kind=ActorKind.SYSTEM, actor_id=VERIFIER, organisation_code=lg_code or "public")


@dataclass(frozen=True, slots=True)
class VerificationView:
    issue_number: str
    kind: DocumentKind
    lg_code: str
    municipality: str
    issue_date: dt.date
    issued_at: dt.datetime
    page_count: int
    document_sha256: str


def _verification_view(row: CertificateIssuance) -> VerificationView:
    return VerificationView(
        issue_number=row.issue_number,
        kind=DocumentKind(row.document_kind),
        lg_code=row.lg_code,
        municipality=load_settings().municipality(row.lg_code).name,
        issue_date=row.issue_date,
        issued_at=row.issued_at,
        page_count=row.page_count,
        document_sha256=row.document_sha256,
    )


def verify_number(session: Session, *, number: str, code: str) -> VerificationView:
    """Was a certificate with this number issued? Only with its printed code, so numbers
    cannot be enumerated; a wrong code and an unknown number are the same answer."""
    row = repository.issuance_by_number(session, number.strip())
    normalized = normalize_verification_code(code)
    known = row is not None and secrets.compare_digest(
        row.verification_code_hash, lookup_hash(normalized, _CODE_PURPOSE)
    )
    audit.record(
        session,
        actor=_verifier(row.lg_code if row is not None else None),
        action=AuditAction.CERTIFICATE_VERIFIED,
        target_kind="certificate",
        target_id=number.strip()[:64],
        outcome=Outcome.SUCCESS if known else Outcome.FAILURE,
        detail="by number",
    )
    if row is None or not known:
        raise UnknownCertificate(
            "この発行番号と検証コードの組み合わせで発行された証明書はありません。", field="no"
        )
    return _verification_view(row)


@dataclass(frozen=True, slots=True)
class DocumentVerification:
    authentic: bool
    sha256: str
    reasons: tuple[str, ...]
    signature: signing.SignatureCheck
    issuance: VerificationView | None


def verify_document(session: Session, *, pdf: bytes, via: str = "upload") -> DocumentVerification:
    """Authentic = this exact file was issued (hash in the ledger) and its signature is valid."""
    sha = hashlib.sha256(pdf).hexdigest()
    row = repository.issuance_by_hash(session, sha)
    check = signing.check_signature(pdf, moment=row.issued_at if row is not None else None)
    reasons: list[str] = []
    if row is None:
        reasons.append(
            "このファイルのハッシュ値に一致する交付記録はありません"
            " (発行後に変更されたか、発行されていない文書です)。"
        )
    if check.problem:
        reasons.append(check.problem)
    authentic = row is not None and check.valid
    audit.record(
        session,
        actor=_verifier(row.lg_code if row is not None else None),
        action=AuditAction.CERTIFICATE_VERIFIED,
        target_kind="certificate",
        target_id=row.issue_number if row is not None else sha,
        outcome=Outcome.SUCCESS if authentic else Outcome.FAILURE,
        detail=f"by {via} authentic={authentic}",
    )
    return DocumentVerification(
        authentic=authentic,
        sha256=sha,
        reasons=tuple(reasons),
        signature=check,
        issuance=_verification_view(row) if row is not None else None,
    )


def ca_certificate_pem() -> bytes | None:
    return signing.ca_certificate_pem()
