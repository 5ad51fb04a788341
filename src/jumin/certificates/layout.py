"""What a certificate says, row by row, before anything is drawn.

The content is built from the register's records and the chosen items into labelled
rows; ``pdf`` only places and draws them. Keeping the words here means the tests and
the verification page can reason about exactly what was printed, and a change of
wording is a change in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from jumin.certificates.domain import (
    CERTIFICATION_TEXTS,
    FORM_LABELS,
    DocumentKind,
    Form,
    Item,
    format_verification_code,
)
from jumin.core.wareki import format_wareki
from jumin.registry.domain import (
    REMOVAL_LABELS,
    ForeignResidentCategory,
    RecordStatus,
    RemovalReason,
    ResidentKind,
    ResidentRecord,
    Sex,
)

SEX_LABELS: Mapping[Sex, str] = {Sex.MALE: "男", Sex.FEMALE: "女"}

CATEGORY_LABELS: Mapping[ForeignResidentCategory, str] = {
    ForeignResidentCategory.MID_TO_LONG_TERM: "中長期在留者",
    ForeignResidentCategory.SPECIAL_PERMANENT: "特別永住者",
    ForeignResidentCategory.TEMPORARY_REFUGE: "一時庇護許可者",
    ForeignResidentCategory.PROVISIONAL_STAY: "仮滞在許可者",
    ForeignResidentCategory.TRANSITIONAL_BIRTH: "出生による経過滞在者",
    ForeignResidentCategory.TRANSITIONAL_NATIONALITY_LOSS: "国籍喪失による経過滞在者",
}


def japanese_date(d: dt.date) -> str:
    return format_wareki(d)


def western_date(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def birth_date_text(record: ResidentRecord) -> str:
    """和暦 for Japanese residents, 西暦 for foreign residents (DOMAIN.md: Dates)."""
    if record.resident_kind is ResidentKind.FOREIGN:
        return western_date(record.birth_date)
    return japanese_date(record.birth_date)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    value: str
    small: bool = False  # furigana and the like: printed smaller, same column


@dataclass(frozen=True, slots=True)
class Section:
    """One person's rows."""

    heading: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of 異動履歴: an event that stands, and the address it set, if any."""

    effective_on: dt.date
    notified_on: dt.date | None
    label: str
    address: str | None = None

    def text(self) -> str:
        notified = f"(届出 {japanese_date(self.notified_on)})" if self.notified_on else ""
        address = f"　{self.address}" if self.address else ""
        return f"{japanese_date(self.effective_on)}　{self.label}{notified}{address}"


@dataclass(frozen=True, slots=True)
class PrintedPerson:
    record: ResidentRecord
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Issuer:
    lg_code: str
    name: str
    mayor_title: str
    mayor_name: str


@dataclass(frozen=True, slots=True)
class CertificateContent:
    kind: DocumentKind
    form: Form
    issue_number: str
    issue_date: dt.date
    verification_code: str
    verification_url: str
    issuer: Issuer
    header: tuple[Row, ...]
    sections: tuple[Section, ...]
    notes: tuple[str, ...] = field(default=())
    as_of: dt.date | None = None

    @property
    def title(self) -> str:
        return self.kind.label

    @property
    def form_label(self) -> str:
        return FORM_LABELS[self.form]

    @property
    def certification_text(self) -> str:
        return CERTIFICATION_TEXTS[self.kind]

    @property
    def issue_date_text(self) -> str:
        return japanese_date(self.issue_date)

    @property
    def mayor_line(self) -> str:
        return f"{self.issuer.mayor_title}　{self.issuer.mayor_name}".strip("　")

    @property
    def printed_code(self) -> str:
        return format_verification_code(self.verification_code)

    def texts(self) -> Iterator[str]:
        """Every string the document prints (for the glyph check before rendering)."""
        yield from (self.title, self.form_label, self.issue_number, self.certification_text)
        yield from (self.issue_date_text, self.mayor_line, self.verification_url, self.printed_code)
        for row in self.header:
            yield from (row.label, row.value)
        for section in self.sections:
            yield section.heading
            for row in section.rows:
                yield from (row.label, row.value)
        yield from self.notes


def address_text(record: ResidentRecord, places: Mapping[str, str]) -> str:
    """東京都千代田区 + the line + 方書, as the register holds them."""
    prefix = places.get(record.address.lg_code, "")
    return record.address.text(prefix)


def _foreign_rows(record: ResidentRecord, items: frozenset[Item], places: Mapping[str, str]) -> list[Row]:
    f = record.foreign
    if f is None:
        return []
    rows: list[Row] = []
    if Item.NATIONALITY in items:
        rows.append(Row("国籍・地域", f.nationality))
    if Item.FOREIGN_STATUS in items:
        rows.append(Row("法第30条の45に規定する区分", CATEGORY_LABELS[f.category]))
        if f.status_of_residence:
            rows.append(Row("在留資格", f.status_of_residence))
        if f.period_of_stay:
            rows.append(Row("在留期間", f.period_of_stay))
        if f.stay_expires_on:
            rows.append(Row("在留期間の満了の日", japanese_date(f.stay_expires_on)))
        rows.append(Row("外国人住民となった年月日", japanese_date(f.became_foreign_resident_on)))
    if Item.RESIDENCE_CARD_NUMBER in items and f.residence_card_number:
        rows.append(Row("在留カード等の番号", f.residence_card_number))
    return rows


def _alias_rows(record: ResidentRecord, items: frozenset[Item], places: Mapping[str, str]) -> list[Row]:
    f = record.foreign
    if f is None or Item.ALIAS not in items:
        return []
    rows: list[Row] = []
    if f.alias:
        rows.append(Row("通称", f.alias))
        if f.alias_kana:
            rows.append(Row("通称の振り仮名", f.alias_kana, small=True))
    for a in f.alias_history:
        where = places.get(a.recorded_lg_code, a.recorded_lg_code)
        text = f"{a.alias}　{japanese_date(a.recorded_on)} {where}で記載"
        if a.deleted_on:
            deleted_where = places.get(a.deleted_lg_code or "", a.deleted_lg_code or "")
            text += f"　{japanese_date(a.deleted_on)} {deleted_where}で削除"
        rows.append(Row("通称の記載と削除", text))
    return rows


def _removal_text(record: ResidentRecord) -> str | None:
    if record.status is not RecordStatus.REMOVED or record.removal_reason is None:
        return None
    day = japanese_date(record.removed_on) if record.removed_on else ""
    text = f"{day}　{REMOVAL_LABELS[record.removal_reason]}により消除"
    planned = record.planned_move_out
    if planned is not None and record.removal_reason in (
        RemovalReason.MOVE_OUT,
        RemovalReason.MOVE_OUT_ABROAD,
    ):
        text += f"　転出先 {planned.destination}"
    return text


def person_section(
    person: PrintedPerson,
    *,
    index: int,
    items: frozenset[Item],
    issue_date: dt.date,
    places: Mapping[str, str],
    header_address: str | None,
    as_of: dt.date | None = None,
) -> Section:
    r = person.record
    rows: list[Row] = [Row("氏名", r.name)]
    if r.name_kana:
        rows.append(Row("フリガナ", r.name_kana, small=True))
    if r.foreign is not None and _squash(r.foreign.name_alphabet) != _squash(r.name):
        rows.append(Row("氏名 (アルファベット)", r.foreign.name_alphabet))
    if Item.OLD_SURNAME in items and r.old_surname:
        rows.append(Row("旧氏", r.old_surname))
        if r.old_surname_kana:
            rows.append(Row("旧氏の振り仮名", r.old_surname_kana, small=True))
    rows.extend(_alias_rows(r, items, places))
    if Item.BIRTH_DATE in items:
        rows.append(Row("生年月日", birth_date_text(r)))
    if Item.SEX in items:
        rows.append(Row("性別", SEX_LABELS[r.sex]))
    if Item.HEAD_AND_RELATIONSHIP in items:
        rows.append(Row("続柄", r.relationship))
    own_address = address_text(r, places)
    if Item.ADDRESS in items and own_address != header_address:
        rows.append(Row("住所", own_address))
    if Item.BECAME_RESIDENT_ON in items:
        rows.append(Row("住民となった年月日", japanese_date(r.became_resident_on)))
    if Item.ADDRESS_SET_ON in items:
        rows.append(Row("住所を定めた年月日", japanese_date(r.address_set_on)))
        rows.append(Row("届出年月日", japanese_date(r.notified_on)))
    if Item.PREVIOUS_ADDRESS in items and r.previous_address:
        rows.append(Row("前住所", r.previous_address))
    if Item.HONSEKI in items and r.resident_kind is ResidentKind.JAPANESE:
        rows.append(Row("本籍", r.honseki or "（記載なし）"))
        rows.append(Row("筆頭者", r.hittousha or "（記載なし）"))
    rows.extend(_foreign_rows(r, items, places))
    if Item.RESIDENT_CODE in items:
        rows.append(Row("住民票コード", r.resident_code))
    if Item.INDIVIDUAL_NUMBER in items:
        rows.append(Row("個人番号", r.individual_number or "（記載なし）"))
    planned = r.planned_move_out
    # DOMAIN.md: a planned move-out is not printed on certificates issued before its date.
    if (
        Item.PLANNED_MOVE_OUT in items
        and planned is not None
        and r.status is RecordStatus.LIVE
        and issue_date >= planned.planned_on
    ):
        rows.append(Row("転出予定", f"{japanese_date(planned.planned_on)}　転出先 {planned.destination}"))
    removal = _removal_text(r)
    if Item.REMOVAL in items and removal:
        rows.append(Row("消除", removal))
    if Item.HISTORY in items:
        # Only what had happened by the 基準日: a later event is not yet in that register.
        entries = [e for e in person.history if e.effective_on <= (as_of or issue_date)]
        for i, entry in enumerate(entries):
            rows.append(Row("異動履歴" if i == 0 else "", entry.text()))
        if not entries:
            rows.append(Row("異動履歴", "（なし）"))
    return Section(heading=str(index), rows=tuple(rows))


def _squash(text: str) -> str:
    return "".join(text.split())


def build_content(
    *,
    kind: DocumentKind,
    form: Form,
    persons: Sequence[PrintedPerson],
    items: frozenset[Item],
    head_name: str | None,
    issue_number: str,
    issue_date: dt.date,
    verification_code: str,
    verification_url: str,
    issuer: Issuer,
    places: Mapping[str, str],
    as_of: dt.date | None = None,
) -> CertificateContent:
    """The rows of one certificate: a header (基準日, address, head) and a section per person.

    ``as_of``: the records are the register's on that date, and the certificate says so
    in a 基準日 row; None means the register on the issue date, with no such row.
    """
    first = persons[0].record
    header_address = address_text(first, places)
    label = "最終住所" if kind.for_removed else "住所"
    header = [Row("基準日", f"{japanese_date(as_of)}現在")] if as_of is not None else []
    header.append(Row(label, header_address))
    if Item.HEAD_AND_RELATIONSHIP in items and head_name:
        header.append(Row("世帯主", head_name))
    sections = tuple(
        person_section(
            p,
            index=i,
            items=items,
            issue_date=issue_date,
            places=places,
            header_address=header_address,
            as_of=as_of,
        )
        for i, p in enumerate(persons, start=1)
    )
    notes = (f"以下余白　(記載人数 {len(persons)}人)",)
    return CertificateContent(
        kind=kind,
        form=form,
        issue_number=issue_number,
        issue_date=issue_date,
        verification_code=verification_code,
        verification_url=verification_url,
        issuer=issuer,
        header=tuple(header),
        sections=sections,
        notes=notes,
        as_of=as_of,
    )
