"""機関別符号: one code per (person, agency), unrelated across agencies, translated only for linkage."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from jumin.network.agencies.domain import AGENCY_CODE_LENGTH, derive_agency_code
from tests.network.agencies.conftest import Agency, audit_entries
from tests.network.agencies.store import Store, new_resident_code


def _code(client: TestClient, agency: Agency, task: str, resident_code: str) -> str:
    r = client.post(
        "/network/v1/lookups/by-resident-code",
        json={"task": task, "resident_code": resident_code},
        headers=agency.headers,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["agency_code"])


def test_codes_are_stable_per_agency_and_survive_code_changes(
    client: TestClient, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    pension = make_agency("nenkin", "pension-benefit")
    pension_2 = make_agency("nenkin", "pension-status-check", name="現況確認システム")
    tax = make_agency("nta", "national-tax")
    mine = _code(client, pension, "pension-benefit", person.resident_code)
    assert (
        _code(client, pension_2, "pension-status-check", person.resident_code) == mine
    )  # per agency, not per client
    theirs = _code(client, tax, "national-tax", person.resident_code)
    assert theirs != mine
    store.change(
        person, on=dt.date(2024, 1, 1), change_kind="resident_code_change", resident_code=new_resident_code()
    )
    assert _code(client, pension, "pension-benefit", person.resident_code) == mine
    r = client.post(
        "/network/v1/lookups/by-agency-code",
        json={"task": "pension-benefit", "agency_code": mine},
        headers=pension.headers,
    )
    assert r.json()["resident_code"] == person.resident_code
    # Another agency's code finds nothing for this agency.
    r = client.post(
        "/network/v1/lookups/by-agency-code",
        json={"task": "pension-benefit", "agency_code": theirs},
        headers=pension.headers,
    )
    assert r.status_code == 404


def test_translation_only_for_linkage_tasks_towards_linkage_agencies_and_audited(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    pension = make_agency("nenkin", "pension-benefit")  # linkage allowed
    tax = make_agency("nta", "national-tax")  # linkage allowed
    passport = make_agency("mofa", "passport-issuance")  # no linkage
    mine = _code(client, pension, "pension-benefit", person.resident_code)
    r = client.post(
        "/network/v1/agency-codes/translate",
        json={"task": "pension-benefit", "agency_code": mine, "target_organisation_code": "nta"},
        headers=pension.headers,
    )
    assert r.status_code == 200, r.text
    translated = r.json()["agency_code"]
    assert translated == _code(client, tax, "national-tax", person.resident_code)
    entry = audit_entries(national_db, action="network.agency_code_translated", actor_id=pension.client_id)[
        -1
    ]
    assert entry.target_id == person.resident_code
    assert "to=nta" in entry.detail
    assert mine not in entry.detail
    assert translated not in entry.detail

    passport_code = _code(client, passport, "passport-issuance", person.resident_code)
    refused = client.post(
        "/network/v1/agency-codes/translate",
        json={
            "task": "passport-issuance",
            "agency_code": passport_code,
            "target_organisation_code": "nenkin",
        },
        headers=passport.headers,
    )
    assert refused.status_code == 403
    towards_no_linkage = client.post(
        "/network/v1/agency-codes/translate",
        json={"task": "pension-benefit", "agency_code": mine, "target_organisation_code": "mofa"},
        headers=pension.headers,
    )
    assert towards_no_linkage.status_code == 403
    assert towards_no_linkage.json()["field"] == "target_organisation_code"
    details = [d.detail for d in audit_entries(national_db, action="access.denied")]
    assert "linkage not allowed" in details
    assert any(d.startswith("linkage target mofa") for d in details)


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    anchor=st.integers(min_value=1, max_value=10**12),
    a=st.text(alphabet="abcdefgh", min_size=1, max_size=8),
    b=st.text(alphabet="abcdefgh", min_size=1, max_size=8),
)
def test_codes_are_deterministic_well_formed_and_differ_between_agencies(
    key: bytes, anchor: int, a: str, b: str
) -> None:
    code_a = derive_agency_code(key, a, str(anchor))
    assert code_a == derive_agency_code(key, a, str(anchor))
    assert re.fullmatch(f"[A-Z2-7]{{{AGENCY_CODE_LENGTH}}}", code_a)
    if a != b:
        assert code_a != derive_agency_code(key, b, str(anchor))
    assert code_a != derive_agency_code(key, a, str(anchor + 1))


def test_codes_of_two_agencies_share_no_structure() -> None:
    """Across many persons, agency B's code is not a function of agency A's that one could learn."""
    key = b"k" * 32
    pairs = [
        (derive_agency_code(key, "A", str(i)), derive_agency_code(key, "B", str(i))) for i in range(2000)
    ]
    same_position = sum(x == y for a, b in pairs for x, y in zip(a, b, strict=True))
    # Independent uniform base32 characters agree with probability 1/32.
    expected = 2000 * 26 / 32
    assert abs(same_position - expected) < 5 * (expected**0.5)
    assert len({a for a, _ in pairs}) == 2000
