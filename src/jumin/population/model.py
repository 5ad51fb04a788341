"""The shape of Japan's population the generator follows, and unique identifiers from an index.

Figures are coarse public statistics, kept in one place so that they can be corrected:

- age and sex: 総務省統計局「人口推計」(2022年10月1日現在) by five-year group, in thousands
  (unconfirmed: rounded from the published table);
- households: 2020年国勢調査, 一般世帯の家族類型 (単独 38.0%, 夫婦のみ 20.1%, 夫婦と子 25.0%,
  ひとり親と子 9.0%, その他 7.9%);
- foreign residents: 出入国在留管理庁「在留外国人統計」(2022年末): 2.4% of residents, by
  nationality and status of residence (unconfirmed: rounded shares of the largest groups);
- cards: the published issuance rate of each prefecture (data/card_rates_2022-12.csv); the
  year of issue follows the national totals (総務省「マイナンバーカード交付状況」, end of
  each year: 2016 8%, 2017 10%, 2018 12%, 2019 15%, 2020 24%, 2021 40%, 2022 58%;
  unconfirmed: rounded).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = [
    "AGE_GROUPS",
    "CARD_YEAR_WEIGHTS",
    "FOREIGN_SHARE",
    "HOUSEHOLD_TYPES",
    "NATIONALITY_WEIGHTS",
    "STATUS_OF_RESIDENCE",
    "IdPermutation",
]

# (lower age, thousands of residents, share that is male) per five-year group; 100+ last.
AGE_GROUPS: tuple[tuple[int, int, float], ...] = (
    (0, 4_300, 0.512),
    (5, 4_900, 0.512),
    (10, 5_300, 0.512),
    (15, 5_500, 0.513),
    (20, 6_200, 0.511),
    (25, 6_300, 0.510),
    (30, 6_500, 0.508),
    (35, 7_300, 0.506),
    (40, 8_100, 0.505),
    (45, 9_600, 0.505),
    (50, 9_300, 0.503),
    (55, 8_000, 0.500),
    (60, 7_400, 0.494),
    (65, 7_900, 0.487),
    (70, 9_400, 0.471),
    (75, 7_100, 0.450),
    (80, 5_800, 0.410),
    (85, 3_900, 0.350),
    (90, 1_900, 0.260),
    (95, 530, 0.180),
    (100, 90, 0.120),
)

# 家族類型 and the share of households of each kind.
HOUSEHOLD_TYPES: tuple[tuple[str, float], ...] = (
    ("single", 0.380),
    ("couple", 0.201),
    ("couple_children", 0.250),
    ("single_parent", 0.090),
    ("three_generations", 0.079),
)

FOREIGN_SHARE = 0.024

# Nationalities with a name source (data/foreign_names.tsv); the groups without one
# (ネパール, ミャンマー, タイ and smaller) are folded into 米国 names' "other" share below.
NATIONALITY_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("中国", 0.248),
    ("ベトナム", 0.162),
    ("韓国", 0.135),
    ("フィリピン", 0.097),
    ("ブラジル", 0.068),
    ("インドネシア", 0.032),
    ("台湾", 0.017),
    ("米国", 0.019),
)

# (在留資格, share among mid-to-long-term residents, 在留期間 or None for 永住者).
STATUS_OF_RESIDENCE: tuple[tuple[str, float, str | None], ...] = (
    ("永住者", 0.31, None),
    ("技能実習", 0.12, "1年"),
    ("技術・人文知識・国際業務", 0.11, "3年"),
    ("留学", 0.11, "2年3月"),
    ("家族滞在", 0.06, "3年"),
    ("定住者", 0.07, "5年"),
    ("日本人の配偶者等", 0.05, "3年"),
    ("特定技能1号", 0.05, "1年"),
    ("永住者の配偶者等", 0.02, "3年"),
    ("特定活動", 0.03, "6月"),
    ("経営・管理", 0.01, "5年"),
    ("技能", 0.02, "3年"),
)
SPECIAL_PERMANENT_SHARE = 0.10  # 特別永住者 among foreign residents (mostly 韓国・朝鮮)

CARD_YEAR_WEIGHTS: tuple[tuple[int, float], ...] = (
    (2016, 0.08),
    (2017, 0.02),
    (2018, 0.02),
    (2019, 0.03),
    (2020, 0.09),
    (2021, 0.16),
    (2022, 0.18),
)


class IdPermutation:
    """A keyed bijection of [0, size): index i gets value p(i), never repeated.

    A four-round Feistel network over the smallest even bit width that covers ``size``,
    cycle-walking values that fall outside (on average fewer than two walks). Unique
    identifiers then need no memory of the ones given out, which keeps generation
    streaming, and they look random while being reproducible from the seed.
    """

    def __init__(self, size: int, seed: str) -> None:
        bits = max(2, (size - 1).bit_length())
        bits += bits % 2
        self.size = size
        self.half = bits // 2
        self.mask = (1 << self.half) - 1
        rng = random.Random(seed)  # noqa: S311 (a reproducible permutation, not a secret)
        self.keys = tuple(rng.getrandbits(32) | 1 for _ in range(4))

    def _round(self, value: int, key: int) -> int:
        x = (value * key + (key >> 7)) & 0xFFFFFFFF
        x ^= x >> 13
        x = (x * 0x5BD1E995) & 0xFFFFFFFF
        return (x ^ (x >> 15)) & self.mask

    def _once(self, value: int) -> int:
        left, right = value >> self.half, value & self.mask
        for key in self.keys:
            left, right = right, left ^ self._round(right, key)
        return (left << self.half) | right

    def __call__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise ValueError("index outside the permutation")
        value = self._once(index)
        while value >= self.size:
            value = self._once(value)
        return value


@dataclass(frozen=True, slots=True)
class AgeTable:
    """Single years of age 0..104 with weights, sampled within a range."""

    weights: tuple[float, ...]
    male_share: tuple[float, ...]

    @staticmethod
    def build() -> AgeTable:
        weights: list[float] = []
        male: list[float] = []
        for i, (lower, thousands, share) in enumerate(AGE_GROUPS):
            upper = AGE_GROUPS[i + 1][0] if i + 1 < len(AGE_GROUPS) else 105
            span = upper - lower
            for _ in range(span):
                weights.append(thousands / span)
                male.append(share)
        return AgeTable(tuple(weights), tuple(male))

    def draw(self, rng: random.Random, lo: int, hi: int) -> int:
        lo, hi = max(0, lo), min(len(self.weights) - 1, hi)
        if hi < lo:
            return lo
        return rng.choices(range(lo, hi + 1), weights=self.weights[lo : hi + 1])[0]
