from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jumin.core.errors import InvalidValue
from jumin.core.names import (
    is_katakana_name,
    legal_age,
    normalize_kana,
    nth_birthday,
    romaji_hepburn,
)

# --- normalize_kana -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("やまだ　はなこ", "ヤマダハナコ"),
        ("ﾔﾏﾀﾞ ﾊﾅｺ", "ヤマダハナコ"),
        ("ヤマダ ハナコ", "ヤマダハナコ"),
        ("ｶﾞｯｺｳ", "ガッコウ"),
        ("ﾊﾟｰｸ", "パーク"),
        ("ｳﾞｧｲｵﾘﾝ", "ヴァイオリン"),
        ("ゔぁいおりん", "ヴァイオリン"),
        ("ぁぃぅぇぉっゃゅょゎ", "ァィゥェォッャュョヮ"),  # small kana kept small
        ("ユーコ", "ユーコ"),  # long vowel mark kept, not expanded
        ("ｼﾞｮﾝ･ｽﾐｽ", "ジョン・スミス"),
        ("か\u3099", "ガ"),  # combining voiced mark
        ("カ゛", "ガ"),  # spacing voiced mark
        ("ﾜﾞ", "ヷ"),  # jaconv leaves ﾞ here; composed by NFC
        ("ｴﾞ", "エ゛"),  # nothing to compose with: kept as the spacing mark
        ("Smith John", "ＳＭＩＴＨＪＯＨＮ"),
        ("ｓｍｉｔｈ", "ＳＭＩＴＨ"),
        ("abc123", "ＡＢＣ１２３"),
        (" \t\u3000\n", ""),
    ],
)
def test_normalize_kana_examples(raw: str, key: str) -> None:
    assert normalize_kana(raw) == key


KANA_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x3041, max_codepoint=0x309F),  # hiragana + marks
        st.characters(min_codepoint=0x30A0, max_codepoint=0x30FF),  # katakana
        st.characters(min_codepoint=0xFF61, max_codepoint=0xFF9F),  # half-width katakana
        st.sampled_from([" ", "\u3000", "\t", "\u3099", "\u309a", "ー", "ｰ"]),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),  # ASCII
        st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),  # full-width ASCII
    ),
    max_size=30,
)


@given(KANA_TEXT)
def test_normalize_kana_is_idempotent(text: str) -> None:
    once = normalize_kana(text)
    assert normalize_kana(once) == once


@given(KANA_TEXT)
def test_normalize_kana_output_is_full_width_without_spaces(text: str) -> None:
    key = normalize_kana(text)
    assert not any(c.isspace() for c in key)
    assert not any(0x3041 <= ord(c) <= 0x3096 for c in key), "hiragana left"
    assert not any(0xFF61 <= ord(c) <= 0xFF9F for c in key), "half-width katakana left"
    assert not any(0x21 <= ord(c) <= 0x7E for c in key), "ASCII left"
    assert not any(c in "\u3099\u309a" for c in key), "stray combining mark"


@given(st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x3096), max_size=20))
def test_hiragana_and_katakana_spellings_share_a_key(hiragana: str) -> None:
    katakana = "".join(chr(ord(c) + 0x60) for c in hiragana)
    assert normalize_kana(hiragana) == normalize_kana(katakana) == katakana


# --- is_katakana_name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["ヤマダ　ハナコ", "ヤマダ ハナコ", "ヤマダハナコ", "ジョン・スミス", "ユーコ", "ヴァン", "キャッチ"],
)
def test_katakana_names_accepted(name: str) -> None:
    assert is_katakana_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "やまだ",
        "ﾔﾏﾀﾞ",
        "山田",
        "Yamada",
        "ヤマダ  ハナコ",  # two spaces
        " ヤマダ",
        "ヤマダ ",
        "ーヤマダ",
        "ヤマダ・",
        "ヤマダ・・ハナコ",
        "ヤマダ\tハナコ",
    ],
)
def test_non_furigana_rejected(name: str) -> None:
    assert not is_katakana_name(name)


# --- romaji ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kana", "romaji"),
    [
        ("オオノ", "ONO"),
        ("サトウ", "SATO"),
        ("ユウコ", "YUKO"),
        ("タロウ", "TARO"),
        ("ナンバ", "NAMBA"),
        ("ホンマ", "HOMMA"),
        ("サンペイ", "SAMPEI"),
        ("ハッチョウ", "HATCHO"),
        ("ホッチ", "HOTCHI"),
        ("ハットリ", "HATTORI"),
        ("キッカワ", "KIKKAWA"),
        ("シ", "SHI"),
        ("チ", "CHI"),
        ("ツ", "TSU"),
        ("フ", "FU"),
        ("ジ", "JI"),
        ("ヂ", "JI"),
        ("ヅ", "ZU"),
        ("ケンイチ", "KENICHI"),  # no apostrophe
        ("シンヤ", "SHINYA"),
        ("ショウイチ", "SHOICHI"),
        ("リョウタロウ", "RYOTARO"),
        ("チュウジョウ", "CHUJO"),
        ("トオル", "TORU"),
        ("セノオ", "SENOO"),  # a final オオ keeps its オ
        ("タカトオ", "TAKATOO"),
        ("タカトウ", "TAKATO"),
        ("オオウチ", "OUCHI"),  # a dropped vowel does not lengthen the next
        ("ニーナ", "NINA"),
        ("サリー", "SARI"),
        ("ヲノ", "ONO"),
        ("サトウ タロウ", "SATO TARO"),
        ("サトウ\u3000タロウ", "SATO TARO"),
        ("さとう　たろう", "SATO TARO"),
        ("ｻﾄｳ ﾀﾛｳ", "SATO TARO"),
        ("ジョン・スミス", "JON SUMISU"),
    ],
)
def test_romaji_passport_hepburn(kana: str, romaji: str) -> None:
    assert romaji_hepburn(kana) == romaji


@pytest.mark.parametrize("bad", ["", "  ", "山田", "Yamada", "ヤマダ1"])
def test_romaji_refuses_non_kana(bad: str) -> None:
    with pytest.raises(InvalidValue):
        romaji_hepburn(bad)


@settings(deadline=None)  # the first call pays for loading pykakasi's dictionaries
@given(
    st.lists(
        st.text(alphabet=st.characters(min_codepoint=0x30A1, max_codepoint=0x30F3), min_size=1),
        min_size=1,
        max_size=3,
    )
)
def test_romaji_is_upper_case_letters_one_word_per_part(parts: list[str]) -> None:
    romaji = romaji_hepburn("\u3000".join(parts))
    words = romaji.split(" ")
    assert len(words) == len(parts)
    assert all(w.isascii() and w.isalpha() and w.isupper() for w in words)


# --- ages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2007, 4, 2), date(2025, 3, 31), 17),
        (date(2007, 4, 2), date(2025, 4, 1), 18),  # the day before the birthday
        (date(2007, 4, 2), date(2025, 4, 2), 18),
        (date(2007, 4, 1), date(2025, 3, 31), 18),  # why 4月1日生まれ is in the earlier year
        (date(2000, 1, 1), date(2017, 12, 30), 17),
        (date(2000, 1, 1), date(2017, 12, 31), 18),  # turns 18 in the previous calendar year
        (date(2000, 1, 1), date(2000, 1, 1), 0),
        (date(2000, 1, 1), date(2000, 12, 30), 0),
        (date(2000, 1, 1), date(2000, 12, 31), 1),
        # 29 February: a year older on 28 February, leap year or not.
        (date(2004, 2, 29), date(2005, 2, 27), 0),
        (date(2004, 2, 29), date(2005, 2, 28), 1),
        (date(2004, 2, 29), date(2005, 3, 1), 1),
        (date(2004, 2, 29), date(2008, 2, 27), 3),
        (date(2004, 2, 29), date(2008, 2, 28), 4),
        (date(2004, 2, 29), date(2008, 2, 29), 4),
        (date(2004, 2, 29), date(2022, 2, 27), 17),
        (date(2004, 2, 29), date(2022, 2, 28), 18),
        # 1 March: the day before is 29 February in leap years.
        (date(2003, 3, 1), date(2008, 2, 28), 4),
        (date(2003, 3, 1), date(2008, 2, 29), 5),
        (date(2003, 3, 1), date(2009, 2, 28), 6),
    ],
)
def test_legal_age_examples(birth: date, on: date, age: int) -> None:
    assert legal_age(birth, on) == age


def test_legal_age_before_birth_is_an_error() -> None:
    with pytest.raises(InvalidValue):
        legal_age(date(2000, 1, 2), date(2000, 1, 1))


BIRTHS = st.dates(min_value=date(1868, 1, 25), max_value=date(2100, 12, 31))


@given(BIRTHS, st.integers(min_value=1, max_value=120))
def test_age_increments_exactly_on_the_day_before_each_birthday(birth: date, n: int) -> None:
    turning = nth_birthday(birth, n) - timedelta(days=1)
    assert legal_age(birth, turning) == n
    assert legal_age(birth, turning - timedelta(days=1)) == n - 1


@given(BIRTHS, st.integers(min_value=0, max_value=40000))
def test_age_matches_a_naive_count(birth: date, days: int) -> None:
    on = birth + timedelta(days=days)
    # Count by brute force: the number of N >= 1 whose turning day has passed.
    expected = 0
    while nth_birthday(birth, expected + 1) - timedelta(days=1) <= on:
        expected += 1
    assert legal_age(birth, on) == expected


def test_nth_birthday() -> None:
    assert nth_birthday(date(2000, 5, 17), 0) == date(2000, 5, 17)
    assert nth_birthday(date(2000, 5, 17), 10) == date(2010, 5, 17)
    assert nth_birthday(date(2004, 2, 29), 4) == date(2008, 2, 29)
    assert nth_birthday(date(2004, 2, 29), 1) == date(2005, 3, 1)
    assert nth_birthday(date(2004, 2, 29), 96) == date(2100, 3, 1)  # 2100 is not leap
    with pytest.raises(ValueError, match="n must be"):
        nth_birthday(date(2000, 1, 1), -1)
