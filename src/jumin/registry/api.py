"""HTTP routes of the register: one POST per event kind, and the history queries.

A clerk acts on their own municipality only: the municipality is the caller's
organisation, never a parameter, so no request can reach another register.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import PROBLEM_RESPONSES, SessionDep, require
from jumin.audit import service as audit
from jumin.audit.domain import AuditAction
from jumin.core.errors import Forbidden, InvalidValue
from jumin.registry import service
from jumin.registry.domain import EVENT_LABELS, EventOutcome
from jumin.registry.presenters import event_item, history_item, outbox_response, record_response
from jumin.registry.schemas import (
    EventListItem,
    EventResponse,
    FlexDate,
    HouseholdResponse,
    OutboxResponse,
    RecordResponse,
    SearchResponse,
    VersionHistoryItem,
)

router = APIRouter(prefix="/registry", tags=["住民記録"], responses=PROBLEM_RESPONSES)

_MUNICIPAL = frozenset({OrganisationKind.MUNICIPALITY})
Clerk = Annotated[Principal, Depends(require(Role.CLERK, Role.SUPERVISOR, organisation_kinds=_MUNICIPAL))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR, organisation_kinds=_MUNICIPAL))]
Reader = Annotated[
    Principal, Depends(require(Role.CLERK, Role.SUPERVISOR, Role.AUDITOR, organisation_kinds=_MUNICIPAL))
]
DEFAULT_PURPOSE = "住民基本台帳事務"
Purpose = Annotated[str, Query(min_length=1, max_length=200, description="利用目的 (監査ログに記録)")]


def context(request: Request, principal: Principal) -> service.RegistryContext:
    return service.RegistryContext(
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        network=request.app.state.network_client,
    )


def _event_response(outcome: EventOutcome) -> EventResponse:
    return EventResponse(
        event_id=outcome.event_id,
        kind=outcome.kind.value,
        label=EVENT_LABELS[outcome.kind],
        late=outcome.late,
        person_ids=list(outcome.person_ids),
        household_ids=list(outcome.household_ids),
    )


def _add_event_route(command: service.EventCommand) -> None:
    who = Supervisor if command.supervisor_only else Clerk
    request_type: Any = command.request_type

    def record_event(body: Any, request: Request, principal: Principal, session: Session) -> EventResponse:
        return _event_response(
            service.run_command(session, ctx=context(request, principal), slug=command.slug, request=body)
        )

    # The annotations FastAPI reads: this command's request model and access rule. Set
    # as objects, since postponed (string) annotations could not name these locals.
    record_event.__annotations__ = {
        "body": request_type,
        "request": Request,
        "principal": who,
        "session": SessionDep,
        "return": EventResponse,
    }
    record_event.__name__ = "record_" + command.slug.replace("-", "_")
    router.add_api_route(
        f"/events/{command.slug}",
        record_event,
        methods=["POST"],
        status_code=201,
        summary=f"{command.label}を記録する",
        description=f"異動事由: {command.label} ({command.kind.value})."
        + (" 監督職員のみ。" if command.supervisor_only else ""),
        response_model=EventResponse,
    )


for _command in service.EVENT_COMMANDS:
    _add_event_route(_command)


def _may_show_number(
    session: SessionDep, request: Request, principal: Principal, person_id: int, purpose: str
) -> bool:
    if not (principal.roles & {Role.CLERK, Role.SUPERVISOR}):
        raise Forbidden("個人番号を表示する権限がありません。", field="show_individual_number")
    audit.record(
        session,
        actor=actor_of(principal),
        action=AuditAction.REGISTRY_INDIVIDUAL_NUMBER_SHOWN,
        target_kind="person",
        target_id=str(person_id),
        purpose=purpose,
    )
    return True


@router.get("/persons", summary="住民の検索 (カナ氏名・住民票コード・生年月日・住所)")
def search(
    request: Request,
    principal: Reader,
    session: SessionDep,
    kana: Annotated[str | None, Query(max_length=100, description="カナ氏名 (前方一致・通称を含む)")] = None,
    resident_code: Annotated[str | None, Query(pattern=r"^[0-9]{11}$")] = None,
    birth_date: Annotated[FlexDate | None, Query()] = None,
    address: Annotated[str | None, Query(max_length=200, description="住所 (前方一致)")] = None,
    include_removed: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> SearchResponse:
    found = service.search(
        session,
        ctx=context(request, principal),
        resident_code=resident_code,
        kana=kana,
        birth_date=birth_date,
        address=address,
        include_removed=include_removed,
        limit=limit,
        offset=offset,
        purpose=purpose,
    )
    return SearchResponse(
        total=found.total,
        offset=offset,
        limit=limit,
        results=[record_response(v, show_individual_number=False) for v in found.results],
    )


@router.get("/persons/{person_id}", summary="住民票 (任意の日付時点・任意の記録時点)")
def get_person(
    person_id: int,
    request: Request,
    principal: Reader,
    session: SessionDep,
    on: Annotated[FlexDate | None, Query(description="この日の記載内容 (省略時は本日)")] = None,
    known_at: Annotated[dt.datetime | None, Query(description="この時点で台帳に記録されていた内容")] = None,
    show_individual_number: Annotated[bool, Query(description="個人番号を全桁表示する (目的を記録)")] = False,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> RecordResponse:
    if known_at is not None and known_at.tzinfo is None:
        raise InvalidValue(
            "known_at にはタイムゾーンを含めてください (例: 2026-04-01T09:00:00+09:00)。", field="known_at"
        )
    view = service.get_record(
        session,
        ctx=context(request, principal),
        person_id=person_id,
        on=on,
        known_at=known_at,
        purpose=purpose,
    )
    show = show_individual_number and _may_show_number(session, request, principal, person_id, purpose)
    return record_response(view, show_individual_number=show)


@router.get("/persons/{person_id}/history", summary="住民票の全ての版 (訂正前の記録を含む)")
def person_history(
    person_id: int,
    request: Request,
    principal: Reader,
    session: SessionDep,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> list[VersionHistoryItem]:
    rows = service.history(session, ctx=context(request, principal), person_id=person_id, purpose=purpose)
    return [history_item(v) for v in rows]


@router.get("/persons/{person_id}/events", summary="住民の異動の一覧")
def person_events(
    person_id: int,
    request: Request,
    principal: Reader,
    session: SessionDep,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> list[EventListItem]:
    events = service.events_of(session, ctx=context(request, principal), person_id=person_id, purpose=purpose)
    return [event_item(e) for e in events]


@router.get("/households/{household_id}", summary="世帯 (任意の日付時点)")
def get_household(
    household_id: int,
    request: Request,
    principal: Reader,
    session: SessionDep,
    on: Annotated[FlexDate | None, Query()] = None,
    known_at: Annotated[dt.datetime | None, Query()] = None,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> HouseholdResponse:
    if known_at is not None and known_at.tzinfo is None:
        raise InvalidValue("known_at にはタイムゾーンを含めてください。", field="known_at")
    view = service.get_household(
        session,
        ctx=context(request, principal),
        household_id=household_id,
        on=on,
        known_at=known_at,
        purpose=purpose,
    )
    return HouseholdResponse(
        household_id=view.household_id,
        household_no=view.household_no,
        version=view.version,
        on=view.on,
        head_person_id=view.head_person_id,
        members=[record_response(m, show_individual_number=False) for m in view.members],
    )


@router.get("/outbox", summary="住基ネットへの送信待ち・送信済みメッセージ (自団体)")
def outbox(
    principal: Supervisor,
    session: SessionDep,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    undelivered_only: bool = False,
) -> list[OutboxResponse]:
    rows = service.outbox(
        session,
        lg_code=principal.organisation_code,
        viewer=actor_of(principal),
        undelivered_only=undelivered_only,
        after_id=after_id,
        limit=limit,
    )
    return [outbox_response(m, payload) for m, payload in rows]


# Drafts of supervisor-only events and their approval: /registry/approval-requests.
from jumin.registry.approvals_api import router as _approvals_router  # noqa: E402

router.include_router(_approvals_router)
