"""Prefecture staff look up identity information: the governor's tasks, their own residents only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import OrganisationKind, Role
from jumin.network.agencies.models import AccessLogEntry
from tests import factories
from tests.network.agencies.conftest import Agency, Headers, audit_entries, national_login
from tests.network.agencies.store import Store

URL = "/network/v1/lookups"
TOKYO = "130001"
SAPPORO = "011002"


@pytest.fixture
def tokyo_clerk(national_db: Session) -> factories.Staff:
    return factories.staff(national_db, Role.CLERK, org=TOKYO, kind=OrganisationKind.PREFECTURE)


@pytest.fixture
def tokyo(client: TestClient, tokyo_clerk: factories.Staff) -> Headers:
    return national_login(client, tokyo_clerk)


def test_a_prefecture_looks_up_its_own_residents_and_is_audited(
    client: TestClient, national_db: Session, store: Store, tokyo: Headers, tokyo_clerk: factories.Staff
) -> None:
    resident = store.person()
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "passport-issuance", "resident_code": resident.resident_code},
        headers=tokyo,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "山田 太郎"
    assert r.json()["individual_number"] is None  # the task does not receive it
    assert len(r.json()["agency_code"]) == 26
    entry = audit_entries(national_db, action="network.identity_lookup", actor_id=tokyo_clerk.login)[-1]
    assert (entry.target_id, entry.purpose, entry.organisation_code) == (
        resident.resident_code,
        "passport-issuance",
        TOKYO,
    )
    log = national_db.query(AccessLogEntry).filter_by(identity_id=resident.identity_id).one()
    assert (log.organisation_code, log.actor_kind, log.task_code) == (TOKYO, "staff", "passport-issuance")


def test_a_resident_of_another_prefecture_is_refused_and_the_refusal_audited(
    client: TestClient, national_db: Session, store: Store, tokyo: Headers, tokyo_clerk: factories.Staff
) -> None:
    outsider = store.person(lg_code=SAPPORO, address="中央区北1条西2丁目")
    for path, body in (
        ("by-resident-code", {"resident_code": outsider.resident_code}),
        ("by-individual-number", {"individual_number": outsider.individual_number}),
    ):
        r = client.post(f"{URL}/{path}", json={"task": "local-tax-assessment", **body}, headers=tokyo)
        assert r.status_code == 403, r.text
        assert r.json()["type"] == "urn:jumin:problem:outside-area"
        assert r.json()["field"] == path.removeprefix("by-").replace("-", "_")
        assert "北海道" not in r.text
        assert outsider.resident_code not in r.json()["detail"]
    denied = audit_entries(national_db, action="access.denied", actor_id=tokyo_clerk.login)
    assert [d.detail for d in denied] == ["person outside prefecture 13"] * 2
    assert denied[0].target_id == "POST /network/v1/lookups/by-resident-code task=local-tax-assessment"
    assert not audit_entries(national_db, action="network.identity_lookup", actor_id=tokyo_clerk.login)
    assert national_db.query(AccessLogEntry).filter_by(identity_id=outsider.identity_id).count() == 0


def test_four_facts_shows_only_candidates_of_the_prefecture(
    client: TestClient, store: Store, tokyo: Headers, make_agency: Callable[..., Agency]
) -> None:
    store.person(name="佐藤 花子", kana="サトウ ハナコ", birth=dt.date(1975, 6, 10), sex="female")
    store.person(
        name="佐藤 花子",
        kana="サトウ ハナコ",
        birth=dt.date(1975, 6, 10),
        sex="female",
        lg_code=SAPPORO,
        address="中央区北1条西2丁目",
    )
    query = {"name_kana": "サトウ ハナコ", "birth_date": "1975-06-10", "sex": "female", "address": "東京都"}
    r = client.post(f"{URL}/by-four-facts", json={"task": "waste-management", **query}, headers=tokyo)
    assert r.status_code == 200, r.text
    found = [c["person"]["address"] for c in r.json()["candidates"]]
    assert found == ["東京都千代田区千代田1番1号"]
    # An agency (nationwide) sees both: the filter is the prefecture's, not the data's.
    agency = make_agency("soumu", "waste-management")
    everyone = client.post(
        f"{URL}/by-four-facts", json={"task": "waste-management", **query}, headers=agency.headers
    )
    assert len(everyone.json()["candidates"]) == 2


def test_as_of_and_history_only_while_the_person_lived_in_the_prefecture(
    client: TestClient, national_db: Session, store: Store, tokyo: Headers, tokyo_clerk: factories.Staff
) -> None:
    moved = store.person(since=dt.date(2010, 4, 1))
    store.change(moved, on=dt.date(2020, 7, 1), change_kind="move_in", lg_code=SAPPORO, address="中央区1番")
    task = "unknown-owner-land"
    then = client.post(
        f"{URL}/as-of",
        json={"task": task, "resident_code": moved.resident_code, "on": "2019-01-01"},
        headers=tokyo,
    )
    assert then.status_code == 200, then.text
    assert then.json()["address"] == "東京都千代田区千代田1番1号"
    now = client.post(
        f"{URL}/as-of",
        json={"task": task, "resident_code": moved.resident_code, "on": "2021-01-01"},
        headers=tokyo,
    )
    assert now.status_code == 403
    assert now.json()["type"] == "urn:jumin:problem:outside-area"
    current = client.post(
        f"{URL}/by-resident-code", json={"task": task, "resident_code": moved.resident_code}, headers=tokyo
    )
    assert current.status_code == 403
    history = client.post(
        f"{URL}/history", json={"task": task, "resident_code": moved.resident_code}, headers=tokyo
    )
    assert history.status_code == 200
    assert [(v["valid_from"], v["address"]) for v in history.json()] == [
        ("2010-04-01", "東京都千代田区千代田1番1号")
    ]
    assert len(audit_entries(national_db, action="access.denied", actor_id=tokyo_clerk.login)) == 2


def test_only_the_governors_tasks_and_only_lookups(
    client: TestClient, national_db: Session, store: Store, tokyo: Headers, tokyo_clerk: factories.Staff
) -> None:
    resident = store.person()
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": resident.resident_code},
        headers=tokyo,
    )
    assert r.status_code == 403
    assert r.json()["type"] == "urn:jumin:problem:task-not-granted"
    assert audit_entries(national_db, action="access.denied", actor_id=tokyo_clerk.login)[-1].detail == (
        "task not performed by prefectures"
    )
    # Batches, the feed and linkage stay the agencies'.
    batch = client.post(
        "/network/v1/batches",
        params={"task": "passport-issuance", "kind": "resident_code"},
        content=b"resident_code\n",
        headers={**tokyo, "Content-Type": "text/csv"},
    )
    assert batch.status_code == 403
    feed = client.get("/network/v1/feed", params={"task": "local-tax-assessment"}, headers=tokyo)
    assert feed.status_code == 403
    # A prefecture's auditor is staff of the prefecture but not a clerk: no lookups.
    auditor = factories.staff(national_db, Role.AUDITOR, org=TOKYO, kind=OrganisationKind.PREFECTURE)
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "passport-issuance", "resident_code": resident.resident_code},
        headers=national_login(client, auditor),
    )
    assert r.status_code == 403
