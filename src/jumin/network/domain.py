"""Rules for the two national codes: 住民票コード pools and 個人番号 derivation.

Pure functions only: the key, the random source and "is this number taken?" are passed
in, so that tests can force a collision or a tiny digit space without a database.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable

from jumin.core.errors import Conflict, InvalidValue, NotFound, RuleViolation
from jumin.core.ids import IndividualNumber, ResidentCode

__all__ = [
    "DIGIT_SPACE",
    "MAX_ALLOCATION",
    "MAX_DERIVATION_ATTEMPTS",
    "IndividualNumberNotIssued",
    "IssuanceExhausted",
    "IssuanceRace",
    "ResidentCodeNotAllocated",
    "check_allocation_count",
    "derive_individual_number",
    "draw_resident_codes",
    "first_free_individual_number",
]

# The 11 base digits of a 個人番号 (DOMAIN.md "Identifiers and check digits").
DIGIT_SPACE = 10**11
# One request hands a municipality at most this many codes: enough for a day of births
# and move-ins in the largest city, small enough to stay one short transaction.
MAX_ALLOCATION = 10_000
# With ~1.3 × 10^8 numbers in a space of 10^11, one collision has probability ~0.1 %;
# 64 in a row means the key or the digit space is wrong, not bad luck.
MAX_DERIVATION_ATTEMPTS = 64

# Domain separation: the same key must never produce the same MAC for another purpose.
_DERIVATION_LABEL = b"jumin/individual-number/v1"


class ResidentCodeNotAllocated(NotFound):
    type_slug = "resident-code-not-allocated"
    title = "住民票コードが払い出されていません"


class IndividualNumberNotIssued(RuleViolation):
    type_slug = "individual-number-not-issued"
    title = "個人番号が指定されていません"


class IssuanceRace(Conflict):
    """Another request took the same code or number at the same moment; retrying is safe."""

    type_slug = "issuance-race"
    title = "他の払い出し処理と競合しました"


class IssuanceExhausted(RuntimeError):
    """No free code or number within the attempt limit: a broken random source, key or digit space."""


def check_allocation_count(count: int) -> None:
    if not 1 <= count <= MAX_ALLOCATION:
        raise InvalidValue(
            f"払い出す住民票コードの数は1〜{MAX_ALLOCATION}の範囲で指定してください（{count}が指定されました）。",
            field="count",
        )


def draw_resident_codes(rng: random.Random, count: int, *, exclude: set[str]) -> list[ResidentCode]:
    """``count`` distinct random codes not in ``exclude``; adds them to ``exclude``.

    The draw is bounded so that a degenerate random source ends in an error instead of a
    loop that never returns.
    """
    codes: list[ResidentCode] = []
    for _ in range(count * 20 + 100):
        if len(codes) == count:
            return codes
        code = ResidentCode.random(rng)
        if code.value not in exclude:
            exclude.add(code.value)
            codes.append(code)
    if len(codes) == count:
        return codes
    raise IssuanceExhausted("the random source keeps repeating resident codes")


def derive_individual_number(
    key: bytes, resident_code: ResidentCode, counter: int, *, digit_space: int = DIGIT_SPACE
) -> IndividualNumber:
    """The one-way conversion of 番号法施行令 第8条: HMAC-SHA256 mapped into 11 digits.

    HMAC cannot be inverted, and without ``key`` the number cannot be computed from the
    resident code nor matched back to it by trying all 10^10 codes; the key stays with
    the national role (jumin.keys, outside the database). ``counter`` gives a fresh,
    unrelated candidate when one is taken (a collision, or a 番号変更). The modulo bias
    is below 10^11 / 2^256, i.e. nil. ``digit_space`` exists so that tests can make
    collisions certain; production code keeps the default.
    """
    if counter < 0:
        raise ValueError("counter must be non-negative")
    if not 1 <= digit_space <= DIGIT_SPACE:
        raise ValueError("digit_space must be within the 11-digit space")
    message = b"\x00".join([_DERIVATION_LABEL, resident_code.value.encode(), str(counter).encode()])
    mac = hmac.new(key, message, hashlib.sha256).digest()
    base = f"{int.from_bytes(mac, 'big') % digit_space:011d}"
    return IndividualNumber(base + str(IndividualNumber.check_digit(base)))


def first_free_individual_number(
    key: bytes,
    resident_code: ResidentCode,
    *,
    start: int,
    is_taken: Callable[[IndividualNumber], bool],
    digit_space: int = DIGIT_SPACE,
    max_attempts: int = MAX_DERIVATION_ATTEMPTS,
) -> tuple[IndividualNumber, int]:
    """The first derived number from counter ``start`` on that nobody holds or held.

    A number once issued is never issued again, even after it was superseded, so
    ``is_taken`` must answer for every number ever issued, not only the current ones.
    """
    for counter in range(start, start + max_attempts):
        number = derive_individual_number(key, resident_code, counter, digit_space=digit_space)
        if not is_taken(number):
            return number, counter
    raise IssuanceExhausted(f"no free individual number within {max_attempts} counters")
