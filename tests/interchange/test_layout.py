"""The layout's rows: every valid row survives writing and reading; the docs show the same columns."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from jumin.core.ids import IndividualNumber, ResidentCode
from jumin.interchange.layout import (
    ALIASES,
    CARDS,
    EVENTS,
    FOREIGN_RESIDENTS,
    PERSONS,
    EventRow,
    PersonRow,
    markdown_tables,
)

# Names as registers hold them: JIS X 0208 kanji and kana, 𠮷 and 髙, an IVS, Latin letters.
_NAME_CHARS = st.sampled_from([*"山田花子太郎髙﨑𠮷斎藤あいうアイウＡＢabc-'", "葛\U000e0100"])
names = st.lists(_NAME_CHARS, min_size=1, max_size=8).map("".join).filter(lambda s: s == s.strip())
kana = (
    st.lists(st.sampled_from(list("アイウエオカガキャッンヴー")), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda s: s[0] not in "ーャッ")
)
dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31))


def _resident_code(seed: int) -> str:
    return ResidentCode.random(random.Random(seed)).value


def _number(seed: int) -> str:
    return IndividualNumber.random(random.Random(seed)).value


@st.composite
def persons(draw: st.DrawFn) -> PersonRow:
    born = draw(dates)
    became = born + dt.timedelta(days=draw(st.integers(0, 20_000)))
    address_set = became + dt.timedelta(days=draw(st.integers(0, 3_000)))
    removed = draw(st.booleans())
    with_kana = draw(st.booleans())
    return PersonRow(
        lg_code=draw(st.sampled_from(["131016", "011002", "472085"])),
        atena_no=draw(st.from_regex(r"[0-9A-Za-z][0-9A-Za-z\-]{0,14}", fullmatch=True)),
        resident_code=_resident_code(draw(st.integers())),
        individual_number=draw(st.one_of(st.none(), st.integers().map(_number))),
        resident_kind="japanese",
        family_name=draw(names),
        given_name=draw(names),
        family_name_kana=draw(kana) if with_kana else None,
        given_name_kana=draw(kana) if with_kana else None,
        birth_date=born,
        sex=draw(st.sampled_from(["male", "female"])),
        household_no=str(draw(st.integers(1, 10**15))),
        relationship=draw(st.sampled_from(["世帯主", "妻", "子", "同居人"])),
        address_line=draw(names) + "一丁目1番1号",
        katagaki=draw(st.one_of(st.none(), names)),
        became_resident_on=became,
        address_set_on=address_set,
        notified_on=draw(dates),
        honseki=draw(st.one_of(st.none(), names)),
        hittousha=draw(st.one_of(st.none(), names)),
        old_surname=None,
        old_surname_kana=None,
        previous_address=draw(st.one_of(st.none(), st.just("北海道札幌市中央区北一条西二丁目1番地, 2号"))),
        planned_move_out_on=None,
        planned_move_out_destination=None,
        planned_move_out_lg_code=None,
        status="removed" if removed else "live",
        removal_reason="death" if removed else None,
        removed_on=address_set if removed else None,
    )


@settings(max_examples=200, deadline=None)
@given(person=persons())
def test_a_valid_person_row_reads_back_as_it_was_written(person: PersonRow) -> None:
    row, errors = PERSONS.parse(person.values(), line=2)
    assert errors == []
    assert row == person


@settings(max_examples=100, deadline=None)
@given(effective=dates, late=st.booleans(), reason=st.one_of(st.none(), names))
def test_a_valid_event_row_reads_back_as_it_was_written(
    effective: dt.date, late: bool, reason: str | None
) -> None:
    event = EventRow("131016", "12", "0000000001", "move_within", effective, effective, late, reason)
    assert EVENTS.parse(event.values(), line=3) == (event, [])


def test_a_row_reports_every_bad_value_with_its_line_and_item() -> None:
    values = [
        "131016", "1", "24727059600", "123456789012", "martian", "山田", "太郎", "やまだ", "タロウ",
        "1980-02-30", "male", "1", "世帯主", "千代田1番", "", "2000-01-01", "2000-01-01",
        "2000-01-01", "", "", "", "", "", "", "", "", "live", "", "",
    ]  # fmt: skip
    row, errors = PERSONS.parse(values, line=7)
    assert row is None
    assert {e.field for e in errors} == {
        "resident_code", "individual_number", "resident_kind", "family_name_kana", "birth_date",
    }  # fmt: skip
    assert all(e.line == 7 and e.file == "persons.csv" for e in errors)
    assert PERSONS.parse(values[:5], line=8)[1][0].reason.startswith("列の数")


def test_cross_item_rules_of_a_row() -> None:
    card = [
        "131016", "1", "issued", "2020-01-01", "2019-01-01", "2020-01-01", "", "", "", "yamada taro",
    ]  # fmt: skip
    _, errors = CARDS.parse(card, line=2)
    assert {e.field for e in errors} == {"card_valid_until", "signing_cert_issued_on", "name_romaji"}
    alias = ["131016", "1", "金本　太郎", "", "2020-01-01", "131016", "2021-01-01", ""]
    assert [e.field for e in ALIASES.parse(alias, line=2)[1]] == ["deleted_on"]
    foreign = ["131016", "1", "韓国", "permanent", "", "", "", "AB1234567", "2020-01-01", "KIM", "", ""]
    assert {e.field for e in FOREIGN_RESIDENTS.parse(foreign, line=2)[1]} == {
        "category",
        "residence_card_number",
    }


def test_the_documentation_shows_the_layout_the_code_checks() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "interchange.md").read_text(encoding="utf-8")
    assert markdown_tables() in docs
