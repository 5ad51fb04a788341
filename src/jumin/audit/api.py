from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from jumin.accounts.domain import Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import PROBLEM_RESPONSES, SessionDep, require
from jumin.audit import service
from jumin.audit.schemas import AuditEntryResponse, ChainProblemResponse, VerificationResponse

router = APIRouter(prefix="/audit", tags=["監査"], responses=PROBLEM_RESPONSES)

Auditor = Annotated[Principal, Depends(require(Role.AUDITOR, Role.SUPERVISOR, Role.OPERATOR))]


@router.get("/entries", summary="監査ログの検索 (新しい順)")
def entries(
    principal: Auditor,
    session: SessionDep,
    target_kind: Annotated[str | None, Query(max_length=64)] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[AuditEntryResponse]:
    # Auditors read their own body's log; the national operator reads any.
    organisation = None if Role.OPERATOR in principal.roles else principal.organisation_code
    views = service.search(
        session,
        viewer=actor_of(principal),
        organisation_code=organisation,
        target_kind=target_kind,
        target_id=target_id,
        action=action,
        since=since,
        limit=limit,
        before_id=before_id,
    )
    return [AuditEntryResponse.model_validate(v, from_attributes=True) for v in views]


@router.get("/verify", summary="ハッシュチェーンの検証")
def verify(principal: Auditor, session: SessionDep) -> VerificationResponse:
    report = service.verify(session)
    return VerificationResponse(
        intact=report.intact,
        chains=report.chains,
        entries=report.entries,
        checkpoints=report.checkpoints,
        problems=[
            ChainProblemResponse(chain=p.chain, seq=p.seq, entry_id=p.entry_id, reason=p.reason)
            for p in report.problems
        ],
    )
