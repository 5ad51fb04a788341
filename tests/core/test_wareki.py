from __future__ import annotations

import contextlib
import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumin.core.errors import InvalidValue
from jumin.core.wareki import ERAS, era_of, format_wareki, parse_date, parse_wareki


@pytest.mark.parametrize(
    ("d", "text"),
    [
        (date(2019, 5, 1), "令和元年5月1日"),
        (date(2019, 4, 30), "平成31年4月30日"),
        (date(2025, 4, 1), "令和7年4月1日"),
        (date(1989, 1, 7), "昭和64年1月7日"),
        (date(1989, 1, 8), "平成元年1月8日"),
        (date(1926, 12, 24), "大正15年12月24日"),
        (date(1926, 12, 25), "昭和元年12月25日"),
        (date(1912, 7, 29), "明治45年7月29日"),
        (date(1912, 7, 30), "大正元年7月30日"),
        (date(1868, 1, 25), "明治元年1月25日"),
        (date(2100, 12, 31), "令和82年12月31日"),
    ],
)
def test_format_and_parse_examples(d: date, text: str) -> None:
    assert format_wareki(d) == text
    assert parse_wareki(text) == d


def test_before_meiji_cannot_be_formatted() -> None:
    with pytest.raises(InvalidValue, match="明治"):
        format_wareki(date(1868, 1, 24))
    with pytest.raises(InvalidValue):
        era_of(date(1800, 1, 1))


def test_eras_tile_the_calendar() -> None:
    for earlier, later in itertools.pairwise(ERAS):
        assert earlier.end is not None
        assert earlier.end + timedelta(days=1) == later.start
    assert ERAS[-1].end is None


def test_format_parse_round_trip_for_every_day() -> None:
    d, last = date(1868, 1, 25), date(2100, 12, 31)
    one_day = timedelta(days=1)
    while d <= last:
        era = era_of(d)
        year = d.year - era.start.year + 1
        assert parse_wareki(format_wareki(d)) == d, d
        assert parse_wareki(f"{era.letter}{year}.{d.month}.{d.day}") == d, d
        d += one_day


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("R7.4.1", date(2025, 4, 1)),
        ("H31.4.30", date(2019, 4, 30)),
        ("S64.1.7", date(1989, 1, 7)),
        ("T15.12.24", date(1926, 12, 24)),
        ("M45.7.29", date(1912, 7, 29)),
        ("r7/04/01", date(2025, 4, 1)),
        ("R07-04-01", date(2025, 4, 1)),
        ("Ｒ７．４．１", date(2025, 4, 1)),
        ("R元.5.1", date(2019, 5, 1)),
        ("令和７年４月１日", date(2025, 4, 1)),
        ("令和 7 年 4 月 1 日", date(2025, 4, 1)),
        ("\u3000令和元年\u30005月1日 ", date(2019, 5, 1)),
        ("㋿元年5月1日", date(2019, 5, 1)),
        ("㍻31年4月30日", date(2019, 4, 30)),
    ],
)
def test_parse_variants(text: str, expected: date) -> None:
    assert parse_wareki(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("令和元年4月30日", "令和の期間"),
        ("平成32年1月1日", "平成の期間"),
        ("平成31年5月1日", "平成の期間"),
        ("昭和64年1月8日", "昭和の期間"),
        ("明治元年1月24日", "明治の期間"),
        ("平成0年1月1日", "元年から"),
        ("R0.1.1", "元年から"),
        ("令和3年2月30日", "存在しない日付"),
        ("令和2年13月1日", "存在しない日付"),
        ("令和7年4月", "解釈できません"),
        ("2025-04-01", "解釈できません"),
        ("X7.4.1", "解釈できません"),
        ("令和7年4月1日です", "解釈できません"),
        ("", "入力されていません"),
    ],
)
def test_parse_rejects_instead_of_shifting(text: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_wareki(text)


def test_parse_wareki_carries_the_field() -> None:
    with pytest.raises(InvalidValue) as e:
        parse_wareki("令和元年4月30日", field="birth_date")
    assert e.value.field == "birth_date"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-05-01", date(2019, 5, 1)),
        (" 2019-05-01 ", date(2019, 5, 1)),
        ("２０１９－０５－０１", date(2019, 5, 1)),
        ("1850-01-01", date(1850, 1, 1)),  # ISO input is not limited to the eras
        ("令和元年5月1日", date(2019, 5, 1)),
        ("H31.4.30", date(2019, 4, 30)),
    ],
)
def test_parse_date_accepts_iso_and_wareki(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text", ["2019-02-30", "2019-5-1", "20190501", "2019/05/01", "令和元年4月30日", "", "昨日"]
)
def test_parse_date_rejects_with_field(text: str) -> None:
    with pytest.raises(InvalidValue) as e:
        parse_date(text, field="birth_date")
    assert e.value.field == "birth_date"
    assert e.value.detail  # a Japanese message for the user


@given(st.text())
def test_parser_never_crashes_on_arbitrary_text(text: str) -> None:
    for parse in (parse_wareki, parse_date):
        with contextlib.suppress(InvalidValue):
            parse(text)


@given(
    st.from_regex(
        r"(明治|大正|昭和|平成|令和|[MTSHR])(元|[0-9]{1,3})(年[0-9]{1,2}月[0-9]{1,2}日|\.[0-9]{1,2}\.[0-9]{1,2})",
        fullmatch=True,
    )
)
def test_well_shaped_input_gives_an_in_era_date_or_invalid_value(text: str) -> None:
    try:
        d = parse_wareki(text)
    except InvalidValue:
        return
    # Whatever is accepted names its own era: formatting it back gives the same era.
    assert format_wareki(d).startswith(
        next(e.name for e in ERAS if e.name == text[:2] or e.letter == text[0])
    )
    assert parse_wareki(format_wareki(d)) == d
