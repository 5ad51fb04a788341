"""One scenario per event kind, through the API, checking what the record then says."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.network_client import InProcessNetworkClient
from jumin.registry.models import Household, OutboxMessage
from tests.registry.conftest import CHIYODA, Headers, Post, days_ago, family_from_abroad, member, today


def _person(get: Any, headers: Headers, person_id: int, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = get(f"/registry/persons/{person_id}", headers, **params)
    return result


def test_move_in_from_abroad_founds_a_household_with_new_codes(
    post: Post, get: Any, chiyoda: Headers
) -> None:
    out = family_from_abroad(post, chiyoda)
    assert out["kind"] == "move_in_from_abroad"
    assert out["label"] == "国外転入"
    assert out["late"] is False
    father, mother, child = out["person_ids"]
    record = _person(get, chiyoda, father)
    assert record["name"] == "山田　太郎"
    assert record["name_kana"] == "ヤマダ　タロウ"
    assert record["romaji"] == "YAMADA TARO"
    assert record["birth_date_wareki"] == "昭和55年4月1日"
    assert record["relationship"] == "世帯主"
    assert record["address_text"] == "千代田一丁目1番1号 千代田ハイツ101"
    assert record["previous_address"] == "アメリカ合衆国"
    assert record["became_resident_on"] == days_ago(30)
    ResidentCode.parse(record["resident_code"])
    assert record["individual_number"].startswith("********")
    household = get(f"/registry/households/{record['household_id']}", chiyoda)
    assert household["head_person_id"] == father
    assert [m["person_id"] for m in household["members"]] == [father, mother, child]


def test_individual_number_is_shown_only_on_request_and_audited(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    from jumin.audit.models import AuditEntry

    father = family_from_abroad(post, chiyoda)["person_ids"][0]
    full = _person(get, chiyoda, father, show_individual_number="true", purpose="児童手当の認定")
    IndividualNumber.parse(full["individual_number"])
    shown = (
        db.query(AuditEntry).filter_by(action="registry.individual_number_shown", target_id=str(father)).one()
    )
    assert shown.purpose == "児童手当の認定"
    assert full["individual_number"] not in " ".join(e.detail + e.target_id for e in db.query(AuditEntry))


def test_move_in_with_certificate_keeps_the_codes_it_brings(
    post: Post, get: Any, chiyoda: Headers, network: InProcessNetworkClient
) -> None:
    # The person was given the code in Osaka; the network knows it and its number.
    code = str(network.allocate_resident_codes(lg_code=LgCode("271276"), count=1)[0])
    number = str(network.individual_number_for(resident_code=ResidentCode(code), lg_code=LgCode("271276")))
    out = post(
        "move-in",
        {
            "effective_on": days_ago(3),
            "address": {"line": "神田神保町二丁目2番"},
            "previous_address": "大阪府大阪市北区梅田一丁目1番",
            "origin_lg_code": "271276",
            "members": [member("佐藤", "健", ("サトウ", "ケン"), resident_code=code)],
        },
        chiyoda,
    )
    record = _person(get, chiyoda, out["person_ids"][0], show_individual_number="true")
    assert record["resident_code"] == code
    assert record["individual_number"] == number


def test_move_in_needs_the_resident_code_from_the_certificate(post: Post, chiyoda: Headers) -> None:
    body = {
        "effective_on": days_ago(3),
        "address": {"line": "神田一丁目"},
        "previous_address": "大阪府",
        "members": [member()],
    }
    problem = post("move-in", body, chiyoda, status=400)
    assert problem["field"] == "members.0.resident_code"


def test_card_holder_move_in_needs_the_individual_number(post: Post, chiyoda: Headers) -> None:
    body = {
        "effective_on": days_ago(3),
        "address": {"line": "神田一丁目"},
        "previous_address": "大阪府",
        "members": [member(resident_code="24727059608")],
    }
    assert post("move-in-card-holder", body, chiyoda, status=400)["field"] == "members.0.individual_number"
    body["members"][0]["individual_number"] = "123456789018"  # type: ignore[index]
    assert post("move-in-card-holder", body, chiyoda)["kind"] == "move_in_card_holder"


def test_birth_joins_the_household(post: Post, get: Any, chiyoda: Headers) -> None:
    family = family_from_abroad(post, chiyoda)
    household_id = family["household_ids"][0]
    household = get(f"/registry/households/{household_id}", chiyoda)
    born = days_ago(5)
    out = post(
        "birth",
        {
            "effective_on": born,
            "child": member(
                "山田", "さくら", ("ヤマダ", "サクラ"), birth=born, sex="female", relationship="子"
            ),
            "household": {"household_id": household_id, "version": household["version"]},
        },
        chiyoda,
    )
    baby = _person(get, chiyoda, out["person_ids"][0])
    assert baby["address_line"] == "千代田一丁目1番1号"
    assert baby["household_id"] == household_id
    assert len(get(f"/registry/households/{household_id}", chiyoda)["members"]) == 4


def test_move_within_changes_the_address_from_its_date(post: Post, get: Any, chiyoda: Headers) -> None:
    father, mother, child = family_from_abroad(post, chiyoda, moved=60)["person_ids"]
    versions = [_person(get, chiyoda, p)["version"] for p in (father, mother, child)]
    post(
        "move-within",
        {
            "effective_on": days_ago(10),
            "persons": [
                {"person_id": p, "version": v} for p, v in zip((father, mother, child), versions, strict=True)
            ],
            "address": {"line": "九段南一丁目2番"},
        },
        chiyoda,
    )
    now = _person(get, chiyoda, father)
    assert now["address_line"] == "九段南一丁目2番"
    assert now["address_set_on"] == days_ago(10)
    before = _person(get, chiyoda, father, on=days_ago(11))
    assert before["address_line"] == "千代田一丁目1番1号"


def test_late_notification_is_accepted_and_flagged(post: Post, get: Any, chiyoda: Headers) -> None:
    father = family_from_abroad(post, chiyoda, moved=60)["person_ids"][0]
    version = _person(get, chiyoda, father)["version"]
    out = post(
        "move-within",
        {
            "effective_on": days_ago(40),
            "notified_on": days_ago(0),
            "persons": [{"person_id": father, "version": version}],
            "address": {"line": "九段南一丁目2番"},
        },
        chiyoda,
    )
    assert out["late"] is True
    events = get(f"/registry/persons/{father}/events", chiyoda)
    assert [e["late"] for e in events] == [False, True]


def _refs(get: Any, headers: Headers, *person_ids: int) -> list[dict[str, int]]:
    return [{"person_id": p, "version": _person(get, headers, p)["version"]} for p in person_ids]


def _household_ref(get: Any, headers: Headers, household_id: int) -> dict[str, int]:
    return {
        "household_id": household_id,
        "version": get(f"/registry/households/{household_id}", headers)["version"],
    }


def test_move_out_is_planned_until_its_date_and_tells_the_destination(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    family = family_from_abroad(post, chiyoda, moved=90)
    ids = family["person_ids"]
    planned = (today() + dt.timedelta(days=7)).isoformat()
    out = post(
        "move-out",
        {
            "effective_on": planned,
            "persons": _refs(get, chiyoda, *ids),
            "destination": "北海道札幌市中央区北1条西2丁目",
            "destination_lg_code": "011002",
        },
        chiyoda,
    )
    assert out["late"] is False
    now = _person(get, chiyoda, ids[0])
    assert now["status"] == "live"
    assert now["planned_move_out_on"] == planned
    assert now["planned_move_out_destination"] == "北海道札幌市中央区北1条西2丁目"
    after = _person(get, chiyoda, ids[0], on=planned)
    assert after["status"] == "removed"
    assert after["removal_reason"] == "転出"
    notices = db.query(OutboxMessage).filter_by(kind="move_out_certificate").all()
    assert sorted(n.person_id for n in notices) == sorted(ids)
    assert {n.destination_lg_code for n in notices} == {"011002"}


def test_moving_to_another_municipality_closes_the_origin(
    post: Post, get: Any, chiyoda: Headers, sapporo: Headers
) -> None:
    father = family_from_abroad(post, chiyoda, moved=90)["person_ids"][0]
    record = _person(get, chiyoda, father, show_individual_number="true")
    household = _household_ref(get, chiyoda, record["household_id"])
    others = [
        m["person_id"] for m in get(f"/registry/households/{household['household_id']}", chiyoda)["members"]
    ]
    post(
        "move-out",
        {
            "effective_on": days_ago(5),
            "notified_on": days_ago(6),
            "persons": _refs(get, chiyoda, *others),
            "destination": "札幌市中央区",
            "destination_lg_code": "011002",
        },
        chiyoda,
    )
    arrived = post(
        "move-in",
        {
            "effective_on": days_ago(5),
            "address": {"line": "北1条西2丁目"},
            "previous_address": "東京都千代田区千代田一丁目1番1号",
            "origin_lg_code": CHIYODA,
            "members": [
                member(resident_code=record["resident_code"], individual_number=record["individual_number"]),
            ],
        },
        sapporo,
    )
    assert _person(get, sapporo, arrived["person_ids"][0])["previous_address"].startswith("東京都")
    # Chiyoda's record is now a 除票, and Chiyoda's clerk cannot see Sapporo's record.
    closed = _person(get, chiyoda, father)
    assert closed["status"] == "removed"
    get(f"/registry/persons/{arrived['person_ids'][0]}", chiyoda, status=404)
    events = [e["kind"] for e in get(f"/registry/persons/{father}/events", chiyoda)]
    assert events == ["move_in_from_abroad", "move_out", "move_out_confirmed"]


def test_cancelling_the_move_in_reopens_the_origins_move_out(
    post: Post, get: Any, chiyoda: Headers, sapporo: Headers
) -> None:
    """The person is never live nowhere: the 転入通知 is withdrawn with the move-in."""
    father = family_from_abroad(post, chiyoda, moved=90)["person_ids"][0]
    record = _person(get, chiyoda, father, show_individual_number="true")
    household_id = record["household_id"]
    everyone = [m["person_id"] for m in get(f"/registry/households/{household_id}", chiyoda)["members"]]
    post(
        "move-out",
        {
            "effective_on": days_ago(5),
            "persons": _refs(get, chiyoda, *everyone),
            "destination": "札幌市中央区",
            "destination_lg_code": "011002",
        },
        chiyoda,
    )
    move_in = {
        "effective_on": days_ago(5),
        "address": {"line": "北1条西2丁目"},
        "previous_address": "東京都千代田区千代田一丁目1番1号",
        "origin_lg_code": CHIYODA,
        "members": [
            member(resident_code=record["resident_code"], individual_number=record["individual_number"])
        ],
    }
    arrived = post("move-in", move_in, sapporo)
    newcomer = arrived["person_ids"][0]
    assert _person(get, chiyoda, father)["status"] == "removed"
    post(
        "cancellation",
        {"event_id": arrived["event_id"], "reason": "誤った転入", "versions": _refs(get, sapporo, newcomer)},
        sapporo,
    )
    kinds = [
        (e["kind"], e["cancelled_by_event_id"] is not None)
        for e in get(f"/registry/persons/{father}/events", chiyoda)
    ]
    assert kinds == [
        ("move_in_from_abroad", False),
        ("move_out", False),
        ("move_out_confirmed", True),
        ("cancellation", False),
    ]
    # Back to a planned move-out: Sapporo can record the corrected move-in, which closes Chiyoda again.
    post("move-in", move_in | {"address": {"line": "北2条西3丁目"}}, sapporo)
    assert _person(get, chiyoda, father)["status"] == "removed"


def test_no_second_live_record_without_a_move_out(
    post: Post, get: Any, chiyoda: Headers, sapporo: Headers
) -> None:
    father = family_from_abroad(post, chiyoda)["person_ids"][0]
    record = _person(get, chiyoda, father, show_individual_number="true")
    problem = post(
        "move-in",
        {
            "effective_on": days_ago(1),
            "address": {"line": "北1条西2丁目"},
            "previous_address": "東京都千代田区",
            "members": [
                member(resident_code=record["resident_code"], individual_number=record["individual_number"])
            ],
        },
        sapporo,
        status=409,
    )
    assert problem["type"] == "urn:jumin:problem:rule-violation"
    assert problem["field"] == "resident_code"
    assert get("/registry/persons", sapporo, kana="ヤマダ")["total"] == 0


def test_death_of_the_head_needs_a_new_head(post: Post, get: Any, chiyoda: Headers) -> None:
    father, mother, child = family_from_abroad(post, chiyoda)["person_ids"]
    [ref] = _refs(get, chiyoda, father)
    body = {"effective_on": days_ago(2), "person": ref}
    problem = post("death", body, chiyoda, status=409)
    assert "世帯主" in problem["detail"]
    out = post("death", body | {"remaining_head_person_id": mother}, chiyoda)
    assert out["kind"] == "death"
    dead = _person(get, chiyoda, father)
    assert (dead["status"], dead["removal_reason"], dead["removed_on"]) == ("removed", "死亡", days_ago(2))
    household = get(f"/registry/households/{dead['household_id']}", chiyoda)
    assert household["head_person_id"] == mother
    assert child in [m["person_id"] for m in household["members"]]


def test_declared_missing_and_ex_officio_removal(post: Post, get: Any, chiyoda: Headers) -> None:
    _father, mother, child = family_from_abroad(post, chiyoda)["person_ids"]
    [ref] = _refs(get, chiyoda, child)
    post("declared-missing", {"effective_on": days_ago(3), "person": ref}, chiyoda)
    assert _person(get, chiyoda, child)["removal_reason"] == "失踪宣告"
    [ref] = _refs(get, chiyoda, mother)
    post(
        "ex-officio-removal",
        {"effective_on": days_ago(2), "person": ref, "reason": "実態調査により居住の事実なし"},
        chiyoda,
    )
    assert _person(get, chiyoda, mother)["removal_reason"] == "職権消除"


def test_no_event_on_a_removed_record_except_corrections_and_cancellation(
    post: Post, get: Any, chiyoda: Headers
) -> None:
    _father, _mother, child = family_from_abroad(post, chiyoda)["person_ids"]
    [ref] = _refs(get, chiyoda, child)
    post("death", {"effective_on": days_ago(3), "person": ref}, chiyoda)
    [ref] = _refs(get, chiyoda, child)
    problem = post(
        "name-change",
        {"effective_on": days_ago(1), "person": ref, "family_name": "田中"},
        chiyoda,
        status=409,
    )
    assert problem["type"] == "urn:jumin:problem:rule-violation"
    fixed = post(
        "clerical-correction",
        {"effective_on": "2012-02-29", "person": ref, "items": {"given_name": "市郎"}},
        chiyoda,
    )
    assert fixed["kind"] == "clerical_correction"
    assert _person(get, chiyoda, child)["given_name"] == "市郎"


def test_household_split_merge_change_and_head_change(post: Post, get: Any, chiyoda: Headers) -> None:
    father, mother, child = family_from_abroad(post, chiyoda, moved=60)["person_ids"]
    original = _person(get, chiyoda, father)["household_id"]
    split = post(
        "household-split",
        {
            "effective_on": days_ago(20),
            "household": _household_ref(get, chiyoda, original),
            "members": [{"person_id": child, "relationship": "世帯主"}],
        },
        chiyoda,
    )
    new_household = max(split["household_ids"])
    assert _person(get, chiyoda, child)["household_id"] == new_household
    assert get(f"/registry/households/{new_household}", chiyoda)["head_person_id"] == child

    post(
        "household-merge",
        {
            "effective_on": days_ago(10),
            "from_household": _household_ref(get, chiyoda, new_household),
            "into_household": _household_ref(get, chiyoda, original),
            "relationships": [{"person_id": child, "relationship": "子"}],
        },
        chiyoda,
    )
    assert len(get(f"/registry/households/{original}", chiyoda)["members"]) == 3
    assert get(f"/registry/households/{new_household}", chiyoda)["members"] == []
    # On a date inside the split, the household had two members.
    assert len(get(f"/registry/households/{original}", chiyoda, on=days_ago(15))["members"]) == 2

    post(
        "head-change",
        {
            "effective_on": days_ago(5),
            "household": _household_ref(get, chiyoda, original),
            "relationships": [
                {"person_id": mother, "relationship": "世帯主"},
                {"person_id": father, "relationship": "夫"},
            ],
        },
        chiyoda,
    )
    assert get(f"/registry/households/{original}", chiyoda)["head_person_id"] == mother

    other = family_from_abroad(post, chiyoda, moved=50, line="神田二丁目")
    other_household = _person(get, chiyoda, other["person_ids"][0])["household_id"]
    post(
        "household-change",
        {
            "effective_on": days_ago(2),
            "into_household": _household_ref(get, chiyoda, other_household),
            "from_households": [_household_ref(get, chiyoda, original)],
            "members": [{"person_id": child, "relationship": "同居人"}],
        },
        chiyoda,
    )
    assert _person(get, chiyoda, child)["relationship"] == "同居人"
    assert _person(get, chiyoda, child)["household_id"] == other_household


def test_two_heads_are_refused_and_nothing_changes(post: Post, get: Any, chiyoda: Headers) -> None:
    father, mother, _child = family_from_abroad(post, chiyoda)["person_ids"]
    household = _person(get, chiyoda, father)["household_id"]
    before = get(f"/registry/households/{household}", chiyoda)
    problem = post(
        "head-change",
        {
            "effective_on": days_ago(1),
            "household": {"household_id": household, "version": before["version"]},
            "relationships": [{"person_id": mother, "relationship": "世帯主"}],
        },
        chiyoda,
        status=409,
    )
    assert problem["field"] == "relationship"
    assert get(f"/registry/households/{household}", chiyoda) == before


def test_name_old_surname_and_furigana(post: Post, get: Any, chiyoda: Headers) -> None:
    mother = family_from_abroad(post, chiyoda)["person_ids"][1]
    [ref] = _refs(get, chiyoda, mother)
    post(
        "name-change",
        {
            "effective_on": days_ago(9),
            "person": ref,
            "family_name": "鈴木",
            "given_name": "花子",
            "family_name_kana": "スズキ",
            "given_name_kana": "ハナコ",
        },
        chiyoda,
    )
    [ref] = _refs(get, chiyoda, mother)
    post(
        "old-surname-entry",
        {"effective_on": days_ago(8), "person": ref, "old_surname": "山田", "old_surname_kana": "ヤマダ"},
        chiyoda,
    )
    record = _person(get, chiyoda, mother)
    assert (record["name"], record["old_surname"], record["old_surname_kana"]) == (
        "鈴木　花子",
        "山田",
        "ヤマダ",
    )
    [ref] = _refs(get, chiyoda, mother)
    post("old-surname-deletion", {"effective_on": days_ago(7), "person": ref}, chiyoda)
    assert _person(get, chiyoda, mother)["old_surname"] is None
    [ref] = _refs(get, chiyoda, mother)
    post(
        "furigana",
        {"effective_on": days_ago(6), "person": ref, "family_name_kana": "スズキ", "given_name_kana": "ハナ"},
        chiyoda,
    )
    assert _person(get, chiyoda, mother)["name_kana"] == "スズキ　ハナ"
    [ref] = _refs(get, chiyoda, mother)
    bad = post(
        "furigana",
        {"effective_on": days_ago(1), "person": ref, "family_name_kana": "suzuki"},
        chiyoda,
        status=400,
    )
    assert bad["field"] == "family_name_kana"


def test_ex_officio_entry_and_correction(post: Post, get: Any, chiyoda: Headers) -> None:
    out = post(
        "ex-officio-entry",
        {
            "effective_on": days_ago(200),
            "notified_on": days_ago(1),
            "reason": "実態調査により居住を確認",
            "address": {"line": "丸の内一丁目"},
            "previous_address": "不詳",
            "members": [member("高橋", "誠", ("タカハシ", "マコト"))],
        },
        chiyoda,
    )
    person = out["person_ids"][0]
    [ref] = _refs(get, chiyoda, person)
    post(
        "ex-officio-correction",
        {
            "effective_on": days_ago(200),
            "person": ref,
            "items": {"birth_date": "昭和60年1月2日", "address_katagaki": "丸の内ビル"},
        },
        chiyoda,
    )
    record = _person(get, chiyoda, person)
    assert record["birth_date"] == "1985-01-02"
    assert record["address_katagaki"] == "丸の内ビル"
    [ref] = _refs(get, chiyoda, person)
    bad = post(
        "ex-officio-correction",
        {"effective_on": days_ago(1), "person": ref, "items": {"resident_code": "1"}},
        chiyoda,
        status=400,
    )
    assert bad["field"] == "items.resident_code"


def test_cancellation_undoes_an_event(post: Post, get: Any, chiyoda: Headers) -> None:
    father = family_from_abroad(post, chiyoda, moved=60)["person_ids"][0]
    moved = post(
        "move-within",
        {
            "effective_on": days_ago(10),
            "persons": _refs(get, chiyoda, father),
            "address": {"line": "九段北一丁目"},
        },
        chiyoda,
    )
    assert _person(get, chiyoda, father)["address_line"] == "九段北一丁目"
    cancelled = post(
        "cancellation",
        {"event_id": moved["event_id"], "reason": "届出人の誤り", "versions": _refs(get, chiyoda, father)},
        chiyoda,
    )
    assert _person(get, chiyoda, father)["address_line"] == "千代田一丁目1番1号"
    events = get(f"/registry/persons/{father}/events", chiyoda)
    assert events[1]["cancelled_by_event_id"] == cancelled["event_id"]
    assert events[2]["cancels_event_id"] == moved["event_id"]
    again = post(
        "cancellation",
        {"event_id": moved["event_id"], "reason": "二重", "versions": _refs(get, chiyoda, father)},
        chiyoda,
        status=409,
    )
    assert "既に取り消されています" in again["detail"]


def test_resident_code_and_individual_number_changes(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    father = family_from_abroad(post, chiyoda)["person_ids"][0]
    before = _person(get, chiyoda, father, show_individual_number="true")
    [ref] = _refs(get, chiyoda, father)
    post("resident-code-change", {"effective_on": days_ago(0), "person": ref}, chiyoda)
    [ref] = _refs(get, chiyoda, father)
    post("individual-number-change", {"effective_on": days_ago(0), "person": ref}, chiyoda)
    after = _person(get, chiyoda, father, show_individual_number="true")
    assert after["resident_code"] != before["resident_code"]
    assert after["individual_number"] != before["individual_number"]
    ResidentCode.parse(after["resident_code"])
    IndividualNumber.parse(after["individual_number"])
    sent = (
        db.query(OutboxMessage)
        .filter_by(person_id=father, kind="identity_changed")
        .order_by(OutboxMessage.seq)
        .all()
    )
    assert [m.seq for m in sent] == [1, 2, 3]
    assert after["individual_number"] not in sent[-1].payload


FOREIGN = {
    "resident_kind": "foreign",
    "family_name": "SMITH",
    "given_name": "JOHN",
    "family_name_kana": "スミス",
    "given_name_kana": "ジョン",
    "birth_date": "1990-07-04",
    "sex": "male",
    "relationship": "世帯主",
    "foreign": {
        "nationality": "アメリカ合衆国",
        "category": "mid_to_long_term",
        "name_alphabet": "SMITH JOHN",
        "status_of_residence": "技術・人文知識・国際業務",
        "period_of_stay": "3年",
        "stay_expires_on": "2028-03-31",
        "residence_card_number": "AB12345678CD",
    },
}


def _foreigner(post: Post, headers: Headers) -> int:
    out = post(
        "move-in-from-abroad",
        {
            "effective_on": days_ago(50),
            "address": {"line": "六番町1番"},
            "previous_address": "アメリカ合衆国",
            "members": [FOREIGN],
        },
        headers,
    )
    return int(out["person_ids"][0])


def test_foreign_resident_items_and_immigration_notices(post: Post, get: Any, chiyoda: Headers) -> None:
    person = _foreigner(post, chiyoda)
    record = _person(get, chiyoda, person)
    assert record["resident_kind"] == "foreign"
    assert record["birth_date_wareki"] is None
    assert record["romaji"] == "SMITH JOHN"
    assert record["foreign"]["became_foreign_resident_on"] == days_ago(50)
    [ref] = _refs(get, chiyoda, person)
    post(
        "immigration-notice",
        {
            "effective_on": days_ago(20),
            "person": ref,
            "status_of_residence": "永住者",
            "period_of_stay": "無期限",
            "residence_card_number": "XY87654321ZZ",
        },
        chiyoda,
    )
    foreign = _person(get, chiyoda, person)["foreign"]
    assert (foreign["status_of_residence"], foreign["residence_card_number"]) == ("永住者", "XY87654321ZZ")
    assert foreign["stay_expires_on"] == "2028-03-31"
    [ref] = _refs(get, chiyoda, person)
    bad = post("immigration-notice", {"effective_on": days_ago(1), "person": ref}, chiyoda, status=400)
    assert bad["field"] == "status_of_residence"


def test_alias_entry_and_deletion_keep_their_history(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    person = _foreigner(post, chiyoda)
    [ref] = _refs(get, chiyoda, person)
    post(
        "alias-entry",
        {"effective_on": days_ago(30), "person": ref, "alias": "須美寿　譲", "alias_kana": "スミス　ジョウ"},
        chiyoda,
    )
    assert get("/registry/persons", chiyoda, kana="スミスジョウ")["total"] == 1
    if db.get_bind().dialect.name == "postgresql":
        # The plan a prepared statement ends up with: the prefix is only known at run time.
        db.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    for _ in range(7):  # past psycopg's threshold for preparing a statement
        assert get("/registry/persons", chiyoda, kana="スミ")["total"] == 1  # the alias, by prefix
        # ミ + 1 is ム: the upper end of the range is not part of it.
        assert get("/registry/persons", chiyoda, kana="スム")["total"] == 0
    [ref] = _refs(get, chiyoda, person)
    post("alias-deletion", {"effective_on": days_ago(10), "person": ref}, chiyoda)
    foreign = _person(get, chiyoda, person)["foreign"]
    assert foreign["alias"] is None
    assert foreign["alias_history"] == [
        {
            "alias": "須美寿　譲",
            "alias_kana": "スミス　ジョウ",
            "recorded_on": days_ago(30),
            "recorded_lg_code": CHIYODA,
            "deleted_on": days_ago(10),
            "deleted_lg_code": CHIYODA,
        }
    ]


def test_naturalisation_and_nationality_acquired(post: Post, get: Any, chiyoda: Headers) -> None:
    for slug in ("naturalisation", "nationality-acquired"):
        person = _foreigner(post, chiyoda) if slug == "naturalisation" else None
        if person is None:
            person = post(
                "move-in-from-abroad",
                {
                    "effective_on": days_ago(40),
                    "address": {"line": "一番町1番"},
                    "previous_address": "カナダ",
                    "members": [FOREIGN | {"family_name": "BROWN"}],
                },
                chiyoda,
            )["person_ids"][0]
        [ref] = _refs(get, chiyoda, person)
        post(
            slug,
            {
                "effective_on": days_ago(5),
                "person": ref,
                "family_name": "須美",
                "given_name": "譲",
                "family_name_kana": "スミ",
                "given_name_kana": "ジョウ",
                "honseki": "東京都千代田区六番町1番",
                "hittousha": "須美　譲",
            },
            chiyoda,
        )
        record = _person(get, chiyoda, person)
        assert (record["resident_kind"], record["name"], record["foreign"]) == ("japanese", "須美　譲", None)
        assert _person(get, chiyoda, person, on=days_ago(6))["resident_kind"] == "foreign"


def test_nationality_lost_makes_a_foreign_record(post: Post, get: Any, chiyoda: Headers) -> None:
    mother = family_from_abroad(post, chiyoda)["person_ids"][1]
    [ref] = _refs(get, chiyoda, mother)
    post(
        "nationality-lost",
        {
            "effective_on": days_ago(3),
            "person": ref,
            "foreign": {
                "nationality": "フランス",
                "category": "transitional_nationality_loss",
                "name_alphabet": "YAMADA HANAKO",
            },
        },
        chiyoda,
    )
    record = _person(get, chiyoda, mother)
    assert record["resident_kind"] == "foreign"
    assert record["honseki"] is None
    assert record["foreign"]["category"] == "transitional_nationality_loss"


def test_move_out_confirmed_from_outside_the_deployment(post: Post, get: Any, chiyoda: Headers) -> None:
    ids = family_from_abroad(post, chiyoda, moved=60)["person_ids"]
    post(
        "move-out",
        {
            "effective_on": days_ago(10),
            "notified_on": days_ago(12),
            "persons": _refs(get, chiyoda, *ids),
            "destination": "大阪府大阪市北区",
            "destination_lg_code": "271276",
        },
        chiyoda,
    )
    post("move-out-confirmed", {"effective_on": days_ago(12), "persons": _refs(get, chiyoda, *ids)}, chiyoda)
    record = _person(get, chiyoda, ids[0])
    assert (record["status"], record["removed_on"]) == ("removed", days_ago(12))


def test_household_numbers_continue_after_the_highest_in_use(
    post: Post, get: Any, chiyoda: Headers, db: Session
) -> None:
    """Households imported with their own numbers are never given out again."""
    db.add(Household(lg_code=CHIYODA, household_no="00000500", version=1, created_at=dt.datetime.now(dt.UTC)))
    db.flush()
    first = _person(get, chiyoda, family_from_abroad(post, chiyoda)["person_ids"][0])
    second = _person(
        get, chiyoda, family_from_abroad(post, chiyoda, line="千代田二丁目2番2号")["person_ids"][0]
    )
    numbers = [
        get(f"/registry/households/{p['household_id']}", chiyoda)["household_no"] for p in (first, second)
    ]
    assert numbers == ["00000501", "00000502"]
