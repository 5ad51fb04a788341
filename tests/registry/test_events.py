"""One scenario per event kind, through the API, checking what the record then says."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.network_client import InProcessNetworkClient
from tests.registry.conftest import Headers, Post, days_ago, family_from_abroad, member


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
