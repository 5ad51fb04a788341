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
from jumin.core.names import romaji_hepburn
from jumin.core.wareki import format_wareki
from jumin.registry import service
from jumin.registry.domain import EVENT_LABELS, REMOVAL_LABELS, EventKind, EventOutcome, ResidentKind
from jumin.registry.schemas import (
    AliasHistoryResponse,
    EventListItem,
    EventResponse,
    FlexDate,
    ForeignResponse,
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


def _romaji(kana: str | None) -> str | None:
    if not kana:
        return None
    try:
        return romaji_hepburn(kana)
    except InvalidValue:
        return None


def record_response(view: service.RecordView, *, show_individual_number: bool) -> RecordResponse:
    r = view.record
    f = r.foreign
    number = r.individual_number
    shown = number if (number and show_individual_number) else (f"********{number[-4:]}" if number else None)
    return RecordResponse(
        person_id=view.person_id,
        lg_code=view.lg_code,
        version=view.version,
        valid_from=view.valid_from,
        valid_to=view.valid_to,
        recorded_at=view.recorded_at,
        status=r.status.value,
        resident_kind=r.resident_kind,
        name=r.name,
        family_name=r.family_name,
        given_name=r.given_name,
        name_kana=r.name_kana,
        family_name_kana=r.family_name_kana,
        given_name_kana=r.given_name_kana,
        romaji=_romaji(r.name_kana)
        if r.resident_kind is ResidentKind.JAPANESE
        else (f.name_alphabet if f else None),
        birth_date=r.birth_date,
        # Japanese residents' birth dates are shown in 和暦, foreign residents' in 西暦.
        birth_date_wareki=format_wareki(r.birth_date) if r.resident_kind is ResidentKind.JAPANESE else None,
        sex=r.sex,
        household_id=r.household_id,
        relationship=r.relationship,
        address_lg_code=r.address.lg_code,
        address_line=r.address.line,
        address_katagaki=r.address.katagaki,
        address_text=r.address.text(),
        became_resident_on=r.became_resident_on,
        address_set_on=r.address_set_on,
        notified_on=r.notified_on,
        previous_address=r.previous_address,
        honseki=r.honseki,
        hittousha=r.hittousha,
        old_surname=r.old_surname,
        old_surname_kana=r.old_surname_kana,
        resident_code=r.resident_code,
        individual_number=shown,
        planned_move_out_on=r.planned_move_out.planned_on if r.planned_move_out else None,
        planned_move_out_destination=r.planned_move_out.destination if r.planned_move_out else None,
        removal_reason=REMOVAL_LABELS[r.removal_reason] if r.removal_reason else None,
        removed_on=r.removed_on,
        foreign=None
        if f is None
        else ForeignResponse(
            nationality=f.nationality,
            category=f.category,
            name_alphabet=f.name_alphabet,
            status_of_residence=f.status_of_residence,
            period_of_stay=f.period_of_stay,
            stay_expires_on=f.stay_expires_on,
            residence_card_number=f.residence_card_number,
            became_foreign_resident_on=f.became_foreign_resident_on,
            alias=f.alias,
            alias_kana=f.alias_kana,
            alias_history=[
                AliasHistoryResponse(
                    alias=a.alias,
                    alias_kana=a.alias_kana,
                    recorded_on=a.recorded_on,
                    recorded_lg_code=a.recorded_lg_code,
                    deleted_on=a.deleted_on,
                    deleted_lg_code=a.deleted_lg_code,
                )
                for a in f.alias_history
            ],
        ),
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
    items = []
    for v in rows:
        record = service.version_summary(v)
        items.append(
            VersionHistoryItem(
                valid_from=v.valid_from,
                valid_to=v.valid_to,
                recorded_at=v.recorded_at,
                superseded_at=v.superseded_at,
                event_id=v.event_id,
                status=v.status,
                name=record.name,
                address_line=record.address.line,
                household_id=record.household_id,
            )
        )
    return items


@router.get("/persons/{person_id}/events", summary="住民の異動の一覧")
def person_events(
    person_id: int,
    request: Request,
    principal: Reader,
    session: SessionDep,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> list[EventListItem]:
    events = service.events_of(session, ctx=context(request, principal), person_id=person_id, purpose=purpose)
    return [
        EventListItem(
            event_id=e.id,
            kind=e.kind,
            label=EVENT_LABELS[EventKind(e.kind)],
            effective_on=e.effective_on,
            notified_on=e.notified_on,
            recorded_at=e.recorded_at,
            recorded_by=e.recorded_by,
            reason=e.reason,
            late=e.late,
            cancelled_by_event_id=e.cancelled_by_event_id,
            cancels_event_id=e.cancels_event_id,
        )
        for e in events
    ]


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


def outbox_response(message: Any, payload: dict[str, Any]) -> OutboxResponse:
    """One outbox message as the API and the CLI show it, 個人番号 masked."""
    return OutboxResponse(
        id=message.id,
        lg_code=message.lg_code,
        person_id=message.person_id,
        resident_code=message.resident_code,
        seq=message.seq,
        kind=message.kind,
        destination_lg_code=message.destination_lg_code,
        idempotency_key=message.idempotency_key,
        event_id=message.event_id,
        created_at=message.created_at,
        delivered_at=message.delivered_at,
        payload=masked_payload(payload),
    )


def masked_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The outbox as an operator sees it: 個人番号 masked wherever it appears."""

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (f"********{v[-4:]}" if k == "individual_number" and isinstance(v, str) else mask(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [mask(v) for v in value]
        return value

    result: dict[str, Any] = mask(payload)
    return result
