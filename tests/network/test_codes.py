"""National code issuance: 住民票コード pools and 個人番号 derivation, change and lookup."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.audit.domain import AuditAction
from jumin.core.errors import InvalidValue, NotFound
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.db import utcnow
from jumin.network import service
from jumin.network.domain import (
    DIGIT_SPACE,
    MAX_ALLOCATION,
    IndividualNumberNotIssued,
    IssuanceExhausted,
    ResidentCodeNotAllocated,
    derive_individual_number,
    draw_resident_codes,
    first_free_individual_number,
)
from jumin.network.models import NationalIndividualNumber, NationalResidentCode

CHIYODA = LgCode("131016")
SAPPORO = LgCode("011002")
SAPPORO_CHUO = LgCode("011011")  # a designated-city ward keeps its own register
TOKYO = LgCode("130001")


def _one_code(db: Session, lg_code: LgCode = CHIYODA, seed: int | None = None) -> ResidentCode:
    rng = random.Random(seed) if seed is not None else None
    return service.allocate_resident_codes(db, lg_code=lg_code, count=1, rng=rng)[0]


def _insert_number(
    db: Session, holder: ResidentCode, number_hash: str, *, counter: int = 0, superseded: bool = False
) -> None:
    """A number row written behind the service's back, in a savepoint so a refusal is contained."""
    with db.begin_nested():
        db.add(
            NationalIndividualNumber(
                resident_code=holder.value,
                number_hash=number_hash,
                number_encrypted="(test fixture)",
                derivation_counter=counter,
                issued_at=utcnow(),
                superseded_at=utcnow() if superseded else None,
                prefecture_code="13",
            )
        )
        db.flush()


def _audit_rows(db: Session) -> list[dict[str, object]]:
    return [dict(r) for r in db.execute(text("SELECT * FROM audit_entries")).mappings()]


# --- 住民票コード allocation -------------------------------------------------------------


def test_allocated_codes_are_valid_unique_and_recorded_per_municipality(national_db: Session) -> None:
    chiyoda = service.allocate_resident_codes(national_db, lg_code=CHIYODA, count=300)
    sapporo = service.allocate_resident_codes(national_db, lg_code=SAPPORO, count=200)

    assert len(chiyoda) == 300
    assert len(sapporo) == 200
    values = [c.value for c in chiyoda + sapporo]
    assert len(set(values)) == 500
    assert all(ResidentCode.is_valid(v) for v in values)

    rows = national_db.execute(select(NationalResidentCode)).scalars().all()
    by_code = {r.code: r for r in rows}
    assert {c.value for c in chiyoda} == {c for c, r in by_code.items() if r.allocated_to_lg_code == "131016"}
    assert {c.value for c in sapporo} == {c for c, r in by_code.items() if r.allocated_to_lg_code == "011002"}
    assert {by_code[c.value].prefecture_code for c in chiyoda} == {"13"}
    assert {by_code[c.value].prefecture_code for c in sapporo} == {"01"}
    # One block per request, so an allocation can be traced as a whole.
    assert len({by_code[c.value].block_id for c in chiyoda}) == 1
    assert {by_code[c.value].block_id for c in chiyoda} != {by_code[c.value].block_id for c in sapporo}


def test_allocation_skips_codes_already_allocated(national_db: Session) -> None:
    # The same seed draws the same codes: the second request must step past all of them.
    first = service.allocate_resident_codes(national_db, lg_code=CHIYODA, count=50, rng=random.Random(7))
    second = service.allocate_resident_codes(national_db, lg_code=SAPPORO, count=50, rng=random.Random(7))

    assert len(second) == 50
    assert not {c.value for c in first} & {c.value for c in second}
    owners = {
        code: lg
        for code, lg in national_db.execute(
            select(NationalResidentCode.code, NationalResidentCode.allocated_to_lg_code)
        )
    }
    assert all(owners[c.value] == "131016" for c in first)


def test_allocation_writes_one_audit_entry_without_the_codes(national_db: Session) -> None:
    codes = service.allocate_resident_codes(national_db, lg_code=CHIYODA, count=20)

    rows = [r for r in _audit_rows(national_db) if r["action"] == AuditAction.RESIDENT_CODES_ALLOCATED]
    assert len(rows) == 1
    entry = rows[0]
    assert entry["organisation_code"] == "national"
    assert entry["actor_kind"] == "system"
    assert entry["target_kind"] == "resident_code_block"
    assert entry["detail"] == "lg_code=131016 count=20"
    assert not any(c.value in str(v) for c in codes for v in entry.values())


@pytest.mark.parametrize("count", [0, -1, MAX_ALLOCATION + 1])
def test_allocation_count_out_of_range_is_refused(national_db: Session, count: int) -> None:
    with pytest.raises(InvalidValue) as info:
        service.allocate_resident_codes(national_db, lg_code=CHIYODA, count=count)
    assert info.value.field == "count"
    assert "1〜10000" in info.value.detail
    assert national_db.execute(select(NationalResidentCode)).first() is None


def test_allocation_accepts_a_designated_city_ward(national_db: Session) -> None:
    assert len(service.allocate_resident_codes(national_db, lg_code=SAPPORO_CHUO, count=2)) == 2


def test_allocation_to_a_prefecture_or_unknown_body_is_refused(national_db: Session) -> None:
    with pytest.raises(InvalidValue, match="都道府県"):
        service.allocate_resident_codes(national_db, lg_code=TOKYO, count=1)
    with pytest.raises(NotFound):
        service.allocate_resident_codes(national_db, lg_code=LgCode.from_five_digits("13999"), count=1)


def test_a_degenerate_random_source_ends_in_an_error_not_a_loop() -> None:
    class Stuck(random.Random):
        def randrange(self, *args: object, **kwargs: object) -> int:
            return 3

    with pytest.raises(IssuanceExhausted):
        draw_resident_codes(Stuck(), 2, exclude=set())


# --- 個人番号 derivation (pure) ----------------------------------------------------------


def test_derivation_is_deterministic_for_the_same_code_key_and_counter() -> None:
    code = ResidentCode("24727059608")
    key = b"k" * 32
    assert derive_individual_number(key, code, 0) == derive_individual_number(key, code, 0)
    assert derive_individual_number(key, code, 0) != derive_individual_number(key, code, 1)


def test_different_keys_give_unrelated_numbers() -> None:
    rng = random.Random(1)
    codes = [ResidentCode.random(rng) for _ in range(200)]
    a = [derive_individual_number(b"a" * 32, c, 0).value for c in codes]
    b = [derive_individual_number(b"b" * 32, c, 0).value for c in codes]
    assert all(x != y for x, y in zip(a, b, strict=True))
    # Unrelated, not merely different: digit by digit they agree about 1 time in 10.
    agreeing = sum(dx == dy for x, y in zip(a, b, strict=True) for dx, dy in zip(x[:11], y[:11], strict=True))
    assert agreeing < 0.15 * 200 * 11
    # The resident code's digits do not show through.
    assert not any(c.value[:10] in n for c, n in zip(codes, a, strict=True))


def test_neighbouring_resident_codes_give_unrelated_numbers() -> None:
    key = b"n" * 32
    base = "247270596"
    codes = [ResidentCode(f"{base}{d}" + str(ResidentCode.check_digit(f"{base}{d}"))) for d in range(10)]
    numbers = [int(derive_individual_number(key, c, 0).value[:11]) for c in codes]
    assert min(abs(x - y) for i, x in enumerate(numbers) for y in numbers[i + 1 :]) > 1000


def test_collisions_move_to_the_next_counter_in_a_tiny_digit_space() -> None:
    key = b"c" * 32
    code = ResidentCode("24727059608")
    first = derive_individual_number(key, code, 0, digit_space=2)
    assert int(first.value[:11]) in (0, 1)

    number, counter = first_free_individual_number(
        key, code, start=0, is_taken=lambda n: n == first, digit_space=2
    )
    assert number != first
    assert counter > 0
    assert number == derive_individual_number(key, code, counter, digit_space=2)

    with pytest.raises(IssuanceExhausted):
        first_free_individual_number(key, code, start=0, is_taken=lambda n: True, digit_space=2)


def test_derivation_rejects_a_negative_counter_and_a_digit_space_too_large() -> None:
    code = ResidentCode("24727059608")
    with pytest.raises(ValueError, match="counter"):
        derive_individual_number(b"k", code, -1)
    with pytest.raises(ValueError, match="digit_space"):
        derive_individual_number(b"k", code, 0, digit_space=DIGIT_SPACE + 1)


@given(
    base=st.text(alphabet="0123456789", min_size=10, max_size=10),
    key=st.binary(min_size=1, max_size=64),
    counter=st.integers(min_value=0, max_value=10**6),
)
@settings(max_examples=500)
def test_derived_numbers_always_validate(base: str, key: bytes, counter: int) -> None:
    code = ResidentCode(base + str(ResidentCode.check_digit(base)))
    number = derive_individual_number(key, code, counter)
    assert len(number.value) == 12
    assert IndividualNumber.is_valid(number.value)


# --- 個人番号 issuance, change and lookup -------------------------------------------------


def test_individual_number_is_valid_deterministic_and_idempotent(national_db: Session) -> None:
    code = _one_code(national_db)

    number = service.individual_number_for(national_db, resident_code=code, lg_code=CHIYODA)
    again = service.individual_number_for(national_db, resident_code=code, lg_code=SAPPORO)

    assert IndividualNumber.is_valid(number.value)
    assert again == number
    assert number == derive_individual_number(service.derivation_key(), code, 0)
    rows = national_db.execute(select(NationalIndividualNumber)).scalars().all()
    assert len(rows) == 1
    assert rows[0].derivation_counter == 0
    assert rows[0].superseded_at is None
    # The person's rows stay in the partition of the code, whoever asked.
    assert rows[0].prefecture_code == "13"
    assert service.find_by_individual_number(national_db, number=number) == code


def test_never_allocated_resident_code_is_refused(national_db: Session) -> None:
    stranger = ResidentCode("24727059608")
    with pytest.raises(ResidentCodeNotAllocated) as info:
        service.individual_number_for(national_db, resident_code=stranger, lg_code=CHIYODA)
    assert info.value.status == 404
    assert info.value.field == "resident_code"
    assert "払い出されていません" in info.value.detail
    with pytest.raises(ResidentCodeNotAllocated):
        service.change_individual_number(national_db, resident_code=stranger, lg_code=CHIYODA)
    assert national_db.execute(select(NationalIndividualNumber)).first() is None


def test_a_prefecture_cannot_ask_for_an_individual_number(national_db: Session) -> None:
    code = _one_code(national_db)
    with pytest.raises(InvalidValue):
        service.individual_number_for(national_db, resident_code=code, lg_code=TOKYO)


def test_change_gives_a_new_number_and_keeps_the_old_one_taken(national_db: Session) -> None:
    code = _one_code(national_db)
    old = service.individual_number_for(national_db, resident_code=code, lg_code=CHIYODA)

    new = service.change_individual_number(national_db, resident_code=code, lg_code=CHIYODA)

    assert new != old
    assert IndividualNumber.is_valid(new.value)
    assert service.individual_number_for(national_db, resident_code=code, lg_code=CHIYODA) == new
    rows = (
        national_db.execute(select(NationalIndividualNumber).order_by(NationalIndividualNumber.id))
        .scalars()
        .all()
    )
    assert [r.derivation_counter for r in rows] == [0, 1]
    assert rows[0].superseded_at is not None
    assert rows[1].superseded_at is None
    assert rows[0].number_hash == service.number_hash(old)
    # A superseded number still names its holder, and its hash can never be inserted again.
    assert service.find_by_individual_number(national_db, number=old) == code
    assert service.find_by_individual_number(national_db, number=new) == code
    other = _one_code(national_db)
    with pytest.raises(IntegrityError):
        _insert_number(national_db, other, service.number_hash(old))


def test_changing_twice_never_returns_an_earlier_number(national_db: Session) -> None:
    code = _one_code(national_db)
    seen = [service.individual_number_for(national_db, resident_code=code, lg_code=CHIYODA)]
    for _ in range(3):
        seen.append(service.change_individual_number(national_db, resident_code=code, lg_code=CHIYODA))
    assert len(set(seen)) == 4


def test_change_before_any_number_is_refused(national_db: Session) -> None:
    code = _one_code(national_db)
    with pytest.raises(IndividualNumberNotIssued) as info:
        service.change_individual_number(national_db, resident_code=code, lg_code=CHIYODA)
    assert info.value.status == 409
    assert "指定されていない" in info.value.detail


@pytest.mark.parametrize("holder_superseded", [False, True], ids=["current-holder", "former-holder"])
def test_a_number_held_by_someone_else_is_skipped(national_db: Session, holder_superseded: bool) -> None:
    """Force the collision: another person already holds (or once held) our counter-0 number."""
    someone, person = service.allocate_resident_codes(national_db, lg_code=CHIYODA, count=2)
    key = service.derivation_key()
    taken = derive_individual_number(key, person, 0)
    _insert_number(national_db, someone, service.number_hash(taken), superseded=holder_superseded)

    number = service.individual_number_for(national_db, resident_code=person, lg_code=CHIYODA)

    assert number != taken
    assert number == derive_individual_number(key, person, 1)
    row = national_db.execute(
        select(NationalIndividualNumber).where(NationalIndividualNumber.resident_code == person.value)
    ).scalar_one()
    assert row.derivation_counter == 1
    assert service.find_by_individual_number(national_db, number=taken) == someone


def test_at_most_one_current_number_per_person_is_enforced_by_the_database(national_db: Session) -> None:
    code = _one_code(national_db)
    service.individual_number_for(national_db, resident_code=code, lg_code=CHIYODA)
    with pytest.raises(IntegrityError):
        _insert_number(national_db, code, "f" * 64, counter=9)


def test_an_unknown_number_finds_nobody(national_db: Session) -> None:
    assert service.find_by_individual_number(national_db, number=IndividualNumber("123456789018")) is None


def test_the_individual_number_never_appears_in_the_audit_log_or_in_clear(national_db: Session) -> None:
    code = _one_code(national_db)
    old = service.individual_number_for(national_db, resident_code=code, lg_code=CHIYODA)
    service.individual_number_for(national_db, resident_code=code, lg_code=CHIYODA)
    new = service.change_individual_number(national_db, resident_code=code, lg_code=CHIYODA)

    audit = _audit_rows(national_db)
    actions = [r["action"] for r in audit]
    assert actions.count(AuditAction.INDIVIDUAL_NUMBER_ISSUED) == 1
    assert actions.count(AuditAction.INDIVIDUAL_NUMBER_PROVIDED) == 1
    assert actions.count(AuditAction.INDIVIDUAL_NUMBER_CHANGED) == 1
    assert all(
        r["target_id"] == code.value for r in audit if str(r["action"]).startswith("network.individual")
    )
    for number in (old, new):
        assert not any(
            number.value in str(v) or number.value[:11] in str(v) for r in audit for v in r.values()
        )
        stored = national_db.execute(text("SELECT * FROM national_individual_numbers")).mappings()
        assert not any(number.value in str(v) for r in stored for v in r.values())
