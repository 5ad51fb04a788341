"""Supervisor approval of events a clerk may not record alone (職権修正, 誤記修正, 職権消除, 取消し).

A clerk drafts the event with the same request the API and the window take for recording
it. The draft is checked at once by recording it inside a savepoint that is then rolled
back, so every rule of the event itself (the version the clerk saw, the items that may be
corrected, a removed record) answers now, beside the field, and not at approval time.
The draft then waits as a pending request with the clerk's reason.

A supervisor of the same municipality, never the drafter, approves it: the event is then
recorded through the normal use case (``service.run_command``), under the supervisor's
name, with the version check of the draft. If the record changed since the draft, the
approval is refused, the request stays pending (marked stale) and the drafter resubmits
it against the current record. A supervisor may also refuse it with a reason; the drafter
may withdraw it. Each step is audited, refusals included, in the caller's transaction.

職権記載 (a new record) is not drafted: recording it asks the national network for a
住民票コード and a 個人番号, which a rolled-back check cannot take back. It stays an event a
supervisor records directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import AuditAction, Outcome
from jumin.core.errors import Conflict, DomainError, Forbidden, InvalidValue, NotFound, RuleViolation
from jumin.keys import data_keyring
from jumin.registry import approval_repository as repository
from jumin.registry.approval_models import ApprovalRequest
from jumin.registry.domain import EVENT_LABELS, EventKind, EventOutcome, StaleVersion
from jumin.registry.schemas import PersonRef
from jumin.registry.service import (
    COMMANDS_BY_SLUG,
    EVENT_COMMANDS,
    EventCommand,
    RecordView,
    RegistryContext,
    _versions_of,
    get_record,
    run_command,
)

_PAYLOAD_AAD = "registry-approval-request"
PURPOSE = "住民基本台帳事務 (承認)"
REASON_MAX = 500

# Supervisor-only events that change existing records: what a clerk may draft.
APPROVABLE_SLUGS: frozenset[str] = frozenset(
    c.slug for c in EVENT_COMMANDS if c.supervisor_only and c.kind is not EventKind.EX_OFFICIO_ENTRY
)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


STATUS_LABELS = {
    ApprovalStatus.PENDING: "承認待ち",
    ApprovalStatus.APPROVED: "承認済み (記録済み)",
    ApprovalStatus.REFUSED: "却下",
    ApprovalStatus.WITHDRAWN: "取下げ",
}

STALE_DETAIL = (
    "申請の後に他の職員がこの住民票を更新したため、承認できません。申請は承認待ちのまま残ります。"
    "申請者が最新の内容を読み込み直して再提出してください。"
)


class OwnRequest(Forbidden):
    """The drafter deciding their own request: refused, and the refusal is kept as evidence."""

    type_slug = "own-approval-request"
    title = "自分の申請は承認・却下できません"
    commits_recorded_work = True


class StaleApproval(StaleVersion):
    """The record changed since the draft: nothing recorded, the request marked stale and kept."""

    type_slug = "stale-approval-request"
    title = "他の職員がこの記録を更新しました"
    commits_recorded_work = True


class ApprovalRefusedByRule(RuleViolation):
    """The event, checked again at approval, breaks a rule now: the failed approval is kept."""

    type_slug = "approval-request-rule-violation"
    commits_recorded_work = True


@dataclass(frozen=True, slots=True)
class ApprovalView:
    id: int
    lg_code: str
    slug: str
    kind: EventKind
    status: ApprovalStatus
    revision: int
    reason: str
    drafted_by: str
    drafted_at: dt.datetime
    resubmitted_at: dt.datetime | None
    stale_at: dt.datetime | None
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    event_id: int | None
    person_ids: tuple[int, ...]
    request: Any  # the command's request model (see ``command.request_type``)
    # The persons' names as the register has them now (lists and the detail only).
    names: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return EVENT_LABELS[self.kind]

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def pending(self) -> bool:
        return self.status is ApprovalStatus.PENDING

    @property
    def stale(self) -> bool:
        return self.pending and self.stale_at is not None


@dataclass(frozen=True, slots=True)
class ApprovalDetail:
    """A request against the register: each person's record now and as approving would leave it.

    ``proposed[i]`` is None when the event would leave no record (a cancelled 転入) or
    when it could not be checked; ``problem`` then says why (a stale draft, a rule).
    """

    request: ApprovalView
    current: tuple[RecordView, ...]
    proposed: tuple[RecordView | None, ...]
    problem: str | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Approved:
    request: ApprovalView
    outcome: EventOutcome


# ---------------------------------------------------------------------------
# Helpers


def _command(slug: str) -> EventCommand:
    command = COMMANDS_BY_SLUG.get(slug)
    if command is None or slug not in APPROVABLE_SLUGS:
        raise InvalidValue(
            "承認を申請できるのは、監督職員のみが記録できる修正・消除・取消しです。", field="slug"
        )
    return command


def _check_request(command: EventCommand, request: Any) -> None:
    if not isinstance(request, command.request_type):
        raise TypeError(f"{command.slug} takes {command.request_type.__name__}")


def _check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidValue("申請の理由を入力してください。", field="approval_reason")
    if len(text) > REASON_MAX:
        raise InvalidValue(f"申請の理由は{REASON_MAX}文字以内で入力してください。", field="approval_reason")
    return text


def person_ids_of(request: BaseModel) -> tuple[int, ...]:
    """The persons whose versions the request names (its PersonRef fields, in order)."""
    found: list[int] = []

    def walk(value: Any) -> None:
        if isinstance(value, PersonRef):
            found.append(value.person_id)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(request)
    return tuple(dict.fromkeys(found))


def _seal(request: BaseModel) -> str:
    return data_keyring().encrypt(request.model_dump_json(), _PAYLOAD_AAD)


def _view(row: ApprovalRequest) -> ApprovalView:
    command = COMMANDS_BY_SLUG[row.slug]
    request = command.request_type.model_validate_json(data_keyring().decrypt(row.payload, _PAYLOAD_AAD))
    return ApprovalView(
        id=row.id,
        lg_code=row.lg_code,
        slug=row.slug,
        kind=EventKind(row.kind),
        status=ApprovalStatus(row.status),
        revision=row.revision,
        reason=row.reason,
        drafted_by=row.drafted_by,
        drafted_at=row.drafted_at,
        resubmitted_at=row.resubmitted_at,
        stale_at=row.stale_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_note=row.decision_note,
        event_id=row.event_id,
        person_ids=tuple(int(p) for p in row.person_ids.strip(",").split(",") if p),
        request=request,
    )


def _in_scope(session: Session, ctx: RegistryContext, request_id: int) -> ApprovalRequest:
    row = repository.get(session, request_id)
    if row is None or row.lg_code != ctx.lg_code:
        # Another municipality's request is "not found", as its residents are.
        raise NotFound(f"申請 {request_id} はこの団体にありません。", field="request_id")
    return row


def _pending(row: ApprovalRequest) -> None:
    if row.status != ApprovalStatus.PENDING.value:
        label = STATUS_LABELS[ApprovalStatus(row.status)]
        raise Conflict(f"申請 {row.id} は既に処理されています ({label})。", field="request_id")


def _audit(
    session: Session,
    ctx: RegistryContext,
    action: AuditAction,
    row: ApprovalRequest,
    *,
    outcome: Outcome = Outcome.SUCCESS,
    detail: str = "",
) -> None:
    audit.record(
        session,
        actor=ctx.actor,
        action=action,
        target_kind="approval_request",
        target_id=str(row.id),
        purpose=PURPOSE,
        outcome=outcome,
        detail=(
            f"kind={row.kind} persons={row.person_ids.strip(',')} revision={row.revision}"
            + (f" {detail}" if detail else "")
        ),
    )


def _dry_run(session: Session, ctx: RegistryContext, command: EventCommand, request: Any) -> None:
    """Record the event and roll it back: the event's own rules decide whether the draft stands."""
    savepoint = session.begin_nested()
    try:
        run_command(session, ctx=ctx, slug=command.slug, request=request)
    finally:
        savepoint.rollback()


def _persons_text(ids: Iterable[int]) -> str:
    return "," + ",".join(str(i) for i in ids) + ","


# ---------------------------------------------------------------------------
# Use cases


def draft(session: Session, *, ctx: RegistryContext, slug: str, request: Any, reason: str) -> ApprovalView:
    """A clerk's draft of a supervisor-only event, checked now and left pending.

    Raises the event's own DomainError (field named as in the request) when the event
    could not be recorded as drafted; nothing is stored then.
    """
    command = _command(slug)
    _check_request(command, request)
    text = _check_reason(reason)
    _dry_run(session, ctx, command, request)
    row = repository.add(
        session,
        ApprovalRequest(
            lg_code=ctx.lg_code,
            slug=command.slug,
            kind=command.kind.value,
            status=ApprovalStatus.PENDING.value,
            revision=1,
            payload=_seal(request),
            person_ids=_persons_text(person_ids_of(request)),
            reason=text,
            drafted_by=ctx.actor.actor_id,
            drafted_at=ctx.now,
        ),
    )
    _audit(session, ctx, AuditAction.APPROVAL_REQUESTED, row)
    return _view(row)


def _drafters_own(session: Session, ctx: RegistryContext, row: ApprovalRequest, what: str) -> None:
    if row.drafted_by != ctx.actor.actor_id:
        audit.record(
            session,
            actor=ctx.actor,
            action=AuditAction.ACCESS_DENIED,
            target_kind="approval_request",
            target_id=str(row.id),
            purpose=PURPOSE,
            outcome=Outcome.DENIED,
            detail=f"not the drafter: {what}",
        )
        raise _NotDrafter(f"申請を{what}できるのは、申請した職員だけです。")


class _NotDrafter(Forbidden):
    type_slug = "not-the-drafter"
    title = "申請した職員のみが操作できます"
    commits_recorded_work = True


def resubmit(
    session: Session, *, ctx: RegistryContext, request_id: int, request: Any, reason: str
) -> ApprovalView:
    """The drafter's new version of a pending request (after a stale approval, or a correction).

    Checked like a draft; the request keeps its number, its revision grows, so a
    supervisor who read the earlier version cannot approve this one unread.
    """
    row = _in_scope(session, ctx, request_id)
    _drafters_own(session, ctx, row, "再提出")
    _pending(row)
    command = _command(row.slug)
    _check_request(command, request)
    text = _check_reason(reason)
    _dry_run(session, ctx, command, request)
    row.payload = _seal(request)
    row.person_ids = _persons_text(person_ids_of(request))
    row.reason = text
    row.revision += 1
    row.resubmitted_at = ctx.now
    row.stale_at = None
    session.flush()
    _audit(session, ctx, AuditAction.APPROVAL_RESUBMITTED, row)
    return _view(row)


def request_type_of(session: Session, *, ctx: RegistryContext, request_id: int) -> type[BaseModel]:
    """The request model a resubmission of this request takes (no personal data read)."""
    request_type: type[BaseModel] = COMMANDS_BY_SLUG[_in_scope(session, ctx, request_id).slug].request_type
    return request_type


def withdraw(session: Session, *, ctx: RegistryContext, request_id: int) -> ApprovalView:
    row = _in_scope(session, ctx, request_id)
    _drafters_own(session, ctx, row, "取り下げ")
    _pending(row)
    if not repository.move(
        session,
        row.id,
        revision=row.revision,
        status_from=ApprovalStatus.PENDING.value,
        status_to=ApprovalStatus.WITHDRAWN.value,
        actor_id=ctx.actor.actor_id,
        at=ctx.now,
        note=None,
    ):
        raise Conflict(f"申請 {row.id} は他の操作で処理されました。", field="request_id")
    session.refresh(row)
    _audit(session, ctx, AuditAction.APPROVAL_WITHDRAWN, row)
    return _view(row)


def _not_own(session: Session, ctx: RegistryContext, row: ApprovalRequest, what: str) -> None:
    if row.drafted_by == ctx.actor.actor_id:
        _audit(
            session,
            ctx,
            AuditAction.ACCESS_DENIED,
            row,
            outcome=Outcome.DENIED,
            detail=f"own request: {what}",
        )
        raise OwnRequest(
            f"自分が申請した内容は{what}できません。別の監督職員に依頼してください"
            "(取り下げる場合は「申請を取り下げる」を使います)。",
            field="request_id",
        )


def _same_revision(row: ApprovalRequest, revision: int | None) -> None:
    if revision is not None and revision != row.revision:
        raise Conflict(
            f"申請 {row.id} は、表示した後に再提出されています。内容を確認し直してください。",
            field="revision",
        )


def approve(
    session: Session, *, ctx: RegistryContext, request_id: int, revision: int | None = None, note: str = ""
) -> Approved:
    """Record the drafted event under the approving supervisor, with the draft's version check.

    ``revision`` is the one the supervisor read (a resubmission in between is refused).
    A changed record raises :class:`StaleApproval`; the request stays pending, marked
    stale, and that failure is kept in the audit log.
    """
    row = _in_scope(session, ctx, request_id)
    _pending(row)
    _not_own(session, ctx, row, "承認")
    _same_revision(row, revision)
    view = _view(row)
    savepoint = session.begin_nested()
    try:
        if not repository.move(
            session,
            row.id,
            revision=row.revision,
            status_from=ApprovalStatus.PENDING.value,
            status_to=ApprovalStatus.APPROVED.value,
            actor_id=ctx.actor.actor_id,
            at=ctx.now,
            note=note.strip() or None,
        ):
            raise _Decided(f"申請 {row.id} は他の監督職員が先に処理しました。", field="request_id")
        outcome = run_command(session, ctx=ctx, slug=row.slug, request=view.request)
    except _Decided:
        savepoint.rollback()
        raise
    except StaleVersion as exc:
        savepoint.rollback()
        row.stale_at = ctx.now
        session.flush()
        _audit(session, ctx, AuditAction.APPROVAL_FAILED, row, outcome=Outcome.FAILURE, detail="stale")
        raise StaleApproval(STALE_DETAIL, field="version") from exc
    except DomainError as exc:
        savepoint.rollback()
        _audit(
            session,
            ctx,
            AuditAction.APPROVAL_FAILED,
            row,
            outcome=Outcome.FAILURE,
            detail=f"rule field={exc.field or ''}",
        )
        raise ApprovalRefusedByRule(
            f"この申請は現在の記録では記録できません: {exc.detail}", field=exc.field
        ) from exc
    savepoint.commit()
    session.refresh(row)
    row.event_id = outcome.event_id
    row.stale_at = None
    session.flush()
    _audit(
        session,
        ctx,
        AuditAction.APPROVAL_APPROVED,
        row,
        detail=f"event={outcome.event_id} drafter={row.drafted_by}",
    )
    return Approved(_view(row), outcome)


class _Decided(Conflict):
    pass


def refuse(
    session: Session, *, ctx: RegistryContext, request_id: int, note: str, revision: int | None = None
) -> ApprovalView:
    """A supervisor's refusal, with the reason the drafter reads."""
    row = _in_scope(session, ctx, request_id)
    _pending(row)
    _not_own(session, ctx, row, "却下")
    _same_revision(row, revision)
    text = note.strip()
    if not text:
        raise InvalidValue("却下する理由を入力してください。", field="note")
    if len(text) > REASON_MAX:
        raise InvalidValue(f"却下する理由は{REASON_MAX}文字以内で入力してください。", field="note")
    if not repository.move(
        session,
        row.id,
        revision=row.revision,
        status_from=ApprovalStatus.PENDING.value,
        status_to=ApprovalStatus.REFUSED.value,
        actor_id=ctx.actor.actor_id,
        at=ctx.now,
        note=text,
    ):
        raise Conflict(f"申請 {row.id} は他の監督職員が先に処理しました。", field="request_id")
    session.refresh(row)
    _audit(session, ctx, AuditAction.APPROVAL_REFUSED, row)
    return _view(row)


# ---------------------------------------------------------------------------
# Reads


def list_requests(
    session: Session,
    *,
    ctx: RegistryContext,
    statuses: Sequence[ApprovalStatus] = (),
    drafted_by: str | None = None,
    person_id: int | None = None,
    limit: int = 100,
) -> list[ApprovalView]:
    """The municipality's requests, newest first; the read is audited once, like a search."""
    rows = repository.listed(
        session,
        lg_code=ctx.lg_code,
        statuses=[s.value for s in statuses],
        drafted_by=drafted_by,
        person_id=person_id,
        limit=limit,
    )
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.APPROVAL_VIEWED,
        target_kind="register",
        target_id="approval_requests",
        purpose=PURPOSE,
        detail=f"results={len(rows)} statuses={','.join(s.value for s in statuses) or '*'}"
        + (f" person={person_id}" if person_id else ""),
    )
    views = [_view(r) for r in rows]
    return [replace(v, names=_names(session, v.person_ids)) for v in views]


def _names(session: Session, person_ids: Iterable[int]) -> tuple[str, ...]:
    """The names to list requests by; the listing's own audit entry covers this read."""
    names = []
    for person_id in person_ids:
        versions = _versions_of(session, person_id)
        names.append(versions[-1].record.name if versions else f"住民 {person_id}")
    return tuple(names)


def _proposed(
    session: Session, ctx: RegistryContext, view: ApprovalView
) -> tuple[tuple[RecordView | None, ...], str | None, bool]:
    """Each person's record as approving would leave it: the event recorded and rolled back."""
    savepoint = session.begin_nested()
    try:
        run_command(session, ctx=ctx, slug=view.slug, request=view.request)
        after: list[RecordView | None] = []
        for person_id in view.person_ids:
            try:
                after.append(get_record(session, ctx=ctx, person_id=person_id, purpose=PURPOSE))
            except DomainError:
                after.append(None)  # a cancelled 転入 leaves no record
        return tuple(after), None, False
    except StaleVersion:
        return tuple(None for _ in view.person_ids), STALE_DETAIL, True
    except DomainError as exc:
        return tuple(None for _ in view.person_ids), exc.detail, False
    finally:
        savepoint.rollback()


def get_request(session: Session, *, ctx: RegistryContext, request_id: int) -> ApprovalDetail:
    """One request with the records it concerns, now and as approving it would leave them."""
    row = _in_scope(session, ctx, request_id)
    view = _view(row)
    view = replace(view, names=_names(session, view.person_ids))
    _audit(session, ctx, AuditAction.APPROVAL_VIEWED, row)
    current: list[RecordView] = []
    for person_id in view.person_ids:
        try:
            current.append(get_record(session, ctx=ctx, person_id=person_id, purpose=PURPOSE))
        except DomainError:
            continue
    if not view.pending:
        return ApprovalDetail(view, tuple(current), tuple(None for _ in current))
    proposed, problem, stale = _proposed(session, ctx, view)
    if len(current) != len(proposed):
        proposed = tuple(None for _ in current)
    return ApprovalDetail(view, tuple(current), proposed, problem, stale or view.stale)
