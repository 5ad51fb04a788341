"""Rebuild the name pools in this folder from their public sources (run by hand, not at run time).

The generator reads only the TSV files written here; this script records how they were
made so that anyone can check and redo it. Sources (see README.md in this folder for
versions and licences):

- Faker's ``ja_JP`` person provider: its kanji / kana / romaji pairs;
- gimei's ``names.yml``: 500 surnames (roughly by frequency) and 13,000 given names
  with their sex and readings;
- mecab-ipadic's ``Noun.name.csv`` (Debian package ``mecab-ipadic``): 13,000 surnames
  and 19,000 given names with readings and a corpus cost (lower = more frequent);
- Faker's person providers of other locales for foreign residents' names in the
  alphabet (zh_CN and zh_TW romanized, ko_KR romanized here, vi_VN, pt_BR, es_MX,
  en_US, id_ID).

Usage::

    pip download --no-deps -d /tmp/names faker gimei
    (cd /tmp/names && for w in *.whl; do unzip -oq "$w" -d site; done)
    (cd /tmp/names && apt-get download mecab-ipadic && dpkg -x mecab-ipadic_*.deb deb)
    PYTHONPATH=/tmp/names/site python -m jumin.population.data.build_names \\
        /tmp/names/site/gimei/data/names.yml \\
        /tmp/names/deb/usr/share/mecab/dic/ipadic/Noun.name.csv
"""

from __future__ import annotations

import csv
import importlib
import re
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jumin.core.names import is_katakana_name, romaji_hepburn
from jumin.population.transliterate import hangul_to_latin, latin_to_katakana

HERE = Path(__file__).parent
_KANJI_NAME = re.compile(r"[\u3005\u3041-\u309f\u4e00-\u9fff]{1,4}")
# Shares of people by where their surname comes from: Faker's 50 most common (about a
# fifth of Japan, by the published rankings), gimei's next 450, and ipadic's long tail.
_FAKER_SURNAME_SHARE = 0.20
_SURNAME_TAIL_SHARE = 0.35


def _weights_by_rank(count: int, offset: float, total: float) -> list[float]:
    raw = [1.0 / (rank + offset) for rank in range(1, count + 1)]
    scale = total / sum(raw)
    return [w * scale for w in raw]


def _ipadic(path: Path) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(kanji, katakana) → cost, for surnames and given names."""
    surnames: dict[tuple[str, str], int] = {}
    given: dict[tuple[str, str], int] = {}
    with path.open(encoding="euc_jp", errors="strict") as f:
        for row in csv.reader(f):
            surface, cost, kind, reading = row[0], int(row[3]), row[7], row[11]
            if not _KANJI_NAME.fullmatch(surface) or not is_katakana_name(reading):
                continue
            target = surnames if kind == "姓" else given if kind == "名" else None
            if target is not None:
                key = (surface, reading)
                target[key] = min(cost, target.get(key, cost))
    return surnames, given


def _romaji(kana: str, cache: dict[str, str]) -> str | None:
    if kana not in cache:
        try:
            cache[kana] = romaji_hepburn(kana)
        except ValueError:
            cache[kana] = ""
    return cache[kana] or None


def build_japanese(gimei_yml: Path, ipadic_csv: Path) -> list[tuple[str, str, str, str, float, str]]:
    yaml: Any = importlib.import_module("yaml")
    faker_ja: Any = importlib.import_module("faker.providers.person.ja_JP")
    gimei = yaml.safe_load(gimei_yml.read_text(encoding="utf-8"))
    ip_surnames, ip_given = _ipadic(ipadic_csv)
    romaji_cache: dict[str, str] = {}
    rows: list[tuple[str, str, str, str, float, str]] = []

    # Surnames: Faker's 50 carry counts from a published ranking; gimei's other 450 follow
    # in its (frequency) order; ipadic's other surnames share the tail by their corpus cost.
    seen: set[tuple[str, str]] = set()
    counts = {(k, r): float(n) for (k, r, _), n in faker_ja.Provider.last_name_pairs.items()}
    total = sum(counts.values())
    for (kanji, kata), n in counts.items():
        seen.add((kanji, kata))
        rows.append(("surname", kanji, kata, "", _FAKER_SURNAME_SHARE * n / total, "faker"))
    ranked: list[tuple[str, str]] = []
    for kanji, _hira, kata in gimei["last_name"]:
        if (kanji, kata) not in seen and is_katakana_name(kata):
            seen.add((kanji, kata))
            ranked.append((kanji, kata))
    head = _weights_by_rank(len(ranked), 10 + len(counts), 1 - _SURNAME_TAIL_SHARE - _FAKER_SURNAME_SHARE)
    for (kanji, kata), weight in zip(ranked, head, strict=True):
        rows.append(("surname", kanji, kata, "", weight, "gimei"))
    tail = sorted(((c, k) for k, c in ip_surnames.items() if k not in seen), key=lambda t: (t[0], t[1]))
    tail_weights = _weights_by_rank(len(tail), 100, _SURNAME_TAIL_SHARE)
    for (_, (kanji, kata)), weight in zip(tail, tail_weights, strict=True):
        rows.append(("surname", kanji, kata, "", weight, "ipadic"))

    # Given names: gimei and Faker know the sex; ipadic's cost marks the common ones.
    for sex, faker_pairs in (
        ("male", faker_ja.Provider.first_name_male_pairs),
        ("female", faker_ja.Provider.first_name_female_pairs),
    ):
        names: dict[tuple[str, str], set[str]] = {}
        for kanji, _hira, kata in gimei["first_name"][sex]:
            names.setdefault((kanji, kata), set()).add("gimei")
        for kanji, kata, _faker_romaji in faker_pairs:
            names.setdefault((kanji, kata), set()).add("faker")
        for (kanji, kata), sources in names.items():
            if not is_katakana_name(kata):
                continue
            cost = ip_given.get((kanji, kata))
            weight = 1.0 + (10.0 if "faker" in sources else 0.0)
            if cost is not None:
                weight += max(0.0, 9000 - cost) / 1000
                sources = sources | {"ipadic"}
            rows.append((sex, kanji, kata, "", weight, "+".join(sorted(sources))))

    out = []
    for kind, kanji, kata, _, weight, source in rows:
        romaji = _romaji(kata, romaji_cache)
        if romaji is not None:
            out.append((kind, kanji, kata, romaji, round(weight * 1e6, 3), source))
    return out


# Foreign residents: nationality (as 国籍・地域 is written) → Faker locales for family and given names.
FOREIGN_SOURCES: dict[str, tuple[str, str]] = {
    "中国": ("zh_CN", "zh_CN"),
    "ベトナム": ("vi_VN", "vi_VN"),
    "韓国": ("ko_KR", "ko_KR"),
    "フィリピン": ("es_MX", "en_US"),
    "ブラジル": ("pt_BR", "pt_BR"),
    "インドネシア": ("id_ID", "id_ID"),
    "台湾": ("zh_TW", "zh_TW"),
    "米国": ("en_US", "en_US"),
}


def _ascii_upper(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in folded if c.isascii() and (c.isalpha() or c in " -")).upper().strip()


def _latin_names(locale: str, part: str, sex: str) -> Iterable[str]:
    provider: Any = importlib.import_module(f"faker.providers.person.{locale}").Provider
    if locale in ("zh_CN", "zh_TW"):
        attr = "last_romanized_names" if part == "family" else "first_romanized_names"
        return list(getattr(provider, attr))
    if locale == "ko_KR":
        hangul = provider.last_names if part == "family" else getattr(provider, f"first_names_{sex}")
        return [hangul_to_latin(h) for h in hangul]
    if part == "family":
        names = provider.last_names
    else:
        names = getattr(provider, f"first_names_{sex}", None) or provider.first_names
    return list(names.keys()) if isinstance(names, dict) else list(names)


def build_foreign() -> list[tuple[str, str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str, str]] = []
    for nationality, (family_locale, given_locale) in FOREIGN_SOURCES.items():
        for part, locale, sexes in (
            ("family", family_locale, ("-",)),
            ("given", given_locale, ("male", "female")),
        ):
            for sex in sexes:
                seen: set[str] = set()
                for raw in _latin_names(locale, part, sex):
                    latin = _ascii_upper(raw)
                    if not latin or latin in seen or len(latin) > 30:
                        continue
                    kana = latin_to_katakana(latin)
                    if kana is None or not is_katakana_name(kana):
                        continue
                    seen.add(latin)
                    rows.append((nationality, part, sex, latin, kana, f"faker:{locale}"))
    return rows


def _write(path: Path, header: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def main(argv: list[str]) -> None:
    gimei_yml, ipadic_csv = Path(argv[0]), Path(argv[1])
    n = _write(
        HERE / "japanese_names.tsv",
        ("kind", "kanji", "kana", "romaji", "weight", "source"),
        build_japanese(gimei_yml, ipadic_csv),
    )
    m = _write(
        HERE / "foreign_names.tsv",
        ("nationality", "part", "sex", "latin", "kana", "source"),
        build_foreign(),
    )
    sys.stderr.write(f"japanese_names.tsv: {n} rows, foreign_names.tsv: {m} rows\n")


if __name__ == "__main__":
    main(sys.argv[1:])
