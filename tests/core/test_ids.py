from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jumin.core.errors import InvalidValue
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode, classify

# --- an independent reference, written from the statute's own formulation -------------
#
# 平成26年総務省令第85号 第5条 numbers the base digits from the right: P_n is the n-th
# digit from the right and Q_n = n + 1 for n <= 6, n - 5 for n >= 7. The implementation
# uses left-to-right weight tables, so agreement here is a real cross-check.


def ref_mod11_remainder(base: str) -> int:
    digits = [int(c) for c in reversed(base)]
    return sum(p * (n + 1 if n <= 6 else n - 5) for n, p in enumerate(digits, start=1)) % 11


def ref_mod11_check(base: str) -> int:
    r = ref_mod11_remainder(base)
    return 0 if r <= 1 else 11 - r


def ref_lg_remainder(base: str) -> int:
    # S = 6a+5b+4c+3d+2e: from the right the weights are n + 1.
    return sum(int(c) * (n + 1) for n, c in enumerate(reversed(base), start=1)) % 11


def ref_lg_check(base: str) -> int:
    return (11 - ref_lg_remainder(base)) % 10


def ref_valid(cls: type[IndividualNumber | ResidentCode | LgCode], value: str) -> bool:
    base, check = value[:-1], int(value[-1])
    if cls is LgCode:
        return ref_lg_check(base) == check and 1 <= int(value[:2]) <= 47
    return ref_mod11_check(base) == check


def substitutions(value: str) -> Iterator[tuple[int, str]]:
    """Every single-digit change: (position, mutant)."""
    for i, old in enumerate(value):
        for new in "0123456789":
            if new != old:
                yield i, value[:i] + new + value[i + 1 :]


def transpositions(value: str) -> Iterator[tuple[int, str]]:
    """Every adjacent swap that changes the value: (left position, mutant)."""
    for i in range(len(value) - 1):
        if value[i] != value[i + 1]:
            yield i, value[:i] + value[i + 1] + value[i] + value[i + 2 :]


ALL_CLASSES = (IndividualNumber, ResidentCode, LgCode)

# --- known values ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["123456789018", "023456789013", "123456789000"])
def test_known_valid_individual_numbers(value: str) -> None:
    assert str(IndividualNumber.parse(value)) == value
    assert IndividualNumber.check_digit(value[:-1]) == int(value[-1])


def test_known_invalid_individual_number() -> None:
    with pytest.raises(InvalidValue, match="個人番号のチェックデジットが一致しません") as e:
        IndividualNumber.parse("123456789012")
    assert e.value.field == "individual_number"


def test_known_valid_resident_code() -> None:
    assert ResidentCode.parse("24727059608").value == "24727059608"
    assert ResidentCode.check_digit("2472705960") == 8
    with pytest.raises(InvalidValue, match="住民票コードのチェックデジット"):
        ResidentCode.parse("24727059609")


@pytest.mark.parametrize("value", ["131016", "011002", "130001"])
def test_known_valid_lg_codes(value: str) -> None:
    assert LgCode.parse(value).value == value


def test_constructor_refuses_invalid_values() -> None:
    # Holding an instance must prove validity: the constructor is as strict as parse.
    with pytest.raises(InvalidValue):
        IndividualNumber("123456789012")
    with pytest.raises(InvalidValue):
        IndividualNumber(" 123456789018")  # only parse normalises
    with pytest.raises(InvalidValue):
        ResidentCode("2472705960")
    with pytest.raises(InvalidValue):
        LgCode("131011")


def test_instances_are_frozen_and_compare_by_value() -> None:
    a = IndividualNumber.parse("123456789018")
    assert a == IndividualNumber("123456789018")
    assert hash(a) == hash(IndividualNumber("123456789018"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.value = "023456789013"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 123456789018 ", "123456789018"),
        ("\u3000１２３４５６７８９０１８\u3000", "123456789018"),
        ("\t１2３456789018\n", "123456789018"),
    ],
)
def test_parse_normalises_whitespace_and_full_width_digits(raw: str, expected: str) -> None:
    assert IndividualNumber.parse(raw).value == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1234 5678 9018", "数字のみ"),
        ("1234-5678-9018", "数字のみ"),
        ("", "数字のみ"),
        ("١٢٣٤٥٦٧٨٩٠١٨", "数字のみ"),  # Arabic-Indic digits: str.isdigit() would say yes
        ("12345678901", "12桁"),
        ("1234567890180", "12桁"),
        ("123456789012", "チェックデジット"),
    ],
)
def test_parse_rejects_with_reason(raw: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        IndividualNumber.parse(raw)


def test_parse_uses_the_callers_field_name() -> None:
    with pytest.raises(InvalidValue) as e:
        ResidentCode.parse("x", field="body.resident_code")
    assert e.value.field == "body.resident_code"


def test_check_digit_refuses_a_malformed_base() -> None:
    with pytest.raises(InvalidValue):
        IndividualNumber.check_digit("1234567890")
    with pytest.raises(InvalidValue):
        LgCode.check_digit("1310a")


def test_individual_number_repr_is_masked() -> None:
    number = IndividualNumber("123456789018")
    assert "12345678" not in repr(number)
    assert repr(number) == "IndividualNumber('********9018')"
    assert str(number) == "123456789018"


def test_masked_shows_only_the_last_four_digits() -> None:
    assert IndividualNumber("123456789018").masked() == "********9018"
    assert ResidentCode("24727059608").masked() == "*******9608"
    assert LgCode("131016").masked() == "131016"  # public code, nothing to hide


def test_lg_code_parts() -> None:
    chiyoda = LgCode("131016")
    assert chiyoda.prefecture_code == "13"
    assert chiyoda.prefecture == LgCode("130001")
    assert chiyoda.jis_code == "13101"
    assert not chiyoda.is_prefecture
    assert LgCode("130001").is_prefecture


@pytest.mark.parametrize(
    ("five", "six"),
    [("13101", "131016"), ("01100", "011002"), ("13000", "130001"), ("14130", "141305")],
)
def test_from_five_digits_adds_the_check_digit(five: str, six: str) -> None:
    assert LgCode.from_five_digits(five).value == six


@pytest.mark.parametrize("bad", ["1310", "131016", "1310a", "00100", "48000"])
def test_from_five_digits_rejects(bad: str) -> None:
    with pytest.raises(InvalidValue):
        LgCode.from_five_digits(bad)


def test_for_prefecture() -> None:
    assert LgCode.for_prefecture(13).value == "130001"
    assert LgCode.for_prefecture("01").value == "010006"
    for bad in ("0", "00", "48", "1"):
        with pytest.raises(InvalidValue):
            LgCode.for_prefecture(bad)


def test_lg_code_prefecture_must_exist() -> None:
    # 00 and 48–99 are not JIS X 0401 prefectures even with a matching check digit.
    base = "48101"
    with pytest.raises(InvalidValue, match="01〜47"):
        LgCode.parse(base + str(LgCode.check_digit(base)))


# --- classify ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "valid", "reason"),
    [
        ("123456789018", "individual_number", True, "ok"),
        ("123456789012", "individual_number", False, "チェックデジットが一致しません"),
        ("24727059608", "resident_code", True, "ok"),
        ("131016", "lg_code", True, "ok"),
        ("131011", "lg_code", False, "チェックデジットが一致しません"),
        ("000001", "lg_code", False, "都道府県コードが範囲外です"),
        ("１３１０１６", "lg_code", True, "ok"),
        ("12345", "unknown", False, "桁数が不正です"),
        ("1234567", "unknown", False, "桁数が不正です"),
        ("abc", "unknown", False, "数字以外の文字が含まれています"),
        ("", "unknown", False, "数字以外の文字が含まれています"),
    ],
)
def test_classify(value: str, kind: str, valid: bool, reason: str) -> None:
    result = classify(value)
    assert (result.value, result.kind, result.valid, result.reason) == (
        value,
        kind,
        valid,
        reason,
    )


# --- properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES)
@given(seed=st.integers())
def test_generated_identifiers_validate(
    cls: type[IndividualNumber | ResidentCode | LgCode], seed: int
) -> None:
    ident = cls.random(random.Random(seed))
    assert len(ident.value) == cls.length
    assert ref_valid(cls, ident.value)
    assert cls.parse(ident.value) == ident
    assert classify(ident.value).valid


def test_random_is_reproducible_and_varied() -> None:
    a = [IndividualNumber.random(random.Random(7)) for _ in range(2)]
    assert a[0] == a[1]
    many = {IndividualNumber.random(random.Random(s)).value for s in range(200)}
    assert len(many) == 200


def base_digits(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=length, max_size=length)


def with_check(cls: type[IndividualNumber | ResidentCode | LgCode], base: str) -> str:
    return base + str(cls.check_digit(base))


@pytest.mark.parametrize("cls", [IndividualNumber, ResidentCode])
@given(data=st.data())
@settings(max_examples=300)
def test_mod11_detects_exactly_the_predicted_errors(
    cls: type[IndividualNumber | ResidentCode], data: st.DataObject
) -> None:
    """Weights 2–7 are non-zero and distinct from their neighbours mod 11, so every
    change to the base moves the remainder r. The check is 0 for both r = 0 and r = 1,
    so exactly the changes that swap r between 0 and 1 go unnoticed. A changed check
    digit is always noticed."""
    value = with_check(cls, data.draw(base_digits(cls.length - 1)))
    r = ref_mod11_remainder(value[:-1])
    check_pos = cls.length - 1
    for kind, mutations in (("sub", substitutions(value)), ("swap", transpositions(value))):
        for pos, mutant in mutations:
            accepted = cls.is_valid(mutant)
            assert accepted == ref_valid(cls, mutant), (kind, value, mutant)
            touches_check = pos == check_pos or (kind == "swap" and pos + 1 == check_pos)
            if touches_check:
                if kind == "sub":
                    assert not accepted
                continue
            r_new = ref_mod11_remainder(mutant[:-1])
            assert r_new != r
            assert accepted == ({r, r_new} == {0, 1}), (kind, value, mutant)
            if value[-1] != "0":
                # The meaningful floor: with a non-zero check digit nothing slips through.
                assert not accepted


@given(data=st.data())
@settings(max_examples=300)
def test_lg_code_detects_exactly_the_predicted_errors(data: st.DataObject) -> None:
    """(11 − S mod 11) mod 10 maps remainders 0 and 10 both to 1; all other remainders
    get distinct check digits. Weights 6,5,4,3,2 and their adjacent differences are
    non-zero mod 11, so a base change is missed exactly when it swaps r between 0 and
    10 and leaves a real prefecture."""
    prefecture = data.draw(st.integers(min_value=1, max_value=47))
    value = with_check(LgCode, f"{prefecture:02d}" + data.draw(base_digits(3)))
    r = ref_lg_remainder(value[:-1])
    for kind, mutations in (("sub", substitutions(value)), ("swap", transpositions(value))):
        for pos, mutant in mutations:
            accepted = LgCode.is_valid(mutant)
            assert accepted == ref_valid(LgCode, mutant), (kind, value, mutant)
            if not 1 <= int(mutant[:2]) <= 47:
                assert not accepted
                continue
            touches_check = pos == 5 or (kind == "swap" and pos + 1 == 5)
            if touches_check:
                if kind == "sub":
                    assert not accepted
                continue
            r_new = ref_lg_remainder(mutant[:-1])
            assert r_new != r
            assert accepted == ({r, r_new} == {0, 10}), (kind, value, mutant)
            if value[-1] != "1":
                assert not accepted


def test_the_undetectable_errors_really_exist() -> None:
    # Pin down one concrete blind spot of each scheme so the properties above are not
    # vacuous: a base substitution that moves r between 0 and 1 (mod 11) or between 0
    # and 10 (LgCode) keeps the check digit, so the mutant is accepted.
    def blind_spot(cls: type[IndividualNumber | ResidentCode | LgCode]) -> tuple[str, str]:
        rng = random.Random(0)
        while True:
            value = cls.random(rng).value
            for _, mutant in substitutions(value[:-1]):
                candidate = mutant + value[-1]
                if cls.is_valid(candidate):
                    return value, candidate

    for cls in ALL_CLASSES:
        original, mutant = blind_spot(cls)
        assert original != mutant
        assert cls.is_valid(original)
        assert cls.is_valid(mutant)
        assert ref_valid(cls, mutant)
