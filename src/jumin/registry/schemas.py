"""Requests and responses of the register.

The request models are the *commands* of the register: the API parses a body into one,
the CLI parses a JSON file into the same one, and the service takes it already
validated. Dates accept ISO (2025-04-01) or 和暦 (令和7年4月1日) everywhere.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from jumin.core.errors import InvalidValue
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.core.wareki import parse_date
from jumin.registry.domain import ForeignResidentCategory, ResidentKind, Sex


def _flex_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_date(value)
        except InvalidValue as exc:
            # Pydantic reports ValueError per field; that keeps the field name in the 422.
            raise ValueError(exc.detail) from exc
    return value


def _checked(parser: Any) -> Any:
    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return str(parser(str(value)))
        except InvalidValue as exc:
            raise ValueError(exc.detail) from exc

    return check


FlexDate = Annotated[dt.date, BeforeValidator(_flex_date)]
ResidentCodeStr = Annotated[str, BeforeValidator(_checked(ResidentCode.parse))]
IndividualNumberStr = Annotated[str, BeforeValidator(_checked(IndividualNumber.parse))]
LgCodeStr = Annotated[str, BeforeValidator(_checked(LgCode.parse))]
Text = Annotated[str, Field(min_length=1, max_length=200)]
OptText = Annotated[str | None, Field(default=None, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventCommon(Strict):
    effective_on: FlexDate = Field(description="異動年月日 (ISO または 和暦)")
    notified_on: FlexDate | None = Field(default=None, description="届出年月日 (省略時は本日)")
    reason: str = Field(default="", max_length=500, description="事由・備考")


class PersonRef(Strict):
    """A person being changed, and the version the clerk saw (stale → 409)."""

    person_id: int = Field(ge=1)
    version: int = Field(ge=1)


class HouseholdRef(Strict):
    household_id: int = Field(ge=1)
    version: int = Field(ge=1)


class AddressInput(Strict):
    line: Text = Field(description="町名・番地 (例: 千代田一丁目1番1号)")
    katagaki: str = Field(default="", max_length=200, description="方書 (建物名・部屋番号)")


class ForeignInput(Strict):
    nationality: Text = Field(description="国籍・地域")
    category: ForeignResidentCategory = Field(description="法第30条の45の区分")
    name_alphabet: Text = Field(description="氏名 (アルファベット表記)")
    status_of_residence: OptText = Field(default=None, description="在留資格")
    period_of_stay: OptText = Field(default=None, description="在留期間")
    stay_expires_on: FlexDate | None = Field(default=None, description="在留期間の満了の日")
    residence_card_number: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}[0-9]{8}[A-Z]{2}$", description="在留カード等の番号"
    )
    became_foreign_resident_on: FlexDate | None = Field(default=None, description="外国人住民となった年月日")
    alias: OptText = Field(default=None, description="通称")
    alias_kana: OptText = Field(default=None, description="通称の振り仮名")


class PersonInput(Strict):
    """A person entered into the register (転入・出生・職権記載)."""

    resident_kind: ResidentKind = ResidentKind.JAPANESE
    family_name: Text = Field(description="氏 (外国人住民は氏名の姓部分)")
    given_name: str = Field(default="", max_length=200, description="名")
    family_name_kana: OptText = Field(default=None, description="氏の振り仮名 (全角カタカナ)")
    given_name_kana: OptText = Field(default=None, description="名の振り仮名 (全角カタカナ)")
    birth_date: FlexDate
    sex: Sex
    relationship: Text = Field(description="続柄 (世帯主、妻、子 など)")
    honseki: OptText = Field(default=None, description="本籍")
    hittousha: OptText = Field(default=None, description="筆頭者")
    old_surname: OptText = Field(default=None, description="旧氏")
    old_surname_kana: OptText = Field(default=None, description="旧氏の振り仮名")
    resident_code: ResidentCodeStr | None = Field(
        default=None, description="住民票コード (転入時は転出証明書の記載)"
    )
    individual_number: IndividualNumberStr | None = Field(default=None, description="個人番号")
    foreign: ForeignInput | None = Field(default=None, description="外国人住民の記載事項")

    @model_validator(mode="after")
    def _kind_matches_items(self) -> PersonInput:
        if self.resident_kind is ResidentKind.FOREIGN and self.foreign is None:
            raise ValueError("外国人住民には foreign (国籍・在留資格等) が必要です")
        if self.resident_kind is ResidentKind.JAPANESE and self.foreign is not None:
            raise ValueError("日本人住民に foreign は指定できません")
        return self


class NewOrExistingHousehold(Strict):
    """Join an existing household (id and version) or found a new one (both omitted)."""

    household_id: int | None = Field(default=None, ge=1)
    version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _both_or_neither(self) -> NewOrExistingHousehold:
        if (self.household_id is None) != (self.version is None):
            raise ValueError("household_id と version は両方指定するか、両方省略してください")
        return self


class MoveInRequest(EventCommon):
    """転入・特例転入・国外転入・職権記載."""

    address: AddressInput
    previous_address: Text = Field(description="転入前住所 (国外からは国名)")
    origin_lg_code: LgCodeStr | None = Field(default=None, description="転出元の地方公共団体コード")
    household: NewOrExistingHousehold = Field(default_factory=NewOrExistingHousehold)
    members: list[PersonInput] = Field(min_length=1, max_length=50)


class ArrivalMemberInput(Strict):
    """One announced person taken into the 転入, with the 続柄 in the new household."""

    arrival_id: int = Field(ge=1, description="転入予定者のID (GET /registry/arrivals)")
    relationship: Text = Field(description="続柄 (世帯主、妻、子 など)")


class ArrivalMoveInRequest(EventCommon):
    """転入 from expected arrivals: only what the 転出証明書情報 cannot say is asked for.

    The names, dates, 住民票コード and 個人番号 come from the 転出証明書情報 the origin sent;
    the clerk confirms the new address, the move date and the household.
    """

    address: AddressInput
    members: list[ArrivalMemberInput] = Field(min_length=1, max_length=50)
    card_holder: bool = Field(default=True, description="マイナンバーカードを提示した転入 (特例転入)")
    household: NewOrExistingHousehold = Field(default_factory=NewOrExistingHousehold)


class BirthRequest(EventCommon):
    child: PersonInput
    household: HouseholdRef


class MoveWithinRequest(EventCommon):
    persons: list[PersonRef] = Field(min_length=1, max_length=50)
    address: AddressInput


class MoveOutRequest(EventCommon):
    """転出 (effective_on is the planned move date; it may be in the future) or 国外転出."""

    persons: list[PersonRef] = Field(min_length=1, max_length=50)
    destination: Text = Field(description="転出先住所 (国外は国名)")
    destination_lg_code: LgCodeStr | None = Field(default=None, description="転出先の地方公共団体コード")
    abroad: bool = False
    remaining_head_person_id: int | None = Field(
        default=None, ge=1, description="世帯主が転出し世帯員が残る場合の新しい世帯主"
    )


class MoveOutConfirmedRequest(EventCommon):
    """転入通知の受理: the persons have moved in elsewhere on effective_on."""

    persons: list[PersonRef] = Field(min_length=1, max_length=50)


class RemovalRequest(EventCommon):
    """死亡・失踪宣告・職権消除."""

    person: PersonRef
    remaining_head_person_id: int | None = Field(default=None, ge=1)


class MemberRelationship(Strict):
    person_id: int = Field(ge=1)
    relationship: Text


class HouseholdSplitRequest(EventCommon):
    household: HouseholdRef
    members: list[MemberRelationship] = Field(min_length=1, description="新しい世帯の世帯員と続柄")
    remaining_relationships: list[MemberRelationship] = Field(
        default_factory=list, description="元の世帯に残る世帯員の続柄の変更 (世帯主が抜ける場合など)"
    )


class HouseholdMergeRequest(EventCommon):
    from_household: HouseholdRef
    into_household: HouseholdRef
    relationships: list[MemberRelationship] = Field(min_length=1, description="合併される世帯員の新しい続柄")


class HouseholdChangeRequest(EventCommon):
    into_household: HouseholdRef
    members: list[MemberRelationship] = Field(min_length=1)
    from_households: list[HouseholdRef] = Field(min_length=1)
    remaining_relationships: list[MemberRelationship] = Field(default_factory=list)


class HeadChangeRequest(EventCommon):
    household: HouseholdRef
    relationships: list[MemberRelationship] = Field(
        min_length=1, description="新しい続柄 (新世帯主は「世帯主」)"
    )


class NameChangeRequest(EventCommon):
    """氏名の変更: items left out (null) keep their current value (a surname change keeps the given name)."""

    person: PersonRef
    family_name: Text
    given_name: str | None = Field(default=None, max_length=200)
    family_name_kana: OptText = None
    given_name_kana: OptText = None


class OldSurnameRequest(EventCommon):
    person: PersonRef
    old_surname: Text
    old_surname_kana: OptText = None


class PersonOnlyRequest(EventCommon):
    """Events that need nothing but the person: 旧氏の削除, 通称の削除, コード・番号の変更."""

    person: PersonRef


class FuriganaRequest(EventCommon):
    person: PersonRef
    family_name_kana: Text
    given_name_kana: str = Field(default="", max_length=200)


class CorrectionRequest(EventCommon):
    """職権修正・誤記修正: items to set; effective_on is the date the right value holds from."""

    person: PersonRef
    items: dict[str, Any] = Field(min_length=1, description="修正する項目と正しい値")


class CancellationRequest(Strict):
    event_id: int = Field(ge=1, description="取り消す異動")
    reason: str = Field(min_length=1, max_length=500, description="取消しの理由")
    notified_on: FlexDate | None = None
    versions: list[PersonRef] = Field(min_length=1, description="取り消す異動の対象者と確認した版")


class ImmigrationNoticeRequest(EventCommon):
    person: PersonRef
    status_of_residence: OptText = None
    period_of_stay: OptText = None
    stay_expires_on: FlexDate | None = None
    residence_card_number: str | None = Field(default=None, pattern=r"^[A-Z]{2}[0-9]{8}[A-Z]{2}$")
    category: ForeignResidentCategory | None = None


class AliasEntryRequest(EventCommon):
    person: PersonRef
    alias: Text
    alias_kana: OptText = None


class BecomeJapaneseRequest(EventCommon):
    """帰化・国籍取得."""

    person: PersonRef
    family_name: Text
    given_name: str = Field(default="", max_length=200)
    family_name_kana: OptText = None
    given_name_kana: OptText = None
    honseki: Text
    hittousha: Text


class NationalityLostRequest(EventCommon):
    person: PersonRef
    foreign: ForeignInput


# ---------------------------------------------------------------------------
# Responses


class EventResponse(BaseModel):
    event_id: int
    kind: str
    label: str
    late: bool = Field(description="届出期間 (14日) を過ぎた届出 (過料通知の対象)")
    person_ids: list[int]
    household_ids: list[int]


class AliasHistoryResponse(BaseModel):
    alias: str
    alias_kana: str
    recorded_on: dt.date
    recorded_lg_code: str
    deleted_on: dt.date | None
    deleted_lg_code: str | None


class ForeignResponse(BaseModel):
    nationality: str
    category: ForeignResidentCategory
    name_alphabet: str
    status_of_residence: str | None
    period_of_stay: str | None
    stay_expires_on: dt.date | None
    residence_card_number: str | None
    became_foreign_resident_on: dt.date
    alias: str | None
    alias_kana: str | None
    alias_history: list[AliasHistoryResponse]


class RecordResponse(BaseModel):
    person_id: int
    lg_code: str
    version: int = Field(description="次の変更で指定する版")
    valid_from: dt.date
    valid_to: dt.date | None
    recorded_at: dt.datetime
    status: str
    resident_kind: ResidentKind
    name: str
    family_name: str
    given_name: str
    name_kana: str | None
    family_name_kana: str | None
    given_name_kana: str | None
    romaji: str | None
    birth_date: dt.date
    birth_date_wareki: str | None
    sex: Sex
    household_id: int
    relationship: str
    address_lg_code: str
    address_line: str
    address_katagaki: str
    address_text: str
    became_resident_on: dt.date
    address_set_on: dt.date
    notified_on: dt.date
    previous_address: str | None
    honseki: str | None
    hittousha: str | None
    old_surname: str | None
    old_surname_kana: str | None
    resident_code: str
    individual_number: str | None = Field(description="権限と目的がある場合のみ全桁、それ以外はマスク")
    planned_move_out_on: dt.date | None
    planned_move_out_destination: str | None
    removal_reason: str | None
    removed_on: dt.date | None
    foreign: ForeignResponse | None


class SearchResponse(BaseModel):
    total: int
    offset: int
    limit: int
    results: list[RecordResponse]


class EventListItem(BaseModel):
    event_id: int
    kind: str
    label: str
    effective_on: dt.date
    notified_on: dt.date
    recorded_at: dt.datetime
    recorded_by: str
    reason: str
    late: bool
    cancelled_by_event_id: int | None
    cancels_event_id: int | None


class VersionHistoryItem(BaseModel):
    valid_from: dt.date
    valid_to: dt.date | None
    recorded_at: dt.datetime
    superseded_at: dt.datetime | None
    event_id: int
    status: str
    name: str
    address_line: str
    household_id: int


class HouseholdResponse(BaseModel):
    household_id: int
    household_no: str
    version: int
    on: dt.date
    head_person_id: int | None
    members: list[RecordResponse]


class OutboxResponse(BaseModel):
    id: int
    lg_code: str
    person_id: int
    resident_code: str
    seq: int
    kind: str
    destination_lg_code: str | None
    idempotency_key: str
    event_id: int
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    payload: dict[str, Any]
