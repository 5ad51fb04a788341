"""Lookups of the agency API: purpose-bound, filtered by task, each one audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.network.agencies import service
from jumin.network.agencies.models import AccessLogEntry, AgencyCode
from tests.network.agencies.conftest import Agency, Headers, audit_entries
from tests.network.agencies.store import Store, new_resident_code

URL = "/network/v1/lookups"


def test_lookup_by_resident_code_returns_what_the_task_allows_and_is_audited(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    pension = make_agency("nenkin", "pension-benefit")
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": person.resident_code},
        headers=pension.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "山田 太郎"
    assert body["address"] == "東京都千代田区千代田1番1号"
    assert body["individual_number"] == person.individual_number  # the pension task receives it
    assert body["status"] == "live"
    assert len(body["agency_code"]) == 26
    entry = audit_entries(national_db, action="network.identity_lookup", actor_id=pension.client_id)[-1]
    assert entry.target_kind == "resident_code"
    assert entry.target_id == person.resident_code
    assert entry.purpose == "pension-benefit"
    assert entry.organisation_code == "nenkin"
    assert person.individual_number is not None
    assert person.individual_number not in entry.detail
    log = national_db.query(AccessLogEntry).filter_by(identity_id=person.identity_id).one()
    assert (log.organisation_code, log.task_code, log.query_kind) == (
        "nenkin",
        "pension-benefit",
        "resident_code",
    )

    passport = make_agency("mofa", "passport-issuance")
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "passport-issuance", "resident_code": person.resident_code},
        headers=passport.headers,
    )
    assert r.status_code == 200
    limited = r.json()
    assert limited["resident_code"] is None
    assert limited["individual_number"] is None
    assert "individual_number" not in limited["fields"]
    assert limited["name"] == "山田 太郎"
    assert limited["agency_code"] != body["agency_code"]


def test_a_task_the_client_does_not_hold_is_refused_and_the_refusal_is_kept(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    passport = make_agency("mofa", "passport-issuance")
    for task in ("pension-benefit", "no-such-task"):
        r = client.post(
            f"{URL}/by-resident-code",
            json={"task": task, "resident_code": person.resident_code},
            headers=passport.headers,
        )
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"] == "urn:jumin:problem:task-not-granted"
        assert problem["field"] == "task"
    denied = audit_entries(national_db, action="access.denied", actor_id=passport.client_id)
    assert [d.detail for d in denied] == ["task not granted", "unknown task"]
    assert denied[0].target_id.startswith("POST /network/v1/lookups/by-resident-code task=pension-benefit")
    assert not audit_entries(national_db, action="network.identity_lookup", actor_id=passport.client_id)


def test_individual_number_as_key_only_for_tasks_that_allow_it(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    assert person.individual_number is not None
    tax = make_agency("nta", "national-tax")
    r = client.post(
        f"{URL}/by-individual-number",
        json={"task": "national-tax", "individual_number": person.individual_number},
        headers=tax.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["resident_code"] == person.resident_code
    entry = audit_entries(national_db, action="network.identity_lookup", actor_id=tax.client_id)[-1]
    assert entry.detail == "query=individual_number"
    assert person.individual_number not in entry.detail + entry.target_id

    passport = make_agency("mofa", "passport-issuance")
    r = client.post(
        f"{URL}/by-individual-number",
        json={"task": "passport-issuance", "individual_number": person.individual_number},
        headers=passport.headers,
    )
    assert r.status_code == 403
    assert r.json()["field"] == "individual_number"
    assert audit_entries(national_db, action="access.denied", actor_id=passport.client_id)[-1].detail == (
        "individual number key not allowed"
    )


def test_a_miss_is_a_404_and_still_audited(
    client: TestClient, national_db: Session, make_agency: Callable[..., Agency]
) -> None:
    pension = make_agency("nenkin", "pension-benefit")
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": new_resident_code()},
        headers=pension.headers,
    )
    assert r.status_code == 404
    assert r.json()["type"] == "urn:jumin:problem:person-not-found"
    miss = audit_entries(national_db, action="network.identity_lookup", actor_id=pension.client_id)[-1]
    assert miss.detail == "query=resident_code persons=0"


def test_a_bad_resident_code_is_a_400_naming_the_field(
    client: TestClient, make_agency: Callable[..., Agency]
) -> None:
    pension = make_agency("nenkin", "pension-benefit")
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": "12345678901"},
        headers=pension.headers,
    )
    assert r.status_code == 400
    assert r.json()["field"] == "resident_code"


def test_four_facts_returns_scored_candidates_with_their_explanation(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    exact = store.person(name="佐藤 花子", kana="サトウ ハナコ", birth=dt.date(1975, 6, 10), sex="female")
    typo_date = store.person(
        name="佐藤 花子",
        kana="サトウ ハナコ",
        birth=dt.date(1975, 10, 6),
        sex="female",
        lg_code="011002",
        address="中央区北1条西2丁目",
    )
    married = store.person(name="鈴木 花子", kana="スズキ ハナコ", birth=dt.date(1975, 6, 10), sex="female")
    store.person(name="佐藤 一郎", kana="サトウ イチロウ", birth=dt.date(1950, 1, 1), sex="male")  # unrelated
    pension = make_agency("nenkin", "pension-benefit")
    r = client.post(
        f"{URL}/by-four-facts",
        json={
            "task": "pension-benefit",
            "name_kana": "さとう　はなこ",  # hiragana, full-width space: normalized
            "birth_date": "昭和50年6月10日",
            "sex": "女",
            "address": "東京都千代田区",
        },
        headers=pension.headers,
    )
    assert r.status_code == 200, r.text
    found = r.json()
    candidates = found["candidates"]
    by_code = {c["person"]["resident_code"]: c for c in candidates}
    assert candidates[0]["person"]["resident_code"] == exact.resident_code
    assert candidates[0]["score"] == 100
    assert candidates[0]["exact"] is True
    assert by_code[typo_date.resident_code]["facts"]["birth_date"] == "day_month_swapped"
    assert by_code[typo_date.resident_code]["exact"] is False
    assert by_code[married.resident_code]["facts"]["name"] == "given_name"
    assert "名のみ一致" in by_code[married.resident_code]["explanation"]
    assert all(c["score"] >= 50 for c in candidates)
    assert len(candidates) == 3
    assert found["scoring"]["name"]["exact"] == 40
    entries = audit_entries(national_db, action="network.identity_lookup", actor_id=pension.client_id)
    assert {e.target_id for e in entries} == {
        exact.resident_code,
        typo_date.resident_code,
        married.resident_code,
    }
    assert {e.detail for e in entries} == {"query=four_facts"}


def test_identity_as_of_a_date_and_the_change_history(
    client: TestClient, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person(since=dt.date(2010, 4, 1))
    store.change(
        person, on=dt.date(2020, 7, 1), change_kind="move_in", lg_code="011002", address="中央区北1条西2丁目"
    )
    tax = make_agency("local", "local-tax-assessment")
    before = client.post(
        f"{URL}/as-of",
        json={"task": "local-tax-assessment", "resident_code": person.resident_code, "on": "2019-01-01"},
        headers=tax.headers,
    )
    assert before.status_code == 200, before.text
    assert before.json()["address"] == "東京都千代田区千代田1番1号"
    assert before.json()["valid_to"] == "2020-07-01"
    after = client.post(
        f"{URL}/as-of",
        json={"task": "local-tax-assessment", "resident_code": person.resident_code, "on": "2020-07-01"},
        headers=tax.headers,
    )
    assert after.json()["address"].startswith("北海道札幌市")
    too_early = client.post(
        f"{URL}/as-of",
        json={"task": "local-tax-assessment", "resident_code": person.resident_code, "on": "2001-01-01"},
        headers=tax.headers,
    )
    assert too_early.status_code == 404
    history = client.post(
        f"{URL}/history",
        json={"task": "local-tax-assessment", "resident_code": person.resident_code},
        headers=tax.headers,
    )
    assert [v["change_kind"] for v in history.json()] == ["move_in", "move_in"]
    assert all(v["individual_number"] is None for v in history.json())

    passport = make_agency("mofa", "passport-issuance")  # no history for this task
    refused = client.post(
        f"{URL}/as-of",
        json={"task": "passport-issuance", "resident_code": person.resident_code, "on": "2019-01-01"},
        headers=passport.headers,
    )
    assert refused.status_code == 403


def test_a_changed_resident_code_still_finds_the_person(
    client: TestClient, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    old = person.resident_code
    store.change(
        person, on=dt.date(2024, 1, 10), change_kind="resident_code_change", resident_code=new_resident_code()
    )
    pension = make_agency("nenkin", "pension-benefit")
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": old},
        headers=pension.headers,
    )
    assert r.status_code == 200
    assert r.json()["resident_code"] == person.resident_code != old
    assert r.json()["individual_number"] == person.individual_number


def test_staff_cannot_use_agency_routes_and_agencies_cannot_use_staff_routes(
    client: TestClient, operator: Headers, make_agency: Callable[..., Agency]
) -> None:
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": new_resident_code()},
        headers=operator,
    )
    assert r.status_code == 403
    pension = make_agency("nenkin", "pension-benefit")
    r = client.post(
        f"/network/v1/agency-clients/{pension.client_id}/tasks",
        json={"task": "national-tax"},
        headers=pension.headers,
    )
    assert r.status_code == 403
    assert client.post(f"{URL}/by-resident-code", json={"task": "x", "resident_code": "1"}).status_code == 401


def test_the_residents_access_log_lists_who_when_and_for_which_task(
    client: TestClient,
    national_db: Session,
    store: Store,
    make_agency: Callable[..., Agency],
    auditor: Headers,
) -> None:
    person = store.person()
    pension = make_agency("nenkin", "pension-benefit")
    passport = make_agency("mofa", "passport-issuance")
    for agency, task in ((pension, "pension-benefit"), (passport, "passport-issuance")):
        r = client.post(
            f"{URL}/by-resident-code",
            json={"task": task, "resident_code": person.resident_code},
            headers=agency.headers,
        )
        assert r.status_code == 200
    r = client.get(f"/network/v1/access-log/{person.resident_code}", headers=auditor)
    assert r.status_code == 200, r.text
    log = r.json()
    assert [(e["organisation_code"], e["task_code"]) for e in log] == [
        ("mofa", "passport-issuance"),
        ("nenkin", "pension-benefit"),
    ]
    assert log[0]["actor_id"] == passport.client_id
    assert log[0]["task_title"] == "一般旅券の発給"
    assert (
        audit_entries(national_db, action="network.access_log_viewed")[-1].target_id == person.resident_code
    )
    # An agency may not read anyone's access log.
    assert (
        client.get(f"/network/v1/access-log/{person.resident_code}", headers=pension.headers).status_code
        == 403
    )


def test_granting_tasks_through_the_api(
    client: TestClient, national_db: Session, operator: Headers, make_agency: Callable[..., Agency]
) -> None:
    created = client.post(
        "/network/v1/agency-clients",
        json={
            "organisation_code": "hellowork",
            "organisation_name": "公共職業安定所",
            "name": "給付システム",
        },
        headers=operator,
    )
    assert created.status_code == 201, created.text
    client_id = created.json()["client_id"]
    r = client.post(
        f"/network/v1/agency-clients/{client_id}/tasks",
        json={"task": "employment-insurance"},
        headers=operator,
    )
    assert r.status_code == 201, r.text
    assert r.json()["task_title"] == "雇用保険の失業等給付"
    assert (
        client.post(
            f"/network/v1/agency-clients/{client_id}/tasks", json={"task": "nope"}, headers=operator
        ).json()["field"]
        == "task"
    )
    listed = client.get(f"/network/v1/agency-clients/{client_id}/tasks", headers=operator).json()
    assert [(g["task_code"], g["active"]) for g in listed] == [("employment-insurance", True)]
    revoked = client.delete(
        f"/network/v1/agency-clients/{client_id}/tasks/employment-insurance", headers=operator
    )
    assert revoked.json()["active"] is False
    assert audit_entries(national_db, action="network.agency_task_granted", target_id=client_id)
    assert audit_entries(national_db, action="network.agency_task_revoked", target_id=client_id)
    unknown = client.post(
        "/network/v1/agency-clients/agc_0000/tasks", json={"task": "national-tax"}, headers=operator
    )
    assert unknown.status_code == 404
    tasks = client.get("/network/v1/tasks").json()
    assert {"pension-benefit", "unknown-owner-land", "forest-land-register", "waste-management"} <= {
        t["code"] for t in tasks
    }


def test_a_revoked_task_is_refused_on_the_very_next_lookup(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    """Grants are read on every request, never from a copy: a revocation counts at once."""
    person = store.person()
    pension = make_agency("nenkin", "pension-benefit")
    body = {"task": "pension-benefit", "resident_code": person.resident_code}
    assert client.post(f"{URL}/by-resident-code", json=body, headers=pension.headers).status_code == 200
    service.revoke_task(national_db, actor=None, client_id=pension.client_id, task_code="pension-benefit")
    refused = client.post(f"{URL}/by-resident-code", json=body, headers=pension.headers)
    assert refused.status_code == 403
    assert audit_entries(national_db, action="access.denied", actor_id=pension.client_id)[-1].detail == (
        "task not granted"
    )
    service.grant_task(national_db, actor=None, client_id=pension.client_id, task_code="pension-benefit")
    assert client.post(f"{URL}/by-resident-code", json=body, headers=pension.headers).status_code == 200


def test_a_lookup_writes_its_agency_code_audit_entry_and_access_row_together(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    """On PostgreSQL the three are one statement; on SQLite three; the rows agree either way."""
    person = store.person()
    pension = make_agency("nenkin", "pension-benefit")
    r = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": person.resident_code},
        headers=pension.headers,
    )
    assert r.status_code == 200, r.text
    entry = audit_entries(national_db, action="network.identity_lookup", actor_id=pension.client_id)[-1]
    log = national_db.query(AccessLogEntry).filter_by(identity_id=person.identity_id).one()
    assert log.audit_entry_id == entry.id
    assert (log.resident_code, log.actor_id, log.purpose) == (
        person.resident_code,
        pension.client_id,
        "pension-benefit",
    )
    code = national_db.query(AgencyCode).filter_by(organisation_code="nenkin", identity_id=person.identity_id)
    assert code.one().agency_code == r.json()["agency_code"]
    # The same person again: the code is kept once, each read gets its own entry and row.
    again = client.post(
        f"{URL}/by-resident-code",
        json={"task": "pension-benefit", "resident_code": person.resident_code},
        headers=pension.headers,
    )
    assert again.json()["agency_code"] == r.json()["agency_code"]
    assert code.count() == 1
    rows = national_db.query(AccessLogEntry).filter_by(identity_id=person.identity_id).all()
    assert len({row.audit_entry_id for row in rows}) == 2
