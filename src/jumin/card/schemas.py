"""Requests and responses of the card service (/card/v1)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from jumin.card.domain import (
    ApplicationChannel,
    ApplicationReason,
    ApplicationStatus,
    CardStatus,
    CertificateKind,
    CertificateStatus,
    ExpressReason,
    IdentityDocument,
)
from jumin.core.errors import InvalidValue
from jumin.core.ids import ResidentCode


def _resident_code(value: Any) -> Any:
    try:
        return ResidentCode.parse(str(value)).value
    except InvalidValue as exc:
        raise ValueError(exc.detail) from exc


ResidentCodeStr = Annotated[str, BeforeValidator(_resident_code), Field(description="住民票コード (11桁)")]
CardNumber = Annotated[str, Field(pattern=r"^[0-9]{12}$", description="カード番号 (12桁)")]
Documents = Annotated[
    list[IdentityDocument],
    Field(min_length=1, max_length=4, description="確認した本人確認書類 (写真付き1点、または写真なし2点)"),
]
AuthPin = Annotated[str, Field(min_length=1, max_length=16, description="利用者証明用の暗証番号 (数字4桁)")]
SigningPin = Annotated[
    str, Field(min_length=1, max_length=32, description="署名用の暗証番号 (英大文字と数字、6〜16文字)")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationIn(Strict):
    resident_code: ResidentCodeStr
    reason: ApplicationReason = Field(description="new 新規 / renewal 更新 / reissue 再交付")
    photo_ref: str | None = Field(
        default=None, min_length=1, max_length=128, description="顔写真の参照 (1歳未満は省略可)"
    )
    reissue_reason: ExpressReason | None = Field(
        default=None, description="再交付の理由 (loss/theft/fire/damage)"
    )
    express_reason: ExpressReason | None = Field(default=None, description="特急発行を求める理由")
    stay_ends_on: dt.date | None = Field(default=None, description="在留期間の満了日 (外国人住民)")


class OnlineApplicationIn(Strict):
    form_id: str = Field(pattern=r"^[0-9]{23}$", description="申請書ID (23桁)")
    photo_ref: str | None = Field(default=None, min_length=1, max_length=128)
    stay_ends_on: dt.date | None = None


class ApplicationOut(BaseModel):
    application_no: str
    status: ApplicationStatus
    channel: ApplicationChannel
    reason: ApplicationReason
    express: bool
    express_reason: ExpressReason | None
    due_on: dt.date | None
    applied_at: dt.datetime
    has_photo: bool


class FormIn(Strict):
    resident_code: ResidentCodeStr


class FormOut(BaseModel):
    form_id: str


class ResidentCardsIn(Strict):
    """The window's search for a person's cards: by the 住民票コード they hold now."""

    resident_code: ResidentCodeStr


class ProductionIn(Strict):
    limit: int = Field(default=10_000, ge=1, le=1_000_000)
    express_only: bool = False


class ProductionOut(BaseModel):
    batch_id: str
    cards: int
    express: int


class SetupIn(Strict):
    chunk_size: int = Field(default=5000, ge=100, le=100_000)


class SetupOut(BaseModel):
    batch_id: str
    examined: int
    ready: int
    mismatched: int
    chunks: int
    reasons: dict[str, int]


class WorkItemOut(BaseModel):
    id: int
    card_number: str
    reason: str
    created_at: dt.datetime
    batch_id: str


class WaitingCardOut(BaseModel):
    card_number: str
    application_no: str
    express: bool
    due_on: dt.date | None
    setup_at: dt.datetime | None


class ResolveIn(Strict):
    resolution: Literal["retry", "reject"] = Field(
        description="retry: 住民票を確認・修正したので再度交付前設定 / reject: カードを廃止"
    )


class CertificateOut(BaseModel):
    kind: CertificateKind
    serial: str
    status: CertificateStatus
    valid_until: dt.date
    revocation_reason: str | None


class CardOut(BaseModel):
    card_number: str
    status: CardStatus
    lg_code: str
    issued_on: dt.date | None
    valid_until: dt.date | None
    renewal_opens_on: dt.date | None
    revocation_reason: str | None
    signing_tries_left: int | None
    auth_tries_left: int | None
    certificates: list[CertificateOut]


class HandOverIn(Strict):
    identity_documents: Documents
    auth_pin: AuthPin
    signing_pin: SigningPin | None = Field(default=None, description="省略: 署名用電子証明書を発行しない")
    under_guardianship: bool = Field(default=False, description="成年被後見人 (署名用は発行不可)")


class HandOverOut(BaseModel):
    card: CardOut
    suspension_secret: str = Field(description="一時停止用の確認コード (この応答でのみ表示)")


class CertificatesIn(Strict):
    identity_documents: Documents
    auth_pin: AuthPin | None = None
    signing_pin: SigningPin | None = None
    under_guardianship: bool = False


class PinResetIn(Strict):
    kind: CertificateKind
    new_pin: Annotated[str, Field(min_length=1, max_length=32)]
    identity_documents: Documents


class WindowCheckIn(Strict):
    identity_documents: Documents


class SuspendIn(Strict):
    card_number: CardNumber
    secret: str = Field(min_length=1, max_length=64, description="交付時に渡した一時停止用の確認コード")


class ChallengeOut(BaseModel):
    challenge_id: str
    to_sign: str = Field(description="カードの利用者証明用の鍵で署名するバイト列 (Base64)")
    expires_at: dt.datetime


class LoginIn(Strict):
    challenge_id: str = Field(min_length=1, max_length=64)
    certificate: str = Field(
        min_length=1, max_length=8000, description="利用者証明用電子証明書 (DER, Base64)"
    )
    signature: str = Field(min_length=1, max_length=2000, description="to_sign への署名 (ECDSA, DER, Base64)")


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the scheme name)
    expires_at: dt.datetime


class FourFactsOut(BaseModel):
    name: str
    birth_date: dt.date
    sex: str
    address: str


class MyCardOut(BaseModel):
    card: CardOut
    facts: FourFactsOut


FactName = Literal["name", "birth_date", "sex", "address"]


def _all_facts() -> list[FactName]:
    return ["name", "birth_date", "sex", "address"]


class ConsentIn(Strict):
    business_code: str = Field(min_length=1, max_length=32)
    scope: list[FactName] = Field(
        default_factory=_all_facts,
        min_length=1,
        max_length=4,
        description="提供する情報 (省略時は4情報すべて)",
    )


class ConsentOut(BaseModel):
    id: int
    business_code: str
    business_name: str
    scope: list[str]
    consented_on: dt.date
    withdrawn_at: dt.datetime | None


class BusinessSummaryOut(BaseModel):
    code: str
    name: str


class BusinessIn(Strict):
    code: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    webhook_url: str | None = Field(default=None, max_length=500)


class BusinessOut(BaseModel):
    code: str
    name: str
    webhook_url: str | None
    api_key: str = Field(description="取得 (pull) 用のAPIキー (この応答でのみ表示)")
    webhook_secret: str = Field(description="Webhook 署名 (HMAC-SHA256) の鍵 (この応答でのみ表示)")


class ProvisionOut(BaseModel):
    delivery_id: int
    certificate_serial: str
    changed_on: dt.date
    facts: dict[str, str]


class ProvisionsOut(BaseModel):
    items: list[ProvisionOut]
    next_after: int


class NoticesIn(Strict):
    months_ahead: int = Field(default=3, ge=1, le=12)


class NoticeBatchOut(BaseModel):
    batch_id: str
    card_notices: int
    certificate_notices: int
    skipped_not_live: int


class NoticeOut(BaseModel):
    kind: str
    form_id: str | None
    lg_code: str
    expires_on: dt.date | None
    mailing_name: str | None
    mailing_address: str | None


class SweepOut(BaseModel):
    history_rows: int
    signing_revoked: int
    cards_revoked: int
    provisions: int
    position: int


class ExpiryRunOut(BaseModel):
    cards: int
    certificates: int


class ExpiryRowOut(BaseModel):
    fiscal_year: int
    label: str = Field(description="年度 (和暦)")
    cards: int
    certificates: int


class RateRowOut(BaseModel):
    kind: str
    rank: int
    lg_code: str
    name: str
    population: int
    application_rate_pct: float
    issuance_rate_pct: float


class AuthoritiesOut(BaseModel):
    created: list[str]
