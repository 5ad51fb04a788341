"""The resident record, the changes an event makes to it, and the rules.

A resident record (住民票) is never edited in place. Each event (異動) contributes one or
more *changes* to the persons it touches; a person's record on any date is the fold of
their changes in order of effective date. The stored versions are that fold
materialised, so "replaying the event log reproduces the current state" holds by
construction and is checked by the tests.

Everything here is plain Python: the service decides what to store, this module decides
what a record is and what may happen to it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar

from jumin.core.errors import Conflict, InvalidValue, RuleViolation
from jumin.core.names import is_katakana_name, normalize_kana

# 住民基本台帳法 第22条・第23条: 転入届・転居届 within 14 days of the move.
NOTIFICATION_DEADLINE_DAYS = 14
RELATIONSHIP_HEAD = "世帯主"


class EventKind(StrEnum):
    """異動事由: every kind of event the register records."""

    MOVE_IN = "move_in"  # 転入 (転出証明書による)
    MOVE_IN_CARD_HOLDER = "move_in_card_holder"  # 特例転入 (マイナンバーカードによる)
    MOVE_IN_FROM_ABROAD = "move_in_from_abroad"  # 国外からの転入
    MOVE_WITHIN = "move_within"  # 転居
    MOVE_OUT = "move_out"  # 転出 (転出予定を含む)
    MOVE_OUT_ABROAD = "move_out_abroad"  # 国外転出
    MOVE_OUT_CONFIRMED = "move_out_confirmed"  # 転出確定 (転入通知による)
    BIRTH = "birth"  # 出生
    DEATH = "death"  # 死亡
    DECLARED_MISSING = "declared_missing"  # 失踪宣告
    HOUSEHOLD_SPLIT = "household_split"  # 世帯分離
    HOUSEHOLD_MERGE = "household_merge"  # 世帯合併
    HOUSEHOLD_CHANGE = "household_change"  # 世帯変更
    HEAD_CHANGE = "head_change"  # 世帯主変更
    NAME_CHANGE = "name_change"  # 氏名の変更
    OLD_SURNAME_ENTRY = "old_surname_entry"  # 旧氏の記載
    OLD_SURNAME_DELETION = "old_surname_deletion"  # 旧氏の削除
    FURIGANA = "furigana"  # 振り仮名の記載・修正
    EX_OFFICIO_ENTRY = "ex_officio_entry"  # 職権記載
    EX_OFFICIO_CORRECTION = "ex_officio_correction"  # 職権修正
    CLERICAL_CORRECTION = "clerical_correction"  # 誤記修正
    EX_OFFICIO_REMOVAL = "ex_officio_removal"  # 職権消除
    CANCELLATION = "cancellation"  # 異動の取消し
    RESIDENT_CODE_CHANGE = "resident_code_change"  # 住民票コードの変更
    INDIVIDUAL_NUMBER_CHANGE = "individual_number_change"  # 個人番号の変更
    IMMIGRATION_NOTICE = "immigration_notice"  # 法務大臣からの通知 (在留資格・期間・カード番号)
    ALIAS_ENTRY = "alias_entry"  # 通称の記載
    ALIAS_DELETION = "alias_deletion"  # 通称の削除
    NATURALISATION = "naturalisation"  # 帰化
    NATIONALITY_ACQUIRED = "nationality_acquired"  # 国籍取得
    NATIONALITY_LOST = "nationality_lost"  # 国籍喪失


EVENT_LABELS: Mapping[EventKind, str] = {
    EventKind.MOVE_IN: "転入",
    EventKind.MOVE_IN_CARD_HOLDER: "転入 (特例転入)",
    EventKind.MOVE_IN_FROM_ABROAD: "国外転入",
    EventKind.MOVE_WITHIN: "転居",
    EventKind.MOVE_OUT: "転出",
    EventKind.MOVE_OUT_ABROAD: "国外転出",
    EventKind.MOVE_OUT_CONFIRMED: "転出確定",
    EventKind.BIRTH: "出生",
    EventKind.DEATH: "死亡",
    EventKind.DECLARED_MISSING: "失踪宣告",
    EventKind.HOUSEHOLD_SPLIT: "世帯分離",
    EventKind.HOUSEHOLD_MERGE: "世帯合併",
    EventKind.HOUSEHOLD_CHANGE: "世帯変更",
    EventKind.HEAD_CHANGE: "世帯主変更",
    EventKind.NAME_CHANGE: "氏名の変更",
    EventKind.OLD_SURNAME_ENTRY: "旧氏の記載",
    EventKind.OLD_SURNAME_DELETION: "旧氏の削除",
    EventKind.FURIGANA: "振り仮名の記載・修正",
    EventKind.EX_OFFICIO_ENTRY: "職権記載",
    EventKind.EX_OFFICIO_CORRECTION: "職権修正",
    EventKind.CLERICAL_CORRECTION: "誤記修正",
    EventKind.EX_OFFICIO_REMOVAL: "職権消除",
    EventKind.CANCELLATION: "異動の取消し",
    EventKind.RESIDENT_CODE_CHANGE: "住民票コードの変更",
    EventKind.INDIVIDUAL_NUMBER_CHANGE: "個人番号の変更",
    EventKind.IMMIGRATION_NOTICE: "法務省通知 (在留資格等の変更)",
    EventKind.ALIAS_ENTRY: "通称の記載",
    EventKind.ALIAS_DELETION: "通称の削除",
    EventKind.NATURALISATION: "帰化",
    EventKind.NATIONALITY_ACQUIRED: "国籍取得",
    EventKind.NATIONALITY_LOST: "国籍喪失",
}

# Corrections and cancellations may touch a removed record: a 除票 with a wrong item is
# still corrected (住民基本台帳法施行令 第12条第3項).
ALLOWED_ON_REMOVED = frozenset(
    {EventKind.EX_OFFICIO_CORRECTION, EventKind.CLERICAL_CORRECTION, EventKind.CANCELLATION}
)
# Only a planned move-out looks ahead; every other event records something that happened.
MAY_BE_FUTURE = frozenset({EventKind.MOVE_OUT, EventKind.MOVE_OUT_ABROAD})
# Notifications a resident owes within 14 days (住民基本台帳法 第22条〜第25条); only these
# can be late. Acts of the municipality itself (corrections, removals) never are.
DEADLINE_NOTIFICATIONS = frozenset(
    {
        EventKind.MOVE_IN,
        EventKind.MOVE_IN_CARD_HOLDER,
        EventKind.MOVE_IN_FROM_ABROAD,
        EventKind.MOVE_WITHIN,
        EventKind.MOVE_OUT,
        EventKind.MOVE_OUT_ABROAD,
        EventKind.HOUSEHOLD_SPLIT,
        EventKind.HOUSEHOLD_MERGE,
        EventKind.HOUSEHOLD_CHANGE,
        EventKind.HEAD_CHANGE,
    }
)


class ResidentKind(StrEnum):
    JAPANESE = "japanese"
    FOREIGN = "foreign"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class RecordStatus(StrEnum):
    LIVE = "live"
    REMOVED = "removed"


class RemovalReason(StrEnum):
    MOVE_OUT = "move_out"
    MOVE_OUT_ABROAD = "move_out_abroad"
    DEATH = "death"
    DECLARED_MISSING = "declared_missing"
    EX_OFFICIO = "ex_officio"


REMOVAL_LABELS: Mapping[RemovalReason, str] = {
    RemovalReason.MOVE_OUT: "転出",
    RemovalReason.MOVE_OUT_ABROAD: "国外転出",
    RemovalReason.DEATH: "死亡",
    RemovalReason.DECLARED_MISSING: "失踪宣告",
    RemovalReason.EX_OFFICIO: "職権消除",
}


class ForeignResidentCategory(StrEnum):
    """住民基本台帳法 第30条の45 の区分."""

    MID_TO_LONG_TERM = "mid_to_long_term"  # 中長期在留者
    SPECIAL_PERMANENT = "special_permanent"  # 特別永住者
    TEMPORARY_REFUGE = "temporary_refuge"  # 一時庇護許可者
    PROVISIONAL_STAY = "provisional_stay"  # 仮滞在許可者
    TRANSITIONAL_BIRTH = "transitional_birth"  # 出生による経過滞在者
    TRANSITIONAL_NATIONALITY_LOSS = "transitional_nationality_loss"  # 国籍喪失による経過滞在者


@dataclass(frozen=True, slots=True)
class Address:
    """住所: the municipality, the rest of the address, and 方書 (building, room)."""

    lg_code: str
    line: str
    katagaki: str = ""

    def text(self, municipality_name: str = "") -> str:
        tail = f" {self.katagaki}" if self.katagaki else ""
        return f"{municipality_name}{self.line}{tail}"


@dataclass(frozen=True, slots=True)
class AliasRecord:
    """通称の履歴: 記載・削除の年月日と市町村 (住民基本台帳法施行令 第30条の27)."""

    alias: str
    alias_kana: str
    recorded_on: dt.date
    recorded_lg_code: str
    deleted_on: dt.date | None = None
    deleted_lg_code: str | None = None


@dataclass(frozen=True, slots=True)
class ForeignItems:
    """Items only foreign residents have (法30条の45)."""

    nationality: str
    category: ForeignResidentCategory
    status_of_residence: str | None
    period_of_stay: str | None
    stay_expires_on: dt.date | None
    residence_card_number: str | None
    became_foreign_resident_on: dt.date
    name_alphabet: str
    alias: str | None = None
    alias_kana: str | None = None
    alias_history: tuple[AliasRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedMoveOut:
    planned_on: dt.date
    destination: str
    destination_lg_code: str | None  # None: abroad or outside the master


@dataclass(frozen=True, slots=True)
class ResidentRecord:
    """One person's 住民票 as it stands on one date."""

    resident_kind: ResidentKind
    family_name: str
    given_name: str
    family_name_kana: str | None  # 振り仮名: may be blank during the confirmation year
    given_name_kana: str | None
    birth_date: dt.date
    sex: Sex
    household_id: int
    relationship: str
    address: Address
    became_resident_on: dt.date
    address_set_on: dt.date
    notified_on: dt.date
    resident_code: str
    individual_number: str | None
    honseki: str | None = None
    hittousha: str | None = None
    old_surname: str | None = None
    old_surname_kana: str | None = None
    previous_address: str | None = None
    foreign: ForeignItems | None = None
    planned_move_out: PlannedMoveOut | None = None
    status: RecordStatus = RecordStatus.LIVE
    removal_reason: RemovalReason | None = None
    removed_on: dt.date | None = None

    @property
    def is_head(self) -> bool:
        return self.relationship == RELATIONSHIP_HEAD

    @property
    def name(self) -> str:
        return f"{self.family_name}　{self.given_name}".strip("　")

    @property
    def name_kana(self) -> str | None:
        if self.family_name_kana is None and self.given_name_kana is None:
            return None
        return f"{self.family_name_kana or ''}　{self.given_name_kana or ''}".strip("　")

    def search_kana(self) -> str:
        """What kana search matches: the name's furigana, and a foreigner's alias."""
        parts = [self.name_kana or ""]
        if self.foreign is not None and self.foreign.alias_kana:
            parts.append(self.foreign.alias_kana)
        return " ".join(normalize_kana(p) for p in parts if p)

    def identity(self) -> IdentityInfo:
        return IdentityInfo(
            resident_code=self.resident_code,
            individual_number=self.individual_number,
            name=self.name,
            name_kana=self.name_kana,
            birth_date=self.birth_date,
            sex=self.sex,
            address_lg_code=self.address.lg_code,
            address=self.address.line + (f" {self.address.katagaki}" if self.address.katagaki else ""),
            status=self.status,
            removal_reason=self.removal_reason,
            resident_kind=self.resident_kind,
        )


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    """本人確認情報: what the national network holds of a person."""

    resident_code: str
    individual_number: str | None
    name: str
    name_kana: str | None
    birth_date: dt.date
    sex: Sex
    address_lg_code: str
    address: str
    status: RecordStatus
    removal_reason: RemovalReason | None
    resident_kind: ResidentKind

    def fingerprint(self) -> str:
        return hashlib.sha256(canonical_json(self).encode()).hexdigest()


# ---------------------------------------------------------------------------
# Changes: what one event does to one person. One type per kind of change, so that
# mypy checks every payload; each knows how to apply itself to a record.


class Change:
    """Base of every change; ``apply`` turns the record before into the record after."""

    tag: ClassVar[str]

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        raise NotImplementedError


def _require(before: ResidentRecord | None, what: str) -> ResidentRecord:
    if before is None:
        raise RuleViolation(f"{what}の対象となる住民票がありません。")
    return before


@dataclass(frozen=True, slots=True)
class Registration(Change):
    """A record comes into being: 転入, 出生, 国外転入, 職権記載."""

    tag: ClassVar[str] = "registration"
    record: ResidentRecord

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        if before is not None and before.status is RecordStatus.LIVE:
            raise RuleViolation("この住民票は既に記載されています。")
        return self.record


@dataclass(frozen=True, slots=True)
class AddressChange(Change):
    tag: ClassVar[str] = "address_change"
    address: Address
    previous_address: str | None = None

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "転居")
        return replace(r, address=self.address, address_set_on=effective_on)


@dataclass(frozen=True, slots=True)
class MoveOutPlanned(Change):
    tag: ClassVar[str] = "move_out_planned"
    planned: PlannedMoveOut

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        return replace(_require(before, "転出"), planned_move_out=self.planned)


@dataclass(frozen=True, slots=True)
class Removal(Change):
    tag: ClassVar[str] = "removal"
    reason: RemovalReason

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "消除")
        if r.status is RecordStatus.REMOVED:
            # Already closed earlier (a move-out confirmed before its planned date): the
            # earliest removal stands.
            return r
        return replace(r, status=RecordStatus.REMOVED, removal_reason=self.reason, removed_on=effective_on)


@dataclass(frozen=True, slots=True)
class HouseholdAssignment(Change):
    tag: ClassVar[str] = "household_assignment"
    household_id: int
    relationship: str

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        return replace(
            _require(before, "世帯の変更"), household_id=self.household_id, relationship=self.relationship
        )


@dataclass(frozen=True, slots=True)
class NameChange(Change):
    """氏名の変更; None keeps the item as it is (a change of surname keeps the given name)."""

    tag: ClassVar[str] = "name_change"
    family_name: str
    given_name: str | None
    family_name_kana: str | None
    given_name_kana: str | None

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "氏名の変更")
        return replace(
            r,
            family_name=self.family_name,
            given_name=r.given_name if self.given_name is None else self.given_name,
            family_name_kana=r.family_name_kana if self.family_name_kana is None else self.family_name_kana,
            given_name_kana=r.given_name_kana if self.given_name_kana is None else self.given_name_kana,
        )


@dataclass(frozen=True, slots=True)
class OldSurnameChange(Change):
    tag: ClassVar[str] = "old_surname"
    old_surname: str | None
    old_surname_kana: str | None

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "旧氏の記載・削除")
        if r.resident_kind is not ResidentKind.JAPANESE:
            raise RuleViolation("旧氏は日本人住民の住民票にのみ記載できます。")
        return replace(r, old_surname=self.old_surname, old_surname_kana=self.old_surname_kana)


@dataclass(frozen=True, slots=True)
class FuriganaChange(Change):
    tag: ClassVar[str] = "furigana"
    family_name_kana: str
    given_name_kana: str

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        return replace(
            _require(before, "振り仮名の記載"),
            family_name_kana=self.family_name_kana,
            given_name_kana=self.given_name_kana,
        )


# Items a correction may set, and how a JSON value becomes the item's type.
CORRECTABLE_ITEMS: Mapping[str, str] = {
    "family_name": "str",
    "given_name": "str",
    "family_name_kana": "kana?",
    "given_name_kana": "kana?",
    "birth_date": "date",
    "sex": "sex",
    "relationship": "str",
    "honseki": "str?",
    "hittousha": "str?",
    "old_surname": "str?",
    "old_surname_kana": "kana?",
    "became_resident_on": "date",
    "address_set_on": "date",
    "notified_on": "date",
    "previous_address": "str?",
    "address_line": "str",
    "address_katagaki": "str?",
}


@dataclass(frozen=True, slots=True)
class ItemCorrection(Change):
    """職権修正・誤記修正: set listed items to their right values."""

    tag: ClassVar[str] = "item_correction"
    items: tuple[tuple[str, Any], ...]

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "修正")
        updates: dict[str, Any] = {}
        address = r.address
        for name, value in self.items:
            if name == "address_line":
                address = replace(address, line=value)
            elif name == "address_katagaki":
                address = replace(address, katagaki=value or "")
            else:
                updates[name] = value
        return replace(r, address=address, **updates)


@dataclass(frozen=True, slots=True)
class ResidentCodeChange(Change):
    tag: ClassVar[str] = "resident_code_change"
    resident_code: str

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        return replace(_require(before, "住民票コードの変更"), resident_code=self.resident_code)


@dataclass(frozen=True, slots=True)
class IndividualNumberChange(Change):
    tag: ClassVar[str] = "individual_number_change"
    individual_number: str

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        return replace(_require(before, "個人番号の変更"), individual_number=self.individual_number)


def _foreign(r: ResidentRecord, what: str) -> ForeignItems:
    if r.foreign is None:
        raise RuleViolation(f"{what}は外国人住民の住民票にのみ行えます。")
    return r.foreign


@dataclass(frozen=True, slots=True)
class ImmigrationUpdate(Change):
    """法務大臣からの通知: 在留資格, 在留期間, その満了日, 在留カード番号 (unset items unchanged)."""

    tag: ClassVar[str] = "immigration_update"
    status_of_residence: str | None
    period_of_stay: str | None
    stay_expires_on: dt.date | None
    residence_card_number: str | None
    category: ForeignResidentCategory | None

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "在留資格等の変更")
        f = _foreign(r, "在留資格等の変更")
        return replace(
            r,
            foreign=replace(
                f,
                status_of_residence=self.status_of_residence or f.status_of_residence,
                period_of_stay=self.period_of_stay or f.period_of_stay,
                stay_expires_on=self.stay_expires_on or f.stay_expires_on,
                residence_card_number=self.residence_card_number or f.residence_card_number,
                category=self.category or f.category,
            ),
        )


@dataclass(frozen=True, slots=True)
class AliasChange(Change):
    """通称の記載 (alias set) or 削除 (alias None), with the history the law asks for."""

    tag: ClassVar[str] = "alias_change"
    alias: str | None
    alias_kana: str | None

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "通称の記載・削除")
        f = _foreign(r, "通称の記載・削除")
        history = list(f.alias_history)
        if self.alias is None:
            if f.alias is None:
                raise RuleViolation("削除する通称が記載されていません。")
            history[-1] = replace(history[-1], deleted_on=effective_on, deleted_lg_code=lg_code)
        else:
            if f.alias is not None:
                raise RuleViolation("通称は1つしか記載できません。先に現在の通称を削除してください。")
            history.append(
                AliasRecord(
                    alias=self.alias,
                    alias_kana=self.alias_kana or "",
                    recorded_on=effective_on,
                    recorded_lg_code=lg_code,
                )
            )
        return replace(
            r, foreign=replace(f, alias=self.alias, alias_kana=self.alias_kana, alias_history=tuple(history))
        )


@dataclass(frozen=True, slots=True)
class BecomeJapanese(Change):
    """帰化・国籍取得: the record becomes a Japanese resident's, with 本籍 and a Japanese name."""

    tag: ClassVar[str] = "become_japanese"
    family_name: str
    given_name: str
    family_name_kana: str | None
    given_name_kana: str | None
    honseki: str
    hittousha: str

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "帰化・国籍取得")
        _foreign(r, "帰化・国籍取得")
        return replace(
            r,
            resident_kind=ResidentKind.JAPANESE,
            foreign=None,
            family_name=self.family_name,
            given_name=self.given_name,
            family_name_kana=self.family_name_kana,
            given_name_kana=self.given_name_kana,
            honseki=self.honseki,
            hittousha=self.hittousha,
        )


@dataclass(frozen=True, slots=True)
class BecomeForeign(Change):
    """国籍喪失: the record becomes a foreign resident's (経過滞在者 until status is granted)."""

    tag: ClassVar[str] = "become_foreign"
    foreign: ForeignItems

    def apply(self, before: ResidentRecord | None, *, effective_on: dt.date, lg_code: str) -> ResidentRecord:
        r = _require(before, "国籍喪失")
        if r.resident_kind is not ResidentKind.JAPANESE:
            raise RuleViolation("国籍喪失は日本人住民の住民票にのみ記録できます。")
        return replace(
            r,
            resident_kind=ResidentKind.FOREIGN,
            foreign=self.foreign,
            honseki=None,
            hittousha=None,
            old_surname=None,
            old_surname_kana=None,
        )


CHANGE_TYPES: Mapping[str, type[Change]] = {
    t.tag: t
    for t in (
        Registration,
        AddressChange,
        MoveOutPlanned,
        Removal,
        HouseholdAssignment,
        NameChange,
        OldSurnameChange,
        FuriganaChange,
        ItemCorrection,
        ResidentCodeChange,
        IndividualNumberChange,
        ImmigrationUpdate,
        AliasChange,
        BecomeJapanese,
        BecomeForeign,
    )
}


# ---------------------------------------------------------------------------
# Serialisation: changes and records are stored as JSON; dates as ISO strings.


# Values JSON takes as they are; exact types, since a StrEnum is a str too.
_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(kind: type) -> tuple[str, ...] | None:
    """A dataclass's field names, looked up once per class (records are serialised in bulk)."""
    if kind not in _FIELD_NAMES:
        _FIELD_NAMES[kind] = (
            tuple(f.name for f in dataclasses.fields(kind)) if dataclasses.is_dataclass(kind) else None
        )
    return _FIELD_NAMES[kind]


def _to_jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    names = _field_names(kind)
    if names is not None:
        return {name: _to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, tuple | list):
        return [_to_jsonable(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(_to_jsonable(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def change_to_json(change: Change) -> str:
    return json.dumps({"tag": change.tag, "data": _to_jsonable(change)}, ensure_ascii=False, sort_keys=True)


def _date(v: Any) -> dt.date | None:
    return None if v is None else dt.date.fromisoformat(v)


def _foreign_from(d: Mapping[str, Any] | None) -> ForeignItems | None:
    if d is None:
        return None
    return ForeignItems(
        nationality=d["nationality"],
        category=ForeignResidentCategory(d["category"]),
        status_of_residence=d["status_of_residence"],
        period_of_stay=d["period_of_stay"],
        stay_expires_on=_date(d["stay_expires_on"]),
        residence_card_number=d["residence_card_number"],
        became_foreign_resident_on=dt.date.fromisoformat(d["became_foreign_resident_on"]),
        name_alphabet=d["name_alphabet"],
        alias=d["alias"],
        alias_kana=d["alias_kana"],
        alias_history=tuple(
            AliasRecord(
                alias=a["alias"],
                alias_kana=a["alias_kana"],
                recorded_on=dt.date.fromisoformat(a["recorded_on"]),
                recorded_lg_code=a["recorded_lg_code"],
                deleted_on=_date(a["deleted_on"]),
                deleted_lg_code=a["deleted_lg_code"],
            )
            for a in d["alias_history"]
        ),
    )


def record_from_json(d: Mapping[str, Any]) -> ResidentRecord:
    planned = d["planned_move_out"]
    return ResidentRecord(
        resident_kind=ResidentKind(d["resident_kind"]),
        family_name=d["family_name"],
        given_name=d["given_name"],
        family_name_kana=d["family_name_kana"],
        given_name_kana=d["given_name_kana"],
        birth_date=dt.date.fromisoformat(d["birth_date"]),
        sex=Sex(d["sex"]),
        household_id=d["household_id"],
        relationship=d["relationship"],
        address=Address(**d["address"]),
        became_resident_on=dt.date.fromisoformat(d["became_resident_on"]),
        address_set_on=dt.date.fromisoformat(d["address_set_on"]),
        notified_on=dt.date.fromisoformat(d["notified_on"]),
        resident_code=d["resident_code"],
        individual_number=d["individual_number"],
        honseki=d["honseki"],
        hittousha=d["hittousha"],
        old_surname=d["old_surname"],
        old_surname_kana=d["old_surname_kana"],
        previous_address=d["previous_address"],
        foreign=_foreign_from(d["foreign"]),
        planned_move_out=None
        if planned is None
        else PlannedMoveOut(
            planned_on=dt.date.fromisoformat(planned["planned_on"]),
            destination=planned["destination"],
            destination_lg_code=planned["destination_lg_code"],
        ),
        status=RecordStatus(d["status"]),
        removal_reason=None if d["removal_reason"] is None else RemovalReason(d["removal_reason"]),
        removed_on=_date(d["removed_on"]),
    )


def record_to_json(record: ResidentRecord) -> str:
    return canonical_json(record)


def change_from_json(text: str) -> Change:
    raw = json.loads(text)
    tag, data = raw["tag"], raw["data"]
    match tag:
        case "registration":
            return Registration(record=record_from_json(data["record"]))
        case "address_change":
            return AddressChange(
                address=Address(**data["address"]), previous_address=data["previous_address"]
            )
        case "move_out_planned":
            p = data["planned"]
            return MoveOutPlanned(
                planned=PlannedMoveOut(
                    planned_on=dt.date.fromisoformat(p["planned_on"]),
                    destination=p["destination"],
                    destination_lg_code=p["destination_lg_code"],
                )
            )
        case "removal":
            return Removal(reason=RemovalReason(data["reason"]))
        case "household_assignment":
            return HouseholdAssignment(household_id=data["household_id"], relationship=data["relationship"])
        case "name_change":
            return NameChange(**data)
        case "old_surname":
            return OldSurnameChange(**data)
        case "furigana":
            return FuriganaChange(**data)
        case "item_correction":
            return ItemCorrection(items=tuple(_decode_item(n, v) for n, v in data["items"]))
        case "resident_code_change":
            return ResidentCodeChange(**data)
        case "individual_number_change":
            return IndividualNumberChange(**data)
        case "immigration_update":
            return ImmigrationUpdate(
                status_of_residence=data["status_of_residence"],
                period_of_stay=data["period_of_stay"],
                stay_expires_on=_date(data["stay_expires_on"]),
                residence_card_number=data["residence_card_number"],
                category=None if data["category"] is None else ForeignResidentCategory(data["category"]),
            )
        case "alias_change":
            return AliasChange(**data)
        case "become_japanese":
            return BecomeJapanese(**data)
        case "become_foreign":
            foreign = _foreign_from(data["foreign"])
            assert foreign is not None
            return BecomeForeign(foreign=foreign)
    raise ValueError(f"unknown change tag {tag!r}")


def _decode_item(name: str, value: Any) -> tuple[str, Any]:
    kind = CORRECTABLE_ITEMS[name]
    if value is None:
        return name, None
    if kind == "date":
        return name, dt.date.fromisoformat(value)
    if kind == "sex":
        return name, Sex(value)
    return name, value


# ---------------------------------------------------------------------------
# The fold and the rules.


@dataclass(frozen=True, slots=True)
class TimedChange:
    """One change in a person's history, with what orders it."""

    effective_on: dt.date
    event_seq: int
    change: Change


@dataclass(frozen=True, slots=True)
class Version:
    """The record over [valid_from, valid_to); valid_to None means still in force."""

    valid_from: dt.date
    valid_to: dt.date | None
    record: ResidentRecord


def fold(changes: list[TimedChange], *, lg_code: str) -> list[Version]:
    """The versions a person's changes produce, one per distinct effective date.

    Changes are applied in order of effective date, then of recording, so that a late
    notification slots into the past without undoing what was recorded after it.
    """
    ordered = sorted(changes, key=lambda c: (c.effective_on, c.event_seq))
    versions: list[Version] = []
    current: ResidentRecord | None = None
    for timed in ordered:
        current = timed.change.apply(current, effective_on=timed.effective_on, lg_code=lg_code)
        if versions and versions[-1].valid_from == timed.effective_on:
            versions[-1] = Version(timed.effective_on, None, current)
        else:
            if versions:
                last = versions[-1]
                versions[-1] = Version(last.valid_from, timed.effective_on, last.record)
            versions.append(Version(timed.effective_on, None, current))
    return versions


def record_on(versions: list[Version], on: dt.date) -> ResidentRecord | None:
    for v in versions:
        if v.valid_from <= on and (v.valid_to is None or on < v.valid_to):
            return v.record
    return None


def check_dates(kind: EventKind, *, effective_on: dt.date, notified_on: dt.date, today: dt.date) -> bool:
    """Refuse impossible dates; return whether the notification is late (accepted, flagged)."""
    if effective_on > today and kind not in MAY_BE_FUTURE:
        raise InvalidValue("異動年月日に未来の日付は指定できません。", field="effective_on")
    if notified_on > today:
        raise InvalidValue("届出年月日に未来の日付は指定できません。", field="notified_on")
    if kind not in DEADLINE_NOTIFICATIONS:
        return False
    # A move-out is due before the move or within 14 days after it; a planned one
    # notified ahead of its date is never late.
    return (notified_on - effective_on).days > NOTIFICATION_DEADLINE_DAYS


def check_kana(value: str | None, field_name: str) -> str | None:
    if value is None or value == "":
        return None
    if not is_katakana_name(value):
        raise InvalidValue("振り仮名は全角カタカナで入力してください。", field=field_name)
    return value


def check_relationship(value: str, field_name: str = "relationship") -> str:
    value = value.strip()
    if not value or len(value) > 20:
        raise InvalidValue("続柄を20文字以内で入力してください。", field=field_name)
    return value


def check_one_head(members: Mapping[int, ResidentRecord], household_id: int, on: dt.date) -> None:
    """世帯主 is exactly one live member of a household that has live members."""
    live = [r for r in members.values() if r.status is RecordStatus.LIVE]
    if not live:
        return
    heads = [r for r in live if r.is_head]
    if len(heads) != 1:
        raise RuleViolation(
            f"世帯 {household_id} の世帯主が{on.isoformat()}時点で{len(heads)}人になります。"
            "世帯主は常に1人でなければなりません。",
            field="relationship",
        )


class StaleVersion(Conflict):
    type_slug = "stale-version"
    title = "他の職員が先にこの記録を更新しました"


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What a recorded event reports back to the caller."""

    event_id: int
    kind: EventKind
    late: bool
    person_ids: tuple[int, ...] = field(default=())
    household_ids: tuple[int, ...] = field(default=())
