"""Every rule of the register refuses bad input with a clear problem and changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from jumin.registry.models import OutboxMessage, PersonVersion, RegistryEvent
from tests.registry.conftest import Headers, Post, days_ago, family_from_abroad, member, today


def _counts(db: Session) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        db.execute(select(func.count()).select_from(t)).scalar_one()
        for t in (RegistryEvent, PersonVersion, OutboxMessage)
    )


def _ref(get: Any, headers: Headers, person_id: int) -> dict[str, int]:
    return {"person_id": person_id, "version": get(f"/registry/persons/{person_id}", headers)["version"]}


def test_future_effective_dates_are_refused_except_a_planned_move_out(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    father = family_from_abroad(post, chiyoda)["person_ids"][0]
    before = _counts(db)
    tomorrow = (today() + dt.timedelta(days=1)).isoformat()
    problem = post(
        "move-within",
        {"effective_on": tomorrow, "persons": [_ref(get, chiyoda, father)], "address": {"line": "x"}},
        chiyoda,
        status=400,
    )
    assert (problem["field"], problem["title"]) == ("effective_on", "入力値が不正です")
    assert "未来" in problem["detail"]
    assert _counts(db) == before


def test_dates_are_accepted_in_wareki(post: Post, get: Any, chiyoda: Headers) -> None:
    out = post(
        "move-in-from-abroad",
        {
            "effective_on": "令和7年4月1日",
            "notified_on": "R7.4.3",
            "address": {"line": "一番町"},
            "previous_address": "フランス",
            "members": [member(birth="昭和55年4月1日")],
        },
        chiyoda,
    )
    record = get(f"/registry/persons/{out['person_ids'][0]}", chiyoda)
    assert (record["became_resident_on"], record["birth_date"], record["notified_on"]) == (
        "2025-04-01",
        "1980-04-01",
        "2025-04-03",
    )


def test_a_wareki_date_outside_its_era_is_a_422_naming_the_field(
    post: Post, chiyoda: Headers, db: Session
) -> None:
    before = _counts(db)
    problem = post(
        "move-in-from-abroad",
        {
            "effective_on": "令和元年4月30日",
            "address": {"line": "一番町"},
            "previous_address": "フランス",
            "members": [member()],
        },
        chiyoda,
        status=422,
    )
    assert problem["field"] == "effective_on"
    assert "令和" in problem["errors"][0]["message"]
    assert _counts(db) == before


def test_identifiers_must_have_valid_check_digits(post: Post, chiyoda: Headers, db: Session) -> None:
    before = _counts(db)
    body = {
        "effective_on": days_ago(1),
        "address": {"line": "一番町"},
        "previous_address": "大阪府",
        "members": [member(resident_code="24727059609")],
    }
    problem = post("move-in", body, chiyoda, status=422)
    assert problem["field"] == "members.0.resident_code"
    body["members"] = [member(resident_code="24727059608", individual_number="123456789012")]
    problem = post("move-in", body, chiyoda, status=422)
    assert problem["field"] == "members.0.individual_number"
    assert _counts(db) == before


def test_a_stale_version_is_a_409_and_changes_nothing(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    father = family_from_abroad(post, chiyoda)["person_ids"][0]
    seen = _ref(get, chiyoda, father)
    post("name-change", {"effective_on": days_ago(1), "person": seen, "family_name": "田中"}, chiyoda)
    before = _counts(db)
    problem = post(
        "name-change",
        {"effective_on": days_ago(1), "person": seen, "family_name": "佐藤"},
        chiyoda,
        status=409,
    )
    assert problem["type"] == "urn:jumin:problem:stale-version"
    assert problem["title"] == "他の職員が先にこの記録を更新しました"
    assert _counts(db) == before
    assert get(f"/registry/persons/{father}", chiyoda)["family_name"] == "田中"


def test_a_clerk_sees_only_their_own_municipality(
    post: Post, get: Any, chiyoda: Headers, sapporo: Headers
) -> None:
    out = family_from_abroad(post, chiyoda)
    father = out["person_ids"][0]
    get(f"/registry/persons/{father}", sapporo, status=404)
    get(f"/registry/households/{out['household_ids'][0]}", sapporo, status=404)
    assert get("/registry/persons", sapporo, kana="ヤマダ")["total"] == 0
    problem = post(
        "name-change",
        {"effective_on": days_ago(1), "person": {"person_id": father, "version": 1}, "family_name": "x"},
        sapporo,
        status=404,
    )
    assert problem["field"] == "person_id"


def test_staff_of_other_bodies_cannot_record_events(client: TestClient, db: Session, post: Post) -> None:
    from jumin.accounts.domain import Role
    from tests import factories

    operator = factories.auth(client, factories.operator(db))
    problem = post(
        "move-within",
        {"effective_on": days_ago(1), "persons": [{"person_id": 1, "version": 1}], "address": {"line": "x"}},
        operator,
        status=403,
    )
    assert problem["type"] == "urn:jumin:problem:access-denied"
    auditor = factories.auth(client, factories.staff(db, Role.AUDITOR))
    assert post(
        "move-within",
        {"effective_on": days_ago(1), "persons": [{"person_id": 1, "version": 1}], "address": {"line": "x"}},
        auditor,
        status=403,
    )


def test_a_new_household_needs_exactly_one_head(post: Post, chiyoda: Headers, db: Session) -> None:
    before = _counts(db)
    body = {
        "effective_on": days_ago(1),
        "address": {"line": "一番町"},
        "previous_address": "フランス",
        "members": [
            member(relationship="世帯主"),
            member("山田", "次郎", ("ヤマダ", "ジロウ"), relationship="世帯主"),
        ],
    }
    problem = post("move-in-from-abroad", body, chiyoda, status=409)
    assert "世帯主" in problem["detail"]
    assert _counts(db) == before


def test_birth_date_after_the_event_is_refused(post: Post, chiyoda: Headers) -> None:
    body = {
        "effective_on": days_ago(10),
        "address": {"line": "一番町"},
        "previous_address": "フランス",
        "members": [member(birth=days_ago(5))],
    }
    assert post("move-in-from-abroad", body, chiyoda, status=400)["field"] == "members.0.birth_date"


def test_search_by_kana_code_birth_date_and_address_with_paging(
    post: Post, get: Any, chiyoda: Headers
) -> None:
    family_from_abroad(post, chiyoda)
    family_from_abroad(post, chiyoda, line="神田三丁目")
    assert get("/registry/persons", chiyoda, kana="やまだ")["total"] == 6  # hiragana finds katakana
    assert get("/registry/persons", chiyoda, kana="ﾔﾏﾀﾞ ﾊﾅｺ")["total"] == 2  # half-width, with a space
    page = get("/registry/persons", chiyoda, kana="ヤマダ", limit=4, offset=4)
    assert (page["total"], len(page["results"])) == (6, 2)
    assert get("/registry/persons", chiyoda, address="神田")["total"] == 3
    assert get("/registry/persons", chiyoda, birth_date="平成24年2月29日")["total"] == 2
    code = page["results"][0]["resident_code"]
    assert [r["resident_code"] for r in get("/registry/persons", chiyoda, resident_code=code)["results"]] == [
        code
    ]
    assert get("/registry/persons", chiyoda, status=400)["field"] == "kana"


def test_kana_prefixes_match_exactly_in_a_prepared_statements_plan(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    family_from_abroad(post, chiyoda)
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    for _ in range(7):  # past psycopg's threshold for preparing a statement
        assert get("/registry/persons", chiyoda, kana="ヤマ")["total"] == 3
        assert get("/registry/persons", chiyoda, kana="ヤマダイチロウ")["total"] == 1
        # ダ + 1 is チ: the exclusive upper end of the range for ヤマダ matches nobody.
        assert get("/registry/persons", chiyoda, kana="ヤマチ")["total"] == 0
        assert get("/registry/persons", chiyoda, kana="ハナコ")["total"] == 0  # prefixes, not infixes
    # Prefixes whose last character has no plain successor: before the surrogates, and the last.
    assert get("/registry/persons", chiyoda, kana="ヤマ\ud7ff")["total"] == 0
    assert get("/registry/persons", chiyoda, kana="ヤマ\U0010ffff")["total"] == 0


def test_reads_are_audited_with_their_purpose(post: Post, get: Any, chiyoda: Headers, db: Session) -> None:
    from jumin.audit.models import AuditEntry

    father = family_from_abroad(post, chiyoda)["person_ids"][0]
    get(f"/registry/persons/{father}", chiyoda, purpose="国民健康保険の資格確認")
    entry = db.query(AuditEntry).filter_by(action="registry.read", target_id=str(father)).one()
    assert entry.purpose == "国民健康保険の資格確認"


def test_the_outbox_is_ordered_per_person_and_never_shows_the_number(
    post: Post, get: Any, chiyoda: Headers, client: TestClient
) -> None:
    father = family_from_abroad(post, chiyoda, moved=60)["person_ids"][0]
    post(
        "move-within",
        {"effective_on": days_ago(20), "persons": [_ref(get, chiyoda, father)], "address": {"line": "九段"}},
        chiyoda,
    )
    post(
        "name-change",
        {"effective_on": days_ago(10), "person": _ref(get, chiyoda, father), "family_name": "田中"},
        chiyoda,
    )
    number = get(f"/registry/persons/{father}", chiyoda, show_individual_number="true")["individual_number"]
    messages = [m for m in get("/registry/outbox", chiyoda) if m["person_id"] == father]
    assert [m["seq"] for m in messages] == [1, 2, 3]
    assert [m["payload"]["change_kind"] for m in messages] == [
        "move_in_from_abroad",
        "move_within",
        "name_change",
    ]
    assert messages[-1]["payload"]["identity"]["name"] == "田中　太郎"
    assert len({m["idempotency_key"] for m in messages}) == 3
    assert number not in client.get("/registry/outbox", headers=chiyoda).text


def test_only_notifications_due_from_residents_can_be_late(post: Post, get: Any, chiyoda: Headers) -> None:
    father = family_from_abroad(post, chiyoda, moved=60)["person_ids"][0]
    corrected = post(
        "clerical-correction",
        {"effective_on": days_ago(60), "person": _ref(get, chiyoda, father), "items": {"given_name": "太朗"}},
        chiyoda,
    )
    assert corrected["late"] is False
    moved = post(
        "move-within",
        {"effective_on": days_ago(15), "persons": [_ref(get, chiyoda, father)], "address": {"line": "九段"}},
        chiyoda,
    )
    assert moved["late"] is True
