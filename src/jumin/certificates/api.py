"""HTTP routes of certificate issuance and verification.

Issuing routes answer with the signed PDF (application/pdf) and name the issue number,
hash and fee in headers; the ledger is JSON. Verification is public (the QR code on
every page leads there) and rate-limited per client address.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import (
    AGENCY_CLIENT,
    PROBLEM_JSON,
    PROBLEM_RESPONSES,
    PUBLIC,
    SessionDep,
    problem_body,
    require,
)
from jumin.card.access import ResidentDep
from jumin.certificates import service
from jumin.certificates.domain import (
    CardCredentials,
    Channel,
    ProtectionOrderView,
    TooManyRequests,
    UnknownCertificate,
)
from jumin.certificates.ratelimit import TokenBucketLimiter
from jumin.certificates.schemas import (
    IssuanceListResponse,
    IssuanceResponse,
    KioskCardIssueRequest,
    KioskIssueRequest,
    OfficialGrantRequest,
    OfficialGrantResponse,
    OfficialIssueRequest,
    OfficialTaskResponse,
    PinRequest,
    PinResponse,
    PreviewResponse,
    PreviewRow,
    PreviewSection,
    ProtectionOrderRequest,
    ProtectionOrderResponse,
    RestrictedPartyResponse,
    SignatureResponse,
    StatisticsResponse,
    StatisticsRow,
    UploadVerificationResponse,
    VerificationResponse,
    WideAreaIssueRequest,
    WindowIssueRequest,
)
from jumin.core.errors import InvalidValue, NotFound

router = APIRouter(prefix="/certificates", tags=["証明書"], responses=PROBLEM_RESPONSES)

_MUNICIPAL = frozenset({OrganisationKind.MUNICIPALITY})
Clerk = Annotated[Principal, Depends(require(Role.CLERK, Role.SUPERVISOR, organisation_kinds=_MUNICIPAL))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR, organisation_kinds=_MUNICIPAL))]
Reader = Annotated[
    Principal, Depends(require(Role.CLERK, Role.SUPERVISOR, Role.AUDITOR, organisation_kinds=_MUNICIPAL))
]
Agency = Annotated[Principal, Depends(AGENCY_CLIENT)]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
_LIMITER_STATE = "certificate_verify_limiter"

_PDF: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "電子署名付きの証明書 (PDF)。ヘッダー X-Issue-Number, X-Document-SHA256, X-Fee-Yen",
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "リクエストが多すぎます (Retry-After 秒後に再試行)",
        "content": PROBLEM_RESPONSES[400]["content"],
    }
}


def _context(request: Request, principal: Principal) -> Any:
    return service.context(
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        network=request.app.state.network_client,
    )


def _pdf(issued: service.IssuedCertificate) -> Response:
    return Response(
        content=issued.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{issued.file_name}"',
            "X-Issue-Number": issued.issue_number,
            "X-Document-SHA256": issued.sha256,
            "X-Fee-Yen": str(issued.fee_yen),
            "Cache-Control": "no-store",
        },
    )


def _limited(request: Request) -> JSONResponse | None:
    """429 with Retry-After when this client's bucket is empty (ratelimit.py explains the limits)."""
    limiter: TokenBucketLimiter | None = getattr(request.app.state, _LIMITER_STATE, None)
    if limiter is None:
        limiter = TokenBucketLimiter()
        setattr(request.app.state, _LIMITER_STATE, limiter)
    wait = limiter.take(request.client.host if request.client else "unknown")
    if wait is None:
        return None
    error = TooManyRequests(f"短時間に多くの確認が行われました。{wait}秒後に再度お試しください。")
    return JSONResponse(
        problem_body(type_uri=error.type_uri, title=error.title, status=429, detail=error.detail, field=None),
        status_code=429,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": str(wait)},
    )


# ---------------------------------------------------------------------------
# Issuing


@router.post(
    "/window",
    summary="窓口交付: 住民票の写し・記載事項証明書・除票の写し等を発行する (PDF)",
    response_class=Response,
    responses=_PDF,
)
def issue_at_window(
    body: WindowIssueRequest, request: Request, principal: Clerk, session: SessionDep
) -> Response:
    return _pdf(service.issue_at_window(session, ctx=_context(request, principal), request=body))


def _preview_response(preview: service.Preview) -> PreviewResponse:
    c = preview.content
    return PreviewResponse(
        title=c.title,
        form=c.form,
        header=[PreviewRow(label=r.label, value=r.value) for r in c.header],
        sections=[
            PreviewSection(heading=s.heading, rows=[PreviewRow(label=r.label, value=r.value) for r in s.rows])
            for s in c.sections
        ],
        certification_text=c.certification_text,
        fee_yen=preview.fee_yen,
    )


@router.post("/window/preview", summary="窓口交付の内容確認 (発行せずに記載内容を表示)")
def preview_at_window(
    body: WindowIssueRequest, request: Request, principal: Clerk, session: SessionDep
) -> PreviewResponse:
    return _preview_response(
        service.preview_at_window(session, ctx=_context(request, principal), request=body)
    )


@router.post(
    "/wide-area",
    summary="広域交付: 他の市区町村の住民の住民票の写しを発行する (PDF)",
    response_class=Response,
    responses=_PDF,
)
def issue_wide_area(
    body: WideAreaIssueRequest, request: Request, principal: Clerk, session: SessionDep
) -> Response:
    # The home municipality answers through the network while the clerk waits: end the
    # login check's transaction first, so no municipal transaction (nor SQLite's write
    # lock, which the home needs when it runs in this same process) is held meanwhile.
    session.commit()
    return _pdf(service.issue_wide_area(session, ctx=_context(request, principal), request=body))


@router.post(
    "/official",
    summary="公用請求: 機関が法令に基づく事務のために請求する (PDF)",
    response_class=Response,
    responses=_PDF,
)
def issue_official(
    body: OfficialIssueRequest, request: Request, principal: Agency, session: SessionDep
) -> Response:
    ctx = service.context(
        actor=actor_of(principal), lg_code=body.lg_code, network=request.app.state.network_client
    )
    return _pdf(service.issue_official(session, ctx=ctx, request=body))


@router.post(
    "/kiosk",
    dependencies=[Depends(PUBLIC)],
    summary="コンビニ交付・キオスク端末: 住民票コードと暗証番号で本人確認して発行する (PDF)",
    response_class=Response,
    responses={**_PDF, **_TOO_MANY},
)
def issue_at_kiosk(body: KioskIssueRequest, request: Request, session: SessionDep) -> Response:
    limited = _limited(request)
    if limited is not None:
        return limited
    return _pdf(service.issue_at_kiosk(session, network=request.app.state.network_client, request=body))


@router.post(
    "/kiosk/card",
    summary="コンビニ交付・キオスク端末: マイナンバーカードでログインした住民に発行する (PDF)",
    description=(
        "キオスク端末がカードの利用者証明用電子証明書でログインし (POST /card/v1/login)、"
        "得たアクセストークンを Authorization: Bearer で渡す。住所地の団体コードと証明書の種類を指定する。"
    ),
    response_class=Response,
    responses=_PDF,
)
def issue_at_kiosk_with_card(
    body: KioskCardIssueRequest, request: Request, resident: ResidentDep, session: SessionDep
) -> Response:
    card = CardCredentials(
        resident_code=resident.resident_code,
        card_id=resident.card_id,
        certificate_serial=resident.certificate_serial,
    )
    return _pdf(
        service.issue_at_kiosk_with_card(
            session, network=request.app.state.network_client, request=body, card=card
        )
    )


@router.post(
    "/kiosk/pins", status_code=201, summary="コンビニ交付用の暗証番号を設定・再設定する (ロック解除)"
)
def set_pin(body: PinRequest, request: Request, principal: Clerk, session: SessionDep) -> PinResponse:
    at = service.set_pin(session, ctx=_context(request, principal), person_id=body.person_id, pin=body.pin)
    return PinResponse(person_id=body.person_id, set_at=at, message="暗証番号を設定しました。")


# ---------------------------------------------------------------------------
# Protection orders


def _order_response(view: ProtectionOrderView, today: dt.date) -> ProtectionOrderResponse:
    return ProtectionOrderResponse(
        order_id=view.order_id,
        lg_code=view.lg_code,
        person_id=view.person_id,
        reason=view.reason,
        valid_until=view.valid_until,
        registered_at=view.registered_at,
        registered_by=view.registered_by,
        ended_at=view.ended_at,
        active=view.active_on(today),
        parties=[
            RestrictedPartyResponse(
                name=p.name, resident_code=p.resident_code, organisation_code=p.organisation_code
            )
            for p in view.parties
        ],
    )


@router.post("/protection-orders", status_code=201, summary="支援措置を登録する (監督職員)")
def register_protection_order(
    body: ProtectionOrderRequest, request: Request, principal: Supervisor, session: SessionDep
) -> ProtectionOrderResponse:
    ctx = _context(request, principal)
    return _order_response(service.register_protection_order(session, ctx=ctx, request=body), ctx.today)


@router.get("/protection-orders", summary="支援措置の一覧 (監督職員)")
def protection_orders(
    request: Request,
    principal: Supervisor,
    session: SessionDep,
    person_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[ProtectionOrderResponse]:
    ctx = _context(request, principal)
    return [
        _order_response(v, ctx.today)
        for v in service.protection_orders(session, ctx=ctx, person_id=person_id)
    ]


@router.post("/protection-orders/{order_id}/end", summary="支援措置を終了する (監督職員)")
def end_protection_order(
    order_id: int, request: Request, principal: Supervisor, session: SessionDep
) -> ProtectionOrderResponse:
    ctx = _context(request, principal)
    return _order_response(service.end_protection_order(session, ctx=ctx, order_id=order_id), ctx.today)


# ---------------------------------------------------------------------------
# Official-request tasks and the agencies granted them


def _grant_response(view: service.OfficialGrantView) -> OfficialGrantResponse:
    return OfficialGrantResponse(
        lg_code=view.lg_code,
        agency_code=view.agency_code,
        task_code=view.task_code,
        task_title=view.task_title,
        granted_at=view.granted_at,
        granted_by=view.granted_by,
        revoked_at=view.revoked_at,
        active=view.active,
    )


@router.get("/official-tasks", summary="公用請求を受け付ける事務の一覧 (根拠法令・請求できる証明書と項目)")
def official_tasks(principal: Reader) -> list[OfficialTaskResponse]:
    return [
        OfficialTaskResponse(
            code=t.code,
            title=t.title,
            basis=t.basis,
            kinds=sorted(t.kinds),
            items=sorted(t.items),
        )
        for t in service.official_tasks()
    ]


@router.get("/official-grants", summary="公用請求を受け付ける機関と事務の登録一覧 (監督職員)")
def official_grants(
    request: Request,
    principal: Supervisor,
    session: SessionDep,
    agency_code: Annotated[str | None, Query(max_length=32)] = None,
) -> list[OfficialGrantResponse]:
    ctx = _context(request, principal)
    return [_grant_response(v) for v in service.official_grants(session, ctx=ctx, agency_code=agency_code)]


@router.post("/official-grants", status_code=201, summary="機関に事務の公用請求を認める (監督職員)")
def grant_official_task(
    body: OfficialGrantRequest, request: Request, principal: Supervisor, session: SessionDep
) -> OfficialGrantResponse:
    ctx = _context(request, principal)
    return _grant_response(
        service.grant_official_task(session, ctx=ctx, agency_code=body.agency_code, task_code=body.task_code)
    )


@router.post("/official-grants/revoke", summary="機関の事務の公用請求の登録を取り消す (監督職員)")
def revoke_official_task(
    body: OfficialGrantRequest, request: Request, principal: Supervisor, session: SessionDep
) -> OfficialGrantResponse:
    ctx = _context(request, principal)
    return _grant_response(
        service.revoke_official_task(session, ctx=ctx, agency_code=body.agency_code, task_code=body.task_code)
    )


# ---------------------------------------------------------------------------
# The ledger


def _issuance_response(v: service.IssuanceView) -> IssuanceResponse:
    return IssuanceResponse(
        issue_number=v.issue_number,
        lg_code=v.lg_code,
        home_lg_code=v.home_lg_code,
        channel=v.channel,
        document_kind=v.kind,
        title=v.kind.label,
        form=v.form,
        items=list(v.items),
        person_ids=list(v.person_ids),
        requester_kind=v.requester_kind,
        requester_name=v.requester_name,
        authority=v.authority,
        reason=v.reason,
        task_code=v.task_code,
        issued_by=v.issued_by,
        fee_yen=v.fee_yen,
        page_count=v.page_count,
        issue_date=v.issue_date,
        issued_at=v.issued_at,
        as_of=v.as_of,
        document_sha256=v.document_sha256,
    )


@router.get("/issuances", summary="交付記録の一覧 (自団体が発行したもの・自団体の住民のもの)")
def list_issuances(
    principal: Reader,
    session: SessionDep,
    since: Annotated[dt.date | None, Query(description="発行日 (この日から)")] = None,
    until: Annotated[dt.date | None, Query(description="発行日 (この日まで)")] = None,
    channel: Channel | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> IssuanceListResponse:
    total, views = service.list_issuances(
        session,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        since=since,
        until=until,
        channel=channel,
        limit=limit,
        offset=offset,
    )
    return IssuanceListResponse(
        total=total, offset=offset, limit=limit, results=[_issuance_response(v) for v in views]
    )


@router.get("/issuances/{issue_number}", summary="交付記録")
def get_issuance(issue_number: str, principal: Reader, session: SessionDep) -> IssuanceResponse:
    return _issuance_response(
        service.get_issuance(
            session, actor=actor_of(principal), lg_code=principal.organisation_code, number=issue_number
        )
    )


@router.get("/statistics", summary="交付件数と手数料の集計 (経路・種類別)")
def statistics(
    principal: Reader,
    session: SessionDep,
    since: Annotated[dt.date | None, Query()] = None,
    until: Annotated[dt.date | None, Query()] = None,
) -> StatisticsResponse:
    view = service.statistics(session, lg_code=principal.organisation_code, since=since, until=until)
    return StatisticsResponse(
        lg_code=principal.organisation_code,
        since=since,
        until=until,
        total_count=view.total_count,
        total_fees_yen=view.total_fees,
        rows=[
            StatisticsRow(channel=c, document_kind=k, count=n, fees_yen=fees) for c, k, n, fees in view.rows
        ],
    )


# ---------------------------------------------------------------------------
# Verification (public)


def _verification_response(v: service.VerificationView) -> VerificationResponse:
    return VerificationResponse(
        issued=True,
        issue_number=v.issue_number,
        title=v.kind.label,
        issued_by_lg_code=v.lg_code,
        issued_by=v.municipality,
        issue_date=v.issue_date,
        issued_at=v.issued_at,
        page_count=v.page_count,
        document_sha256=v.document_sha256,
    )


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | 証明書の確認</title>
<style>body{{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.7}}
dt{{font-weight:bold}} dd{{margin:0 0 .6rem 0;word-break:break-all}}
.ok{{color:#05612b}} .ng{{color:#b00020}}</style>
</head><body><h1>{title}</h1>{body}
<h2>PDFファイルで確認する</h2>
<p>お手元のPDFが発行されたものと同一か (改ざんされていないか) を、電子署名とハッシュ値で確認します。</p>
<form method="post" action="/certificates/verify" enctype="multipart/form-data">
<input type="file" name="file" accept="application/pdf" required>
<button type="submit">確認する</button></form>
</body></html>"""


def _html_view(v: VerificationResponse) -> str:
    jst = (v.issued_at + dt.timedelta(hours=9)).strftime("%Y-%m-%d %H:%M")
    rows = [
        ("発行番号", v.issue_number),
        ("証明書の種類", v.title),
        ("発行した団体", f"{v.issued_by} (団体コード {v.issued_by_lg_code})"),
        ("発行日時", f"{jst} (日本時間)"),
        ("ページ数", str(v.page_count)),
        ("文書のSHA-256ハッシュ値", v.document_sha256),
    ]
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(val)}</dd>" for k, val in rows)
    return f"<dl>{items}</dl>"


_VERIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "発行記録 (Accept: text/html の場合は確認ページ)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    },
    404: {
        "description": "該当する証明書はありません",
        "content": {**PROBLEM_RESPONSES[404]["content"], "text/html": {"schema": {"type": "string"}}},
    },
    **_TOO_MANY,
}


@router.get(
    "/verify",
    dependencies=[Depends(PUBLIC)],
    summary="証明書の確認: 発行番号と検証コードで発行の有無・日時・発行団体・ハッシュ値を表示する",
    response_model=VerificationResponse,
    responses=_VERIFY_RESPONSES,
)
def verify_number(
    request: Request,
    session: SessionDep,
    no: Annotated[str, Query(min_length=1, max_length=32, description="発行番号")],
    code: Annotated[str, Query(min_length=1, max_length=32, description="検証コード")],
) -> Response | VerificationResponse:
    limited = _limited(request)
    if limited is not None:
        return limited
    try:
        found = _verification_response(service.verify_number(session, number=no, code=code))
    except UnknownCertificate as exc:
        if not _wants_html(request):
            raise
        body = f'<p class="ng">{html.escape(exc.detail)}</p>'
        return HTMLResponse(_PAGE.format(title="該当する証明書はありません", body=body), status_code=404)
    if _wants_html(request):
        body = '<p class="ok">この証明書は発行されています。</p>' + _html_view(found)
        return HTMLResponse(_PAGE.format(title="発行済みの証明書です", body=body))
    return found


def _upload_response(result: service.DocumentVerification) -> UploadVerificationResponse:
    s = result.signature
    return UploadVerificationResponse(
        authentic=result.authentic,
        document_sha256=result.sha256,
        reasons=list(result.reasons),
        signature=SignatureResponse(
            signed=s.signed,
            intact=s.intact,
            trusted=s.trusted,
            unmodified=s.unmodified,
            signer=s.signer,
            signed_at=s.signed_at,
        ),
        issuance=_verification_response(result.issuance) if result.issuance else None,
    )


@router.post(
    "/verify",
    dependencies=[Depends(PUBLIC)],
    summary="証明書の確認: PDFをアップロードして真正性 (ハッシュ値と電子署名) を確認する",
    response_model=UploadVerificationResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}, **_TOO_MANY},
)
def verify_upload(
    request: Request,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="確認するPDFファイル")],
) -> Response | UploadVerificationResponse:
    limited = _limited(request)
    if limited is not None:
        return limited
    # A plain (threadpool) route on purpose: pyhanko's validation runs its own event loop.
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidValue(
            f"ファイルが大きすぎます ({MAX_UPLOAD_BYTES // (1024 * 1024)}MB まで)。", field="file"
        )
    result = _upload_response(service.verify_document(session, pdf=data))
    if _wants_html(request):
        if result.authentic:
            body = '<p class="ok">真正な証明書です: 発行記録と一致し、電子署名は有効です。</p>'
        else:
            reasons = "".join(f"<li>{html.escape(r)}</li>" for r in result.reasons)
            body = f'<p class="ng">真正な証明書であることを確認できません。</p><ul>{reasons}</ul>'
        if result.issuance:
            body += _html_view(result.issuance)
        return HTMLResponse(_PAGE.format(title="PDFの確認結果", body=body))
    return result


@router.get(
    "/ca.pem",
    dependencies=[Depends(PUBLIC)],
    summary="文書署名CAの証明書 (PEM): PDF閲覧ソフトや pdfsig で署名を検証するときに信頼する",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}},
)
def ca_certificate() -> Response:
    pem = service.ca_certificate_pem()
    if pem is None:
        raise NotFound("この環境ではまだ証明書が発行されていないため、CAはありません。")
    return Response(content=pem, media_type="application/x-pem-file")
