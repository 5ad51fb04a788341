"""Request and response shapes of the agency API (/network/v1/...)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from jumin.network.agencies.domain import FeedEvent, IdentityField

TaskField = Field(
    min_length=1,
    max_length=64,
    description="この照会を行う別表事務のコード（GET /network/v1/tasks）。すべての照会で必須",
    examples=["pension-benefit"],
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- tasks and clients ----------------------------------------------------------------------------


class TaskResponse(_View):
    code: str
    title: str
    agency: str
    law: str
    provision: str
    basis: str
    description: str
    confirmed: bool = Field(description="false: 別表の項番号等が条文で未確認 (unconfirmed)")
    fields: list[IdentityField]
    individual_number_key: bool = Field(description="個人番号を照会のキーに使えるか")
    feed_events: list[FeedEvent]
    allows_linkage: bool = Field(description="機関別符号の変換（情報連携）が認められるか")
    prefecture_use: bool = Field(
        description="都道府県知事が行う事務か（第30条の15・別表第五）: "
        "都道府県の職員が自都道府県の住民を照会できる"
    )


class RegisterClientRequest(_Request):
    organisation_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200, description="クライアント名（システム名）")
    organisation_name: str | None = Field(
        default=None, max_length=200, description="機関が未登録なら、その名称で登録する"
    )


class NewClientResponse(BaseModel):
    client_id: str
    client_secret: str = Field(description="この応答でのみ表示されます。安全に保管してください")
    organisation_code: str
    name: str


class GrantRequest(_Request):
    task: str = TaskField


class GrantResponse(_View):
    client_id: str
    task_code: str
    task_title: str
    granted_at: dt.datetime
    granted_by: str
    active: bool


# --- lookups --------------------------------------------------------------------------------------


class ByResidentCode(_Request):
    task: str = TaskField
    resident_code: str = Field(min_length=11, max_length=16, description="住民票コード（11桁）")


class ByIndividualNumber(_Request):
    task: str = TaskField
    individual_number: str = Field(min_length=12, max_length=16, description="個人番号（12桁）")


class ByAgencyCode(_Request):
    task: str = TaskField
    agency_code: str = Field(min_length=26, max_length=32, description="自機関の機関別符号")


class ByFourFacts(_Request):
    task: str = TaskField
    name_kana: str = Field(
        min_length=1,
        max_length=200,
        description="氏名のふりがな（カタカナ）。氏と名の間の空白で氏を区別",
        examples=["ヤマダ タロウ"],
    )
    birth_date: str = Field(
        min_length=1, max_length=20, description="生年月日（2000-04-01 または 令和2年4月1日）"
    )
    sex: str = Field(min_length=1, max_length=8, description="male/female、1/2、男/女")
    address: str = Field(
        min_length=1,
        max_length=300,
        description="住所の先頭部分（都道府県または市区町村から）",
        examples=["東京都千代田区"],
    )
    limit: int = Field(default=10, ge=1, le=20, description="返す候補の最大数")


class AsOfRequest(_Request):
    task: str = TaskField
    resident_code: str = Field(min_length=11, max_length=16)
    on: dt.date = Field(description="基準日")


class HistoryRequest(_Request):
    task: str = TaskField
    resident_code: str = Field(min_length=11, max_length=16)


class PersonResponse(_View):
    """本人確認情報。事務で提供が認められない項目は null（``fields`` が返した項目の一覧）。"""

    agency_code: str = Field(description="この機関の機関別符号（機関ごとに異なる）")
    fields: list[str]
    resident_code: str | None = None
    individual_number: str | None = None
    name: str | None = None
    name_kana: str | None = None
    birth_date: dt.date | None = None
    sex: str | None = None
    address: str | None = None
    address_lg_code: str | None = None
    status: str | None = Field(default=None, description="live（住民）/ removed（消除）")
    removal_reason: str | None = None
    change_kind: str | None = Field(default=None, description="直近の異動事由")
    changed_on: dt.date | None = Field(default=None, description="直近の異動年月日")
    valid_from: dt.date | None = Field(default=None, description="履歴: この内容の始期")
    valid_to: dt.date | None = Field(default=None, description="履歴: この内容の終期（翌日から別の内容）")


class CandidateResponse(_View):
    score: int = Field(description="0〜100。各情報の一致度の合計（facts と explanation を参照）")
    exact: bool = Field(description="4情報すべてが一致")
    facts: dict[str, str] = Field(description="情報ごとの一致の種類")
    explanation: str
    person: PersonResponse


class CandidatesResponse(BaseModel):
    candidates: list[CandidateResponse]
    scoring: dict[str, dict[str, int]] = Field(description="一致の種類ごとの点数")


class TranslateRequest(_Request):
    task: str = TaskField
    agency_code: str = Field(min_length=26, max_length=32, description="自機関の機関別符号")
    target_organisation_code: str = Field(min_length=1, max_length=32, description="変換先の機関")


class TranslationResponse(_View):
    organisation_code: str
    agency_code: str


# --- feed -----------------------------------------------------------------------------------------


class SubscribeRequest(_Request):
    events: list[FeedEvent] = Field(min_length=1, description="受け取る異動の種類（事務で認められたもの）")
    webhook_url: str | None = Field(default=None, max_length=500, description="https:// の受信URL（任意）")
    rotate_secret: bool = Field(default=False, description="Webhook の署名用シークレットを作り直す")


class SubscriptionResponse(_View):
    id: str
    task_code: str
    events: list[str]
    start_cursor: int
    webhook_url: str | None
    webhook_cursor: int
    webhook_failures: int
    webhook_next_attempt_at: dt.datetime | None
    webhook_secret: str | None = Field(description="作成・変更時のこの応答でのみ表示されます")


class FeedItemResponse(BaseModel):
    cursor: str
    event: str
    change_kind: str
    effective_on: dt.date
    recorded_at: dt.datetime
    person: PersonResponse


class FeedResponse(BaseModel):
    subscription_id: str
    events: list[FeedItemResponse]
    next_cursor: str = Field(description="次の呼び出しの after に指定する")
    has_more: bool


class DeliveryResponse(_View):
    delivery_id: str
    attempt: int
    attempted_at: dt.datetime
    after_cursor: int
    last_cursor: int
    events: int
    outcome: str
    status_code: int | None
    error: str | None
    next_attempt_at: dt.datetime | None


# --- batches --------------------------------------------------------------------------------------


class RowErrorResponse(_View):
    line: int = Field(description="行番号（見出し行が1行目）")
    field: str | None
    reason: str


class BatchResponse(_View):
    id: str
    task_code: str
    kind: str
    on_error: str
    encoding: str
    status: str = Field(description="queued / validating / running / done / rejected / failed")
    upload_bytes: int
    total_rows: int
    processed_rows: int
    bad_rows: int
    matched: int
    ambiguous: int
    partial: int
    not_found: int
    result_sha256: str | None
    failure: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    errors: list[RowErrorResponse] = Field(description="不正な行（先頭から最大100件。全件は /errors）")


# --- access log -----------------------------------------------------------------------------------


class AccessResponse(_View):
    id: int
    accessed_at: dt.datetime
    organisation_code: str
    actor_kind: str
    actor_id: str
    task_code: str
    task_title: str
    purpose: str
    query_kind: str


# --- extraction -----------------------------------------------------------------------------------


class ExtractionRequest(_Request):
    reference_date: dt.date = Field(description="基準日: この日に都道府県内に住所を有していた住民")
    lg_codes: list[str] = Field(
        default_factory=list, max_length=200, description="市区町村で絞る（省略時は全域）"
    )
    min_age: int | None = Field(default=None, ge=0, le=150, description="基準日における年齢の下限")
    max_age: int | None = Field(default=None, ge=0, le=150, description="基準日における年齢の上限")
    purpose: str = Field(min_length=1, max_length=500, description="利用目的（具体的に）")


class DecisionRequest(_Request):
    note: str = Field(default="", max_length=500, description="承認・却下の理由")


class ExtractionResponse(_View):
    id: str
    prefecture_code: str
    organisation_code: str
    requested_by: str
    requested_at: dt.datetime
    reference_date: dt.date
    lg_codes: list[str]
    min_age: int | None
    max_age: int | None
    purpose: str
    status: str = Field(description="requested / approved / rejected / producing / ready / failed")
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    finished_at: dt.datetime | None
    row_count: int | None
    csv_sha256: str | None
    parquet_sha256: str | None
