from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from jumin.accounts.domain import OrganisationKind, Role


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=1, max_length=64, description="ログイン名")
    password: str = Field(min_length=1, max_length=256, description="パスワード")
    totp: str = Field(min_length=1, max_length=16, description="認証アプリのワンタイムパスワード (6桁)")


class ClientTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=64)
    client_secret: str = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_at: dt.datetime


class MeResponse(BaseModel):
    kind: str
    subject: str
    organisation_code: str
    organisation_kind: OrganisationKind
    roles: list[Role]


class CreateStaffRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    display_name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1)
    organisation_code: str | None = Field(
        default=None, max_length=32, description="省略時は自団体。運用者のみ他団体を指定できます"
    )


class NewStaffResponse(BaseModel):
    login: str
    organisation_code: str
    roles: list[Role]
    initial_password: str
    totp_secret: str
    totp_uri: str


class AccountResponse(BaseModel):
    login: str
    display_name: str
    organisation_code: str
    roles: list[Role]
    is_active: bool
    mfa_enrolled: bool
    locked_until: dt.datetime | None
    failed_attempts: int


class OrganisationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    kind: OrganisationKind
    name: str = Field(min_length=1, max_length=200)


class OrganisationResponse(BaseModel):
    code: str
    kind: OrganisationKind
    name: str


class CreateAgencyClientRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation_code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)


class AgencyClientResponse(BaseModel):
    client_id: str
    client_secret: str
    organisation_code: str
    name: str
