"""Prefecture extraction as of a reference date: requested, approved, produced, audited."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import OrganisationKind, Role
from jumin.network.agencies.models import AccessLogEntry
from tests import factories
from tests.network.agencies.conftest import Agency, Headers, audit_entries, national_login
from tests.network.agencies.store import Store

URL = "/network/v1/extractions"
TOKYO = "130001"
HOKKAIDO = "010006"


@pytest.fixture
def tokyo(client: TestClient, national_db: Session) -> Headers:
    return national_login(
        client, factories.staff(national_db, Role.CLERK, org=TOKYO, kind=OrganisationKind.PREFECTURE)
    )


@pytest.fixture
def hokkaido(client: TestClient, national_db: Session) -> Headers:
    return national_login(
        client, factories.staff(national_db, Role.CLERK, org=HOKKAIDO, kind=OrganisationKind.PREFECTURE)
    )


@pytest.fixture
def population(store: Store) -> dict[str, str]:
    """Who lived where: the reference date is 2024-04-01."""
    stays = store.person(
        name="在住 一郎", kana="ザイジュウ イチロウ", birth=dt.date(1960, 4, 2)
    )  # 64 on the date
    child = store.person(
        name="在住 次郎",
        kana="ザイジュウ ジロウ",
        birth=dt.date(2010, 4, 1),
        lg_code="131130",
        address="渋谷1番",
    )
    moved_in_later = store.person(
        name="転入 三郎", kana="テンニュウ サブロウ", lg_code="011002", address="中央区1番"
    )
    store.change(
        moved_in_later, on=dt.date(2024, 6, 1), change_kind="move_in", lg_code="131016", address="千代田5番"
    )
    moved_away = store.person(name="転出 四郎", kana="テンシュツ シロウ")
    store.change(
        moved_away, on=dt.date(2024, 5, 1), change_kind="move_in", lg_code="011002", address="中央区2番"
    )
    died_before = store.person(name="死亡 五郎", kana="シボウ ゴロウ")
    store.change(
        died_before, on=dt.date(2023, 1, 1), change_kind="death", status="removed", removal_reason="death"
    )
    born_after = store.person(
        name="出生 六子", kana="シュッセイ ロクコ", birth=dt.date(2024, 9, 1), since=dt.date(2024, 9, 1)
    )
    return {
        "stays": stays.resident_code,
        "child": child.resident_code,
        "moved_in_later": moved_in_later.resident_code,
        "moved_away": moved_away.resident_code,
        "died_before": died_before.resident_code,
        "born_after": born_after.resident_code,
    }


def test_request_approve_and_download_as_csv_and_parquet(
    client: TestClient, national_db: Session, tokyo: Headers, operator: Headers, population: dict[str, str]
) -> None:
    r = client.post(
        URL,
        json={"reference_date": "2024-04-01", "purpose": "物価高騰対策給付金の支給対象者の把握"},
        headers=tokyo,
    )
    assert r.status_code == 201, r.text
    extraction_id = r.json()["id"]
    assert r.json()["status"] == "requested"
    assert r.json()["prefecture_code"] == "13"

    refused = client.get(f"{URL}/{extraction_id}/result.csv", headers=tokyo)
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:jumin:problem:extraction-not-approved"
    assert audit_entries(national_db, action="access.denied")[-1].detail == "extraction requested"

    # The prefecture cannot approve its own request.
    assert client.post(f"{URL}/{extraction_id}/approve", json={}, headers=tokyo).status_code == 403
    approved = client.post(f"{URL}/{extraction_id}/approve", json={"note": "目的を確認"}, headers=operator)
    assert approved.status_code == 200, approved.text
    status = client.get(f"{URL}/{extraction_id}", headers=tokyo).json()
    assert status["status"] == "ready"
    assert status["row_count"] == 3

    got = client.get(f"{URL}/{extraction_id}/result.csv", headers=tokyo)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == status["csv_sha256"] == got.headers["x-content-sha256"]
    rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert {r["resident_code"] for r in rows} == {
        population["stays"],
        population["child"],
        population["moved_away"],
    }
    assert {r["prefecture_code"] for r in rows} == {"13"}
    by_code = {r["resident_code"]: r for r in rows}
    assert by_code[population["stays"]]["age"] == "64"
    assert by_code[population["child"]]["municipality"] == "渋谷区"
    assert (
        by_code[population["moved_away"]]["address"] == "東京都千代田区千代田1番1号"
    )  # where they lived then

    pyarrow = pytest.importorskip("pyarrow.parquet")
    parquet = client.get(f"{URL}/{extraction_id}/result.parquet", headers=tokyo)
    assert parquet.status_code == 200
    assert hashlib.sha256(parquet.content).hexdigest() == status["parquet_sha256"]
    table = pyarrow.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 3
    assert sorted(table.column("resident_code").to_pylist()) == sorted(by_code)
    assert table.schema.field("birth_date").type.__str__() == "date32[day]"

    for action in ("requested", "approved", "produced", "downloaded"):
        assert audit_entries(national_db, action=f"network.extraction_{action}", target_id=extraction_id), (
            action
        )
    produced = audit_entries(national_db, action="network.extraction_produced", target_id=extraction_id)[0]
    assert "rows=3" in produced.detail
    assert status["csv_sha256"] in produced.detail
    assert produced.purpose == "物価高騰対策給付金の支給対象者の把握"
    logged = national_db.query(AccessLogEntry).filter_by(query_kind="prefecture_extraction").all()
    assert len(logged) == 3
    assert {e.audit_entry_id for e in logged} == {produced.id}
    assert {e.organisation_code for e in logged} == {TOKYO}
    assert {e.purpose for e in logged} == {"物価高騰対策給付金の支給対象者の把握"}


def test_filters_by_municipality_and_age_on_the_date(
    client: TestClient, tokyo: Headers, operator: Headers, population: dict[str, str]
) -> None:
    r = client.post(
        URL,
        json={
            "reference_date": "2024-04-01",
            "lg_codes": ["131130"],
            "max_age": 17,
            "purpose": "児童の健康診断の案内",
        },
        headers=tokyo,
    )
    extraction_id = r.json()["id"]
    client.post(f"{URL}/{extraction_id}/approve", json={}, headers=operator)
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(f"{URL}/{extraction_id}/result.csv", headers=tokyo).content.decode("utf-8-sig")
            )
        )
    )
    assert [(r["resident_code"], r["age"]) for r in rows] == [(population["child"], "14")]


def test_a_prefecture_sees_only_its_own_area(
    client: TestClient, national_db: Session, tokyo: Headers, hokkaido: Headers, operator: Headers
) -> None:
    outside = client.post(
        URL,
        json={"reference_date": "2024-04-01", "lg_codes": ["011002"], "purpose": "区域外の市を指定"},
        headers=tokyo,
    )
    assert outside.status_code == 403
    assert outside.json()["field"] == "lg_codes"
    assert (
        audit_entries(national_db, action="access.denied")[-1].detail
        == "municipality 011002 outside prefecture 13"
    )

    mine = client.post(
        URL, json={"reference_date": "2024-04-01", "purpose": "北海道の給付事務"}, headers=hokkaido
    ).json()
    assert client.get(f"{URL}/{mine['id']}", headers=tokyo).status_code == 403
    assert [e["id"] for e in client.get(URL, headers=tokyo).json()] == []
    client.post(f"{URL}/{mine['id']}/approve", json={}, headers=operator)
    stolen = client.get(f"{URL}/{mine['id']}/result.csv", headers=tokyo)
    assert stolen.status_code == 403
    assert client.get(f"{URL}/{mine['id']}/result.csv", headers=hokkaido).status_code == 200
    # The operator approves but does not receive the residents.
    assert client.get(f"{URL}/{mine['id']}/result.csv", headers=operator).status_code == 403


def test_rejected_requests_stay_refused_and_decisions_are_final(
    client: TestClient, tokyo: Headers, operator: Headers
) -> None:
    r = client.post(
        URL, json={"reference_date": "2024-04-01", "purpose": "目的が曖昧な依頼"}, headers=tokyo
    ).json()
    assert (
        client.post(f"{URL}/{r['id']}/reject", json={"note": "目的が不明確"}, headers=operator).json()[
            "status"
        ]
        == "rejected"
    )
    assert client.get(f"{URL}/{r['id']}/result.csv", headers=tokyo).status_code == 403
    again = client.post(f"{URL}/{r['id']}/approve", json={}, headers=operator)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reference_date": "2999-01-01", "purpose": "未来の日付の依頼"}, "reference_date"),
        ({"reference_date": "2024-04-01", "purpose": "短い"}, "purpose"),
        (
            {"reference_date": "2024-04-01", "purpose": "年齢の範囲が逆", "min_age": 30, "max_age": 20},
            "min_age",
        ),
        (
            {"reference_date": "2024-04-01", "purpose": "都道府県コードを指定", "lg_codes": ["130001"]},
            "lg_codes",
        ),
    ],
)
def test_bad_requests_name_the_field(
    client: TestClient, tokyo: Headers, body: dict[str, object], field: str
) -> None:
    r = client.post(URL, json=body, headers=tokyo)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field


def test_agencies_and_municipal_tokens_cannot_request(
    client: TestClient, make_agency: Callable[..., Agency]
) -> None:
    agency = make_agency("nenkin", "pension-benefit")
    assert (
        client.post(
            URL, json={"reference_date": "2024-04-01", "purpose": "機関からの依頼"}, headers=agency.headers
        ).status_code
        == 403
    )


def test_the_file_and_the_access_log_name_the_same_people_to_the_byte(
    client: TestClient, national_db: Session, store: Store, tokyo: Headers, operator: Headers
) -> None:
    """Ages at their edges (29 February births on a non-leap reference date), quoting, a
    corrected address: the exact file, the same on every backend, and one access-log
    row for each person in it and nobody else."""
    on = dt.date(2023, 2, 28)
    leap = store.person(name="閏 一", kana="ウルウ ハジメ", birth=dt.date(2004, 2, 29), address="千代田1番")
    march = store.person(
        name='三月 "二", 次', kana=None, birth=dt.date(2004, 3, 1), lg_code="131130", address="渋谷1番, 2号"
    )
    too_young = store.person(name="若 三", kana="ワカ サン", birth=dt.date(2004, 3, 2))
    oldest = store.person(
        name="年長 四", kana="ネンチョウ シ", birth=dt.date(1958, 3, 2), address="千代田4番"
    )
    too_old = store.person(name="高齢 五", kana="コウレイ ゴ", birth=dt.date(1958, 3, 1))
    corrected = store.person(
        name="訂正 六", kana="テイセイ ロク", birth=dt.date(1980, 1, 1), address="旧住所"
    )
    store.change(corrected, on=dt.date(2000, 1, 1), change_kind="clerical_correction", address="千代田6番")
    r = client.post(
        URL,
        json={"reference_date": on.isoformat(), "min_age": 19, "max_age": 64, "purpose": "年齢の境界の確認"},
        headers=tokyo,
    )
    assert r.status_code == 201, r.text
    extraction_id = r.json()["id"]
    client.post(f"{URL}/{extraction_id}/approve", json={}, headers=operator)
    status = client.get(f"{URL}/{extraction_id}", headers=tokyo).json()
    assert status["status"] == "ready", status

    tokyo13, chiyoda, shibuya = "13", ("131016", "千代田区"), ("131130", "渋谷区")
    expected = [
        (tokyo13, *chiyoda, leap.resident_code, "閏 一", "ウルウ ハジメ", "2004-02-29", "male", "19",
         "東京都千代田区千代田1番"),
        (tokyo13, *chiyoda, oldest.resident_code, "年長 四", "ネンチョウ シ", "1958-03-02", "male",
         "64", "東京都千代田区千代田4番"),
        (tokyo13, *chiyoda, corrected.resident_code, "訂正 六", "テイセイ ロク", "1980-01-01", "male",
         "43", "東京都千代田区千代田6番"),
        (tokyo13, *shibuya, march.resident_code, '三月 "二", 次', "", "2004-03-01", "male", "19",
         "東京都渋谷区渋谷1番, 2号"),
    ]  # fmt: skip
    expected.sort(key=lambda row: (row[1], row[3]))
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\r\n")
    out.writerow(
        ["prefecture_code", "lg_code", "municipality", "resident_code", "name", "name_kana", "birth_date",
         "sex", "age", "address"]
    )  # fmt: skip
    out.writerows(expected)
    got = client.get(f"{URL}/{extraction_id}/result.csv", headers=tokyo)
    assert got.content == text.getvalue().encode("utf-8-sig")
    assert status["row_count"] == 4

    pyarrow = pytest.importorskip("pyarrow.parquet")
    table = pyarrow.read_table(
        io.BytesIO(client.get(f"{URL}/{extraction_id}/result.parquet", headers=tokyo).content)
    )
    assert [tuple(str(v) for v in row.values()) for row in table.to_pylist()] == expected

    produced = audit_entries(national_db, action="network.extraction_produced", target_id=extraction_id)[0]
    logged = national_db.query(AccessLogEntry).filter_by(task_code=f"extraction:{extraction_id}").all()
    assert sorted(e.resident_code for e in logged) == sorted(row[3] for row in expected)
    assert {e.identity_id for e in logged} == {leap.identity_id, march.identity_id, oldest.identity_id,
                                               corrected.identity_id}  # fmt: skip
    assert {(e.audit_entry_id, e.prefecture_code, e.query_kind, e.actor_kind) for e in logged} == {
        (produced.id, "13", "prefecture_extraction", "staff")
    }
    assert {e.purpose for e in logged} == {"年齢の境界の確認"}
    assert all(e.accessed_at is not None for e in logged)
    assert too_young.identity_id not in {e.identity_id for e in logged}
    assert too_old.identity_id not in {e.identity_id for e in logged}
