"""広域交付 at the home municipality: answer the network from the own register, keep the record.

The national network forwards an issuing municipality's request here
(``POST /municipal/v1/wide-area/records``, signed with the national key). The home
register answers from its own database, in one short transaction:

- the request must carry the national network's valid signature, be fresh and not seen
  before (its request id is kept), or it is refused and the refusal audited;
- the person must be a live resident here; with ``whole_household``, their household;
- an active protection order (支援措置) for anyone on the copy refuses 広域交付 outright,
  whoever asks: the home cannot check the requester in person, so the resident is sent
  to the home's own window (the refusal is audited and kept);
- only the items a 広域交付住民票 may carry leave the register: 個人番号 and 本籍・筆頭者
  never, the 住民票コード and 続柄 only when asked for;
- every read is audited in the home's chain under the visiting clerk's name, and the
  provision is recorded (``certificate_wide_area_provisions``).

The answer is signed with the home municipality's key. Later the issuer's report that
the copy was issued (``POST /municipal/v1/wide-area/issued``) completes that record with
the issue number, date, fee and hash.

On the issuing side, :func:`deliver_issued_notices` is the relay's step that sends those
reports (queued in the issuance's own transaction) to the national network.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from secrets import token_hex
from typing import Any

import httpx
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.certificates import service, widearea_repository
from jumin.certificates.domain import Channel, DocumentKind, Form, Item, RequesterKind, select_items
from jumin.certificates.layout import HistoryEntry
from jumin.certificates.widearea_models import WideAreaProvision
from jumin.config import get_settings
from jumin.core.errors import DomainError, InvalidValue, NotFound, RuleViolation
from jumin.core.replication import (
    SENDER_HEADER,
    SIGNATURE_HEADER,
    format_instant,
    municipality_key_name,
    parse_instant,
    public_key_from_pem,
    sign,
    verify,
)
from jumin.core.widearea import (
    NETWORK_KEY_NAME,
    NETWORK_PUBLIC_KEY_FILE,
    NETWORK_SENDER,
    WIDE_AREA_ISSUED_PATH,
    Envelope,
    EnvelopeProblem,
    IssuedNotice,
    NetworkSignatureRefused,
    ProvidedPerson,
    RecordAnswer,
    RecordRequest,
    WideAreaKind,
    WideAreaNotFound,
    WideAreaProtected,
    WideAreaReplayed,
    answer_bytes,
    envelope,
    open_envelope,
)
from jumin.db import utcnow
from jumin.keys import load_or_create_ed25519
from jumin.network_client import NetworkClient
from jumin.registry import service as registry
from jumin.registry.domain import ResidentRecord, record_to_json
from jumin.request_context import current_request_id

PURPOSE = "住民票の写しの広域交付 (住民基本台帳法 第12条の4)"


# ---------------------------------------------------------------------------
# Trusting the national network's key


def network_public_key(key_dir: Path | None = None) -> str | None:
    """The national network's public key as this municipal system trusts it, or None.

    Installed with `jumin relay trust-network`; in `jumin serve` (every role in one
    process, one key directory) the national key itself is beside the municipal keys.
    """
    directory = key_dir or get_settings().key_dir
    installed = directory / NETWORK_PUBLIC_KEY_FILE
    if installed.exists():
        return installed.read_text()
    if (directory / f"{NETWORK_KEY_NAME}.ed25519.pem").exists():
        return load_or_create_ed25519(NETWORK_KEY_NAME, directory).public_pem()
    return None


def trust_network(public_key_pem: str, key_dir: Path | None = None) -> None:
    """Install (or replace, when the network rotates it) the national network's public key."""
    pem = public_key_pem.strip() + "\n"
    if public_key_from_pem(pem) is None:
        raise InvalidValue("Ed25519 の公開鍵 (PEM 形式) を指定してください。", field="public_key")
    directory = key_dir or get_settings().key_dir
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / (NETWORK_PUBLIC_KEY_FILE + ".tmp")
    tmp.write_text(pem)
    tmp.replace(directory / NETWORK_PUBLIC_KEY_FILE)


# ---------------------------------------------------------------------------
# Who is asking


def visiting_actor(*, home_lg_code: str, issuer_lg_code: str, clerk: str) -> Actor:
    """The issuing clerk as the home's audit chain names them: ``<login>@<issuer>``, in the home's chain."""
    kind, _, login = clerk.partition(":")
    return Actor(
        kind=ActorKind.STAFF if kind == ActorKind.STAFF.value else ActorKind.SYSTEM,
        actor_id=f"{login or clerk}@{issuer_lg_code}"[:128],
        organisation_code=home_lg_code,
    )


def _claimed_home(body: bytes) -> str:
    """The municipality a (possibly forged) forward names, for the chain its refusal goes to."""
    try:
        raw = json.loads(body)
        inner = raw.get("request") or raw.get("notice") or {}
        code = str(inner.get("home_lg_code", ""))
    except (ValueError, AttributeError):
        return "invalid"
    return code if len(code) == 6 and code.isdigit() else "invalid"


def _open_forward(
    session: Session, *, sender: str | None, signature: str | None, body: bytes, kind: WideAreaKind
) -> Envelope:
    """A forward signed by the national network, fresh and of this kind; else refused and audited."""
    reason = ""
    opened: Envelope | None = None
    pem = network_public_key()
    if sender != NETWORK_SENDER or not signature:
        reason = "unsigned"
        message = "全国センター (X-Jumin-Sender: national) の署名がない照会は受け付けません。"
    elif pem is None:
        reason = "network_key_unknown"
        message = "全国センターの公開鍵が設定されていません。`jumin relay trust-network` で設定してください。"
    elif not verify(pem, body, signature):
        reason = "bad_signature"
        message = "署名が全国センターの公開鍵で検証できません。"
    else:
        try:
            opened = open_envelope(body, expected=kind, sender=NETWORK_SENDER, now=utcnow())
        except EnvelopeProblem as exc:
            reason = f"envelope_{exc.field}"
            message = exc.detail
    if opened is not None:
        return opened
    home = _claimed_home(body)
    audit.record(
        session,
        actor=Actor(kind=ActorKind.SYSTEM, actor_id="network", organisation_code=home),
        action=AuditAction.CERTIFICATE_REFUSED,
        target_kind="municipality",
        target_id=home,
        outcome=Outcome.DENIED,
        purpose=PURPOSE,
        detail=f"wide-area {kind.value} refused reason={reason}",
    )
    raise NetworkSignatureRefused(message, field="X-Jumin-Signature")


# ---------------------------------------------------------------------------
# Answering a request


def _minimal(record: ResidentRecord, items: frozenset[Item]) -> dict[str, Any]:
    """The record with every item a 広域交付住民票 does not print blanked before it leaves."""
    foreign = record.foreign
    if foreign is not None and Item.RESIDENCE_CARD_NUMBER not in items:
        foreign = replace(foreign, residence_card_number=None)
    kept = replace(
        record,
        individual_number=None,
        honseki=None,
        hittousha=None,
        resident_code=record.resident_code if Item.RESIDENT_CODE in items else "",
        relationship=record.relationship if Item.HEAD_AND_RELATIONSHIP in items else "",
        foreign=foreign,
    )
    data: dict[str, Any] = json.loads(record_to_json(kept))
    return data


def _history_json(entries: tuple[HistoryEntry, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "effective_on": e.effective_on.isoformat(),
            "notified_on": e.notified_on.isoformat() if e.notified_on else None,
            "label": e.label,
            "address": e.address,
        }
        for e in entries
    )


def _refuse(session: Session, actor: Actor, error: DomainError, *, target: str, detail: str) -> DomainError:
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CERTIFICATE_REFUSED,
        target_kind="resident_code",
        target_id=target,
        outcome=Outcome.DENIED,
        purpose=PURPOSE,
        detail=detail,
    )
    return error


def _items_of(request: RecordRequest) -> frozenset[Item]:
    try:
        include = [Item(i) for i in request.include]
        omit = [Item(i) for i in request.omit]
    except ValueError as exc:
        raise InvalidValue("照会に不明な項目があります。", field="include") from exc
    return select_items(
        DocumentKind.RECORD_COPY,
        include=include,
        omit=omit,
        requester=RequesterKind.SELF,
        channel=Channel.WIDE_AREA,
    )


def answer_record_request(
    session: Session, *, network: NetworkClient, sender: str | None, signature: str | None, body: bytes
) -> tuple[bytes, str]:
    """The home register's signed answer to a forwarded request: the body and its signature."""
    forward = _open_forward(session, sender=sender, signature=signature, body=body, kind=WideAreaKind.FORWARD)
    request = RecordRequest.from_json(forward.body.get("request"))
    home, issuer = request.home_lg_code, request.issuer_lg_code
    actor = visiting_actor(home_lg_code=home, issuer_lg_code=issuer, clerk=request.clerk)
    detail = f"wide_area issuer={issuer} request={request.request_id}"
    if widearea_repository.provision(session, request.request_id) is not None:
        raise _refuse(
            session,
            actor,
            WideAreaReplayed("この広域交付の照会には既に回答しています。", field="request_id"),
            target=request.resident_code,
            detail=detail + " reason=replayed",
        )
    items = _items_of(request)
    try:
        form = Form(request.form)
    except ValueError as exc:
        raise InvalidValue("様式 (form) が正しくありません。", field="form") from exc
    ctx = registry.RegistryContext(actor=actor, lg_code=home, network=network)
    try:
        own = service.by_resident_code(session, ctx, request.resident_code, include_removed=False)
    except NotFound as exc:
        raise _refuse(
            session,
            actor,
            WideAreaNotFound(
                f"住所地 ({home}) の住民基本台帳に、この住民票コードの住民 (消除されていない者) はいません。",
                field="resident_code",
            ),
            target=request.resident_code,
            detail=detail + " reason=not_found",
        ) from exc
    persons: tuple[registry.RecordView, ...] = (own,)
    if request.whole_household:
        persons = tuple(
            registry.get_household(
                session, ctx=ctx, household_id=own.record.household_id, purpose=PURPOSE
            ).members
        )
    if form is Form.INDIVIDUAL and len(persons) != 1:
        raise InvalidValue("個人票は1人ずつ発行します。本人のみを請求してください。", field="form")
    orders = service.active_orders(session, [v.person_id for v in persons], ctx.today)
    if orders:
        raise _refuse(
            session,
            actor,
            WideAreaProtected(
                "請求された住民票に支援措置 (DV等) の対象者が含まれるため、広域交付はできません。"
                "住所地の市区町村の窓口で相談してください。",
                field="resident_code",
            ),
            target=request.resident_code,
            detail=detail
            + " reason=protection_order "
            + " ".join(f"protection_order={o.order_id}" for o in orders),
        )
    head_name = service.head_name(session, ctx, persons, items)
    places: dict[str, str] = {}
    provided = tuple(
        ProvidedPerson(
            person_id=v.person_id,
            record=_minimal(v.record, items),
            history=_history_json(service.history_entries(session, ctx, v.person_id, places))
            if Item.HISTORY in items
            else None,
        )
        for v in persons
    )
    now = ctx.now
    person_ids = ",".join(str(p.person_id) for p in provided)
    widearea_repository.add(
        session,
        WideAreaProvision(
            home_lg_code=home,
            request_id=request.request_id,
            issuer_lg_code=issuer,
            clerk=request.clerk,
            resident_code=request.resident_code,
            person_ids=person_ids,
            form=form.value,
            items=",".join(sorted(i.value for i in items)),
            provided_at=now,
        ),
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CERTIFICATE_RECORD_PROVIDED,
        target_kind="wide_area_request",
        target_id=request.request_id,
        purpose=PURPOSE,
        detail=f"広域交付 issued_by={issuer} actor={request.clerk}@{issuer} persons={person_ids} "
        f"items={','.join(sorted(i.value for i in items))}",
    )
    answer = RecordAnswer(
        request_id=request.request_id,
        home_lg_code=home,
        provided_at=format_instant(now),
        items=tuple(sorted(i.value for i in items)),
        head_name=head_name,
        persons=provided,
        subject_person_id=own.person_id,
        in_reply_to=forward.nonce,
    )
    data = answer_bytes(answer)
    return data, sign(load_or_create_ed25519(municipality_key_name(home)).private_key, data)


# ---------------------------------------------------------------------------
# Recording that a copy was issued


def record_issued_notice(session: Session, *, sender: str | None, signature: str | None, body: bytes) -> str:
    """Complete the provision with the issued copy: "recorded", or "duplicate" when already known."""
    forward = _open_forward(
        session, sender=sender, signature=signature, body=body, kind=WideAreaKind.ISSUED_FORWARD
    )
    notice = IssuedNotice.from_json(forward.body.get("notice"))
    row = widearea_repository.provision(session, notice.request_id, lock=True)
    if row is None or (row.home_lg_code, row.issuer_lg_code) != (notice.home_lg_code, notice.issuer_lg_code):
        raise NotFound("この交付の通知に対応する広域交付の照会の記録がありません。", field="request_id")
    provided = {int(p) for p in row.person_ids.split(",") if p}
    if not set(notice.person_ids) <= provided:
        raise InvalidValue("通知された住民が照会で回答した住民と一致しません。", field="person_ids")
    if row.issue_number == notice.issue_number:
        return "duplicate"
    if row.issue_number is not None:
        raise RuleViolation(
            f"この照会による交付は発行番号 {row.issue_number} として記録済みです。", field="issue_number"
        )
    now = utcnow()
    row.issue_number = notice.issue_number
    row.issue_date = notice.issue_date
    row.issued_at = parse_instant(notice.issued_at) or now
    row.fee_yen = notice.fee_yen
    row.page_count = notice.page_count
    row.document_sha256 = notice.document_sha256
    row.notified_at = now
    session.flush()
    audit.record(
        session,
        actor=visiting_actor(
            home_lg_code=notice.home_lg_code, issuer_lg_code=notice.issuer_lg_code, clerk=notice.clerk
        ),
        action=AuditAction.CERTIFICATE_WIDE_AREA_ISSUED,
        target_kind="certificate",
        target_id=notice.issue_number,
        purpose=PURPOSE,
        detail=f"広域交付 issued_by={notice.issuer_lg_code} request={notice.request_id} "
        f"persons={','.join(map(str, notice.person_ids))} fee={notice.fee_yen} "
        f"sha256={notice.document_sha256}",
        now=now,
    )
    return "recorded"


@dataclass(frozen=True, slots=True)
class ProvisionView:
    """One record copy another municipality asked of this register, and the copy it issued."""

    request_id: str
    home_lg_code: str
    issuer_lg_code: str
    clerk: str
    person_ids: tuple[int, ...]
    form: str
    items: tuple[str, ...]
    provided_at: dt.datetime
    issue_number: str | None
    issue_date: dt.date | None
    fee_yen: int | None
    document_sha256: str | None


def provisions(
    session: Session, *, actor: Actor, lg_code: str, limit: int = 50, offset: int = 0
) -> list[ProvisionView]:
    """広域交付 of this municipality's residents by others, the latest first; the listing is audited."""
    rows = widearea_repository.provisions(session, lg_code, limit=limit, offset=offset)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CERTIFICATE_ISSUANCES_VIEWED,
        target_kind="register",
        target_id="wide_area_provisions",
        detail=f"results={len(rows)}",
    )
    return [
        ProvisionView(
            request_id=r.request_id,
            home_lg_code=r.home_lg_code,
            issuer_lg_code=r.issuer_lg_code,
            clerk=r.clerk,
            person_ids=tuple(int(p) for p in r.person_ids.split(",") if p),
            form=r.form,
            items=tuple(i for i in r.items.split(",") if i),
            provided_at=r.provided_at,
            issue_number=r.issue_number,
            issue_date=r.issue_date,
            fee_yen=r.fee_yen,
            document_sha256=r.document_sha256,
        )
        for r in rows
    ]


# ---------------------------------------------------------------------------
# The issuer's side: the relay delivers the copy-issued notices


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    issuer_lg_code: str
    issue_number: str
    notice: Mapping[str, Any]


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"HTTP {response.status_code} {body.get('type', '')}: {body.get('detail', '')}"
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"


def deliver_issued_notices(
    scope: Callable[[], AbstractContextManager[Session]],
    *,
    http: httpx.Client,
    url: str,
    lg_codes: Collection[str] | None = None,
    key_dir: Path | None = None,
    limit: int = 100,
) -> tuple[int, list[str]]:
    """Send each undelivered copy-issued notice once; returns (delivered, errors).

    One attempt per notice and cycle: a home that is down keeps its notices pending and
    the next cycle sends them again (the home answers "duplicate" for one it already
    has). No municipal transaction is open while waiting for the network.
    """
    with scope() as session:
        pending = [
            _Pending(n.id, n.issuer_lg_code, n.issue_number, json.loads(n.payload))
            for n in widearea_repository.pending_notices(session, lg_codes, limit)
        ]
    delivered, errors = 0, []
    for item in pending:
        body = envelope(
            kind=WideAreaKind.ISSUED,
            sender=item.issuer_lg_code,
            sent_at=utcnow(),
            nonce=token_hex(16),
            notice=dict(item.notice),
        )
        key = load_or_create_ed25519(municipality_key_name(item.issuer_lg_code), key_dir)
        error: str | None = None
        try:
            response = http.post(
                url.rstrip("/") + WIDE_AREA_ISSUED_PATH,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Request-ID": current_request_id(),
                    SENDER_HEADER: item.issuer_lg_code,
                    SIGNATURE_HEADER: sign(key.private_key, body),
                },
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}"
        else:
            if response.status_code != 200:
                error = _problem_text(response)
        with scope() as session:
            row = widearea_repository.notice(session, item.id)
            if row is not None:
                widearea_repository.mark(
                    session, row, delivered_at=None if error else utcnow(), error=error and error[:300]
                )
        if error is None:
            delivered += 1
        else:
            errors.append(f"広域交付の通知 {item.issue_number}: {error} (次回再送します)")
    return delivered, errors


def undelivered_notices(session: Session, *, lg_code: str | None = None) -> int:
    return widearea_repository.undelivered_count(session, lg_code)
