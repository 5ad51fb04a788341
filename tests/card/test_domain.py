"""Validity dates at the age boundaries (15, 18), 29 February births, PIN and document rules."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumin.card.domain import (
    IdentityDocument,
    NotEligible,
    add_months,
    birthday_after,
    card_valid_until,
    certificate_valid_until,
    check_auth_pin,
    check_identity_documents,
    check_signing_pin,
    fiscal_year,
    fiscal_year_label,
    is_card_number,
    new_card_number,
    renewal_opens_on,
    signing_certificate_allowed,
)
from jumin.core.errors import InvalidValue
from jumin.core.names import legal_age, nth_birthday

D = dt.date


def test_adult_card_runs_to_the_tenth_birthday_after_issue() -> None:
    # The first birthday after issue is 10 June 2025, so the tenth is in 2034.
    assert card_valid_until(D(1980, 6, 10), D(2025, 1, 15)) == D(2034, 6, 10)
    # Issued on the birthday itself: that birthday is not "after issue".
    assert card_valid_until(D(1980, 6, 10), D(2025, 6, 10)) == D(2035, 6, 10)


def test_eighteen_is_reached_the_day_before_the_birthday() -> None:
    birth = D(2007, 4, 2)
    # 1 April 2025: legally 18 (年齢計算ニ関スル法律), so a ten-year card.
    assert legal_age(birth, D(2025, 4, 1)) == 18
    assert card_valid_until(birth, D(2025, 4, 1)) == D(2034, 4, 2)
    # One day earlier: 17, a five-year card (to the 5th birthday after issue).
    assert card_valid_until(birth, D(2025, 3, 31)) == D(2029, 4, 2)


def test_signing_certificate_from_fifteen_and_never_under_guardianship() -> None:
    birth = D(2010, 4, 2)
    assert not signing_certificate_allowed(birth, D(2025, 3, 31))
    assert signing_certificate_allowed(birth, D(2025, 4, 1))
    assert not signing_certificate_allowed(birth, D(2025, 4, 1), under_guardianship=True)


def test_29_february_birthdays_fall_on_1_march_in_common_years() -> None:
    leapling = D(2004, 2, 29)
    # Issued 2025-01-10 at 20: the 10th birthday after issue is in 2034, a common year.
    assert card_valid_until(leapling, D(2025, 1, 10)) == D(2034, 3, 1)
    # ... and on 29 February when that year is a leap year.
    assert card_valid_until(leapling, D(2027, 1, 10)) == D(2036, 2, 29)
    # 28 February 2025 is before the 2025 birthday (1 March), so it is the first one.
    assert birthday_after(leapling, D(2025, 2, 28), 1) == D(2025, 3, 1)
    assert birthday_after(leapling, D(2025, 3, 1), 1) == D(2026, 3, 1)
    # Legal age still turns on 28 February (民法第143条).
    assert legal_age(leapling, D(2022, 2, 28)) == 18


def test_period_of_stay_caps_the_card_and_an_expired_one_is_refused() -> None:
    assert card_valid_until(D(1990, 5, 5), D(2025, 1, 10), D(2027, 8, 31)) == D(2027, 8, 31)
    with pytest.raises(NotEligible):
        card_valid_until(D(1990, 5, 5), D(2025, 1, 10), D(2025, 1, 9))


def test_certificates_run_to_the_fifth_birthday_never_past_the_card() -> None:
    assert certificate_valid_until(D(1980, 6, 10), D(2025, 1, 15), D(2034, 6, 10)) == D(2029, 6, 10)
    assert certificate_valid_until(D(1980, 6, 10), D(2033, 1, 15), D(2034, 6, 10)) == D(2034, 6, 10)


births = st.dates(min_value=D(1920, 1, 1), max_value=D(2024, 12, 31))


@given(birth=births, offset=st.integers(min_value=0, max_value=365 * 100))
def test_validity_is_always_a_birthday_after_issue(birth: dt.date, offset: int) -> None:
    issued = birth + dt.timedelta(days=offset)
    until = card_valid_until(birth, issued)
    assert until > issued
    # A birthday: same month and day, or 1 March for a 29 February birth in a common year.
    assert (until.month, until.day) == (birth.month, birth.day) or (
        (birth.month, birth.day) == (2, 29) and (until.month, until.day) == (3, 1)
    )
    years = 10 if legal_age(birth, issued) >= 18 else 5
    assert until.year - issued.year in (years - 1, years)
    cert = certificate_valid_until(birth, issued, until)
    assert issued < cert <= until


@given(d=st.dates(min_value=D(2000, 1, 1), max_value=D(2100, 12, 31)))
def test_renewal_opens_three_months_before_and_fiscal_years_start_in_april(d: dt.date) -> None:
    opens = renewal_opens_on(d)
    assert add_months(opens, 3) >= d - dt.timedelta(days=3)
    assert opens < d
    assert fiscal_year(d) == (d.year if d >= D(d.year, 4, 1) else d.year - 1)


def test_fiscal_year_labels_follow_the_government_naming() -> None:
    assert fiscal_year_label(2025) == "令和7年度"
    assert fiscal_year_label(2019) == "令和元年度"
    assert fiscal_year_label(1988) == "昭和63年度"
    assert fiscal_year_label(1989) == "平成元年度"


@pytest.mark.parametrize("pin", ["ABC123", "A1B2C3D4E5F6G7H8", "9ZZZZZ"])
def test_signing_pins_that_are_accepted(pin: str) -> None:
    check_signing_pin(pin)


@pytest.mark.parametrize("pin", ["ABC12", "ABCDEFG", "1234567", "abc123", "ABC-123", "A1B2C3D4E5F6G7H8I"])
def test_signing_pins_that_are_refused(pin: str) -> None:
    with pytest.raises(InvalidValue):
        check_signing_pin(pin)


@pytest.mark.parametrize("pin", ["123", "12345", "abcd", "１２３４"])
def test_auth_pins_are_four_ascii_digits(pin: str) -> None:
    check_auth_pin("0000")
    with pytest.raises(InvalidValue):
        check_auth_pin(pin)


def test_identity_documents_one_with_photo_or_two_without() -> None:
    check_identity_documents([IdentityDocument.PASSPORT])
    check_identity_documents([IdentityDocument.HEALTH_INSURANCE, IdentityDocument.PENSION_BOOK])
    with pytest.raises(InvalidValue):
        check_identity_documents([IdentityDocument.HEALTH_INSURANCE])
    with pytest.raises(InvalidValue):
        check_identity_documents([IdentityDocument.NOTICE, IdentityDocument.NOTICE])


def test_card_numbers_carry_a_check_digit() -> None:
    numbers = {new_card_number() for _ in range(200)}
    assert all(is_card_number(n) for n in numbers)
    n = numbers.pop()
    assert not is_card_number(n[:-1] + str((int(n[-1]) + 1) % 10))


@given(birth=st.dates(min_value=D(1990, 1, 1), max_value=D(2015, 12, 31)))
def test_the_age_boundaries_hold_for_every_birth_date(birth: dt.date) -> None:
    eve_18 = nth_birthday(birth, 18) - dt.timedelta(days=1)  # the day one legally turns 18
    assert card_valid_until(birth, eve_18) == birthday_after(birth, eve_18, 10)
    day_before = eve_18 - dt.timedelta(days=1)
    assert card_valid_until(birth, day_before) == birthday_after(birth, day_before, 5)
    eve_15 = nth_birthday(birth, 15) - dt.timedelta(days=1)
    assert signing_certificate_allowed(birth, eve_15)
    assert not signing_certificate_allowed(birth, eve_15 - dt.timedelta(days=1))
