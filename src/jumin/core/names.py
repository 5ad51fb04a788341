"""Names and ages: search keys for kana, furigana validation, passport romaji, legal age."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from functools import cache
from typing import Any

import jaconv

from jumin.core.errors import InvalidValue

__all__ = [
    "is_katakana_name",
    "legal_age",
    "normalize_kana",
    "nth_birthday",
    "romaji_hepburn",
]

# --- search normalisation -------------------------------------------------------------

# Printable ASCII (0x21–0x7E) to its full-width form (U+FF01–U+FF5E), lower-case letters
# folded to upper on the way; full-width lower-case folded to upper as well.
_ASCII_TO_FULLWIDTH = {
    c: (ord(chr(c).upper()) if 0x61 <= c <= 0x7A else c) + 0xFEE0 for c in range(0x21, 0x7F)
}
_FULLWIDTH_LOWER_TO_UPPER = {c: c - 0x20 for c in range(0xFF41, 0xFF5B)}
_KEY_TABLE = _ASCII_TO_FULLWIDTH | _FULLWIDTH_LOWER_TO_UPPER

# Voiced sound marks in every spelling, to the combining form so NFC can compose them
# onto the preceding kana (カ゛ or ｶ + a stray ﾞ → ガ). jaconv leaves ﾞ/ﾟ alone when
# no precomposed kana exists (ﾜﾞ → ワﾞ), hence this second pass.
_MARKS_TO_COMBINING = str.maketrans(
    {"\uff9e": "\u3099", "\u309b": "\u3099", "\uff9f": "\u309a", "\u309c": "\u309a"}
)
# Marks that found nothing to compose with go back to the spacing form, so the key never
# holds a combining mark that would attach to whatever is concatenated next to it.
_COMBINING_TO_SPACING = str.maketrans({"\u3099": "\u309b", "\u309a": "\u309c"})

_WHITESPACE = re.compile(r"\s+")


def normalize_kana(s: str) -> str:
    """The search key of a name reading: equal keys mean "the same reading".

    - hiragana → katakana, half-width katakana → full-width (ｶﾞ → ガ), separate or
      combining voiced marks composed where a composed kana exists;
    - small kana (ァ, ッ, ャ), the long vowel mark ー and ヴ are kept as written: they
      distinguish real names (ユウコ ≠ ユーコ is the clerk's call, not ours);
    - printable ASCII → full-width, with letters upper-cased (a → Ａ): the register keeps
      readings in full-width, and a search for "abc" should find "ＡＢＣ";
    - every whitespace character (ASCII space, U+3000, tabs) is removed, so family and
      given name match with or without the separator.

    Idempotent: ``normalize_kana(normalize_kana(s)) == normalize_kana(s)``.
    """
    # ascii=False: jaconv's h2z(ascii=True) would turn ' ' into U+3000; ASCII is mapped
    # below with our own table, which also folds case.
    s = jaconv.h2z(s, kana=True, ascii=False, digit=False)
    s = jaconv.hira2kata(s)
    s = s.translate(_KEY_TABLE)
    s = _WHITESPACE.sub("", s)
    s = unicodedata.normalize("NFC", s.translate(_MARKS_TO_COMBINING))
    return s.translate(_COMBINING_TO_SPACING)


# --- furigana validation ----------------------------------------------------------------

# ァ–ヺ is the full-width katakana block proper (small kana and ヴ included); ー and ・ may
# follow a kana, and ・ (in foreign names) must be followed by one.
_KANA_PART = r"[ァ-ヺ](?:[ァ-ヺー]|・(?=[ァ-ヺ]))*"
_KATAKANA_NAME = re.compile(rf"{_KANA_PART}(?:[ \u3000]{_KANA_PART})*")


def is_katakana_name(s: str) -> bool:
    """True for furigana as the register stores it: full-width katakana, ー and ・, with
    single spaces (ASCII or U+3000) between family and given name (or more parts), none
    leading or trailing."""
    return _KATAKANA_NAME.fullmatch(s) is not None


# --- passport romaji ----------------------------------------------------------------------

_SMALL_COMBINERS = frozenset("ァィゥェォャュョヮ")
_NO_VOWEL = frozenset("ンッ")
_PART_SEPARATORS = re.compile(r"[\s・]+")
_ROMAJI = re.compile(r"[A-Z]+")


@cache
def _kakasi() -> Any:
    # pykakasi loads its dictionaries on construction (~0.7 s): only when first needed.
    import pykakasi

    # pykakasi ships no annotations; Any keeps --strict from flagging the untyped call.
    kakasi: Any = pykakasi.kakasi
    return kakasi()


def _hepburn(kana: str) -> str:
    return "".join(str(item["hepburn"]) for item in _kakasi().convert(kana))


@cache
def _vowel(mora: str) -> str | None:
    if mora in _NO_VOWEL:
        return None
    romaji = _hepburn(mora)
    return romaji[-1] if romaji and romaji[-1] in "aiueo" else None


def _moras(kana: str) -> list[str]:
    moras: list[str] = []
    for ch in kana:
        if ch in _SMALL_COMBINERS and moras and moras[-1] not in _NO_VOWEL:
            moras[-1] += ch
        else:
            moras.append(ch)
    return moras


def _drop_long_vowels(kana: str) -> str:
    """Apply the passport rule "長音は表記しない" at the kana level.

    オ or ウ after an o-mora and ウ after a u-mora are not written (オオノ → オノ,
    サトウ → サト, ユウコ → ユコ). A vowel that was dropped does not lengthen the next one
    (オオウチ → オウチ → OUCHI). The exception in the rules: a name ending in オオ keeps
    the final オ (セノオ → SENOO, タカトオ → TAKATOO).

    Kana alone cannot tell a long vowel from a morpheme boundary: 井上 イノウエ is INOUE
    and 松浦 マツウラ is MATSUURA on a passport, but this gives INOE and MATSURA. The card
    application lets the resident state the spelling; this is only the default.
    """
    moras = _moras(kana)
    kept: list[str] = []
    previous_dropped = False
    for i, mora in enumerate(moras):
        prev_vowel = _vowel(kept[-1]) if kept and not previous_dropped else None
        is_last = i == len(moras) - 1
        drop = (mora == "ウ" and prev_vowel in ("o", "u")) or (
            mora == "オ" and prev_vowel == "o" and not is_last
        )
        previous_dropped = drop
        if not drop:
            kept.append(mora)
    return "".join(kept)


def _romanize_part(kana: str) -> str:
    # ヲ is O on a passport (pykakasi writes WO); ー is never written.
    kana = kana.replace("ヲ", "オ").replace("ー", "")
    romaji = _hepburn(_drop_long_vowels(kana)).upper()
    romaji = romaji.replace("'", "")  # pykakasi writes KEN'ICHI; passports do not
    romaji = re.sub(r"N(?=[BMP])", "M", romaji)  # 撥音 before B, M, P
    return romaji.replace("CCH", "TCH")  # 促音 before CH


def romaji_hepburn(katakana: str) -> str:
    """Passport-style Hepburn (外務省 ヘボン式) in upper case: "サトウ タロウ" → "SATO TARO".

    Parts separated by spaces (ASCII or U+3000) or ・ are converted separately and joined
    with one space. pykakasi gives the base Hepburn (シ SHI, チ CHI, ツ TSU, フ FU, ジ/ヂ JI,
    ヅ ZU); the passport rules are applied here: long vowels not written, ン before B/M/P
    is M, ッ before CH is T, no apostrophes. Loan-word kana (ヴ, ティ) follow pykakasi.
    Hiragana and half-width input is accepted; anything that is not kana is refused.
    """
    kana = _kana_for_romaji(katakana)
    parts = [p for p in _PART_SEPARATORS.split(kana) if p]
    if not parts or not all(re.fullmatch(r"[ァ-ヺー]+", p) for p in parts):
        raise InvalidValue("ローマ字に変換できるのはカタカナの氏名のみです", field="kana")
    words = [_romanize_part(p) for p in parts]
    if not all(_ROMAJI.fullmatch(w) for w in words):
        raise InvalidValue(f"「{katakana}」はローマ字に変換できません", field="kana")
    return " ".join(words)


def _kana_for_romaji(s: str) -> str:
    # Like normalize_kana but keeping the spaces that separate name parts.
    s = jaconv.hira2kata(jaconv.h2z(s, kana=True, ascii=False, digit=False))
    s = unicodedata.normalize("NFC", s.translate(_MARKS_TO_COMBINING))
    return s.strip()


# --- ages -------------------------------------------------------------------------------------


def nth_birthday(birth: date, n: int) -> date:
    """The date of the ``n``-th birthday (n = 0 is the birth date itself).

    Someone born on 29 February has their birthday on 1 March in non-leap years. This is
    the choice for rules that run "until the Nth birthday" (card validity): they end with
    1 March, the first day on which the person is unambiguously a year older, rather
    than being cut short to 28 February. ``legal_age`` uses the day before this date,
    which gives 28 February — what the law gives (民法第143条第2項: a period with no
    corresponding day ends on the last day of the month).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    year = birth.year + n
    try:
        return birth.replace(year=year)
    except ValueError:
        # Only 29 February in a non-leap year lands here.
        return date(year, 3, 1)


def legal_age(birth: date, on: date) -> int:
    """Age on the date ``on`` under 年齢計算ニ関スル法律.

    The age is counted from the birth day and one becomes N at the end of the day before
    the Nth birthday. Working in whole dates, we count that day as already N: someone
    born on 2 April 2007 is 18 on 1 April 2025 (that is why 4月1日生まれ is in the earlier
    school year). A 29 February birth turns a year older on 28 February in every year,
    leap or not (in a leap year 28 February is the day before the birthday; in other
    years the period ends on the last day of February, 民法第143条第2項).
    """
    if on < birth:
        raise InvalidValue("基準日が生年月日より前です", field="on")
    age = on.year - birth.year + 1  # at most one more than the answer (1 January births)
    while age > 0 and on < nth_birthday(birth, age) - timedelta(days=1):
        age -= 1
    return age
