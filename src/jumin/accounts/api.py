from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from jumin.accounts import service
from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.schemas import (
    AccountResponse,
    AgencyClientResponse,
    ClientTokenRequest,
    CreateAgencyClientRequest,
    CreateStaffRequest,
    LoginRequest,
    MeResponse,
    NewStaffResponse,
    OrganisationRequest,
    OrganisationResponse,
    TokenResponse,
)
from jumin.api_support import AUTHENTICATED, PROBLEM_RESPONSES, PUBLIC, SessionDep, require

router = APIRouter(tags=["認証・アカウント"], responses=PROBLEM_RESPONSES)

Authenticated = Annotated[Principal, Depends(AUTHENTICATED)]
Administrator = Annotated[Principal, Depends(require(Role.ADMINISTRATOR, Role.OPERATOR))]
Operator = Annotated[
    Principal,
    Depends(require(Role.OPERATOR, organisation_kinds=frozenset({OrganisationKind.NATIONAL}))),
]


def _token(issued: service.IssuedToken) -> TokenResponse:
    return TokenResponse(access_token=issued.access_token, expires_at=issued.expires_at)


def _account(view: service.AccountView) -> AccountResponse:
    return AccountResponse(
        login=view.login,
        display_name=view.display_name,
        organisation_code=view.organisation_code,
        roles=list(view.roles),
        is_active=view.is_active,
        mfa_enrolled=view.mfa_enrolled,
        locked_until=view.locked_until,
        failed_attempts=view.failed_attempts,
    )


def _new_staff(new: service.NewStaff) -> NewStaffResponse:
    return NewStaffResponse(
        login=new.login,
        organisation_code=new.organisation_code,
        roles=list(new.roles),
        initial_password=new.password,
        totp_secret=new.totp_secret,
        totp_uri=new.totp_uri,
    )


@router.post("/auth/login", dependencies=[Depends(PUBLIC)], summary="職員ログイン (パスワード + TOTP)")
def login(body: LoginRequest, session: SessionDep) -> TokenResponse:
    return _token(service.login(session, login=body.login, password=body.password, totp_code=body.totp))


@router.post("/auth/token", dependencies=[Depends(PUBLIC)], summary="行政機関APIクライアントのトークン発行")
def client_token(body: ClientTokenRequest, session: SessionDep) -> TokenResponse:
    return _token(
        service.issue_client_token(session, client_id=body.client_id, client_secret=body.client_secret)
    )


@router.post("/auth/logout", status_code=204, summary="ログアウト (トークン失効)")
def logout(principal: Authenticated, session: SessionDep) -> None:
    service.logout(session, principal=principal)


@router.get("/auth/me", summary="ログイン中の主体")
def me(principal: Authenticated) -> MeResponse:
    return MeResponse(
        kind=principal.kind.value,
        subject=principal.subject,
        organisation_code=principal.organisation_code,
        organisation_kind=principal.organisation_kind,
        roles=sorted(principal.roles),
    )


@router.get("/accounts", summary="自団体の職員アカウント一覧")
def list_accounts(principal: Administrator, session: SessionDep) -> list[AccountResponse]:
    views = service.list_accounts(session, actor=principal, organisation_code=principal.organisation_code)
    return [_account(v) for v in views]


@router.post("/accounts", status_code=201, summary="職員アカウントの作成")
def create_account(
    body: CreateStaffRequest, principal: Administrator, session: SessionDep
) -> NewStaffResponse:
    new = service.create_staff(
        session,
        actor=principal,
        organisation_code=body.organisation_code or principal.organisation_code,
        login=body.login,
        display_name=body.display_name,
        roles=body.roles,
    )
    return _new_staff(new)


@router.post("/accounts/{login}/unlock", summary="ロック解除")
def unlock(login: str, principal: Administrator, session: SessionDep) -> AccountResponse:
    return _account(service.unlock(session, actor=principal, login=login))


@router.post("/accounts/{login}/mfa/reset", summary="二要素認証の再登録")
def reset_mfa(login: str, principal: Administrator, session: SessionDep) -> NewStaffResponse:
    return _new_staff(service.reset_mfa(session, actor=principal, login=login))


@router.post("/accounts/{login}/deactivate", summary="アカウントの無効化")
def deactivate(login: str, principal: Administrator, session: SessionDep) -> AccountResponse:
    return _account(service.deactivate(session, actor=principal, login=login))


@router.get("/organisations", summary="団体一覧")
def organisations(principal: Operator, session: SessionDep) -> list[OrganisationResponse]:
    return [
        OrganisationResponse(code=o.code, kind=o.kind, name=o.name)
        for o in service.list_organisations(session)
    ]


@router.post("/organisations", status_code=201, summary="団体の登録")
def create_organisation(
    body: OrganisationRequest, principal: Operator, session: SessionDep
) -> OrganisationResponse:
    org = service.ensure_organisation(
        session, code=body.code, kind=body.kind, name=body.name, actor=principal
    )
    return OrganisationResponse(code=org.code, kind=org.kind, name=org.name)


@router.post("/agency-clients", status_code=201, summary="行政機関APIクライアントの発行")
def create_agency_client(
    body: CreateAgencyClientRequest, principal: Operator, session: SessionDep
) -> AgencyClientResponse:
    new = service.create_agency_client(
        session, actor=principal, organisation_code=body.organisation_code, name=body.name
    )
    return AgencyClientResponse(
        client_id=new.client_id,
        client_secret=new.client_secret,
        organisation_code=new.organisation_code,
        name=new.name,
    )
