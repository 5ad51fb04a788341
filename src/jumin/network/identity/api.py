"""The national inbox over HTTP: signed change batches in, 転出証明書情報 out.

No bearer token here: a municipal system proves who it is by signing each request with
its Ed25519 key (core.replication). The signature is checked by a dependency that runs
before the body is even parsed, so an unsigned or forged request gets its 401/403 (and
its audit entry) whatever it carries.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from jumin.api_support import PROBLEM_RESPONSES, AccessRule, NationalSessionDep, national_units
from jumin.core.replication import MAX_NOTICES, EnvelopeKind, notices_envelope
from jumin.network.identity import service, widearea
from jumin.network.identity.schemas import (
    ChangeEnvelopeIn,
    ChangesResponse,
    MessageResult,
    NoticeOut,
    NoticesResponse,
)

router = APIRouter(
    prefix="/network/v1", tags=["住基ネット (本人確認情報の更新)"], responses=PROBLEM_RESPONSES
)

CHANGES_ROUTE = "POST /network/v1/changes"
NOTICES_ROUTE = "GET /network/v1/notices"


class SignedByMunicipality(AccessRule):
    """Callers are municipal systems, authenticated by the request's signature, not by a token.

    The rule itself lets the request through; ``signed_changes``/``signed_notices``
    verify the signature against the registered key before anything else happens.
    """

    def __init__(self) -> None:
        super().__init__(public=True)

    def describe(self) -> str:
        return "signed by a registered municipality (Ed25519, X-Jumin-Signature)"


SIGNED_BY_MUNICIPALITY = SignedByMunicipality()

SenderHeader = Annotated[
    str | None, Header(alias="X-Jumin-Sender", max_length=64, description="送信元の地方公共団体コード")
]
SignatureHeader = Annotated[
    str | None, Header(alias="X-Jumin-Signature", max_length=200, description="Ed25519 署名 (base64url)")
]


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def signed_changes(
    session: NationalSessionDep,
    body: Annotated[bytes, Depends(_raw_body)],
    sender: SenderHeader = None,
    signature: SignatureHeader = None,
) -> str:
    return service.authenticate(session, sender=sender, signature=signature, signed=body, route=CHANGES_ROUTE)


def signed_notices(
    session: NationalSessionDep,
    lg_code: Annotated[str, Query(max_length=6, description="受け取る団体 (送信元と同じ)")],
    sent_at: Annotated[
        str, Header(alias="X-Jumin-Sent-At", max_length=40, description="送信時刻 (UTC, ISO 8601)")
    ],
    nonce: Annotated[str, Header(alias="X-Jumin-Nonce", max_length=64, description="要求ごとの乱数")],
    after_id: Annotated[int, Query(ge=0, le=2**62, description="この ID より後の通知")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_NOTICES)] = 100,
    sender: SenderHeader = None,
    signature: SignatureHeader = None,
) -> str:
    signed = notices_envelope(
        sender=sender or "", sent_at=sent_at, nonce=nonce, lg_code=lg_code, after_id=after_id, limit=limit
    )
    return service.authenticate(
        session, sender=sender, signature=signature, signed=signed, route=NOTICES_ROUTE
    )


@router.post(
    "/changes",
    dependencies=[Depends(SIGNED_BY_MUNICIPALITY)],
    summary="本人確認情報の更新と転出証明書情報 (市区町村からの署名付き一括送信)",
)
def receive_changes(
    envelope: ChangeEnvelopeIn,
    sender: Annotated[str, Depends(signed_changes)],
    session: NationalSessionDep,
) -> ChangesResponse:
    outcome = service.receive_changes(
        session,
        sender=sender,
        header=service.EnvelopeHeader(
            kind=envelope.kind, sender=envelope.sender, sent_at=envelope.sent_at, nonce=envelope.nonce
        ),
        messages=envelope.to_domain(),
        route=CHANGES_ROUTE,
    )
    return ChangesResponse(
        sender=outcome.sender,
        received=len(outcome.results),
        results=[MessageResult(idempotency_key=r.idempotency_key, status=r.status) for r in outcome.results],
        applied_from_earlier=outcome.applied_from_earlier,
    )


@router.get(
    "/notices",
    dependencies=[Depends(SIGNED_BY_MUNICIPALITY)],
    summary="自団体宛ての転出証明書情報 (転入予定者) の受け取り (署名付き)",
)
def notices(
    request: Request,
    sender: Annotated[str, Depends(signed_notices)],
    session: NationalSessionDep,
    lg_code: Annotated[str, Query(max_length=6)],
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_NOTICES)] = 100,
) -> NoticesResponse:
    views = service.collect_notices(
        session,
        sender=sender,
        header=service.EnvelopeHeader(
            kind=EnvelopeKind.NOTICES.value,
            sender=sender,
            sent_at=request.headers.get("X-Jumin-Sent-At", ""),
            nonce=request.headers.get("X-Jumin-Nonce", ""),
        ),
        lg_code=lg_code,
        after_id=after_id,
        limit=limit,
        route=NOTICES_ROUTE,
    )
    return NoticesResponse(
        lg_code=lg_code,
        notices=[
            NoticeOut(
                id=v.id,
                origin_lg_code=v.origin_lg_code,
                resident_code=v.resident_code,
                effective_on=v.effective_on,
                document=v.document,
                created_at=v.created_at,
            )
            for v in views
        ],
        next_after_id=views[-1].id if views else after_id,
    )


# ---------------------------------------------------------------------------
# 広域交付: the issuer's signed request, forwarded to the home municipality (network.identity.widearea)

WIDE_AREA_RECORDS_ROUTE = "POST /network/v1/wide-area/records"
WIDE_AREA_ISSUED_ROUTE = "POST /network/v1/wide-area/issued"
_WIDE_AREA_RESPONSES: dict[int | str, dict[str, Any]] = {
    502: {"description": "住基ネットが受け付けなかった照会", "content": PROBLEM_RESPONSES[400]["content"]},
    503: {
        "description": "住所地の市区町村のシステムが応答しない",
        "content": PROBLEM_RESPONSES[400]["content"],
    },
}
_DEFAULT_HOMES = widearea.HomeGateway()


def _homes(request: Request) -> widearea.HomeGateway:
    """The way to the homes' endpoints: HTTP, or what the app was given (a test's in-process client)."""
    gateway = getattr(request.app.state, "wide_area_homes", None)
    return gateway if isinstance(gateway, widearea.HomeGateway) else _DEFAULT_HOMES


@router.post(
    "/wide-area/records",
    dependencies=[Depends(SIGNED_BY_MUNICIPALITY)],
    summary="広域交付: 交付地の市区町村からの照会を住所地へ取り次ぎ、住所地の回答を返す (署名付き)",
    responses=_WIDE_AREA_RESPONSES,
)
def wide_area_records(
    request: Request,
    body: Annotated[bytes, Depends(_raw_body)],
    sender: SenderHeader = None,
    signature: SignatureHeader = None,
) -> dict[str, Any]:
    answer = widearea.forward_record_request(
        national_units(request.app),
        sender=sender,
        signature=signature,
        body=body,
        route=WIDE_AREA_RECORDS_ROUTE,
        gateway=_homes(request),
    )
    return answer.as_json()


@router.post(
    "/wide-area/issued",
    dependencies=[Depends(SIGNED_BY_MUNICIPALITY)],
    summary="広域交付: 交付した旨を住所地の市区町村へ通知する (署名付き)",
    responses=_WIDE_AREA_RESPONSES,
)
def wide_area_issued(
    request: Request,
    body: Annotated[bytes, Depends(_raw_body)],
    sender: SenderHeader = None,
    signature: SignatureHeader = None,
) -> dict[str, str]:
    status = widearea.forward_issued_notice(
        national_units(request.app),
        sender=sender,
        signature=signature,
        body=body,
        route=WIDE_AREA_ISSUED_ROUTE,
        gateway=_homes(request),
    )
    return {"status": status}
