"""Name pools for synthetic residents, read from data/*.tsv (built by data/build_names.py).

Japanese names come as (kanji, kana, romaji) triples that agree with each other; foreign
residents' names as alphabet + katakana reading. Draws are weighted: surnames by their
frequency, given names by how common they are and by the birth cohort (names ending in
子 for women born before the 1970s, for instance).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Generic, TypeVar

__all__ = [
    "OUTSIDE_JIS_VARIANTS",
    "ForeignName",
    "JapaneseName",
    "NamePools",
    "WeightedPool",
    "is_jis_x_0208",
    "load_pools",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JapaneseName:
    kanji: str
    kana: str
    romaji: str


@dataclass(frozen=True, slots=True)
class ForeignName:
    latin: str
    kana: str


class WeightedPool(Generic[T]):
    """Draws with replacement, proportional to weight (one bisect per draw)."""

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items or len(items) != len(weights):
            raise ValueError("a pool needs items with one weight each")
        self.items = tuple(items)
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: random.Random) -> T:
        return self.items[bisect.bisect_right(self._cumulative, rng.random() * self._total)]


# Variant forms (異体字) that residents keep in their registered names and that JIS X 0208
# does not have: 𠮷 (U+20BB7, "tsuchi-yoshi"), 髙 (はしご高), 﨑 (たつ崎), 德, 濵; and one
# ideographic variation sequence (葛 + VS17, the Adobe-Japan1 glyph of 葛飾/葛城). The
# register must keep them as given (DESIGN.md "Names"); the generator swaps them in for a
# small share of the surnames that contain the common form.
OUTSIDE_JIS_VARIANTS: dict[str, str] = {
    "吉": "\U00020bb7",
    "高": "\u9ad9",
    "崎": "\ufa11",
    "徳": "\u5fb7",
    "浜": "\u6ff5",
    "葛": "\u845b\U000e0100",
}
VARIANT_SHARE = 0.03  # of the surnames that contain one of the characters above


def is_jis_x_0208(text: str) -> bool:
    """True when every character is in JIS X 0208 (ISO-2022-JP encodes exactly that set)."""
    try:
        text.encode("iso2022_jp")
    except UnicodeEncodeError:
        return False
    return True


# Cohorts by birth year, and how much more (or less) often a given name's ending occurs in
# each: a coarse shape of the published name rankings by year (明治安田生命 名前ランキング).
_COHORTS = ((0, 1964), (1965, 1989), (1990, 9999))
_ENDING_FACTORS: dict[str, dict[str, tuple[float, float, float]]] = {
    "female": {"子": (8.0, 3.0, 0.3), "美": (1.5, 2.0, 0.8), "江": (4.0, 1.0, 0.2), "代": (4.0, 1.0, 0.2)},
    "male": {"郎": (4.0, 1.5, 0.6), "夫": (5.0, 1.0, 0.1), "雄": (4.0, 1.0, 0.2), "男": (4.0, 1.0, 0.2)},
}


def _cohort(birth_year: int) -> int:
    return next(i for i, (lo, hi) in enumerate(_COHORTS) if lo <= birth_year <= hi)


@dataclass(frozen=True, slots=True)
class NamePools:
    surnames: WeightedPool[JapaneseName]
    # given[sex][cohort]
    given: dict[str, tuple[WeightedPool[JapaneseName], ...]]
    foreign_family: dict[str, WeightedPool[ForeignName]]
    foreign_given: dict[tuple[str, str], WeightedPool[ForeignName]]
    nationalities: tuple[str, ...]

    def surname(self, rng: random.Random) -> JapaneseName:
        name = self.surnames.draw(rng)
        if any(c in OUTSIDE_JIS_VARIANTS for c in name.kanji) and rng.random() < VARIANT_SHARE:
            kanji = "".join(OUTSIDE_JIS_VARIANTS.get(c, c) for c in name.kanji)
            return JapaneseName(kanji, name.kana, name.romaji)
        return name

    def given_name(self, rng: random.Random, sex: str, birth_year: int) -> JapaneseName:
        return self.given[sex][_cohort(birth_year)].draw(rng)

    def foreign(self, rng: random.Random, nationality: str, sex: str) -> tuple[ForeignName, ForeignName]:
        return (
            self.foreign_family[nationality].draw(rng),
            self.foreign_given[(nationality, sex)].draw(rng),
        )


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("jumin.population").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


@cache
def load_pools() -> NamePools:
    surnames: list[JapaneseName] = []
    surname_weights: list[float] = []
    given: dict[str, list[tuple[JapaneseName, float]]] = {"male": [], "female": []}
    for row in _rows("japanese_names.tsv"):
        name = JapaneseName(row["kanji"], row["kana"], row["romaji"])
        weight = float(row["weight"])
        if row["kind"] == "surname":
            surnames.append(name)
            surname_weights.append(weight)
        else:
            given[row["kind"]].append((name, weight))
    given_pools: dict[str, tuple[WeightedPool[JapaneseName], ...]] = {}
    for sex, entries in given.items():
        cohorts = []
        for cohort in range(len(_COHORTS)):
            weights = []
            for name, weight in entries:
                factor = _ENDING_FACTORS[sex].get(name.kanji[-1], (1.0, 1.0, 1.0))[cohort]
                weights.append(weight * factor)
            cohorts.append(WeightedPool([n for n, _ in entries], weights))
        given_pools[sex] = tuple(cohorts)

    family: dict[str, list[ForeignName]] = {}
    given_foreign: dict[tuple[str, str], list[ForeignName]] = {}
    for row in _rows("foreign_names.tsv"):
        foreign = ForeignName(row["latin"], row["kana"])
        if row["part"] == "family":
            family.setdefault(row["nationality"], []).append(foreign)
        else:
            given_foreign.setdefault((row["nationality"], row["sex"]), []).append(foreign)
    return NamePools(
        surnames=WeightedPool(surnames, surname_weights),
        given=given_pools,
        foreign_family={k: WeightedPool(v, [1.0] * len(v)) for k, v in family.items()},
        foreign_given={k: WeightedPool(v, [1.0] * len(v)) for k, v in given_foreign.items()},
        nationalities=tuple(family),
    )
