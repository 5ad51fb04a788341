"""The synthetic population: reproducible, proportional, valid, and in the interchange layout."""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jumin.cli import app
from jumin.core.ids import IndividualNumber, ResidentCode
from jumin.core.names import is_katakana_name, romaji_hepburn
from jumin.interchange.files import check_directory, read_municipalities
from jumin.interchange.validate import validate_municipality
from jumin.population.model import IdPermutation
from jumin.population.names import OUTSIDE_JIS_VARIANTS, is_jis_x_0208, load_pools
from jumin.population.places import JAPAN_POPULATION, allocate, load_rates
from jumin.population.transliterate import hangul_to_latin, latin_to_katakana

runner = CliRunner()


def _generate(out: Path, *args: str) -> None:
    result = runner.invoke(app, ["population", "generate", "--out", str(out), "--quiet", *args])
    assert result.exit_code == 0, result.output


def _rows(directory: Path, name: str) -> list[dict[str, str]]:
    with (directory / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population") / "p"
    _generate(out, "--residents", "6000", "--seed", "11")
    return out


def test_the_same_seed_gives_the_same_files_and_a_prefecture_is_its_share_of_the_whole(
    tmp_path: Path, population: Path
) -> None:
    again = tmp_path / "again"
    _generate(again, "--residents", "6000", "--seed", "11")
    for name in ("persons", "households", "events", "foreign_residents", "aliases", "cards"):
        assert (again / f"{name}.csv").read_bytes() == (population / f"{name}.csv").read_bytes(), name
    tokyo = tmp_path / "tokyo"
    _generate(tokyo, "--residents", "6000", "--seed", "11", "--prefecture", "13")
    whole = [r for r in _rows(population, "persons") if r["lg_code"].startswith("13")]
    assert whole
    assert _rows(tokyo, "persons") == whole
    other = tmp_path / "other"
    _generate(other, "--residents", "6000", "--seed", "12", "--prefecture", "13")
    assert _rows(other, "persons") != whole


def test_every_generated_file_passes_the_import_checks(population: Path) -> None:
    assert check_directory(population).errors == []
    municipalities = 0
    for batch in read_municipalities(population):
        valid, errors = validate_municipality(batch)
        assert errors == [], [e.describe() for e in errors[:5]]
        assert valid is not None
        municipalities += 1
    assert municipalities > 100


def test_identifiers_have_valid_check_digits_and_are_unique(population: Path) -> None:
    persons = _rows(population, "persons")
    codes = [p["resident_code"] for p in persons]
    numbers = [p["individual_number"] for p in persons]
    assert all(ResidentCode.is_valid(c) for c in codes)
    assert all(IndividualNumber.is_valid(n) for n in numbers)
    assert len(set(codes)) == len(codes)
    assert len(set(numbers)) == len(numbers)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), seed=st.text(max_size=8))
def test_the_identifier_permutation_is_a_bijection(size: int, seed: str) -> None:
    permutation = IdPermutation(size, seed)
    assert sorted(permutation(i) for i in range(size)) == list(range(size))


def test_residents_are_spread_in_proportion_to_the_published_populations() -> None:
    total = 1_000_000
    allocations = allocate(total)
    assert sum(a.residents for a in allocations) == total
    by_prefecture = Counter[str]()
    municipalities = Counter[str]()
    for a in allocations:
        by_prefecture[a.prefecture_name] += a.residents
        municipalities[a.prefecture_name] += 1
    published = {r.name: r.population for r in load_rates() if r.kind == "prefecture"}
    assert sum(published.values()) == JAPAN_POPULATION
    for name, population in published.items():
        # Each municipality's count is rounded once (largest remainder): less than one each.
        expected = total * population / JAPAN_POPULATION
        assert by_prefecture[name] == pytest.approx(expected, abs=municipalities[name])
    yokohama = next(a for a in allocations if a.municipality.name == "横浜市")
    assert yokohama.residents == pytest.approx(total * 3_755_793 / JAPAN_POPULATION, abs=1)
    # Prefectures as a whole issue cards at their published rate.
    tokyo = [a for a in allocations if a.municipality.code.startswith("13")]
    rate = sum(a.issuance_rate * a.residents for a in tokyo) / sum(a.residents for a in tokyo)
    assert rate == pytest.approx(0.579, abs=0.002)


def test_households_ages_foreign_residents_and_cards_look_like_japan(population: Path) -> None:
    persons = _rows(population, "persons")
    households = _rows(population, "households")
    assert len(persons) == 6000
    heads = Counter((p["lg_code"], p["household_no"]) for p in persons if p["relationship"] == "世帯主")
    assert all(n == 1 for n in heads.values())
    assert len(heads) == len(households)
    # 2.2 in the census; small municipalities cut their last household short in a sample this small.
    assert 1.7 < len(persons) / len(households) < 2.5
    foreign = [p for p in persons if p["resident_kind"] == "foreign"]
    assert 0.016 < len(foreign) / len(persons) < 0.034
    assert len(_rows(population, "foreign_residents")) == len(foreign)
    ages = [2022 - int(p["birth_date"][:4]) for p in persons]
    assert 0.20 < sum(a >= 65 for a in ages) / len(ages) < 0.36
    assert 0.07 < sum(a < 15 for a in ages) / len(ages) < 0.16
    assert 0.46 < sum(p["sex"] == "male" for p in persons) / len(persons) < 0.52
    cards = _rows(population, "cards")
    assert 0.50 < len(cards) / len(persons) < 0.62
    assert all("2016-01-01" <= c["card_issued_on"] <= "2022-12-31" for c in cards)
    assert all(c["card_valid_until"] > "2022-12-31" for c in cards)
    kinds = Counter(e["event_kind"] for e in _rows(population, "events"))
    assert kinds["move_in"] > kinds["birth"] > 0
    assert kinds["move_within"] > 0


def test_names_have_consistent_kana_and_romaji_and_some_are_outside_jis_x_0208(population: Path) -> None:
    pools = load_pools()
    assert len(pools.surnames) > 10_000
    assert (
        sum(len(p) for p in pools.given["male"][:1]) + sum(len(p) for p in pools.given["female"][:1]) > 10_000
    )
    surnames = {(n.kanji, n.kana) for n in pools.surnames.items}
    undo = {v: k for k, v in OUTSIDE_JIS_VARIANTS.items()}
    persons = {(p["lg_code"], p["atena_no"]): p for p in _rows(population, "persons")}
    japanese = [p for p in persons.values() if p["resident_kind"] == "japanese"]
    for p in japanese:
        plain = p["family_name"]
        for variant, common in undo.items():
            plain = plain.replace(variant, common)
        assert (plain, p["family_name_kana"]) in surnames
        assert is_katakana_name(p["given_name_kana"])
    assert any(not is_jis_x_0208(p["family_name"]) for p in japanese)
    for card in random.Random(3).sample(_rows(population, "cards"), 40):
        p = persons[(card["lg_code"], card["atena_no"])]
        if p["resident_kind"] == "japanese":
            expected = f"{romaji_hepburn(p['family_name_kana'])} {romaji_hepburn(p['given_name_kana'])}"
            assert card["name_romaji"] == expected


def test_the_variants_really_are_outside_jis_x_0208() -> None:
    for common, variant in OUTSIDE_JIS_VARIANTS.items():
        assert is_jis_x_0208(common)
        if len(variant) == 1:
            assert not is_jis_x_0208(variant)
        else:  # an ideographic variation sequence: the base character and its selector
            assert variant[0] == common
            assert 0xE0100 <= ord(variant[1]) <= 0xE01EF


def test_foreign_names_read_in_katakana() -> None:
    assert latin_to_katakana("MARIA SANTOS") == "マリア\u3000サントス"
    assert latin_to_katakana("NGUYEN VAN AN") is not None
    assert latin_to_katakana("O'BRIEN") is None
    assert hangul_to_latin("김") == "kim"
    assert hangul_to_latin("민준") == "minjun"
    pools = load_pools()
    for family in pools.foreign_family.values():
        for name in family.items:
            assert is_katakana_name(name.kana), name


def test_a_scale_or_a_count_is_required(tmp_path: Path) -> None:
    result = runner.invoke(app, ["population", "generate", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "--scale" in result.output
