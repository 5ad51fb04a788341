"""/registry/approval-requests: a clerk drafts a supervisor-only event, a supervisor decides.

The same use cases as the staff window's approval screens (registry.approvals). A draft's
``request`` is exactly the body of ``POST /registry/events/{slug}``; approving records
that event under the supervisor. The municipality is the caller's own, never a parameter.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import PROBLEM_RESPONSES, SessionDep, require
from jumin.registry import approvals, service
from jumin.registry.domain import EVENT_LABELS
from jumin.registry.presenters import record_response
from jumin.registry.schemas import EventResponse, RecordResponse

router = APIRouter(prefix="/approval-requests", tags=["住民記録 (承認)"], responses=PROBLEM_RESPONSES)

_MUNICIPAL = frozenset({OrganisationKind.MUNICIPALITY})
Clerk = Annotated[Principal, Depends(require(Role.CLERK, Role.SUPERVISOR, organisation_kinds=_MUNICIPAL))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR, organisation_kinds=_MUNICIPAL))]
Reason = Annotated[str, Field(min_length=1, max_length=approvals.REASON_MAX, description="申請の理由")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalResponse(BaseModel):
    id: int
    slug: str = Field(description="異動の種類 (POST /registry/events/{slug} の slug)")
    kind: str
    label: str
    status: approvals.ApprovalStatus
    status_label: str
    revision: int = Field(description="再提出・判断のたびに増える。承認・却下ではこの値を指定できる")
    approval_reason: str = Field(description="申請者が記した申請の理由")
    drafted_by: str
    drafted_at: dt.datetime
    resubmitted_at: dt.datetime | None
    stale_at: dt.datetime | None = Field(description="記録が更新されていたため承認できなかった日時")
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    event_id: int | None = Field(description="承認により記録された異動の番号")
    person_ids: list[int]
    request: dict[str, Any] = Field(description="記録する異動の内容 (POST /registry/events/{slug} の本文)")


class ApprovalDetailResponse(ApprovalResponse):
    current: list[RecordResponse] = Field(description="対象者の現在の記載")
    proposed: list[RecordResponse | None] = Field(description="承認した場合の記載 (current と同じ順)")
    problem: str | None = Field(description="承認できない理由 (記録の更新・規則)")


class ResubmitBody(_Body):
    approval_reason: Reason
    request: dict[str, Any] = Field(description="記録する異動の内容 (最新の版で)")


class DecisionBody(_Body):
    revision: int | None = Field(default=None, ge=1, description="確認した申請の revision")
    note: str = Field(default="", max_length=approvals.REASON_MAX, description="判断の理由・確認した事項")


class RefusalBody(_Body):
    revision: int | None = Field(default=None, ge=1)
    note: str = Field(min_length=1, max_length=approvals.REASON_MAX, description="却下の理由")


class ApprovedResponse(BaseModel):
    approval: ApprovalResponse
    event: EventResponse


def _ctx(request: Request, principal: Principal) -> service.RegistryContext:
    return service.RegistryContext(
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        network=request.app.state.network_client,
    )


def _response(view: approvals.ApprovalView) -> ApprovalResponse:
    return ApprovalResponse(
        id=view.id,
        slug=view.slug,
        kind=view.kind.value,
        label=view.label,
        status=view.status,
        status_label=view.status_label,
        revision=view.revision,
        approval_reason=view.reason,
        drafted_by=view.drafted_by,
        drafted_at=view.drafted_at,
        resubmitted_at=view.resubmitted_at,
        stale_at=view.stale_at,
        decided_by=view.decided_by,
        decided_at=view.decided_at,
        decision_note=view.decision_note,
        event_id=view.event_id,
        person_ids=list(view.person_ids),
        request=view.request.model_dump(mode="json"),
    )


def _add_draft_route(command: service.EventCommand) -> None:
    body_type: Any = create_model(
        "ApprovalDraft_" + command.slug.replace("-", "_"),
        __base__=_Body,
        approval_reason=(Reason, ...),
        request=(command.request_type, ...),
    )

    def draft(body: Any, request: Request, principal: Principal, session: Any) -> ApprovalResponse:
        return _response(
            approvals.draft(
                session,
                ctx=_ctx(request, principal),
                slug=command.slug,
                request=body.request,
                reason=body.approval_reason,
            )
        )

    draft.__annotations__ = {
        "body": body_type,
        "request": Request,
        "principal": Clerk,
        "session": SessionDep,
        "return": ApprovalResponse,
    }
    draft.__name__ = "draft_" + command.slug.replace("-", "_")
    router.add_api_route(
        f"/{command.slug}",
        draft,
        methods=["POST"],
        status_code=201,
        summary=f"{command.label}の承認を申請する",
        description=(
            f"{command.label} ({command.kind.value}) を監督職員の承認待ちとして申請する。"
            "内容は異動の記録と同じ規則でいま確認され、誤りはその項目を指して返る。"
        ),
        response_model=ApprovalResponse,
    )


for _command in service.EVENT_COMMANDS:
    if _command.slug in approvals.APPROVABLE_SLUGS:
        _add_draft_route(_command)


@router.get("", summary="承認の申請の一覧 (自団体、新しい順)")
def list_requests(
    request: Request,
    principal: Clerk,
    session: SessionDep,
    status: Annotated[list[approvals.ApprovalStatus] | None, Query(description="状態で絞り込む")] = None,
    mine: Annotated[bool, Query(description="自分の申請だけ")] = False,
    person_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> list[ApprovalResponse]:
    ctx = _ctx(request, principal)
    views = approvals.list_requests(
        session,
        ctx=ctx,
        statuses=status or (),
        drafted_by=ctx.actor.actor_id if mine else None,
        person_id=person_id,
        limit=limit,
    )
    return [_response(v) for v in views]


@router.get("/{request_id}", summary="承認の申請 (対象者の現在の記載と、承認した場合の記載)")
def get_request(
    request_id: int, request: Request, principal: Clerk, session: SessionDep
) -> ApprovalDetailResponse:
    detail = approvals.get_request(session, ctx=_ctx(request, principal), request_id=request_id)
    return ApprovalDetailResponse(
        **_response(detail.request).model_dump(),
        current=[record_response(v, show_individual_number=False) for v in detail.current],
        proposed=[
            record_response(v, show_individual_number=False) if v is not None else None
            for v in detail.proposed
        ],
        problem=detail.problem,
    )


@router.put("/{request_id}", summary="申請を再提出する (申請者のみ。最新の記録に合わせて)")
def resubmit(
    request_id: int, body: ResubmitBody, request: Request, principal: Clerk, session: SessionDep
) -> ApprovalResponse:
    ctx = _ctx(request, principal)
    try:
        parsed = approvals.request_type_of(session, ctx=ctx, request_id=request_id).model_validate(
            body.request
        )
    except ValidationError as exc:
        raise RequestValidationError(
            [e | {"loc": ("body", "request", *e["loc"])} for e in exc.errors()]
        ) from exc
    return _response(
        approvals.resubmit(
            session, ctx=ctx, request_id=request_id, request=parsed, reason=body.approval_reason
        )
    )


@router.post("/{request_id}/withdraw", summary="申請を取り下げる (申請者のみ)")
def withdraw(request_id: int, request: Request, principal: Clerk, session: SessionDep) -> ApprovalResponse:
    return _response(approvals.withdraw(session, ctx=_ctx(request, principal), request_id=request_id))


@router.post(
    "/{request_id}/approve",
    status_code=201,
    summary="申請を承認し、異動を記録する (監督職員。申請者本人は不可)",
)
def approve(
    request_id: int, body: DecisionBody, request: Request, principal: Supervisor, session: SessionDep
) -> ApprovedResponse:
    done = approvals.approve(
        session, ctx=_ctx(request, principal), request_id=request_id, revision=body.revision, note=body.note
    )
    outcome = done.outcome
    return ApprovedResponse(
        approval=_response(done.request),
        event=EventResponse(
            event_id=outcome.event_id,
            kind=outcome.kind.value,
            label=EVENT_LABELS[outcome.kind],
            late=outcome.late,
            person_ids=list(outcome.person_ids),
            household_ids=list(outcome.household_ids),
        ),
    )


@router.post("/{request_id}/refuse", summary="申請を却下する (監督職員。申請者本人は不可)")
def refuse(
    request_id: int, body: RefusalBody, request: Request, principal: Supervisor, session: SessionDep
) -> ApprovalResponse:
    return _response(
        approvals.refuse(
            session,
            ctx=_ctx(request, principal),
            request_id=request_id,
            note=body.note,
            revision=body.revision,
        )
    )
