"""The interchange layout: one CSV file per entity, its columns, and the rules of each value.

Pure: rows go in and out as lists of strings, and parsing a row returns either the typed
row or the reasons it is refused (Japanese, one per bad value). Column names are English
(the glossary of DOMAIN.md); each carries the item name of the 住民記録システム標準仕様書
it stands for, and docs/interchange.md is generated from the same table, so the
documentation and the code cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

from jumin.core.errors import InvalidValue
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.core.municipalities import load_master
from jumin.core.names import is_katakana_name

__all__ = [
    "ALIASES",
    "CARDS",
    "EVENTS",
    "FILES",
    "FOREIGN_RESIDENTS",
    "HOUSEHOLDS",
    "LAYOUT_VERSION",
    "PERSONS",
    "AliasRow",
    "CardRow",
    "Column",
    "EventRow",
    "FileLayout",
    "ForeignRow",
    "HouseholdRow",
    "PersonRow",
    "RowError",
]

LAYOUT_VERSION = "jumin-interchange/1"

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ATENA = re.compile(r"[0-9A-Za-z][0-9A-Za-z\-]{0,14}")
_HOUSEHOLD_NO = re.compile(r"[0-9]{1,16}")
_EVENT_NO = re.compile(r"[0-9]{1,18}")
# Characters no item may hold: C0/C1 controls (PostgreSQL text cannot hold NUL, and a
# line break inside a name is always a data error) and the replacement character left by
# a wrong decoding.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffd]")
_RESIDENCE_CARD = re.compile(r"[A-Z]{2}[0-9]{8}[A-Z]{2}")

RESIDENT_KINDS = ("japanese", "foreign")
SEXES = ("male", "female")
STATUSES = ("live", "removed")
REMOVAL_REASONS = ("move_out", "move_out_abroad", "death", "declared_missing", "ex_officio")
FOREIGN_CATEGORIES = (
    "mid_to_long_term",
    "special_permanent",
    "temporary_refuge",
    "provisional_stay",
    "transitional_birth",
    "transitional_nationality_loss",
)
CARD_STATUSES = ("issued", "suspended", "revoked", "returned", "expired")
EVENT_KINDS = (
    "move_in",
    "move_in_card_holder",
    "move_in_from_abroad",
    "move_within",
    "move_out",
    "move_out_abroad",
    "move_out_confirmed",
    "birth",
    "death",
    "declared_missing",
    "household_split",
    "household_merge",
    "household_change",
    "head_change",
    "name_change",
    "old_surname_entry",
    "old_surname_deletion",
    "furigana",
    "ex_officio_entry",
    "ex_officio_correction",
    "clerical_correction",
    "ex_officio_removal",
    "resident_code_change",
    "individual_number_change",
    "immigration_notice",
    "alias_entry",
    "alias_deletion",
    "naturalisation",
    "nationality_acquired",
    "nationality_lost",
)
# Events that close a record (消除): the removal of a removed record is one of these.
REMOVAL_EVENT_KINDS = frozenset(
    {"move_out", "move_out_abroad", "move_out_confirmed", "death", "declared_missing", "ex_officio_removal"}
)


@dataclass(frozen=True, slots=True)
class RowError:
    """One refused row: where it is and why (Japanese)."""

    file: str
    line: int
    reason: str
    field: str | None = None
    lg_code: str | None = None

    def describe(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.file}:{self.line}{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    term: str  # 標準仕様書の項目名
    required: bool
    description: str


_R = TypeVar("_R")


class _Parser:
    """Collects every bad value of one row instead of stopping at the first."""

    def __init__(self, values: Sequence[str], columns: Sequence[Column]) -> None:
        self.values = dict(zip((c.name for c in columns), values, strict=True))
        self.required = {c.name: c.required for c in columns}
        self.terms = {c.name: c.term for c in columns}
        self.problems: list[tuple[str, str]] = []

    def fail(self, name: str, reason: str) -> None:
        self.problems.append((name, f"{self.terms[name]}: {reason}"))

    def text(self, name: str, max_length: int = 100) -> str | None:
        value = self.values[name]
        if value == "":
            if self.required[name]:
                self.fail(name, "必須の項目が空です")
            return None
        if _FORBIDDEN.search(value):
            self.fail(name, "制御文字を含めることはできません")
            return None
        if len(value) > max_length:
            self.fail(name, f"{max_length}文字以内で指定してください（{len(value)}文字です）")
            return None
        if value != value.strip():
            self.fail(name, "前後に空白を含めることはできません")
            return None
        return value

    def pattern(self, name: str, regex: re.Pattern[str], what: str) -> str | None:
        value = self.text(name, 64)
        if value is not None and not regex.fullmatch(value):
            self.fail(name, f"{what}の形式ではありません")
            return None
        return value

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        value = self.text(name, 64)
        if value is not None and value not in allowed:
            self.fail(name, f"「{value}」は使えません（{' / '.join(allowed)}）")
            return None
        return value

    def date(self, name: str) -> dt.date | None:
        value = self.text(name, 10)
        if value is None:
            return None
        if not _DATE.fullmatch(value):
            self.fail(name, "日付は YYYY-MM-DD (西暦) で指定してください")
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(name, f"{value} は存在しない日付です")
            return None

    def kana(self, name: str) -> str | None:
        value = self.text(name, 100)
        if value is not None and not is_katakana_name(value):
            self.fail(name, "全角カタカナ (氏名の間は空白1つ) で指定してください")
            return None
        return value

    def checked(
        self, name: str, kind: type[ResidentCode] | type[IndividualNumber] | type[LgCode]
    ) -> str | None:
        value = self.text(name, 16)
        if value is None:
            return None
        try:
            return kind(value).value
        except InvalidValue as exc:
            self.fail(name, exc.detail)
            return None

    def lg_code(self, name: str) -> str | None:
        value = self.checked(name, LgCode)
        if value is None:
            return None
        entry = load_master().find(value)
        if entry is None or not entry.is_municipality:
            self.fail(name, f"{value} は住民基本台帳を持つ市区町村のコードではありません")
            return None
        return value

    def flag(self, name: str) -> bool | None:
        value = self.choice(name, ("0", "1"))
        return None if value is None else value == "1"

    def integer(self, name: str, maximum: int) -> int | None:
        value = self.text(name, 12)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or int(value) > maximum:
            self.fail(name, f"0〜{maximum} の整数で指定してください")
            return None
        return int(value)


class _Row:
    """Base of the typed rows: formatting back to strings is the same for all."""

    FILE: ClassVar[FileLayout[Any]]

    def values(self) -> list[str]:
        return [_format(getattr(self, c.name)) for c in self.FILE.columns]


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True, slots=True)
class FileLayout(Generic[_R]):
    name: str
    filename: str
    term: str
    description: str
    columns: tuple[Column, ...]
    row_type: type[_R]
    parse_values: Callable[[_Parser], _R | None]

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]

    def parse(self, values: Sequence[str], *, line: int) -> tuple[_R | None, list[RowError]]:
        """The typed row, or every reason the row is refused."""
        if len(values) != len(self.columns):
            return None, [
                RowError(
                    self.filename, line, f"列の数が {len(values)} です（{len(self.columns)} 列が必要です）"
                )
            ]
        parser = _Parser(values, self.columns)
        row = self.parse_values(parser)
        lg = parser.values.get("lg_code") or None
        errors = [RowError(self.filename, line, reason, name, lg) for name, reason in parser.problems]
        return (row if not errors else None), errors


# ---------------------------------------------------------------------------
# 世帯


@dataclass(frozen=True, slots=True)
class HouseholdRow(_Row):
    lg_code: str
    household_no: str
    head_atena_no: str | None
    member_count: int


def _household(p: _Parser) -> HouseholdRow | None:
    row = (
        p.lg_code("lg_code"),
        p.pattern("household_no", _HOUSEHOLD_NO, "世帯番号 (数字16桁以内)"),
        p.pattern("head_atena_no", _ATENA, "宛名番号 (英数字とハイフン15文字以内)"),
        p.integer("member_count", 10_000),
    )
    if p.problems:
        return None
    lg, no, head, count = row
    assert lg is not None
    assert no is not None
    assert count is not None
    return HouseholdRow(lg, no, head, count)


HOUSEHOLDS: FileLayout[HouseholdRow] = FileLayout(
    name="households",
    filename="households.csv",
    term="世帯",
    description="世帯ごとに1行。世帯主と世帯員数は persons.csv と照合されます。",
    columns=(
        Column(
            "lg_code", "地方公共団体コード", True, "住民基本台帳を持つ市区町村の6桁コード (検査数字を含む)"
        ),
        Column("household_no", "世帯番号", True, "団体内で一意な数字 (16桁以内)"),
        Column(
            "head_atena_no", "世帯主の宛名番号", False, "現に住民である世帯員がいる世帯では世帯主の宛名番号"
        ),
        Column("member_count", "世帯員数", True, "現に住民である世帯員の数 (消除された者を含まない)"),
    ),
    row_type=HouseholdRow,
    parse_values=_household,
)
HouseholdRow.FILE = HOUSEHOLDS


# ---------------------------------------------------------------------------
# 住民票


@dataclass(frozen=True, slots=True)
class PersonRow(_Row):
    lg_code: str
    atena_no: str
    resident_code: str
    individual_number: str | None
    resident_kind: str
    family_name: str
    given_name: str
    family_name_kana: str | None
    given_name_kana: str | None
    birth_date: dt.date
    sex: str
    household_no: str
    relationship: str
    address_line: str
    katagaki: str | None
    became_resident_on: dt.date
    address_set_on: dt.date
    notified_on: dt.date
    honseki: str | None
    hittousha: str | None
    old_surname: str | None
    old_surname_kana: str | None
    previous_address: str | None
    planned_move_out_on: dt.date | None
    planned_move_out_destination: str | None
    planned_move_out_lg_code: str | None
    status: str
    removal_reason: str | None
    removed_on: dt.date | None


def _person(p: _Parser) -> PersonRow | None:
    values: dict[str, Any] = {
        "lg_code": p.lg_code("lg_code"),
        "atena_no": p.pattern("atena_no", _ATENA, "宛名番号 (英数字とハイフン15文字以内)"),
        "resident_code": p.checked("resident_code", ResidentCode),
        "individual_number": p.checked("individual_number", IndividualNumber),
        "resident_kind": p.choice("resident_kind", RESIDENT_KINDS),
        "family_name": p.text("family_name", 60),
        "given_name": p.text("given_name", 60),
        "family_name_kana": p.kana("family_name_kana"),
        "given_name_kana": p.kana("given_name_kana"),
        "birth_date": p.date("birth_date"),
        "sex": p.choice("sex", SEXES),
        "household_no": p.pattern("household_no", _HOUSEHOLD_NO, "世帯番号 (数字16桁以内)"),
        "relationship": p.text("relationship", 20),
        "address_line": p.text("address_line", 200),
        "katagaki": p.text("katagaki", 90),
        "became_resident_on": p.date("became_resident_on"),
        "address_set_on": p.date("address_set_on"),
        "notified_on": p.date("notified_on"),
        "honseki": p.text("honseki", 200),
        "hittousha": p.text("hittousha", 100),
        "old_surname": p.text("old_surname", 60),
        "old_surname_kana": p.kana("old_surname_kana"),
        "previous_address": p.text("previous_address", 300),
        "planned_move_out_on": p.date("planned_move_out_on"),
        "planned_move_out_destination": p.text("planned_move_out_destination", 300),
        "planned_move_out_lg_code": p.checked("planned_move_out_lg_code", LgCode),
        "status": p.choice("status", STATUSES),
        "removal_reason": p.choice("removal_reason", REMOVAL_REASONS),
        "removed_on": p.date("removed_on"),
    }
    if p.problems:
        return None
    row = PersonRow(**values)
    _person_rules(p, row)
    return None if p.problems else row


def _person_rules(p: _Parser, r: PersonRow) -> None:
    """Rules between items of one row."""
    if (r.family_name_kana is None) != (r.given_name_kana is None):
        p.fail("given_name_kana", "氏と名の振り仮名は両方とも記載するか、両方とも空にしてください")
    if r.became_resident_on < r.birth_date:
        p.fail("became_resident_on", "生年月日より前の日付です")
    if r.address_set_on < r.became_resident_on:
        p.fail("address_set_on", "住民となった年月日より前の日付です")
    if (r.status == "removed") != (r.removal_reason is not None) or (r.removal_reason is None) != (
        r.removed_on is None
    ):
        p.fail(
            "status", "消除された住民票 (removed) には消除事由と消除年月日の両方が必要で、住民には不要です"
        )
    if r.removed_on is not None and r.removed_on < r.became_resident_on:
        p.fail("removed_on", "住民となった年月日より前の日付です")
    if (r.planned_move_out_on is None) != (r.planned_move_out_destination is None):
        p.fail("planned_move_out_on", "転出予定年月日と転出先は両方とも記載するか、両方とも空にしてください")
    if r.planned_move_out_lg_code is not None and r.planned_move_out_on is None:
        p.fail("planned_move_out_lg_code", "転出予定のない住民票に転出先の団体コードは記載できません")
    if (r.old_surname is None) != (r.old_surname_kana is None) and r.old_surname is None:
        p.fail("old_surname_kana", "旧氏のない住民票に旧氏の振り仮名は記載できません")
    if r.resident_kind == "foreign" and (r.honseki or r.hittousha or r.old_surname):
        p.fail("honseki", "外国人住民の住民票に本籍・筆頭者・旧氏は記載できません")


PERSONS: FileLayout[PersonRow] = FileLayout(
    name="persons",
    filename="persons.csv",
    term="住民票 (個人)",
    description="住民票1件ごとに1行 (消除された住民票 = 除票 を含む)。"
    "宛名番号が他のファイルからの参照キーです。",
    columns=(
        Column("lg_code", "地方公共団体コード", True, "住民票を備える市区町村"),
        Column("atena_no", "宛名番号", True, "団体内で住民票1件を識別する番号 (英数字とハイフン15文字以内)"),
        Column(
            "resident_code", "住民票コード", True, "11桁 (検査数字を含む)。現に住民である住民票の間で全国一意"
        ),
        Column("individual_number", "個人番号", False, "12桁 (検査数字を含む)。取込後は暗号化して保存"),
        Column("resident_kind", "住民の種別", True, "japanese (日本人住民) / foreign (外国人住民)"),
        Column("family_name", "氏", True, "外字・異体字 (JIS X 0208 外、IVS を含む) をそのまま保持"),
        Column("given_name", "名", True, ""),
        Column(
            "family_name_kana", "氏の振り仮名", False, "全角カタカナ。名の振り仮名と両方空も可 (経過措置)"
        ),
        Column("given_name_kana", "名の振り仮名", False, "全角カタカナ"),
        Column("birth_date", "生年月日", True, "YYYY-MM-DD"),
        Column("sex", "性別", True, "male / female"),
        Column("household_no", "世帯番号", True, "households.csv の世帯番号"),
        Column("relationship", "世帯主との続柄", True, "世帯主 / 妻 / 子 など (20文字以内)"),
        Column("address_line", "住所", True, "市区町村名より後の部分 (指定都市は区名から)"),
        Column("katagaki", "方書", False, ""),
        Column("became_resident_on", "住民となった年月日", True, ""),
        Column("address_set_on", "住所を定めた年月日", True, ""),
        Column("notified_on", "届出の年月日", True, "住民票を記載した届出の年月日"),
        Column("honseki", "本籍", False, "日本人住民のみ"),
        Column("hittousha", "筆頭者", False, "日本人住民のみ"),
        Column("old_surname", "旧氏", False, "日本人住民のみ"),
        Column("old_surname_kana", "旧氏の振り仮名", False, ""),
        Column("previous_address", "前住所", False, "転入前の住所"),
        Column("planned_move_out_on", "転出予定年月日", False, ""),
        Column("planned_move_out_destination", "転出先", False, ""),
        Column("planned_move_out_lg_code", "転出先の地方公共団体コード", False, "国外・不明は空"),
        Column("status", "住民票の状態", True, "live (住民) / removed (消除 = 除票)"),
        Column(
            "removal_reason",
            "消除事由",
            False,
            "move_out / move_out_abroad / death / declared_missing / ex_officio",
        ),
        Column("removed_on", "消除年月日", False, ""),
    ),
    row_type=PersonRow,
    parse_values=_person,
)
PersonRow.FILE = PERSONS


# ---------------------------------------------------------------------------
# 異動


@dataclass(frozen=True, slots=True)
class EventRow(_Row):
    lg_code: str
    event_no: str
    atena_no: str
    event_kind: str
    effective_on: dt.date
    notified_on: dt.date
    late: bool
    reason: str | None


def _event(p: _Parser) -> EventRow | None:
    values: dict[str, Any] = {
        "lg_code": p.lg_code("lg_code"),
        "event_no": p.pattern("event_no", _EVENT_NO, "異動番号 (数字18桁以内)"),
        "atena_no": p.pattern("atena_no", _ATENA, "宛名番号 (英数字とハイフン15文字以内)"),
        "event_kind": p.choice("event_kind", EVENT_KINDS),
        "effective_on": p.date("effective_on"),
        "notified_on": p.date("notified_on"),
        "late": p.flag("late"),
        "reason": p.text("reason", 500),
    }
    return None if p.problems else EventRow(**values)


EVENTS: FileLayout[EventRow] = FileLayout(
    name="events",
    filename="events.csv",
    term="異動履歴",
    description="異動1件と住民票1件の組ごとに1行 (世帯全員の転入は同じ異動番号で人数分)。"
    "取り消された異動は含みません。",
    columns=(
        Column("lg_code", "地方公共団体コード", True, ""),
        Column("event_no", "異動番号", True, "団体内で異動1件を識別する番号。同じ番号の行は同じ異動"),
        Column("atena_no", "宛名番号", True, "異動の対象となった住民票"),
        Column("event_kind", "異動事由", True, "move_in (転入), birth (出生), move_within (転居) ほか"),
        Column("effective_on", "異動年月日", True, ""),
        Column("notified_on", "届出年月日", True, ""),
        Column("late", "届出期間経過", True, "1: 14日を過ぎた届出 (過料通知の対象)"),
        Column("reason", "備考", False, "職権による記載・修正の理由など"),
    ),
    row_type=EventRow,
    parse_values=_event,
)
EventRow.FILE = EVENTS


# ---------------------------------------------------------------------------
# 外国人住民


@dataclass(frozen=True, slots=True)
class ForeignRow(_Row):
    lg_code: str
    atena_no: str
    nationality: str
    category: str
    status_of_residence: str | None
    period_of_stay: str | None
    stay_expires_on: dt.date | None
    residence_card_number: str | None
    became_foreign_resident_on: dt.date
    name_alphabet: str
    alias: str | None
    alias_kana: str | None


def _foreign(p: _Parser) -> ForeignRow | None:
    values: dict[str, Any] = {
        "lg_code": p.lg_code("lg_code"),
        "atena_no": p.pattern("atena_no", _ATENA, "宛名番号 (英数字とハイフン15文字以内)"),
        "nationality": p.text("nationality", 40),
        "category": p.choice("category", FOREIGN_CATEGORIES),
        "status_of_residence": p.text("status_of_residence", 40),
        "period_of_stay": p.text("period_of_stay", 20),
        "stay_expires_on": p.date("stay_expires_on"),
        "residence_card_number": p.pattern("residence_card_number", _RESIDENCE_CARD, "在留カード等の番号"),
        "became_foreign_resident_on": p.date("became_foreign_resident_on"),
        "name_alphabet": p.text("name_alphabet", 100),
        "alias": p.text("alias", 100),
        "alias_kana": p.kana("alias_kana"),
    }
    if p.problems:
        return None
    row = ForeignRow(**values)
    if row.alias_kana is not None and row.alias is None:
        p.fail("alias_kana", "通称のない住民票に通称の振り仮名は記載できません")
    return None if p.problems else row


FOREIGN_RESIDENTS: FileLayout[ForeignRow] = FileLayout(
    name="foreign_residents",
    filename="foreign_residents.csv",
    term="外国人住民の記載事項 (住民基本台帳法 第30条の45)",
    description="外国人住民の住民票ごとに1行 (persons.csv の resident_kind が foreign の者に必須)。",
    columns=(
        Column("lg_code", "地方公共団体コード", True, ""),
        Column("atena_no", "宛名番号", True, ""),
        Column("nationality", "国籍・地域", True, ""),
        Column(
            "category",
            "第30条の45に規定する区分",
            True,
            "mid_to_long_term (中長期在留者), special_permanent (特別永住者) ほか",
        ),
        Column("status_of_residence", "在留資格", False, "特別永住者は空"),
        Column("period_of_stay", "在留期間", False, ""),
        Column("stay_expires_on", "在留期間の満了の日", False, ""),
        Column("residence_card_number", "在留カード等の番号", False, "英字2桁・数字8桁・英字2桁"),
        Column("became_foreign_resident_on", "外国人住民となった年月日", True, ""),
        Column("name_alphabet", "氏名 (アルファベット表記)", True, ""),
        Column("alias", "通称", False, ""),
        Column("alias_kana", "通称の振り仮名", False, ""),
    ),
    row_type=ForeignRow,
    parse_values=_foreign,
)
ForeignRow.FILE = FOREIGN_RESIDENTS


# ---------------------------------------------------------------------------
# 通称履歴


@dataclass(frozen=True, slots=True)
class AliasRow(_Row):
    lg_code: str
    atena_no: str
    alias: str
    alias_kana: str | None
    recorded_on: dt.date
    recorded_lg_code: str
    deleted_on: dt.date | None
    deleted_lg_code: str | None


def _alias(p: _Parser) -> AliasRow | None:
    values: dict[str, Any] = {
        "lg_code": p.lg_code("lg_code"),
        "atena_no": p.pattern("atena_no", _ATENA, "宛名番号 (英数字とハイフン15文字以内)"),
        "alias": p.text("alias", 100),
        "alias_kana": p.kana("alias_kana"),
        "recorded_on": p.date("recorded_on"),
        "recorded_lg_code": p.checked("recorded_lg_code", LgCode),
        "deleted_on": p.date("deleted_on"),
        "deleted_lg_code": p.checked("deleted_lg_code", LgCode),
    }
    if p.problems:
        return None
    row = AliasRow(**values)
    if (row.deleted_on is None) != (row.deleted_lg_code is None):
        p.fail("deleted_on", "通称の削除年月日と削除した市町村は両方とも記載するか、両方とも空にしてください")
    return None if p.problems else row


ALIASES: FileLayout[AliasRow] = FileLayout(
    name="aliases",
    filename="aliases.csv",
    term="通称履歴 (住民基本台帳法施行令 第30条の27)",
    description="通称を記載・削除した記録ごとに1行、古い順。現在の通称は削除年月日が空の最後の行です。",
    columns=(
        Column("lg_code", "地方公共団体コード", True, ""),
        Column("atena_no", "宛名番号", True, ""),
        Column("alias", "通称", True, ""),
        Column("alias_kana", "通称の振り仮名", False, ""),
        Column("recorded_on", "通称を記載した年月日", True, ""),
        Column("recorded_lg_code", "通称を記載した市町村", True, "地方公共団体コード"),
        Column("deleted_on", "通称を削除した年月日", False, ""),
        Column("deleted_lg_code", "通称を削除した市町村", False, ""),
    ),
    row_type=AliasRow,
    parse_values=_alias,
)
AliasRow.FILE = ALIASES


# ---------------------------------------------------------------------------
# 個人番号カード


@dataclass(frozen=True, slots=True)
class CardRow(_Row):
    lg_code: str
    atena_no: str
    card_status: str
    card_issued_on: dt.date
    card_valid_until: dt.date
    signing_cert_issued_on: dt.date | None
    signing_cert_valid_until: dt.date | None
    auth_cert_issued_on: dt.date | None
    auth_cert_valid_until: dt.date | None
    name_romaji: str | None


def _card(p: _Parser) -> CardRow | None:
    values: dict[str, Any] = {
        "lg_code": p.lg_code("lg_code"),
        "atena_no": p.pattern("atena_no", _ATENA, "宛名番号 (英数字とハイフン15文字以内)"),
        "card_status": p.choice("card_status", CARD_STATUSES),
        "card_issued_on": p.date("card_issued_on"),
        "card_valid_until": p.date("card_valid_until"),
        "signing_cert_issued_on": p.date("signing_cert_issued_on"),
        "signing_cert_valid_until": p.date("signing_cert_valid_until"),
        "auth_cert_issued_on": p.date("auth_cert_issued_on"),
        "auth_cert_valid_until": p.date("auth_cert_valid_until"),
        "name_romaji": p.text("name_romaji", 100),
    }
    if p.problems:
        return None
    row = CardRow(**values)
    if row.card_valid_until <= row.card_issued_on:
        p.fail("card_valid_until", "交付年月日より後の日付にしてください")
    for kind in ("signing_cert", "auth_cert"):
        issued, until = getattr(row, f"{kind}_issued_on"), getattr(row, f"{kind}_valid_until")
        if (issued is None) != (until is None):
            p.fail(
                f"{kind}_issued_on",
                "電子証明書の発行年月日と有効期限は両方とも記載するか、両方とも空にしてください",
            )
        elif issued is not None and until <= issued:
            p.fail(f"{kind}_valid_until", "発行年月日より後の日付にしてください")
    if row.name_romaji is not None and not re.fullmatch(r"[A-Z]+(?: [A-Z\-]+)*", row.name_romaji):
        p.fail("name_romaji", "大文字のローマ字 (氏と名の間は半角空白) で指定してください")
    return None if p.problems else row


CARDS: FileLayout[CardRow] = FileLayout(
    name="cards",
    filename="cards.csv",
    term="個人番号カードの交付記録",
    description="個人番号カード1枚ごとに1行 (住民票1件につき現に有効な1枚)。"
    "電子証明書 (署名用・利用者証明用) の発行と有効期限を含みます。",
    columns=(
        Column("lg_code", "地方公共団体コード", True, ""),
        Column("atena_no", "宛名番号", True, ""),
        Column(
            "card_status",
            "カードの状態",
            True,
            "issued (交付済) / suspended (一時停止) / revoked (廃止) / returned (返納) "
            "/ expired (有効期限切れ)",
        ),
        Column("card_issued_on", "カードの交付年月日", True, ""),
        Column(
            "card_valid_until", "カードの有効期限", True, "18歳以上は発行後10回目、18歳未満は5回目の誕生日"
        ),
        Column("signing_cert_issued_on", "署名用電子証明書の発行年月日", False, "15歳未満は発行されない"),
        Column("signing_cert_valid_until", "署名用電子証明書の有効期限", False, "発行後5回目の誕生日"),
        Column("auth_cert_issued_on", "利用者証明用電子証明書の発行年月日", False, ""),
        Column("auth_cert_valid_until", "利用者証明用電子証明書の有効期限", False, ""),
        Column("name_romaji", "氏名のローマ字表記", False, "カードに併記するローマ字 (大文字、氏 名の順)"),
    ),
    row_type=CardRow,
    parse_values=_card,
)
CardRow.FILE = CARDS

# In the order an import reads them: referenced entities first.
FILES: tuple[FileLayout[Any], ...] = (HOUSEHOLDS, PERSONS, FOREIGN_RESIDENTS, ALIASES, EVENTS, CARDS)


def field_names(row_type: type[Any]) -> list[str]:
    return [f.name for f in fields(row_type)]


def markdown_tables() -> str:
    """The column tables of docs/interchange.md, rendered from the layout itself."""
    parts = []
    for layout in FILES:
        lines = [
            f"### `{layout.filename}` — {layout.term}",
            "",
            layout.description,
            "",
            "| column | 標準仕様書の項目 | required | notes |",
            "| --- | --- | --- | --- |",
        ]
        for c in layout.columns:
            lines.append(f"| `{c.name}` | {c.term} | {'yes' if c.required else ''} | {c.description} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
