"""承認: the national operator's extraction requests, and a municipality's drafted events.

The operator decides on prefectures' extraction requests (基準日抽出) with
``network.agencies.service.decide_extraction``, once per request, on the national
database; an approval starts the production in the background exactly as the agency API
does, and the page follows it with a progress bar until the file is ready.

In a municipality, a window clerk drafts a supervisor-only event (職権修正, 誤記修正, 職権消除,
取消し) on the event's own form (``registry.approvals.draft``: the event's rules answer
beside the fields at once); a supervisor other than the drafter reads it against the
current record and approves (the event is recorded) or refuses it. An approval of a
record changed since the draft is refused and the draft stays pending; its clerk opens
it again on the form, against the current record, and resubmits it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.api_support import NationalSessionDep, SessionDep, national_units
from jumin.core.errors import DomainError
from jumin.network.agencies import jobs
from jumin.network.agencies import service as agencies
from jumin.registry import approvals
from jumin.registry import service as registry
from jumin.registry.domain import StaleVersion
from jumin.web import views
from jumin.web.forms import (
    STALE_MESSAGE,
    FormContext,
    FormInvalid,
    attach_errors,
    build_form,
    domain_error_fields,
    form_values,
    parse_request,
    request_values,
    widget_names,
)
from jumin.web.page_errors import PageError, is_htmx, see_other
from jumin.web.pages import (
    STAFF_PREFIX,
    _form_context,
    attempt,
    context_of,
    render,
)
from jumin.web.security import (
    SUPERVISOR,
    Approver,
    Clerk,
    Operator,
    PostedForm,
    Supervisor,
    allows,
    form_value,
)

router = APIRouter(prefix=STAFF_PREFIX, include_in_schema=False)

BASE = f"{STAFF_PREFIX}/approvals"
RUNNING = ("approved", "producing")


def _row(e: agencies.ExtractionView) -> dict[str, Any]:
    ages = ""
    if e.min_age is not None or e.max_age is not None:
        ages = (
            f"{e.min_age if e.min_age is not None else ''}歳〜{e.max_age if e.max_age is not None else ''}歳"
        )
    return {
        "id": e.id,
        "short_id": e.id[:8],
        "prefecture": views.place_name(e.organisation_code),
        "requested_by": e.requested_by,
        "requested_at": views.jp_datetime(e.requested_at),
        "reference_date": views.jp_date(e.reference_date),
        "municipalities": "、".join(views.place_name(c) for c in e.lg_codes) or "都道府県全体",
        "ages": ages or "指定なし",
        "purpose": e.purpose,
        "status": e.status,
        "status_label": views.EXTRACTION_STATUS_LABELS.get(e.status, e.status),
        "decided_by": e.decided_by or "",
        "decided_at": views.jp_datetime(e.decided_at) if e.decided_at else "",
        "note": e.decision_note or "",
        "row_count": e.row_count,
        "csv_sha256": e.csv_sha256 or "",
        "running": e.status in RUNNING,
        "status_url": f"{BASE}/extractions/{e.id}",
    }


def _is_operator(principal: Principal) -> bool:
    return Role.OPERATOR in principal.roles and principal.organisation_kind is OrganisationKind.NATIONAL


def _is_municipal_staff(principal: Principal) -> bool:
    return principal.organisation_kind is OrganisationKind.MUNICIPALITY and bool(
        principal.roles & {Role.CLERK, Role.SUPERVISOR}
    )


@router.get("/approvals")
def approvals_page(
    request: Request,
    principal: Approver,
    session: SessionDep,
    national: NationalSessionDep,
    decided: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    if _is_municipal_staff(principal):
        return _corrections_page(request, session, principal)
    if not _is_operator(principal):
        accounts.deny(session, principal=principal, target=f"GET {request.url.path}", reason="missing role")
        raise PageError(
            403,
            "この画面を開く権限がありません",
            "担当の業務に必要な権限がこのアカウントにありません。必要な場合は管理者に依頼してください。",
            commits_recorded_work=True,
        )
    rows = [_row(e) for e in agencies.list_extractions(national, principal=principal)]
    pending = [r for r in rows if r["status"] == "requested"]
    others = [r for r in rows if r["status"] != "requested"]
    decided_row = next((r for r in rows if r["id"] == decided), None)
    return render(
        request,
        "approvals.html",
        {"title": "抽出依頼の承認", "pending": pending, "others": others, "decided": decided_row},
        session=session,
        principal=principal,
    )


@router.get("/approvals/extractions/{extraction_id}")
def extraction_status(
    request: Request,
    extraction_id: str,
    principal: Operator,
    session: SessionDep,
    national: NationalSessionDep,
) -> Response:
    """An extraction's state: the progress fragment the approvals page polls while it is produced."""
    if not is_htmx(request):
        return see_other(BASE)
    view = agencies.extraction(
        national, principal=principal, extraction_id=extraction_id, target=f"GET {request.url.path}"
    )
    return render(
        request, "partials/extraction_status.html", {"r": _row(view)}, session=session, principal=principal
    )


@router.post("/approvals/extractions/{extraction_id}")
def decide(
    request: Request,
    extraction_id: str,
    principal: Operator,
    session: SessionDep,
    national: NationalSessionDep,
    form: PostedForm,
    background: BackgroundTasks,
) -> Response:
    decision = form_value(form, "decision")
    if decision not in ("approve", "reject"):
        return see_other(BASE)
    try:
        with attempt(national):
            view = agencies.decide_extraction(
                national,
                principal=principal,
                extraction_id=extraction_id,
                approve=decision == "approve",
                note=form_value(form, "note"),
                target=f"POST {request.url.path}",
            )
    except DomainError as exc:
        rows = [_row(e) for e in agencies.list_extractions(national, principal=principal)]
        return render(
            request,
            "approvals.html",
            {
                "title": "抽出依頼の承認",
                "pending": [r for r in rows if r["status"] == "requested"],
                "others": [r for r in rows if r["status"] != "requested"],
                "decided": None,
                "error": exc.detail,
            },
            session=session,
            principal=principal,
            status=exc.status,
        )
    if decision == "approve":
        # As the agency API does: the file is produced after the decision is committed.
        background.add_task(jobs.produce_extraction, national_units(request.app), view.id)
    return see_other(f"{BASE}?decided={view.id}")


# ---------------------------------------------------------------------------
# A municipality's drafted events (registry.approvals)

CORRECTIONS = f"{BASE}/corrections"
DONE_MESSAGES = {
    "drafted": "承認を申請しました。監督職員の判断を待っています。",
    "resubmitted": "最新の記録に合わせて再提出しました。監督職員の判断を待っています。",
    "withdrawn": "申請を取り下げました。",
    "approved": "申請を承認し、異動を記録しました。",
    "refused": "申請を却下しました。申請者に理由が表示されます。",
}


def _person_text(view: approvals.ApprovalView) -> str:
    names = view.names or tuple(f"住民 {p}" for p in view.person_ids)
    return "、".join(f"{name} (住民ID {pid})" for name, pid in zip(names, view.person_ids, strict=False))


def _approval_row(view: approvals.ApprovalView) -> dict[str, Any]:
    return {
        "id": view.id,
        "label": view.label,
        "status": view.status.value,
        "status_label": "承認待ち (記録が更新されたため再提出が必要)" if view.stale else view.status_label,
        "stale": view.stale,
        "persons": _person_text(view),
        "reason": view.reason,
        "drafted_by": view.drafted_by,
        "drafted_at": views.jp_datetime(view.resubmitted_at or view.drafted_at),
        "decided_by": view.decided_by or "",
        "decided_at": views.jp_datetime(view.decided_at) if view.decided_at else "",
        "note": view.decision_note or "",
        "event_id": view.event_id,
        "url": f"{CORRECTIONS}/{view.id}",
    }


def _corrections_page(request: Request, session: Session, principal: Principal) -> HTMLResponse:
    ctx = context_of(request, principal)
    listed = approvals.list_requests(session, ctx=ctx, limit=200)
    supervisor = allows(SUPERVISOR, principal)
    me = ctx.actor.actor_id
    return render(
        request,
        "correction_approvals.html",
        {
            "title": "修正の承認" if supervisor else "承認の申請",
            "supervisor": supervisor,
            "pending": [_approval_row(v) | {"own": v.drafted_by == me} for v in listed if v.pending]
            if supervisor
            else [],
            "mine": [_approval_row(v) for v in listed if v.drafted_by == me][:50],
            "decided": [_approval_row(v) for v in listed if not v.pending][:20] if supervisor else [],
        },
        session=session,
        principal=principal,
    )


def _draftable(slug: str) -> registry.EventCommand:
    command = registry.COMMANDS_BY_SLUG.get(slug)
    if command is None or slug not in approvals.APPROVABLE_SLUGS:
        raise PageError(
            404,
            "対象が見つかりません",
            "この種類の異動は承認の申請の対象ではありません"
            " (窓口職員が記録できる異動は、そのまま記録してください)。",
        )
    return command


def _render_draft(
    request: Request,
    session: Session,
    principal: Principal,
    command: registry.EventCommand,
    form_ctx: FormContext,
    *,
    action: str,
    reason: str,
    errors: Mapping[str, str] | None = None,
    refused: DomainError | None = None,
    stale: bool = False,
    status: int = 200,
    resubmission: int | None = None,
) -> HTMLResponse:
    items = build_form(command.request_type, form_ctx)
    errors = dict(errors or {})
    if refused is not None:
        if refused.field == "approval_reason":
            errors["_approval_reason"] = refused.detail
        else:
            errors.update(domain_error_fields(refused, widget_names(items)))
    reason_error = errors.pop("_approval_reason", "")
    placed = attach_errors(items, errors)
    if reason_error:
        placed.append(("f-approval-reason", "申請の理由", reason_error))
    person = form_ctx.person
    back = f"{CORRECTIONS}/{resubmission}" if resubmission else None
    if back is None and person is not None:
        back = f"{STAFF_PREFIX}/residents/{person.person_id}"
    return render(
        request,
        "event_form.html",
        {
            "title": f"{command.label}の承認申請",
            "heading": f"{command.label}の承認申請"
            + (f" (申請番号 {resubmission} の再提出)" if resubmission else ""),
            "command": command,
            "items": items,
            "error_summary": placed,
            "stale": stale,
            "stale_message": STALE_MESSAGE,
            "reload_url": action,
            "action": action,
            "person": person,
            "more_members_url": None,
            "draft": {"reason": reason, "error": reason_error, "resubmission": resubmission},
            "submit_label": "再提出する" if resubmission else "承認を申請する",
            "back_url": back,
            "back_label": "申請に戻る" if resubmission else "申請せずに戻る",
        },
        session=session,
        principal=principal,
        status=status,
    )


def _posted_draft(
    command: registry.EventCommand, values: Mapping[str, str], reason: str
) -> tuple[Any, dict[str, str]]:
    """The request model and the clerk's reason from the form; every bad input at once."""
    errors: dict[str, str] = {}
    body: Any = None
    try:
        body = parse_request(command.request_type, values)
    except FormInvalid as exc:
        errors.update(exc.errors)
    if not reason:
        errors["_approval_reason"] = "申請の理由を入力してください。"
    elif len(reason) > approvals.REASON_MAX:
        errors["_approval_reason"] = f"申請の理由は{approvals.REASON_MAX}文字以内で入力してください。"
    return body, errors


@router.get("/approvals/new/{slug}")
def draft_form(
    request: Request,
    slug: str,
    principal: Clerk,
    session: SessionDep,
    person: Annotated[int | None, Query(ge=1)] = None,
    event_id: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    command = _draftable(slug)
    values = {"event_id": str(event_id)} if event_id else {}
    form_ctx = _form_context(request, session, principal, command, person, values, submitted=False, members=1)
    action = f"{BASE}/new/{slug}" + (f"?person={person}" if person else "")
    return _render_draft(request, session, principal, command, form_ctx, action=action, reason="")


@router.post("/approvals/new/{slug}")
def draft(
    request: Request,
    slug: str,
    principal: Clerk,
    session: SessionDep,
    form: PostedForm,
    person: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    command = _draftable(slug)
    values = form_values(form)
    reason = form_value(form, "_approval_reason")
    action = f"{BASE}/new/{slug}" + (f"?person={person}" if person else "")

    def again(**kwargs: Any) -> HTMLResponse:
        form_ctx = _form_context(
            request, session, principal, command, person, values, submitted=True, members=1
        )
        return _render_draft(
            request, session, principal, command, form_ctx, action=action, reason=reason, **kwargs
        )

    body, errors = _posted_draft(command, values, reason)
    if errors:
        return again(errors=errors, status=400)
    try:
        with attempt(session):
            drafted = approvals.draft(
                session, ctx=context_of(request, principal), slug=command.slug, request=body, reason=reason
            )
    except StaleVersion:
        return again(stale=True, status=409)
    except DomainError as exc:
        return again(refused=exc, status=exc.status)
    return see_other(f"{CORRECTIONS}/{drafted.id}?done=drafted")


def _detail(
    request: Request,
    session: Session,
    principal: Principal,
    request_id: int,
    *,
    done: str = "",
    error: str = "",
    stale_error: str = "",
    status: int = 200,
) -> HTMLResponse:
    ctx = context_of(request, principal)
    detail = approvals.get_request(session, ctx=ctx, request_id=request_id)
    view = detail.request
    me = ctx.actor.actor_id
    comparisons = []
    for index, current in enumerate(detail.current):
        proposed = detail.proposed[index] if index < len(detail.proposed) else None
        comparisons.append(
            {
                "person_id": current.person_id,
                "name": current.record.name,
                "version": current.version,
                "rows": views.compare_records(current.record, proposed.record if proposed else None)
                if view.pending and not detail.problem
                else [],
                "record_rows": views.record_rows(current.record),
            }
        )
    return render(
        request,
        "approval_request.html",
        {
            "title": f"{view.label}の申請 (申請番号 {view.id})",
            "r": _approval_row(view),
            "view": view,
            "fields": views.request_rows(view.request),
            "comparisons": comparisons,
            "problem": detail.problem,
            "stale": detail.stale,
            "stale_message": STALE_MESSAGE,
            "stale_error": stale_error,
            "error": error,
            "done": DONE_MESSAGES.get(done, ""),
            "own": view.drafted_by == me,
            "may_decide": view.pending and allows(SUPERVISOR, principal) and view.drafted_by != me,
            "record_url": f"{STAFF_PREFIX}/residents/{view.person_ids[0]}" if view.person_ids else "",
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/approvals/corrections/{request_id}")
def approval_request(
    request: Request,
    request_id: int,
    principal: Clerk,
    session: SessionDep,
    done: Annotated[str, Query(max_length=16)] = "",
) -> HTMLResponse:
    return _detail(request, session, principal, request_id, done=done)


@router.post("/approvals/corrections/{request_id}")
def decide_request(
    request: Request,
    request_id: int,
    principal: Supervisor,
    session: SessionDep,
    form: PostedForm,
) -> Response:
    decision = form_value(form, "decision")
    revision_text = form_value(form, "revision")
    revision = int(revision_text) if revision_text.isdigit() else None
    note = form_value(form, "note")
    ctx = context_of(request, principal)
    try:
        with attempt(session):
            if decision == "approve":
                approvals.approve(session, ctx=ctx, request_id=request_id, revision=revision, note=note)
            elif decision == "refuse":
                approvals.refuse(session, ctx=ctx, request_id=request_id, revision=revision, note=note)
            else:
                return see_other(f"{CORRECTIONS}/{request_id}")
    except StaleVersion as exc:
        return _detail(request, session, principal, request_id, stale_error=exc.detail, status=exc.status)
    except DomainError as exc:
        return _detail(request, session, principal, request_id, error=exc.detail, status=exc.status)
    done = "approved" if decision == "approve" else "refused"
    return see_other(f"{CORRECTIONS}/{request_id}?done={done}")


@router.post("/approvals/corrections/{request_id}/withdraw")
def withdraw_request(
    request: Request, request_id: int, principal: Clerk, session: SessionDep, form: PostedForm
) -> Response:
    try:
        with attempt(session):
            approvals.withdraw(session, ctx=context_of(request, principal), request_id=request_id)
    except DomainError as exc:
        return _detail(request, session, principal, request_id, error=exc.detail, status=exc.status)
    return see_other(f"{CORRECTIONS}/{request_id}?done=withdrawn")


def _resubmission_context(
    request: Request,
    session: Session,
    principal: Principal,
    view: approvals.ApprovalView,
    values: Mapping[str, str] | None,
) -> tuple[registry.EventCommand, FormContext]:
    command = registry.COMMANDS_BY_SLUG[view.slug]
    person = view.person_ids[0] if view.person_ids else None
    form_ctx = _form_context(request, session, principal, command, person, {}, submitted=True, members=1)
    if values is None:
        members = list(form_ctx.household.members) if form_ctx.household else []
        values = request_values(view.request, members)
    return command, FormContext(
        person=form_ctx.person,
        household=form_ctx.household,
        values=values,
        submitted=True,
        list_counts=form_ctx.list_counts,
        preselect_all=form_ctx.preselect_all,
    )


def _own_pending(
    request: Request, session: Session, principal: Principal, request_id: int
) -> approvals.ApprovalView:
    view = approvals.get_request(session, ctx=context_of(request, principal), request_id=request_id).request
    if view.drafted_by != context_of(request, principal).actor.actor_id:
        raise PageError(403, "この申請は再提出できません", "再提出できるのは、申請した職員だけです。")
    if not view.pending:
        raise PageError(
            409, "この申請は再提出できません", f"この申請は既に処理されています ({view.status_label})。"
        )
    return view


@router.get("/approvals/corrections/{request_id}/edit")
def resubmission_form(
    request: Request, request_id: int, principal: Clerk, session: SessionDep
) -> HTMLResponse:
    view = _own_pending(request, session, principal, request_id)
    command, form_ctx = _resubmission_context(request, session, principal, view, None)
    return _render_draft(
        request,
        session,
        principal,
        command,
        form_ctx,
        action=f"{CORRECTIONS}/{request_id}/edit",
        reason=view.reason,
        resubmission=view.id,
    )


@router.post("/approvals/corrections/{request_id}/edit")
def resubmit(
    request: Request, request_id: int, principal: Clerk, session: SessionDep, form: PostedForm
) -> Response:
    view = _own_pending(request, session, principal, request_id)
    values = form_values(form)
    reason = form_value(form, "_approval_reason")
    command, form_ctx = _resubmission_context(request, session, principal, view, values)

    def again(**kwargs: Any) -> HTMLResponse:
        return _render_draft(
            request,
            session,
            principal,
            command,
            form_ctx,
            action=f"{CORRECTIONS}/{request_id}/edit",
            reason=reason,
            resubmission=view.id,
            **kwargs,
        )

    body, errors = _posted_draft(command, values, reason)
    if errors:
        return again(errors=errors, status=400)
    try:
        with attempt(session):
            approvals.resubmit(
                session,
                ctx=context_of(request, principal),
                request_id=request_id,
                request=body,
                reason=reason,
            )
    except StaleVersion:
        return again(stale=True, status=409)
    except DomainError as exc:
        return again(refused=exc, status=exc.status)
    return see_other(f"{CORRECTIONS}/{request_id}?done=resubmitted")
