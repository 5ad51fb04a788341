"""Request and response shapes of the national inbox (the wire format of core.replication)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.core.replication import MAX_BATCH, DeliveryStatus, MessageKind
from jumin.network.identity.domain import (
    IdentityChange,
    IdentityFacts,
    IncomingMessage,
    MoveOutCertificate,
)


def _checked(kind: type[ResidentCode] | type[IndividualNumber] | type[LgCode]) -> AfterValidator:
    def check(value: str) -> str:
        if not kind.is_valid(value):
            raise ValueError(f"{kind.label}のチェックデジットが一致しません")
        return value

    return AfterValidator(check)


ResidentCodeStr = Annotated[str, Field(pattern=r"^[0-9]{11}$"), _checked(ResidentCode)]
IndividualNumberStr = Annotated[str, Field(pattern=r"^[0-9]{12}$"), _checked(IndividualNumber)]
LgCodeStr = Annotated[str, Field(pattern=r"^[0-9]{6}$"), _checked(LgCode)]
IdempotencyKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityFactsIn(_Strict):
    """本人確認情報 (4情報・住民票コード・個人番号・記載の状態)."""

    resident_code: ResidentCodeStr
    individual_number: IndividualNumberStr | None
    name: str = Field(min_length=1, max_length=200)
    name_kana: str | None = Field(max_length=200)
    birth_date: dt.date
    sex: Literal["male", "female"]
    address_lg_code: LgCodeStr
    address: str = Field(max_length=300)
    status: Literal["live", "removed"]
    removal_reason: str | None = Field(max_length=32)
    resident_kind: Literal["japanese", "foreign"]

    def to_domain(self) -> IdentityFacts:
        return IdentityFacts(**self.model_dump())


class IdentityChangeIn(_Strict):
    """From ``effective_on`` on, the record's identity is ``identity``; or it never was (``voided``)."""

    effective_on: dt.date | None = None
    change_kind: str = Field(min_length=1, max_length=40)
    became_resident_on: dt.date | None = None
    voided: bool = False
    identity: IdentityFactsIn | None = None
    alias_kana: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _voided_or_identity(self) -> IdentityChangeIn:
        if self.voided != (self.identity is None):
            raise ValueError("voided が true のときは identity を省き、それ以外は identity が必要です")
        if self.identity is not None and self.effective_on is None:
            raise ValueError("identity には effective_on (異動年月日) が必要です")
        return self


class MoveOutCertificateIn(BaseModel):
    """転出証明書情報: the identity and the planned move date, plus the record's other items as sent."""

    model_config = ConfigDict(extra="allow")

    effective_on: dt.date
    identity: IdentityFactsIn


class IdentityChangedMessage(_Strict):
    idempotency_key: IdempotencyKey
    source_person_id: int = Field(ge=1, le=2**62)
    seq: int = Field(ge=1, le=2**31 - 1)
    kind: Literal["identity_changed"]
    resident_code: ResidentCodeStr
    destination_lg_code: None = None
    payload: IdentityChangeIn


class MoveOutCertificateMessage(_Strict):
    idempotency_key: IdempotencyKey
    source_person_id: int = Field(ge=1, le=2**62)
    seq: int = Field(ge=1, le=2**31 - 1)
    kind: Literal["move_out_certificate"]
    resident_code: ResidentCodeStr
    destination_lg_code: LgCodeStr
    payload: MoveOutCertificateIn


ChangeMessageIn = Annotated[IdentityChangedMessage | MoveOutCertificateMessage, Field(discriminator="kind")]


class ChangeEnvelopeIn(_Strict):
    """One signed batch from one municipality (core.replication: the signed envelope)."""

    kind: str = Field(max_length=40, description="jumin.changes.v1")
    sender: str = Field(max_length=6, description="送信元の地方公共団体コード (X-Jumin-Sender と同じ)")
    sent_at: str = Field(max_length=40, description="送信時刻 (UTC, ISO 8601)")
    nonce: str = Field(max_length=64, description="送信ごとに新しい乱数 (16〜64文字)")
    messages: list[ChangeMessageIn] = Field(min_length=1, max_length=MAX_BATCH)

    def to_domain(self) -> list[IncomingMessage]:
        out = []
        for m in self.messages:
            body: IdentityChange | MoveOutCertificate
            if isinstance(m, IdentityChangedMessage):
                p = m.payload
                body = IdentityChange(
                    effective_on=p.effective_on,
                    change_kind=p.change_kind,
                    became_resident_on=p.became_resident_on,
                    facts=p.identity.to_domain() if p.identity else None,
                    alias_kana=p.alias_kana,
                )
            else:
                document: dict[str, Any] = m.payload.model_dump(mode="json")
                body = MoveOutCertificate(
                    effective_on=m.payload.effective_on,
                    facts=m.payload.identity.to_domain(),
                    document=document,
                )
            out.append(
                IncomingMessage(
                    idempotency_key=m.idempotency_key,
                    source_person_id=m.source_person_id,
                    seq=m.seq,
                    kind=MessageKind(m.kind),
                    resident_code=m.resident_code,
                    destination_lg_code=m.destination_lg_code,
                    body=body,
                )
            )
        return out


class MessageResult(BaseModel):
    idempotency_key: str
    status: DeliveryStatus = Field(
        description="applied: 反映済み / held: 先行する通番の到着待ち / duplicate: 受信済み (再送)"
    )


class ChangesResponse(BaseModel):
    sender: str
    received: int
    results: list[MessageResult]
    applied_from_earlier: int = Field(
        description="以前の送信で到着待ちだったもののうち今回反映されたものの数"
    )


class NoticeOut(BaseModel):
    id: int
    origin_lg_code: str
    resident_code: str
    effective_on: dt.date = Field(description="転出予定日 (異動年月日)")
    document: dict[str, Any] = Field(description="転出証明書情報 (個人番号を含む)")
    created_at: dt.datetime


class NoticesResponse(BaseModel):
    lg_code: str
    notices: list[NoticeOut]
    next_after_id: int = Field(description="次回の after_id")


class KeyOut(BaseModel):
    lg_code: str
    fingerprint: str
    registered_at: dt.datetime
