"""GET /registry/arrivals: who the national network says is moving in (転入予定者).

A clerk sees their own municipality's expected arrivals only: the municipality is the
caller's organisation, never a parameter (as in registry/api.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import PROBLEM_RESPONSES, SessionDep, require
from jumin.registry import relay

router = APIRouter(prefix="/registry", tags=["住民記録"], responses=PROBLEM_RESPONSES)

Clerk = Annotated[
    Principal,
    Depends(
        require(Role.CLERK, Role.SUPERVISOR, organisation_kinds=frozenset({OrganisationKind.MUNICIPALITY}))
    ),
]
DEFAULT_PURPOSE = "住民基本台帳事務"


class ArrivalResponse(BaseModel):
    id: int
    notice_id: int = Field(description="全国センターでの通知番号")
    origin_lg_code: str = Field(description="転出元の地方公共団体コード")
    resident_code: str
    name: str
    name_kana: str | None
    birth_date: dt.date
    sex: str
    planned_on: dt.date = Field(description="転出予定日")
    origin_address: str = Field(description="転出元の住所")
    received_at: dt.datetime
    arrived: bool = Field(description="転入の届出が記録済みか")


@router.get("/arrivals", summary="転入予定者 (転出元から届いた転出証明書情報)")
def arrivals(
    principal: Clerk,
    session: SessionDep,
    include_arrived: Annotated[bool, Query(description="転入済みの者も含める")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    purpose: Annotated[str, Query(min_length=1, max_length=200, description="利用目的 (監査ログに記録)")] = (
        DEFAULT_PURPOSE
    ),
) -> list[ArrivalResponse]:
    views = relay.list_arrivals(
        session,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        include_arrived=include_arrived,
        limit=limit,
        offset=offset,
        purpose=purpose,
    )
    return [
        ArrivalResponse(
            id=v.id,
            notice_id=v.notice_id,
            origin_lg_code=v.origin_lg_code,
            resident_code=v.resident_code,
            name=v.name,
            name_kana=v.name_kana,
            birth_date=v.birth_date,
            sex=v.sex,
            planned_on=v.planned_on,
            origin_address=v.origin_address,
            received_at=v.received_at,
            arrived=v.arrived,
        )
        for v in views
    ]
