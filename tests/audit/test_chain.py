from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from jumin.audit import repository, service
from jumin.audit.domain import Actor, ActorKind, AuditAction, EntryContent
from jumin.config import get_settings
from jumin.db import make_engine
from tests.conftest import PG_URL, fresh_database_url

ORG = "chain-test"


def _write(db: Session, n: int) -> None:
    actor = Actor(kind=ActorKind.STAFF, actor_id="clerk1", organisation_code=ORG)
    for i in range(n):
        service.record(
            db,
            actor=actor,
            action=AuditAction.AUDIT_VIEWED,
            target_kind="person",
            target_id=f"p{i}",
            purpose="テスト",
        )
    db.flush()


def _problems_in_chain(db: Session) -> list[tuple[int, str]]:
    return [(p.seq, p.reason) for p in service.verify(db).problems if p.chain == ORG]


def test_an_untouched_chain_verifies_with_signed_checkpoints(db: Session) -> None:
    _write(db, 25)
    report = service.verify(db)
    assert report.intact, report.problems
    every = get_settings().audit_checkpoint_every
    rows = (
        db.execute(text("SELECT seq FROM audit_checkpoints WHERE chain = :c ORDER BY seq"), {"c": ORG})
        .scalars()
        .all()
    )
    assert list(rows) == list(range(every, 26, every))


def test_an_updated_entry_is_named(db: Session) -> None:
    _write(db, 12)
    db.execute(
        text("UPDATE audit_entries SET target_id = 'someone-else' WHERE chain = :c AND seq = 5"),
        {"c": ORG},
    )
    assert _problems_in_chain(db)[0] == (5, "content does not match its hash")


def test_a_deleted_entry_is_named(db: Session) -> None:
    _write(db, 12)
    db.execute(text("DELETE FROM audit_entries WHERE chain = :c AND seq = 7"), {"c": ORG})
    assert _problems_in_chain(db)[0] == (7, "entry 7 is missing")


def test_a_deleted_tail_is_caught_by_the_head(db: Session) -> None:
    _write(db, 12)
    db.execute(text("DELETE FROM audit_entries WHERE chain = :c AND seq > 11"), {"c": ORG})
    assert _problems_in_chain(db) == [(12, "chain ends before its recorded head")]


def test_an_inserted_entry_is_named(db: Session) -> None:
    """Insert a forged entry at 4 by shifting the later ones up, with a well-formed hash."""
    _write(db, 12)
    db.execute(text("UPDATE audit_entries SET seq = seq + 1000 WHERE chain = :c AND seq >= 4"), {"c": ORG})
    db.execute(
        text("UPDATE audit_entries SET seq = seq - 999 WHERE chain = :c AND seq >= 1004"),
        {"c": ORG},
    )
    prev = db.execute(
        text("SELECT entry_hash FROM audit_entries WHERE chain = :c AND seq = 3"), {"c": ORG}
    ).scalar_one()
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    forged = EntryContent(
        ORG,
        4,
        when,
        "forged",
        "staff",
        "mallory",
        ORG,
        "audit.viewed",
        "person",
        "x",
        "",
        "success",
        "",
        prev,
    )
    db.execute(
        text(
            "INSERT INTO audit_entries (chain, seq, occurred_at, request_id, actor_kind, actor_id,"
            " organisation_code, action, target_kind, target_id, purpose, outcome, detail, prev_hash,"
            " entry_hash) VALUES (:chain, 4, :at, 'forged', 'staff', 'mallory', :chain, 'audit.viewed',"
            " 'person', 'x', '', 'success', '', :prev, :hash)"
        ),
        {
            "chain": ORG,
            "at": when.replace(tzinfo=None) if db.get_bind().dialect.name == "sqlite" else when,
            "prev": prev,
            "hash": forged.digest(),
        },
    )
    problems = _problems_in_chain(db)
    assert problems[0] == (5, "previous hash does not match")


def test_a_rewritten_tail_is_caught_by_the_signed_checkpoint(db: Session) -> None:
    """An attacker who recomputes every hash after the change still cannot sign."""
    _write(db, 12)
    db.execute(
        text("UPDATE audit_entries SET target_id = 'rewritten' WHERE chain = :c AND seq = 3"),
        {"c": ORG},
    )
    rows = (
        db.execute(text("SELECT * FROM audit_entries WHERE chain = :c ORDER BY seq"), {"c": ORG})
        .mappings()
        .all()
    )
    prev = "0" * 64
    for row in rows:
        occurred = row["occurred_at"]
        if isinstance(occurred, str):
            occurred = dt.datetime.fromisoformat(occurred)
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=dt.UTC)
        content = EntryContent(
            row["chain"],
            row["seq"],
            occurred,
            row["request_id"],
            row["actor_kind"],
            row["actor_id"],
            row["organisation_code"],
            row["action"],
            row["target_kind"],
            row["target_id"],
            row["purpose"],
            row["outcome"],
            row["detail"],
            prev,
        )
        prev = content.digest()
        db.execute(
            text("UPDATE audit_entries SET prev_hash = :p, entry_hash = :h WHERE id = :id"),
            {"p": content.prev_hash, "h": prev, "id": row["id"]},
        )
    db.execute(text("UPDATE audit_chain_heads SET last_hash = :h WHERE chain = :c"), {"h": prev, "c": ORG})
    assert _problems_in_chain(db) == [(10, "entry differs from its signed checkpoint")]


@pytest.mark.parametrize("column", ["signature", "entry_hash"])
def test_a_forged_checkpoint_is_caught(db: Session, column: str) -> None:
    _write(db, 10)
    db.execute(
        text(f"UPDATE audit_checkpoints SET {column} = :v WHERE chain = :c"),
        {"v": "ab" * 32, "c": ORG},
    )
    assert _problems_in_chain(db)[0][0] == 10


@pytest.fixture(scope="module")
def pg_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Transactions that really commit, concurrently: PostgreSQL, where lanes exist."""
    if not PG_URL:
        pytest.skip("needs PostgreSQL (set JUMIN_TEST_DATABASE_URL): lanes exist there only")
    eng = make_engine(fresh_database_url("postgresql", tmp_path_factory.mktemp("lanes"), "lanes"))
    yield eng
    eng.dispose()


@pytest.fixture
def lanes_org() -> str:
    return f"lanes-{uuid.uuid4().hex[:8]}"


def _record(session: Session, org: str, target: str) -> str:
    actor = Actor(kind=ActorKind.STAFF, actor_id="clerk1", organisation_code=org)
    entry = service.record(
        session, actor=actor, action=AuditAction.AUDIT_VIEWED, target_kind="person", target_id=target
    )
    return entry.chain


def test_a_second_transaction_appends_while_the_first_is_still_open(
    pg_engine: Engine, lanes_org: str
) -> None:
    """Appending never waits for another transaction's commit: it takes another lane."""
    with Session(pg_engine) as first, Session(pg_engine) as second:
        first_chain = _record(first, lanes_org, "a")
        # Waiting on the first transaction's head would hit this timeout and fail.
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        second_chain = _record(second, lanes_org, "b")
        assert second_chain != first_chain
        assert {first_chain, second_chain} <= set(repository.lane_names(lanes_org, 32))
        # Later entries of one transaction stay on the chain it already holds.
        assert _record(first, lanes_org, "c") == first_chain
        second.commit()
        first.commit()
    with Session(pg_engine) as check:
        report = service.verify(check)
        mine = [p for p in report.problems if p.chain.split("/")[0] == lanes_org]
        assert mine == []


def test_concurrent_appends_leave_every_lane_intact(pg_engine: Engine, lanes_org: str) -> None:
    per_thread = 30

    def work(n: int) -> None:
        for i in range(per_thread):
            with Session(pg_engine) as session:
                _record(session, lanes_org, f"{n}-{i}")
                session.commit()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    with Session(pg_engine) as check:
        rows = check.execute(
            text("SELECT chain, seq FROM audit_entries WHERE organisation_code = :o ORDER BY chain, seq"),
            {"o": lanes_org},
        ).all()
        assert len(rows) == 8 * per_thread
        by_chain: dict[str, list[int]] = {}
        for chain, seq in rows:
            by_chain.setdefault(chain, []).append(seq)
        for seqs in by_chain.values():
            assert seqs == list(range(1, len(seqs) + 1))
        assert not [p for p in service.verify(check).problems if p.chain.split("/")[0] == lanes_org]


# Content that JSON escapes or writes as multi-byte UTF-8: the database must hash the same
# bytes as the verifier for every one of them.
AWKWARD = ['say "hi"', "back\\slash", "line\nbreak\ttab", "\x01\x1f\x7f", "山田 𠮷野家", "\u2028\u2029", "/"]


def test_the_one_statement_append_hashes_as_the_verifier_does(pg_engine: Engine, lanes_org: str) -> None:
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    with Session(pg_engine) as session:
        _record(session, lanes_org, "first")  # creates the lanes
        session.commit()
    event.listen(pg_engine, "before_cursor_execute", count)
    try:
        with Session(pg_engine) as session:
            for text_value in AWKWARD:
                actor = Actor(kind=ActorKind.STAFF, actor_id=text_value, organisation_code=lanes_org)
                service.record(
                    session,
                    actor=actor,
                    action=AuditAction.AUDIT_VIEWED,
                    target_kind="person",
                    target_id=text_value,
                    purpose=text_value,
                    detail=text_value,
                )
            session.commit()
    finally:
        event.remove(pg_engine, "before_cursor_execute", count)
    appends = [s for s in statements if "INSERT INTO audit_entries" in s]
    # One statement per entry (the checkpoint every tenth entry is the only other write).
    assert len(appends) == len(AWKWARD)
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    with Session(pg_engine) as check:
        assert not [p for p in service.verify(check).problems if p.chain.split("/")[0] == lanes_org]
        stored = check.execute(
            text("SELECT actor_id FROM audit_entries WHERE organisation_code = :o ORDER BY id"),
            {"o": lanes_org},
        ).scalars()
        assert list(stored)[1:] == AWKWARD


def test_an_organisation_code_json_would_escape_is_appended_the_slower_way(pg_engine: Engine) -> None:
    org = f'組織"{uuid.uuid4().hex[:6]}'
    with Session(pg_engine) as session:
        chains = {_record(session, org, f"t{i}") for i in range(12)}
        session.commit()
    assert chains == {org}  # one transaction keeps to the lane it holds
    with Session(pg_engine) as check:
        assert not [p for p in service.verify(check).problems if p.chain.split("/")[0] == org]


def test_a_hash_the_database_computed_differently_writes_nothing(
    pg_engine: Engine, lanes_org: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(pg_engine) as session:
        _record(session, lanes_org, "first")
        session.commit()
    monkeypatch.setattr(EntryContent, "canonical_body", lambda self: b'"tampered"')
    with Session(pg_engine) as session, pytest.raises(RuntimeError, match="hashed differently"):
        _record(session, lanes_org, "second")
    with Session(pg_engine) as check:
        count = check.execute(
            text("SELECT count(*) FROM audit_entries WHERE organisation_code = :o"), {"o": lanes_org}
        ).scalar_one()
        assert count == 1
        assert not [p for p in service.verify(check).problems if p.chain.split("/")[0] == lanes_org]


def test_canonical_body_is_the_middle_of_the_canonical_form() -> None:
    content = EntryContent(
        chain="131016/3",
        seq=42,
        occurred_at=dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.UTC),
        request_id="req-1",
        actor_kind="staff",
        actor_id=AWKWARD[0],
        organisation_code="131016",
        action="audit.viewed",
        target_kind="person",
        target_id=AWKWARD[4],
        purpose=AWKWARD[2],
        outcome="success",
        detail=AWKWARD[3],
        prev_hash="ab" * 32,
    )
    expected = b'["131016/3",42,' + content.canonical_body() + b',"' + b"ab" * 32 + b'"]'
    assert expected == content.canonical()


def test_attached_rows_are_written_with_the_entry_either_way(pg_engine: Engine, lanes_org: str) -> None:
    """In the append's own statement (a free lane), or by ``write`` (the slower way)."""
    with pg_engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS attached_test (entry_id bigint, note text)"))
    written: list[int] = []

    def attach(note: str) -> service.Attachment:
        return service.Attachment(
            sql=", attached AS (INSERT INTO attached_test SELECT entry.id, :note FROM entry)",
            params={"note": note},
            write=written.append,
        )

    escaped_org = f'組織"{uuid.uuid4().hex[:6]}'
    with Session(pg_engine) as session:
        _record(session, lanes_org, "lanes")  # the lanes exist from here on
        actor = Actor(kind=ActorKind.STAFF, actor_id="clerk1", organisation_code=lanes_org)
        fast = service.record(
            session,
            actor=actor,
            action=AuditAction.AUDIT_VIEWED,
            target_kind="t",
            target_id="1",
            attach=attach(lanes_org),
        )
        slow_actor = Actor(kind=ActorKind.STAFF, actor_id="clerk1", organisation_code=escaped_org)
        slow = service.record(
            session,
            actor=slow_actor,
            action=AuditAction.AUDIT_VIEWED,
            target_kind="t",
            target_id="2",
            attach=attach("x"),
        )
        session.commit()
    with pg_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT entry_id FROM attached_test WHERE note = :n"), {"n": lanes_org}
        ).all()
    assert stored == [(fast.id,)]
    assert written == [slow.id]
