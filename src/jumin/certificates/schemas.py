"""Requests and responses of certificate issuance and verification.

The request models are the commands the service takes, as in the register: the API
parses a body into one, the CLI builds the same one from its options.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from jumin.certificates.domain import Channel, DocumentKind, Form, Item, RequesterKind
from jumin.core.errors import InvalidValue
from jumin.core.ids import LgCode, ResidentCode
from jumin.core.wareki import parse_date


def _checked(parser: Any) -> Any:
    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return str(parser(str(value)))
        except InvalidValue as exc:
            raise ValueError(exc.detail) from exc

    return check


def _flex_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_date(value)
        except InvalidValue as exc:
            raise ValueError(exc.detail) from exc
    return value


ResidentCodeStr = Annotated[str, BeforeValidator(_checked(ResidentCode.parse))]
LgCodeStr = Annotated[str, BeforeValidator(_checked(LgCode.parse))]
FlexDate = Annotated[dt.date, BeforeValidator(_flex_date)]
ItemList = Annotated[list[Item], Field(default_factory=list, max_length=len(Item))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequesterInput(Strict):
    """請求者: who stands at the window, and what the clerk checked."""

    kind: RequesterKind = Field(description="本人・同一世帯の者・代理人・第三者")
    person_id: int | None = Field(default=None, ge=1, description="請求者の住民ID (本人・同一世帯の者の場合)")
    name: str = Field(default="", max_length=200, description="請求者の氏名 (代理人・第三者の場合は必須)")
    resident_code: ResidentCodeStr | None = Field(
        default=None, description="請求者の住民票コード (分かる場合。支援措置の照合に使います)"
    )
    authority: str | None = Field(
        default=None, max_length=200, description="代理権を証する書類 (例: 委任状 令和7年4月1日付)"
    )
    reason: str | None = Field(default=None, max_length=500, description="請求の事由 (第三者は必須)")


class Selection(Strict):
    kind: DocumentKind = Field(description="証明書の種類")
    form: Form = Field(
        default=Form.HOUSEHOLD, description="世帯連記式 (household) または 個人票 (individual)"
    )
    include: ItemList = Field(
        description="記載を求める項目 (世帯主・続柄、本籍・筆頭者、住民票コード、個人番号、異動履歴など)"
    )
    omit: ItemList = Field(
        description="省略を求める項目 (外国人住民の国籍・在留資格等・在留カード等の番号・通称)"
    )
    as_of: FlexDate | None = Field(
        default=None,
        description="基準日: この日の住民票の記載を証明する (省略時は発行日現在。和暦も可: 令和7年4月1日)",
    )


class WindowIssueRequest(Selection):
    """窓口交付: the persons (by id) or a whole household, and the requester."""

    person_ids: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=1, max_length=50, description="記載する住民のID (世帯の一部でも可)"
    )
    household_id: int | None = Field(default=None, ge=1, description="世帯全員を記載する場合の世帯ID")
    requester: RequesterInput

    @model_validator(mode="after")
    def _persons_or_household(self) -> WindowIssueRequest:
        if (self.person_ids is None) == (self.household_id is None):
            raise ValueError("person_ids と household_id のどちらか一方を指定してください")
        return self


class KioskSelection(Strict):
    """What a resident chooses at a kiosk (the kiosk accepts only the household-form copy)."""

    lg_code: LgCodeStr = Field(description="住所地の地方公共団体コード")
    kind: DocumentKind = DocumentKind.RECORD_COPY
    form: Form = Form.HOUSEHOLD
    whole_household: bool = Field(default=False, description="世帯全員 (false: 本人のみ)")
    include: ItemList = Field(description="記載を求める項目")
    omit: ItemList = Field(description="省略を求める項目")


class KioskIssueRequest(KioskSelection):
    """コンビニ交付・キオスク端末 without a card: the resident code and the PIN set at the window."""

    resident_code: ResidentCodeStr
    pin: str = Field(min_length=1, max_length=16, description="窓口で設定した4桁の暗証番号")


class KioskCardIssueRequest(KioskSelection):
    """コンビニ交付・キオスク端末 with the card: the resident is the card login's (Bearer token)."""


class WideAreaIssueRequest(Strict):
    """広域交付: a resident of another municipality asks this municipality's window."""

    home_lg_code: LgCodeStr = Field(description="請求者の住所地の地方公共団体コード")
    resident_code: ResidentCodeStr = Field(description="請求者の住民票コード (本人確認書類で確認)")
    form: Form = Form.HOUSEHOLD
    whole_household: bool = Field(default=False, description="世帯全員 (false: 本人のみ)")
    include: ItemList = Field(description="記載を求める項目 (本籍・筆頭者と個人番号は記載できません)")
    omit: ItemList = Field(description="省略を求める項目")


class OfficialIssueRequest(Selection):
    """公用請求: an agency asks for a resident's certificate for a statutory task."""

    lg_code: LgCodeStr = Field(description="住所地の地方公共団体コード")
    resident_code: ResidentCodeStr
    whole_household: bool = Field(default=False)
    task_code: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="法令に基づく事務のコード"
    )
    reason: str = Field(min_length=1, max_length=500, description="請求の事由 (根拠法令・事務の内容)")


class OfficialGrantRequest(Strict):
    agency_code: str = Field(min_length=1, max_length=32, description="機関 (団体) のコード")
    task_code: str = Field(min_length=1, max_length=64, description="公用請求の事務のコード")


class OfficialGrantResponse(BaseModel):
    lg_code: str
    agency_code: str
    task_code: str
    task_title: str
    granted_at: dt.datetime
    granted_by: str
    revoked_at: dt.datetime | None
    active: bool


class OfficialTaskResponse(BaseModel):
    code: str
    title: str
    basis: str
    kinds: list[DocumentKind]
    items: list[Item]


class PinRequest(Strict):
    person_id: int = Field(ge=1)
    pin: str = Field(min_length=1, max_length=16, description="4桁の数字")


class PinResponse(BaseModel):
    person_id: int
    set_at: dt.datetime
    message: str


class RestrictedPartyInput(Strict):
    name: str = Field(min_length=1, max_length=200, description="加害者等の氏名")
    resident_code: ResidentCodeStr | None = None
    organisation_code: str | None = Field(default=None, max_length=32, description="団体・機関のコード")


class ProtectionOrderRequest(Strict):
    person_id: int = Field(ge=1, description="支援措置を受ける住民のID")
    reason: str = Field(default="支援措置 (DV・ストーカー行為等)", min_length=1, max_length=200)
    valid_until: FlexDate | None = Field(default=None, description="期間の終期 (省略時は終了の登録まで)")
    parties: list[RestrictedPartyInput] = Field(min_length=1, max_length=20, description="制限する相手方")


class RestrictedPartyResponse(BaseModel):
    name: str
    resident_code: str | None
    organisation_code: str | None


class ProtectionOrderResponse(BaseModel):
    order_id: int
    lg_code: str
    person_id: int
    reason: str
    valid_until: dt.date | None
    registered_at: dt.datetime
    registered_by: str
    ended_at: dt.datetime | None
    active: bool
    parties: list[RestrictedPartyResponse]


class IssuanceResponse(BaseModel):
    issue_number: str
    lg_code: str
    home_lg_code: str
    channel: Channel
    document_kind: DocumentKind
    title: str
    form: Form
    items: list[Item]
    person_ids: list[int]
    requester_kind: RequesterKind
    requester_name: str
    authority: str | None
    reason: str | None
    task_code: str | None
    issued_by: str
    fee_yen: int
    page_count: int
    issue_date: dt.date
    issued_at: dt.datetime
    as_of: dt.date | None
    document_sha256: str


class IssuanceListResponse(BaseModel):
    total: int
    offset: int
    limit: int
    results: list[IssuanceResponse]


class StatisticsRow(BaseModel):
    channel: Channel
    document_kind: DocumentKind
    count: int
    fees_yen: int


class StatisticsResponse(BaseModel):
    lg_code: str
    since: dt.date | None
    until: dt.date | None
    total_count: int
    total_fees_yen: int
    rows: list[StatisticsRow]


class PreviewRow(BaseModel):
    label: str
    value: str


class PreviewSection(BaseModel):
    heading: str
    rows: list[PreviewRow]


class PreviewResponse(BaseModel):
    title: str
    form: Form
    header: list[PreviewRow]
    sections: list[PreviewSection]
    certification_text: str
    fee_yen: int


class VerificationResponse(BaseModel):
    """What the public verification page tells: issued or not, when, by whom, its hash."""

    issued: bool
    issue_number: str
    title: str
    issued_by_lg_code: str
    issued_by: str
    issue_date: dt.date
    issued_at: dt.datetime
    page_count: int
    document_sha256: str


class SignatureResponse(BaseModel):
    signed: bool
    intact: bool
    trusted: bool
    unmodified: bool
    signer: str | None
    signed_at: dt.datetime | None


class UploadVerificationResponse(BaseModel):
    authentic: bool
    document_sha256: str
    reasons: list[str]
    signature: SignatureResponse
    issuance: VerificationResponse | None
