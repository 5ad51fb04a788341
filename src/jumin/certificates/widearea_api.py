"""The home municipality's door for 広域交付: the national network asks, the register answers.

Only the national network calls these routes, and it proves who it is by signing each
request with its key (core.widearea); the signature is checked inside the use case, in
the request's unit of work, so that a refusal is audited and kept. The answer carries
the home municipality's own signature in ``X-Jumin-Signature``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel

from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import PROBLEM_RESPONSES, AccessRule, SessionDep, require
from jumin.certificates import widearea
from jumin.core.replication import SIGNATURE_HEADER

router = APIRouter(prefix="/municipal/v1", tags=["広域交付 (住所地の市区町村)"], responses=PROBLEM_RESPONSES)


class SignedByNetwork(AccessRule):
    """Callers are the national network, authenticated by the request's signature, not by a token."""

    def __init__(self) -> None:
        super().__init__(public=True)

    def describe(self) -> str:
        return "signed by the national network (Ed25519, X-Jumin-Signature)"


SIGNED_BY_NETWORK = SignedByNetwork()

SenderHeader = Annotated[
    str | None, Header(alias="X-Jumin-Sender", max_length=64, description="送信元 (national)")
]
SignatureHeader = Annotated[
    str | None, Header(alias="X-Jumin-Signature", max_length=200, description="Ed25519 署名 (base64url)")
]


async def _raw_body(request: Request) -> bytes:
    return await request.body()


_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "住所地の回答 (住所地の団体の署名を X-Jumin-Signature に付す)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/wide-area/records",
    dependencies=[Depends(SIGNED_BY_NETWORK)],
    summary="広域交付: 全国センターからの照会に住所地の住民基本台帳から回答する (署名付き)",
    response_class=Response,
    responses=_ANSWER,
)
def answer_record_request(
    request: Request,
    session: SessionDep,
    body: Annotated[bytes, Depends(_raw_body)],
    sender: SenderHeader = None,
    signature: SignatureHeader = None,
) -> Response:
    data, signed = widearea.answer_record_request(
        session, network=request.app.state.network_client, sender=sender, signature=signature, body=body
    )
    return Response(content=data, media_type="application/json", headers={SIGNATURE_HEADER: signed})


@router.post(
    "/wide-area/issued",
    dependencies=[Depends(SIGNED_BY_NETWORK)],
    summary="広域交付: 交付地が交付した旨の通知を記録する (署名付き)",
)
def record_issued_notice(
    session: SessionDep,
    body: Annotated[bytes, Depends(_raw_body)],
    sender: SenderHeader = None,
    signature: SignatureHeader = None,
) -> dict[str, str]:
    status = widearea.record_issued_notice(session, sender=sender, signature=signature, body=body)
    return {"status": status}


# ---------------------------------------------------------------------------
# The home's own record, for its staff

staff_router = APIRouter(prefix="/certificates", tags=["証明書"], responses=PROBLEM_RESPONSES)
Reader = Annotated[
    Principal,
    Depends(
        require(
            Role.CLERK,
            Role.SUPERVISOR,
            Role.AUDITOR,
            organisation_kinds=frozenset({OrganisationKind.MUNICIPALITY}),
        )
    ),
]


class ProvisionOut(BaseModel):
    request_id: str
    issuer_lg_code: str
    clerk: str
    person_ids: list[int]
    form: str
    items: list[str]
    provided_at: dt.datetime
    issue_number: str | None
    issue_date: dt.date | None
    fee_yen: int | None
    document_sha256: str | None


@staff_router.get(
    "/wide-area/provided",
    summary="広域交付: 他の市区町村がこの団体の住民の住民票の写しを交付した記録 (照会と交付の通知)",
)
def provided(
    principal: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> list[ProvisionOut]:
    views = widearea.provisions(
        session, actor=actor_of(principal), lg_code=principal.organisation_code, limit=limit, offset=offset
    )
    return [
        ProvisionOut(
            request_id=v.request_id,
            issuer_lg_code=v.issuer_lg_code,
            clerk=v.clerk,
            person_ids=list(v.person_ids),
            form=v.form,
            items=list(v.items),
            provided_at=v.provided_at,
            issue_number=v.issue_number,
            issue_date=v.issue_date,
            fee_yen=v.fee_yen,
            document_sha256=v.document_sha256,
        )
        for v in views
    ]
