"""Asking about thousands of keys at once: one array on PostgreSQL, IN lists on SQLite."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.db import is_one_of
from jumin.network.identity.models import SourceSequence
from jumin.network.models import NationalResidentCode
from jumin.network.repository import allocated_among

_AT = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def test_every_allocated_code_among_thousands_asked_is_found_and_no_other(national_db: Session) -> None:
    allocated = [f"9{i:010d}" for i in range(0, 4_000, 2)]  # 2,000 codes
    national_db.add_all(
        NationalResidentCode(
            code=c, allocated_to_lg_code="131016", prefecture_code="13", allocated_at=_AT, block_id="t"
        )
        for c in allocated
    )
    national_db.flush()
    asked = [f"9{i:010d}" for i in range(1_000, 3_500)]  # 2,500: more than one IN list
    assert allocated_among(national_db, asked) == set(allocated) & set(asked)
    assert allocated_among(national_db, []) == set()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stored=st.sets(st.integers(min_value=1, max_value=2**40), max_size=40),
    asked=st.lists(st.integers(min_value=1, max_value=2**40), max_size=2_000),
)
def test_integer_keys_select_exactly_the_stored_ones_asked_for(
    national_db: Session, stored: set[int], asked: list[int]
) -> None:
    lg = "131016"
    nested = national_db.begin_nested()
    national_db.add_all(
        SourceSequence(source_lg_code=lg, source_person_id=p, last_seq=1, prefecture_code="13", void=False)
        for p in stored
    )
    national_db.flush()
    asked = asked + sorted(stored)[: len(stored) // 2]
    conditions = is_one_of(national_db, SourceSequence.source_person_id, asked)
    found: set[int] = set()
    for among in conditions:
        found.update(
            national_db.execute(
                select(SourceSequence.source_person_id).where(SourceSequence.source_lg_code == lg, among)
            ).scalars()
        )
    assert found == stored & set(asked)
    expected_statements = 1 if national_db.get_bind().dialect.name == "postgresql" else -(-len(asked) // 900)
    assert len(conditions) == (expected_statements if asked else 0)
    nested.rollback()
