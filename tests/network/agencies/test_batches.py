"""Batch verification: upload a CSV, a background job verifies it in chunks, bad rows by line."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.network.agencies import jobs, service
from jumin.network.agencies.domain import (
    BatchEncoding,
    BatchKind,
    BatchRow,
    OnError,
    RowError,
    parse_batch_header,
    parse_batch_row,
)
from jumin.network.agencies.models import AccessLogEntry, BatchJob
from tests.network.agencies.conftest import Agency, audit_entries
from tests.network.agencies.store import Store, new_resident_code

URL = "/network/v1/batches"


def _upload(client: TestClient, agency: Agency, body: str | bytes, **params: str) -> dict[str, object]:
    content = body.encode() if isinstance(body, str) else body
    r = client.post(
        URL, params=params, content=content, headers={**agency.headers, "Content-Type": "text/csv"}
    )
    assert r.status_code == 202, r.text
    return dict(r.json())


def _status(client: TestClient, agency: Agency, batch_id: str, task: str) -> dict[str, object]:
    r = client.get(f"{URL}/{batch_id}", params={"task": task}, headers=agency.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _result(client: TestClient, agency: Agency, batch_id: str, task: str) -> list[dict[str, str]]:
    r = client.get(f"{URL}/{batch_id}/result", params={"task": task}, headers=agency.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


def test_a_batch_by_resident_code_reports_matches_and_progress(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    living = store.person()
    dead = store.person(name="田中 一", kana="タナカ ハジメ")
    store.change(dead, on=dt.date(2024, 5, 1), change_kind="death", status="removed", removal_reason="death")
    missing = new_resident_code()
    agency = make_agency("nenkin", "pension-status-check")
    body = f"ref,resident_code\nA-1,{living.resident_code}\nA-2,{dead.resident_code}\nA-3,{missing}\n"
    created = _upload(client, agency, body, task="pension-status-check", kind="resident_code")
    assert created["status"] == "queued"
    batch = _status(client, agency, str(created["id"]), "pension-status-check")
    assert batch["status"] == "done"
    assert (batch["processed_rows"], batch["total_rows"]) == (3, 3)
    assert (batch["matched"], batch["not_found"]) == (2, 1)
    rows = _result(client, agency, str(created["id"]), "pension-status-check")
    assert [(r["line"], r["ref"], r["match"]) for r in rows] == [
        ("2", "A-1", "matched"),
        ("3", "A-2", "matched"),
        ("4", "A-3", "not_found"),
    ]
    assert rows[1]["status"] == "removed"
    assert rows[1]["removal_reason"] == "death"
    assert "individual_number" not in rows[0]  # the status check task does not receive it
    assert rows[0]["address"] == "東京都千代田区千代田1番1号"  # the current address: the task allows it
    verified = audit_entries(national_db, action="network.batch_verified", target_id=str(created["id"]))
    assert len(verified) == 1
    assert "persons=2" in verified[0].detail
    assert (
        national_db.query(AccessLogEntry)
        .filter_by(identity_id=dead.identity_id, query_kind="batch_resident_code")
        .count()
        == 1
    )
    downloaded = audit_entries(
        national_db, action="network.batch_result_downloaded", target_id=str(created["id"])
    )
    assert downloaded
    assert batch["result_sha256"] in downloaded[0].detail


def test_bad_rows_are_reported_by_line_and_reject_all_verifies_nothing(
    client: TestClient, national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    agency = make_agency("nenkin", "pension-benefit")
    body = (
        "ref,resident_code\n"
        f"ok,{person.resident_code}\n"
        "bad-digit,12345678901\n"
        "\n"  # a blank line is skipped but still counted for line numbers
        "too,many,columns\n"
        f'"multi\nline",{person.resident_code}\n'
    )
    rejected = _upload(
        client, agency, body, task="pension-benefit", kind="resident_code", on_error="reject_all"
    )
    status = _status(client, agency, str(rejected["id"]), "pension-benefit")
    assert status["status"] == "rejected"
    assert (status["total_rows"], status["bad_rows"], status["processed_rows"]) == (4, 2, 0)
    assert [(e["line"], e["field"]) for e in status["errors"]] == [(3, "resident_code"), (5, None)]  # type: ignore[union-attr]
    assert (
        "チェックデジット" in status["errors"][0]["reason"] or "住民票コード" in status["errors"][0]["reason"]
    )  # type: ignore[index]
    refused = client.get(
        f"{URL}/{rejected['id']}/result", params={"task": "pension-benefit"}, headers=agency.headers
    )
    assert refused.status_code == 409
    assert not audit_entries(national_db, action="network.batch_verified", target_id=str(rejected["id"]))

    skipped = _upload(client, agency, body, task="pension-benefit", kind="resident_code", on_error="skip_bad")
    status = _status(client, agency, str(skipped["id"]), "pension-benefit")
    assert status["status"] == "done"
    rows = _result(client, agency, str(skipped["id"]), "pension-benefit")
    assert [(r["line"], r["match"]) for r in rows] == [
        ("2", "matched"),
        ("3", "invalid"),
        ("5", "invalid"),
        ("6", "matched"),
    ]
    assert rows[1]["note"]
    assert rows[1]["agency_code"] == ""
    errors = client.get(
        f"{URL}/{skipped['id']}/errors",
        params={"task": "pension-benefit", "after_line": 3},
        headers=agency.headers,
    )
    assert [e["line"] for e in errors.json()] == [5]


def test_a_bad_header_fails_the_whole_file_naming_line_one(
    client: TestClient, make_agency: Callable[..., Agency]
) -> None:
    agency = make_agency("nenkin", "pension-benefit")
    created = _upload(client, agency, "code,name\n1,2\n", task="pension-benefit", kind="resident_code")
    status = _status(client, agency, str(created["id"]), "pension-benefit")
    assert status["status"] == "failed"
    assert str(status["failure"]).startswith("1行目")
    assert "resident_code" in str(status["failure"])


def test_more_rows_than_the_limit_fail_the_file_naming_the_first_row_too_many(
    client: TestClient,
    national_db: Session,
    make_agency: Callable[..., Agency],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The limit is 1,000,000 rows; the rule is the same at 3, and the test stays fast.
    assert jobs.MAX_BATCH_ROWS == 1_000_000
    monkeypatch.setattr(jobs, "MAX_BATCH_ROWS", 3)
    agency = make_agency("nenkin", "pension-benefit")
    codes = [new_resident_code() for _ in range(4)]
    created = _upload(
        client,
        agency,
        "resident_code\n" + codes[0] + "\n\n" + "\n".join(codes[1:]) + "\n",
        task="pension-benefit",
        kind="resident_code",
        on_error="skip_bad",
    )
    status = _status(client, agency, str(created["id"]), "pension-benefit")
    assert status["status"] == "failed"
    assert status["failure"] == "6行目: データ行が上限の3行を超えています。"  # the blank line 3 counts
    assert status["result_sha256"] is None
    assert not audit_entries(national_db, action="network.batch_verified", target_id=str(created["id"]))


def test_a_batch_outside_the_clients_tasks_is_refused_before_the_file_is_read(
    client: TestClient, national_db: Session, make_agency: Callable[..., Agency]
) -> None:
    agency = make_agency("mofa", "passport-issuance")
    r = client.post(
        URL,
        params={"task": "pension-benefit", "kind": "resident_code"},
        content=b"resident_code\n",
        headers={**agency.headers, "Content-Type": "text/csv"},
    )
    assert r.status_code == 403
    assert (
        audit_entries(national_db, action="access.denied", actor_id=agency.client_id)[-1].detail
        == "task not granted"
    )
    assert national_db.query(BatchJob).filter_by(client_id=agency.client_id).count() == 0


def test_another_clients_batch_is_not_found(
    client: TestClient, store: Store, make_agency: Callable[..., Agency]
) -> None:
    person = store.person()
    mine = make_agency("nenkin", "pension-benefit")
    other = make_agency("nenkin", "pension-benefit", name="別のシステム")
    created = _upload(
        client, mine, f"resident_code\n{person.resident_code}\n", task="pension-benefit", kind="resident_code"
    )
    r = client.get(f"{URL}/{created['id']}", params={"task": "pension-benefit"}, headers=other.headers)
    assert r.status_code == 404


def test_four_facts_batch_with_shift_jis_and_partial_matches(
    client: TestClient, store: Store, make_agency: Callable[..., Agency]
) -> None:
    exact = store.person(name="高橋 健", kana="タカハシ ケン", birth=dt.date(1990, 2, 3))
    twin_a = store.person(
        name="伊藤 翔", kana="イトウ ショウ", birth=dt.date(2001, 8, 8), address="千代田2番"
    )
    store.person(name="伊藤 翔", kana="イトウ ショウ", birth=dt.date(2001, 8, 8), address="千代田2番")
    near = store.person(name="中村 優", kana="ナカムラ ユウ", birth=dt.date(1985, 12, 1), sex="female")
    agency = make_agency("city", "child-allowance")
    body = (
        "ref,name_kana,birth_date,sex,address\n"
        "1,タカハシ ケン,1990-02-03,male,東京都千代田区千代田\n"
        "2,イトウ ショウ,平成13年8月8日,1,東京都千代田区\n"
        "3,ナカムラ ユウ,1985-01-12,2,東京都千代田区\n"
        "4,ヤマモト タロウ,1960-01-01,male,大阪府\n"
        "5,ﾀｶﾊｼ ｹﾝ,1990-02-30,male,東京都\n"
    )
    created = _upload(
        client,
        agency,
        body.encode("cp932"),
        task="child-allowance",
        kind="four_facts",
        encoding="shift_jis",
        on_error="skip_bad",
    )
    status = _status(client, agency, str(created["id"]), "child-allowance")
    assert status["status"] == "done", status
    rows = {r["ref"]: r for r in _result(client, agency, str(created["id"]), "child-allowance")}
    assert rows["1"]["match"] == "matched"
    assert rows["1"]["resident_code"] == exact.resident_code
    assert rows["1"]["score"] == "100"
    assert rows["2"]["match"] == "ambiguous"
    assert rows["2"]["candidates"] == "2"
    assert rows["2"]["resident_code"] == ""
    assert rows["3"]["match"] == "partial"
    assert rows["3"]["resident_code"] == ""
    assert "月日の入れ違い" in rows["3"]["note"]
    assert rows["4"]["match"] == "not_found"
    assert (rows["5"]["line"], rows["5"]["match"]) == ("6", "invalid")  # 2月30日 does not exist
    assert (
        status["matched"],
        status["ambiguous"],
        status["partial"],
        status["not_found"],
        status["bad_rows"],
    ) == (1, 1, 1, 1, 1)
    assert twin_a.resident_code not in str(rows)
    assert near.resident_code not in str(rows)


@pytest.mark.slow
def test_twenty_thousand_rows_in_chunks_with_progress(
    national_db: Session, store: Store, make_agency: Callable[..., Agency]
) -> None:
    agency = make_agency("nenkin", "pension-status-check")
    people = [
        store.person(
            name=f"試験 {i}",
            kana=f"シケン {'ア' * (1 + i % 7)}{'イ' * (i // 7 % 11)}",
            birth=dt.date(1950, 1, 1) + dt.timedelta(days=i % 20000),
            number=False,
        )
        for i in range(300)
    ]
    lines = ["ref,resident_code"] + [
        f"r{i},{people[i % len(people)].resident_code if i % 4 else new_resident_code()}"
        for i in range(20_000)
    ]
    principal = service.client_principal(national_db, client_id=agency.client_id)
    ctx = service.authorize(national_db, principal=principal, task_code="pension-status-check", target="test")
    upload = service.receive_upload(iter([("\n".join(lines) + "\n").encode()]))
    view = service.create_batch(
        national_db,
        ctx=ctx,
        upload=upload,
        kind=BatchKind.RESIDENT_CODE,
        on_error=OnError.REJECT_ALL,
        encoding=BatchEncoding.UTF8,
    )
    seen: list[tuple[int, int]] = []

    from contextlib import contextmanager

    @contextmanager
    def units():  # type: ignore[no-untyped-def]
        yield national_db
        national_db.flush()

    outcome = jobs.run_batch(units, view.id, on_progress=lambda done, total: seen.append((done, total)))
    assert outcome.status is not None
    assert outcome.status.value == "done"
    assert seen[0] == (0, 20_000)
    assert seen[-1] == (20_000, 20_000)
    assert len(seen) >= 20  # one report per chunk of 1,000 rows
    job = national_db.get_one(BatchJob, view.id)
    assert (job.matched, job.not_found) == (15_000, 5_000)
    assert len(audit_entries(national_db, action="network.batch_verified", target_id=view.id)) == 20


def _verify(
    db: Session, spec: service.BatchSpec, rows: list[BatchRow | RowError]
) -> tuple[list[service.RowResult], list[tuple[int, str, str, str, str, int]]]:
    """The results of one chunk and the access-log rows it wrote (without ids and times)."""
    before = db.query(AccessLogEntry.id).order_by(AccessLogEntry.id.desc()).limit(1).scalar() or 0
    results = service.verify_batch_chunk(db, spec=spec, rows=rows)
    logged = (
        db.query(AccessLogEntry).filter(AccessLogEntry.id > before).order_by(AccessLogEntry.identity_id).all()
    )
    audit_ids = {e.audit_entry_id for e in logged}
    assert len(audit_ids) <= 1  # a chunk is one bulk read: one summary entry
    return results, [
        (e.identity_id, e.resident_code, e.prefecture_code, e.organisation_code, e.query_kind, 1)
        for e in logged
    ]


@pytest.mark.parametrize("kind", [BatchKind.FOUR_FACTS, BatchKind.RESIDENT_CODE])
def test_a_chunk_gives_what_its_rows_give_one_by_one(
    national_db: Session, store: Store, make_agency: Callable[..., Agency], kind: BatchKind
) -> None:
    """Set-based matching answers every row as if it were alone: matched, ambiguous,
    partial, not found and invalid rows mixed, with the same access log."""
    exact = store.person(name="高橋 健", kana="タカハシ ケン", birth=dt.date(1990, 2, 3))
    for _ in range(2):
        store.person(name="伊藤 翔", kana="イトウ ショウ", birth=dt.date(2001, 8, 8), address="千代田2番")
    store.person(name="中村 優", kana="ナカムラ ユウ", birth=dt.date(1985, 12, 1), sex="female")
    moved = store.person(name="移転 先", kana="イテン サキ", birth=dt.date(1970, 5, 5), lg_code="271004")
    renamed = store.person(name="旧姓 花", kana="キュウセイ ハナ", birth=dt.date(1999, 9, 9), sex="female")
    old_code = renamed.resident_code
    store.change(
        renamed, on=dt.date(2024, 1, 1), change_kind="resident_code_change", resident_code=new_resident_code()
    )
    agency = make_agency("nenkin", "pension-benefit")
    job = national_db.get_one(
        BatchJob,
        service.create_batch(
            national_db,
            ctx=service.authorize(
                national_db,
                principal=service.client_principal(national_db, client_id=agency.client_id),
                task_code="pension-benefit",
                target="test",
            ),
            upload=service.receive_upload(iter([b"x\n"])),
            kind=kind,
            on_error=OnError.SKIP_BAD,
            encoding=BatchEncoding.UTF8,
        ).id,
    )
    spec = service.BatchSpec(job.id, agency.client_id, "pension-benefit", kind, OnError.SKIP_BAD, "utf-8")
    if kind is BatchKind.FOUR_FACTS:
        header = ["ref", "name_kana", "birth_date", "sex", "address"]
        lines = [
            ["m", "タカハシ ケン", "1990-02-03", "male", "東京都千代田区"],
            ["m2", "たかはし けん", "平成2年2月3日", "1", "千代田区千代田"],
            ["a", "イトウ ショウ", "2001-08-08", "male", "東京都"],
            ["p", "ナカムラ ユウ", "1985-01-12", "female", "東京都千代田区"],
            ["p2", "ナカムラ ユイ", "1985-12-01", "female", "大阪府"],
            ["o", "イテン サキ", "1970-05-05", "male", "大阪府大阪市"],
            ["n", "ヤマモト タロウ", "1960-01-01", "male", "大阪府"],
            ["bad", "ﾀｶﾊｼ ｹﾝ", "1990-02-30", "male", "東京都"],
        ]
    else:
        header = ["ref", "resident_code"]
        lines = [
            ["m", exact.resident_code],
            ["o", moved.resident_code],
            ["c", old_code],
            ["n", new_resident_code()],
            ["bad", "12345678901"],
            ["m-again", exact.resident_code],
        ]
    columns = parse_batch_header(kind, header)
    rows = [parse_batch_row(kind, columns, n, values) for n, values in enumerate(lines, start=2)]

    together, logged_together = _verify(national_db, spec, rows)
    alone: list[service.RowResult] = []
    logged_alone: set[tuple[int, str, str, str, str, int]] = set()
    for row in rows:
        results, logged = _verify(national_db, spec, [row])
        alone.extend(results)
        logged_alone.update(logged)
    assert together == alone
    assert sorted(set(logged_together)) == sorted(logged_alone)
    assert len(logged_together) == len(set(logged_together))  # one row per person handed out
    outcomes = {r.ref: r.match.value for r in together}
    if kind is BatchKind.FOUR_FACTS:
        assert outcomes == {
            "m": "matched",
            "m2": "matched",
            "a": "ambiguous",
            "p": "partial",
            "p2": "partial",
            "o": "matched",
            "n": "not_found",
            "bad": "invalid",
        }
    else:
        assert outcomes["n"] == "not_found"
        assert outcomes["bad"] == "invalid"
        assert {outcomes[k] for k in ("m", "o", "c", "m-again")} == {"matched"}
        assert [r.note for r in together if r.ref == "c"] == ["code_changed"]


def test_a_file_too_large_to_keep_parsed_is_read_again_with_the_same_result(
    client: TestClient, store: Store, make_agency: Callable[..., Agency], monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [store.person(name=f"再読 {i}", kana=f"サイドク {'ア' * (i + 1)}") for i in range(3)]
    agency = make_agency("nenkin", "pension-benefit")
    body = "ref,resident_code\n" + "".join(
        f"r{i},{code}\n"
        for i, code in enumerate([p.resident_code for p in people] + ["bad", new_resident_code()])
    )

    def run() -> list[dict[str, str]]:
        created = _upload(
            client, agency, body, task="pension-benefit", kind="resident_code", on_error="skip_bad"
        )
        assert _status(client, agency, str(created["id"]), "pension-benefit")["status"] == "done"
        return _result(client, agency, str(created["id"]), "pension-benefit")

    kept = run()
    monkeypatch.setattr(jobs, "KEEP_PARSED_ROWS", 2)
    assert run() == kept
    assert [r["match"] for r in kept] == ["matched", "matched", "matched", "invalid", "not_found"]
