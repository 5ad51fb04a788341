"""和暦 (Japanese era) dates: formatting, strict parsing, and the one date parser for input.

Our own table rather than japanera: it is five rows, and we need 元年 and strict
refusal of out-of-era dates, which japanera does not give (STACK.md).

明治 starts on 1868-01-25, the Gregorian date of 明治元年1月1日 (the era was proclaimed
later but applied from the start of that year). Before 明治6年 Japan used the lunisolar
calendar; like the rest of the register we write era year + Gregorian month and day
throughout, which is the modern convention.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from jumin.core.errors import InvalidValue

__all__ = ["ERAS", "Era", "era_of", "format_wareki", "parse_date", "parse_wareki"]


@dataclass(frozen=True, slots=True)
class Era:
    name: str
    letter: str  # the one-letter abbreviation (R7.4.1)
    start: date
    end: date | None  # inclusive; None for the current era

    def contains(self, d: date) -> bool:
        return self.start <= d and (self.end is None or d <= self.end)

    def year_of(self, d: date) -> int:
        return d.year - self.start.year + 1


# Boundaries from DOMAIN.md; each era ends the day before the next begins.
ERAS: tuple[Era, ...] = (
    Era("明治", "M", date(1868, 1, 25), date(1912, 7, 29)),
    Era("大正", "T", date(1912, 7, 30), date(1926, 12, 24)),
    Era("昭和", "S", date(1926, 12, 25), date(1989, 1, 7)),
    Era("平成", "H", date(1989, 1, 8), date(2019, 4, 30)),
    Era("令和", "R", date(2019, 5, 1), None),
)
_BY_NAME = {e.name: e for e in ERAS}
_BY_LETTER = {e.letter: e for e in ERAS}

assert all(a.end is not None and a.end + timedelta(days=1) == b.start for a, b in itertools.pairwise(ERAS)), (
    "eras must tile the calendar"
)


def era_of(d: date) -> Era:
    """The era ``d`` falls in; dates before 明治 have none."""
    for era in reversed(ERAS):
        if d >= era.start:
            return era
    raise InvalidValue(
        f"{d.isoformat()} は明治元年（1868年1月25日）より前のため和暦で表せません",
    )


def format_wareki(d: date) -> str:
    """ "令和元年5月1日" style: the era's first year is written 元年."""
    era = era_of(d)
    year = era.year_of(d)
    return f"{era.name}{'元' if year == 1 else year}年{d.month}月{d.day}日"


# Applied after NFKC, which already maps full-width digits and letters, U+3000, and the
# square era signs (㋿ ㍻ ㍼ ㍽ ㍾) to their plain forms.
_WAREKI = re.compile(
    r"(?P<era>明治|大正|昭和|平成|令和|[MTSHR])"
    r"(?P<year>元|[0-9]{1,3})"
    r"(?:年(?P<m1>[0-9]{1,2})月(?P<d1>[0-9]{1,2})日"
    r"|[./\-](?P<m2>[0-9]{1,2})[./\-](?P<d2>[0-9]{1,2}))"
)
_ISO = re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})")
_WHITESPACE = re.compile(r"\s+")


def _normalize(s: str) -> str:
    # Upper-cased so that r7.4.1 reads like R7.4.1.
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", s)).upper()


def parse_wareki(s: str, *, field: str | None = None) -> date:
    """Parse "令和元年5月1日", "令和7年4月1日", "R7.4.1", "H31.4.30" and the like.

    Full-width digits and spaces anywhere are accepted. A date outside its era
    (令和元年4月30日, 平成32年1月1日, 平成0年) or one that does not exist (2月30日) is
    refused with InvalidValue, never shifted into a neighbouring era.
    """
    normalized = _normalize(s)
    if not normalized:
        raise InvalidValue("日付が入力されていません", field=field)
    m = _WAREKI.fullmatch(normalized)
    if m is None:
        raise InvalidValue(
            f"「{s}」は和暦の日付として解釈できません（例: 令和7年4月1日、R7.4.1）", field=field
        )
    era = _BY_NAME.get(m["era"]) or _BY_LETTER[m["era"]]
    year = 1 if m["year"] == "元" else int(m["year"])
    month = int(m["m1"] or m["m2"])
    day = int(m["d1"] or m["d2"])
    if year < 1:
        raise InvalidValue(f"{era.name}{year}年という年はありません（元年から始まります）", field=field)
    try:
        d = date(era.start.year + year - 1, month, day)
    except ValueError:
        raise InvalidValue(f"「{s}」は存在しない日付です", field=field) from None
    if not era.contains(d):
        span = f"{_long(era.start)}から" + (f"{_long(era.end)}まで" if era.end else "")
        raise InvalidValue(f"「{s}」は{era.name}の期間（{span}）外の日付です", field=field)
    return d


def _long(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def parse_date(s: str, *, field: str | None = None) -> date:
    """The parser for every date typed into the API or CLI: ISO 8601 or 和暦.

    ISO means exactly YYYY-MM-DD (full-width digits tolerated); anything else is read as
    和暦. Errors carry ``field`` so the caller can point at the offending input.
    """
    normalized = _normalize(s)
    m = _ISO.fullmatch(normalized)
    if m is None:
        if normalized and _WAREKI.fullmatch(normalized) is None:
            raise InvalidValue(
                f"「{s}」は日付として解釈できません（例: 2025-04-01、令和7年4月1日、R7.4.1）",
                field=field,
            )
        return parse_wareki(s, field=field)
    try:
        return date(int(m["y"]), int(m["m"]), int(m["d"]))
    except ValueError:
        raise InvalidValue(f"「{s}」は存在しない日付です", field=field) from None
