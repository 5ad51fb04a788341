"""Foreign names between scripts, by rule: hangul → Latin, Latin → katakana.

Used when the name pools are built (data/build_names.py), not when people are
generated. The katakana is "as a clerk would read the alphabet": a consistent,
pronounceable reading, not the resident's own (which the register takes from them).
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

__all__ = ["hangul_to_latin", "latin_to_katakana"]

# Revised Romanization of Korean (文化観光部告示 2000-8), by jamo; the sound changes
# across syllables are left out, as passports also mostly write names syllable by syllable.
_INITIALS = (
    "g",
    "kk",
    "n",
    "d",
    "tt",
    "r",
    "m",
    "b",
    "pp",
    "s",
    "ss",
    "",
    "j",
    "jj",
    "ch",
    "k",
    "t",
    "p",
    "h",
)
_MEDIALS = (
    "a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae",
    "oe", "yo", "u", "wo", "we", "wi", "yu", "eu", "ui", "i",
)  # fmt: skip
_FINALS = (
    "", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l",
    "m", "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t",
)  # fmt: skip
# Surnames have customary spellings that differ from the strict rule.
_SURNAME_SPELLING = {"gim": "kim", "i": "lee", "bak": "park", "choe": "choi", "jeong": "jung", "gang": "kang"}


def hangul_to_latin(text: str) -> str:
    out: list[str] = []
    for ch in text:
        code = ord(ch) - 0xAC00
        if not 0 <= code < 11172:
            out.append(ch)
            continue
        out.append(_INITIALS[code // 588] + _MEDIALS[(code % 588) // 28] + _FINALS[code % 28])
    word = "".join(out)
    return _SURNAME_SPELLING.get(word, word)


_VOWELS = "aeiou"
# Spellings read as a Japanese speaker would say them; longest first.
_REWRITES = (
    ("tch", "ch"), ("sch", "sh"), ("ph", "f"), ("th", "t"), ("ck", "k"), ("gh", "g"), ("qu", "kw"),
    ("ng", "n"), ("x", "ks"), ("q", "k"), ("l", "r"), ("v", "b"), ("ee", "i"), ("oo", "u"),
)  # fmt: skip
# Consonant + vowel pairs that Hepburn input to jaconv does not spell the way we say them.
_PAIRS = {
    "si": "shi", "ti": "ti", "tu": "tsu", "di": "dei", "du": "du", "hu": "fu", "zi": "ji",
    "ye": "ie", "wi": "ui", "we": "ue", "wo": "uo", "wu": "u", "yi": "i", "ci": "shi",
}  # fmt: skip
_SPECIAL = {
    "ti": "ティ",
    "du": "ドゥ",
    "fa": "ファ",
    "fi": "フィ",
    "fe": "フェ",
    "fo": "フォ",
    "je": "ジェ",
    "che": "チェ",
    "she": "シェ",
}
_CODA = {"n": "ン", "m": "ム", "t": "ト", "d": "ド", "s": "ス", "k": "ク", "g": "グ", "r": "ル", "p": "プ",
         "b": "ブ", "f": "フ", "z": "ズ", "h": "", "w": "ウ", "y": "イ", "j": "ジ", "c": "ク"}  # fmt: skip
_SYLLABLE = re.compile(r"(sh|ch|ts|[bcdfghjkmnprstvwyz])?([aeiou])|(sh|ch|[bcdfghjkmnprstwyz])")


def _word_to_katakana(word: str) -> str | None:
    w = word.lower()
    w = re.sub(r"c(?=[eiy])", "s", w)
    w = re.sub(r"c(?!h)", "k", w)
    for old, new in _REWRITES:
        w = w.replace(old, new)
    w = re.sub(r"y(?=[^aeiou]|$)", "i", w)
    w = re.sub(r"(.)\1+", r"\1", w)
    parts: list[str] = []
    pos = 0
    while pos < len(w):
        m = _SYLLABLE.match(w, pos)
        if m is None:
            return None
        pos = m.end()
        onset, vowel, coda = m.group(1), m.group(2), m.group(3)
        if vowel is None:
            assert coda is not None
            parts.append(_CODA.get(coda, "") if len(coda) == 1 else {"sh": "シュ", "ch": "チ"}[coda])
            continue
        pair = (onset or "") + vowel
        if pair in _SPECIAL:
            parts.append(_SPECIAL[pair])
            continue
        pair = _PAIRS.get(pair, pair)
        kana = jaconv.hira2kata(jaconv.alphabet2kana(pair))
        if not re.fullmatch(r"[ァ-ヺー]+", kana):
            return None
        parts.append(kana)
    text = "".join(parts)
    return text or None


def latin_to_katakana(name: str) -> str | None:
    """ "NGUYEN VAN AN" → "グイエン ヴァン アン"-like readings; None if a word cannot be read.

    Words (split on spaces and hyphens) are read separately and joined with U+3000, the
    separator the register uses between name parts.
    """
    folded = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(c for c in folded if c.isascii())
    words = [w for w in re.split(r"[\s\-]+", ascii_only) if w]
    if not words or not all(w.isalpha() for w in words):
        return None
    kana_words = [_word_to_katakana(w) for w in words]
    if any(k is None for k in kana_words):
        return None
    return "\u3000".join(k for k in kana_words if k)
