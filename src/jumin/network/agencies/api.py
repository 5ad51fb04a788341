"""The agency API (/network/v1/...): statutory tasks, lookups, batches, feed, extraction.

Every route runs on the national database (``NationalSessionDep``) and authenticates
against its accounts tables (``NationalAccessRule``); tokens come from
POST /network/v1/auth/token (agency clients) and POST /network/v1/auth/login (national
and prefecture staff). Every agency request names its statutory task; the service
refuses and audits a task the client does not hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import anyio.from_thread
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import StreamingResponse

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.schemas import ClientTokenRequest, LoginRequest, TokenResponse
from jumin.api_support import (
    NATIONAL_AGENCY_CLIENT,
    NATIONAL_PUBLIC,
    PROBLEM_RESPONSES,
    NationalAccessRule,
    NationalSessionDep,
    national_require,
    national_units,
)
from jumin.core.ids import IndividualNumber, ResidentCode
from jumin.network.agencies import jobs, service
from jumin.network.agencies.domain import POINTS, BatchEncoding, BatchKind, FourFacts, OnError
from jumin.network.agencies.schemas import (
    AccessResponse,
    AsOfRequest,
    BatchResponse,
    ByAgencyCode,
    ByFourFacts,
    ByIndividualNumber,
    ByResidentCode,
    CandidateResponse,
    CandidatesResponse,
    DecisionRequest,
    DeliveryResponse,
    ExtractionRequest,
    ExtractionResponse,
    FeedItemResponse,
    FeedResponse,
    GrantRequest,
    GrantResponse,
    HistoryRequest,
    NewClientResponse,
    PersonResponse,
    RegisterClientRequest,
    RowErrorResponse,
    SubscribeRequest,
    SubscriptionResponse,
    TaskResponse,
    TranslateRequest,
    TranslationResponse,
)

router = APIRouter(prefix="/network/v1", tags=["住基ネット 行政機関API"], responses=PROBLEM_RESPONSES)

AgencyClient = Annotated[Principal, Depends(NATIONAL_AGENCY_CLIENT)]
# Lookups are also the prefecture's (住基法 第30条の15): its clerks and supervisors, for the
# tasks of the prefectural governor, on the prefecture's own residents (service.authorize).
LOOKUP_CALLER = NationalAccessRule(
    agency_clients=True,
    roles=frozenset({Role.CLERK, Role.SUPERVISOR}),
    organisation_kinds=frozenset({OrganisationKind.PREFECTURE}),
)
LookupCaller = Annotated[Principal, Depends(LOOKUP_CALLER)]
Operator = Annotated[
    Principal,
    Depends(national_require(Role.OPERATOR, organisation_kinds=frozenset({OrganisationKind.NATIONAL}))),
]
AccessLogReader = Annotated[
    Principal,
    Depends(
        national_require(
            Role.OPERATOR, Role.AUDITOR, organisation_kinds=frozenset({OrganisationKind.NATIONAL})
        )
    ),
]
PrefectureClerk = Annotated[
    Principal,
    Depends(
        national_require(
            Role.CLERK, Role.SUPERVISOR, organisation_kinds=frozenset({OrganisationKind.PREFECTURE})
        )
    ),
]
ExtractionReader = Annotated[
    Principal,
    Depends(
        national_require(
            Role.CLERK,
            Role.SUPERVISOR,
            Role.OPERATOR,
            Role.AUDITOR,
            organisation_kinds=frozenset({OrganisationKind.PREFECTURE, OrganisationKind.NATIONAL}),
        )
    ),
]
TaskQuery = Annotated[str, Query(min_length=1, max_length=64, description="別表事務のコード")]
CSV = "text/csv; charset=utf-8"


def _target(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', '?')}"


def _token(issued: accounts.IssuedToken) -> TokenResponse:
    return TokenResponse(access_token=issued.access_token, expires_at=issued.expires_at)


# --- authentication on the national side ----------------------------------------------------------


@router.post(
    "/auth/token",
    dependencies=[Depends(NATIONAL_PUBLIC)],
    summary="行政機関APIクライアントのトークン発行（全国側）",
)
def client_token(body: ClientTokenRequest, session: NationalSessionDep) -> TokenResponse:
    return _token(
        accounts.issue_client_token(session, client_id=body.client_id, client_secret=body.client_secret)
    )


@router.post(
    "/auth/login", dependencies=[Depends(NATIONAL_PUBLIC)], summary="全国センター・都道府県の職員ログイン"
)
def staff_login(body: LoginRequest, session: NationalSessionDep) -> TokenResponse:
    return _token(accounts.login(session, login=body.login, password=body.password, totp_code=body.totp))


# --- statutory tasks and clients ------------------------------------------------------------------


@router.get("/tasks", dependencies=[Depends(NATIONAL_PUBLIC)], summary="別表事務の一覧")
def tasks() -> list[TaskResponse]:
    return [
        TaskResponse.model_validate(
            {
                **{k: getattr(t, k) for k in TaskResponse.model_fields if k not in ("fields", "feed_events")},
                "fields": sorted(t.fields),
                "feed_events": sorted(t.feed_events),
            }
        )
        for t in service.list_tasks()
    ]


@router.post("/agency-clients", status_code=201, summary="行政機関APIクライアントの発行（全国側）")
def register_client(
    body: RegisterClientRequest, principal: Operator, session: NationalSessionDep
) -> NewClientResponse:
    new = service.register_agency_client(
        session,
        actor=principal,
        organisation_code=body.organisation_code,
        name=body.name,
        organisation_name=body.organisation_name,
    )
    return NewClientResponse(
        client_id=new.client_id,
        client_secret=new.client_secret,
        organisation_code=new.organisation_code,
        name=new.name,
    )


@router.get("/agency-clients/{client_id}/tasks", summary="クライアントに登録された別表事務")
def client_tasks(client_id: str, principal: Operator, session: NationalSessionDep) -> list[GrantResponse]:
    return [GrantResponse.model_validate(g) for g in service.client_tasks(session, client_id=client_id)]


@router.post("/agency-clients/{client_id}/tasks", status_code=201, summary="クライアントへの別表事務の登録")
def grant_task(
    client_id: str, body: GrantRequest, principal: Operator, session: NationalSessionDep
) -> GrantResponse:
    return GrantResponse.model_validate(
        service.grant_task(session, actor=principal, client_id=client_id, task_code=body.task)
    )


@router.delete("/agency-clients/{client_id}/tasks/{task}", summary="別表事務の登録の取消し")
def revoke_task(client_id: str, task: str, principal: Operator, session: NationalSessionDep) -> GrantResponse:
    return GrantResponse.model_validate(
        service.revoke_task(session, actor=principal, client_id=client_id, task_code=task)
    )


@router.get("/me/tasks", summary="自クライアントに登録された別表事務")
def my_tasks(principal: AgencyClient, session: NationalSessionDep) -> list[GrantResponse]:
    return [
        GrantResponse.model_validate(g) for g in service.client_tasks(session, client_id=principal.subject)
    ]


# --- lookups --------------------------------------------------------------------------------------


def _person(view: service.PersonView) -> PersonResponse:
    return PersonResponse.model_validate(view)


@router.post("/lookups/by-resident-code", summary="住民票コードによる照会（行政機関・都道府県）")
def by_resident_code(
    body: ByResidentCode, request: Request, principal: LookupCaller, session: NationalSessionDep
) -> PersonResponse:
    ctx = service.authorize(session, principal=principal, task_code=body.task, target=_target(request))
    code = ResidentCode.parse(body.resident_code, field="resident_code")
    return _person(service.lookup_by_resident_code(session, ctx=ctx, resident_code=code))


@router.post("/lookups/by-individual-number", summary="個人番号による照会（認められた事務のみ）")
def by_individual_number(
    body: ByIndividualNumber, request: Request, principal: LookupCaller, session: NationalSessionDep
) -> PersonResponse:
    ctx = service.authorize(
        session, principal=principal, task_code=body.task, target=_target(request), individual_number_key=True
    )
    number = IndividualNumber.parse(body.individual_number, field="individual_number")
    return _person(service.lookup_by_individual_number(session, ctx=ctx, number=number))


@router.post("/lookups/by-agency-code", summary="機関別符号による照会（自機関の符号のみ）")
def by_agency_code(
    body: ByAgencyCode, request: Request, principal: LookupCaller, session: NationalSessionDep
) -> PersonResponse:
    ctx = service.authorize(session, principal=principal, task_code=body.task, target=_target(request))
    return _person(service.lookup_by_agency_code(session, ctx=ctx, agency_code=body.agency_code))


@router.post("/lookups/by-four-facts", summary="4情報（ふりがな・生年月日・性別・住所）による照会")
def by_four_facts(
    body: ByFourFacts, request: Request, principal: LookupCaller, session: NationalSessionDep
) -> CandidatesResponse:
    ctx = service.authorize(session, principal=principal, task_code=body.task, target=_target(request))
    facts = FourFacts.parse(
        name_kana=body.name_kana, birth_date=body.birth_date, sex=body.sex, address=body.address
    )
    found = service.lookup_by_four_facts(session, ctx=ctx, facts=facts, limit=body.limit)
    return CandidatesResponse(
        candidates=[CandidateResponse.model_validate(c) for c in found],
        scoring={k: dict(v) for k, v in POINTS.items()},
    )


@router.post("/lookups/as-of", summary="基準日時点の本人確認情報（履歴）")
def as_of(
    body: AsOfRequest, request: Request, principal: LookupCaller, session: NationalSessionDep
) -> PersonResponse:
    ctx = service.authorize(
        session, principal=principal, task_code=body.task, target=_target(request), history=True
    )
    code = ResidentCode.parse(body.resident_code, field="resident_code")
    return _person(service.identity_as_of(session, ctx=ctx, resident_code=code, on=body.on))


@router.post("/lookups/history", summary="本人確認情報の変更履歴")
def history(
    body: HistoryRequest, request: Request, principal: LookupCaller, session: NationalSessionDep
) -> list[PersonResponse]:
    ctx = service.authorize(
        session, principal=principal, task_code=body.task, target=_target(request), history=True
    )
    code = ResidentCode.parse(body.resident_code, field="resident_code")
    return [_person(v) for v in service.identity_history(session, ctx=ctx, resident_code=code)]


@router.post("/agency-codes/translate", summary="機関別符号の変換（情報連携が認められた事務のみ）")
def translate(
    body: TranslateRequest, request: Request, principal: AgencyClient, session: NationalSessionDep
) -> TranslationResponse:
    ctx = service.authorize(
        session, principal=principal, task_code=body.task, target=_target(request), linkage=True
    )
    return TranslationResponse.model_validate(
        service.translate_agency_code(
            session,
            ctx=ctx,
            agency_code=body.agency_code,
            target_organisation_code=body.target_organisation_code,
            target=_target(request),
        )
    )


# --- batches --------------------------------------------------------------------------------------


def _request_body(request: Request) -> Iterator[bytes]:
    """The request body as it arrives, read from this worker thread (memory stays flat)."""
    stream = request.stream().__aiter__()

    async def following() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    while (chunk := anyio.from_thread.run(following)) is not None:
        if chunk:
            yield chunk


@router.post(
    "/batches",
    status_code=202,
    summary="一括照合（CSV をアップロード、結果は非同期）",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def submit_batch(
    request: Request,
    background: BackgroundTasks,
    principal: AgencyClient,
    session: NationalSessionDep,
    task: TaskQuery,
    kind: Annotated[BatchKind, Query(description="resident_code（住民票コード）/ four_facts（4情報）")],
    on_error: Annotated[
        OnError, Query(description="reject_all: 不正な行があれば全体を照合しない")
    ] = OnError.REJECT_ALL,
    encoding: Annotated[BatchEncoding, Query(description="CSVの文字コード")] = BatchEncoding.UTF8,
) -> BatchResponse:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    # The entry point owns the transaction: none stays open while the file streams in.
    session.commit()
    upload = service.receive_upload(_request_body(request))
    try:
        view = service.create_batch(
            session, ctx=ctx, upload=upload, kind=kind, on_error=on_error, encoding=encoding
        )
    except BaseException:
        service.discard_upload(upload)
        raise
    background.add_task(jobs.run_batch, national_units(request.app), view.id)
    return BatchResponse.model_validate(view)


@router.get("/batches", summary="一括照合の一覧")
def batches(
    request: Request, principal: AgencyClient, session: NationalSessionDep, task: TaskQuery
) -> list[BatchResponse]:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    return [BatchResponse.model_validate(b) for b in service.list_batches(session, ctx=ctx)]


@router.get("/batches/{batch_id}", summary="一括照合の状況（進捗・不正な行）")
def batch(
    batch_id: str, request: Request, principal: AgencyClient, session: NationalSessionDep, task: TaskQuery
) -> BatchResponse:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    return BatchResponse.model_validate(service.batch_status(session, ctx=ctx, job_id=batch_id))


@router.get("/batches/{batch_id}/errors", summary="一括照合の不正な行（行番号順）")
def batch_errors(
    batch_id: str,
    request: Request,
    principal: AgencyClient,
    session: NationalSessionDep,
    task: TaskQuery,
    after_line: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[RowErrorResponse]:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    found = service.batch_errors(session, ctx=ctx, job_id=batch_id, after_line=after_line, limit=limit)
    return [RowErrorResponse.model_validate(e) for e in found]


@router.get(
    "/batches/{batch_id}/result",
    summary="一括照合の結果 CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def batch_result(
    batch_id: str, request: Request, principal: AgencyClient, session: NationalSessionDep, task: TaskQuery
) -> StreamingResponse:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    chunks, view = service.batch_result(session, ctx=ctx, job_id=batch_id)
    return StreamingResponse(
        chunks,
        media_type=CSV,
        headers={
            "Content-Disposition": f'attachment; filename="batch-{view.id}.csv"',
            "X-Content-SHA256": view.result_sha256 or "",
        },
    )


# --- the change feed ------------------------------------------------------------------------------


@router.put("/subscriptions/{task}", summary="異動通知の購読（任意で Webhook）")
def subscribe(
    task: str, body: SubscribeRequest, request: Request, principal: AgencyClient, session: NationalSessionDep
) -> SubscriptionResponse:
    ctx = service.authorize(
        session, principal=principal, task_code=task, target=_target(request), events=body.events
    )
    view = service.subscribe(
        session,
        ctx=ctx,
        events=body.events,
        webhook_url=body.webhook_url,
        rotate_secret=body.rotate_secret,
        allow_loopback=bool(getattr(request.app.state, "webhook_allow_loopback", False)),
    )
    return SubscriptionResponse.model_validate(view)


@router.get("/subscriptions/{task}", summary="異動通知の購読内容")
def get_subscription(
    task: str, request: Request, principal: AgencyClient, session: NationalSessionDep
) -> SubscriptionResponse:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    return SubscriptionResponse.model_validate(service.subscription(session, ctx=ctx))


@router.delete("/subscriptions/{task}", status_code=204, summary="異動通知の購読の取消し")
def unsubscribe(task: str, request: Request, principal: AgencyClient, session: NationalSessionDep) -> None:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    service.unsubscribe(session, ctx=ctx)


@router.get("/subscriptions/{task}/deliveries", summary="Webhook の配信記録（新しい順）")
def deliveries(
    task: str,
    request: Request,
    principal: AgencyClient,
    session: NationalSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryResponse]:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    return [
        DeliveryResponse.model_validate(d) for d in service.webhook_deliveries(session, ctx=ctx, limit=limit)
    ]


@router.get("/feed", summary="異動通知の取得（カーソル方式）")
def feed(
    request: Request,
    principal: AgencyClient,
    session: NationalSessionDep,
    task: TaskQuery,
    after: Annotated[
        str | None, Query(max_length=20, description="前回の next_cursor（省略時は購読開始時点から）")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FeedResponse:
    ctx = service.authorize(session, principal=principal, task_code=task, target=_target(request))
    page = service.read_feed(session, ctx=ctx, after=service.parse_cursor(after), limit=limit)
    return FeedResponse(
        subscription_id=page.subscription_id,
        events=[FeedItemResponse.model_validate(service.feed_item_json(e)) for e in page.events],
        next_cursor=str(page.next_cursor),
        has_more=page.has_more,
    )


# --- the resident's access log --------------------------------------------------------------------


@router.get("/access-log/{resident_code}", summary="本人確認情報の提供記録（誰が・どの事務で・いつ）")
def access_log(
    resident_code: str,
    principal: AccessLogReader,
    session: NationalSessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, description="この id より古い記録（ページ送り）")] = None,
) -> list[AccessResponse]:
    code = ResidentCode.parse(resident_code, field="resident_code")
    views = service.resident_access_log(
        session, viewer=principal, resident_code=code, limit=limit, before_id=before
    )
    return [AccessResponse.model_validate(v) for v in views]


# --- prefecture extraction ------------------------------------------------------------------------


@router.post("/extractions", status_code=201, summary="基準日時点の住民の抽出を依頼（都道府県）")
def request_extraction(
    body: ExtractionRequest, request: Request, principal: PrefectureClerk, session: NationalSessionDep
) -> ExtractionResponse:
    view = service.request_extraction(
        session,
        principal=principal,
        reference_date=body.reference_date,
        lg_codes=body.lg_codes,
        min_age=body.min_age,
        max_age=body.max_age,
        purpose=body.purpose,
        target=_target(request),
    )
    return ExtractionResponse.model_validate(view)


@router.get("/extractions", summary="抽出依頼の一覧（都道府県は自都道府県分のみ）")
def list_extractions(principal: ExtractionReader, session: NationalSessionDep) -> list[ExtractionResponse]:
    return [
        ExtractionResponse.model_validate(e) for e in service.list_extractions(session, principal=principal)
    ]


@router.get("/extractions/{extraction_id}", summary="抽出依頼の状況")
def get_extraction(
    extraction_id: str, request: Request, principal: ExtractionReader, session: NationalSessionDep
) -> ExtractionResponse:
    view = service.extraction(
        session, principal=principal, extraction_id=extraction_id, target=_target(request)
    )
    return ExtractionResponse.model_validate(view)


@router.post("/extractions/{extraction_id}/approve", summary="抽出依頼の承認（全国センター運用者）")
def approve_extraction(
    extraction_id: str,
    body: DecisionRequest,
    request: Request,
    background: BackgroundTasks,
    principal: Operator,
    session: NationalSessionDep,
) -> ExtractionResponse:
    view = service.decide_extraction(
        session,
        principal=principal,
        extraction_id=extraction_id,
        approve=True,
        note=body.note,
        target=_target(request),
    )
    background.add_task(jobs.produce_extraction, national_units(request.app), view.id)
    return ExtractionResponse.model_validate(view)


@router.post("/extractions/{extraction_id}/reject", summary="抽出依頼の却下（全国センター運用者）")
def reject_extraction(
    extraction_id: str,
    body: DecisionRequest,
    request: Request,
    principal: Operator,
    session: NationalSessionDep,
) -> ExtractionResponse:
    view = service.decide_extraction(
        session,
        principal=principal,
        extraction_id=extraction_id,
        approve=False,
        note=body.note,
        target=_target(request),
    )
    return ExtractionResponse.model_validate(view)


def _extraction_file(
    extraction_id: str, fmt: str, request: Request, principal: Principal, session: NationalSessionDep
) -> StreamingResponse:
    chunks, view = service.extraction_file(
        session, principal=principal, extraction_id=extraction_id, fmt=fmt, target=_target(request)
    )
    digest = view.csv_sha256 if fmt == "csv" else view.parquet_sha256
    return StreamingResponse(
        chunks,
        media_type=CSV if fmt == "csv" else "application/vnd.apache.parquet",
        headers={
            "Content-Disposition": f'attachment; filename="extraction-{view.id}.{fmt}"',
            "X-Content-SHA256": digest or "",
            "X-Row-Count": str(view.row_count or 0),
        },
    )


@router.get(
    "/extractions/{extraction_id}/result.csv",
    summary="抽出結果（CSV, UTF-8 BOM付き）",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def extraction_csv(
    extraction_id: str, request: Request, principal: PrefectureClerk, session: NationalSessionDep
) -> StreamingResponse:
    return _extraction_file(extraction_id, "csv", request, principal, session)


@router.get(
    "/extractions/{extraction_id}/result.parquet",
    summary="抽出結果（Parquet）",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
)
def extraction_parquet(
    extraction_id: str, request: Request, principal: PrefectureClerk, session: NationalSessionDep
) -> StreamingResponse:
    return _extraction_file(extraction_id, "parquet", request, principal, session)
