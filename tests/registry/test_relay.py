"""The relay on the municipal side: outbox to inbox, 転出証明書情報 back as expected arrivals.

The relay talks to the app through the test client (an httpx client), and its municipal
units of work join the test's transaction, so each test sees both sides and leaves nothing.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jumin.audit.models import AuditEntry
from jumin.db import finish_failed
from jumin.network.identity import service as national
from jumin.network.identity.models import ForwardedNotice, IdentityHistory, IdentityRecord, InboxMessage
from jumin.reconcile import compare
from jumin.registry import relay as relay_service
from jumin.registry.models import OutboxMessage
from tests.network.replication_support import register
from tests.registry.conftest import CHIYODA, SAPPORO, Headers, Post, family_from_abroad, member, today


def _relay(client: TestClient, db: Session, **kw: Any) -> relay_service.Relay:
    @contextmanager
    def scope() -> Iterator[Session]:
        try:
            yield db
            db.commit()
        except BaseException as exc:
            finish_failed(db, exc)
            raise

    return relay_service.Relay(url="http://testserver", http=client, session_scope=scope, **kw)


def _undelivered(db: Session) -> int:
    return relay_service.undelivered_count(db)


def _refs(get: Any, headers: Headers, ids: list[int]) -> list[dict[str, int]]:
    return [{"person_id": p, "version": get(f"/registry/persons/{p}", headers)["version"]} for p in ids]


def _reconciled(db: Session, national_db: Session, *lg_codes: str) -> bool:
    salt = b"x" * 32
    for lg in lg_codes:
        mine = relay_service.register_digest(db, lg_code=lg, salt=salt)
        theirs = national.identity_digest(national_db, lg_code=lg, salt=salt)
        holders = national.holders_of(national_db, [c for c in mine.persons if c not in theirs.persons])
        report = compare(mine, theirs, holders)
        if not report.clean:
            return False
    return True


def test_a_move_reaches_the_national_store_and_the_destination_expects_the_family(
    client: TestClient,
    db: Session,
    national_db: Session,
    post: Post,
    get: Any,
    chiyoda: Headers,
    sapporo: Headers,
) -> None:
    register(national_db, CHIYODA, SAPPORO)
    relay = _relay(client, db, batch_size=4)
    family = family_from_abroad(post, chiyoda, moved=60)["person_ids"]
    planned = (today() + dt.timedelta(days=7)).isoformat()
    post(
        "move-out",
        {
            "effective_on": planned,
            "persons": _refs(get, chiyoda, family),
            "destination": "北海道札幌市中央区北1条西2丁目",
            "destination_lg_code": SAPPORO,
        },
        chiyoda,
    )
    queued = db.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
    assert queued == 9  # 3 arrivals, 3 planned removals, 3 転出証明書情報

    report = relay.run_once()
    assert (report.sent, report.arrivals, report.errors) == (9, 3, [])
    assert report.batches == 3
    assert _undelivered(db) == 0
    assert national_db.execute(select(func.count()).select_from(ForwardedNotice)).scalar_one() == 3
    codes = [get(f"/registry/persons/{p}", chiyoda)["resident_code"] for p in family]
    held = national_db.execute(
        select(IdentityRecord).where(IdentityRecord.resident_code.in_(codes))
    ).scalars()
    assert {(r.lg_code, r.status, r.removal_reason) for r in held} == {(CHIYODA, "removed", "move_out")}

    expected = get("/registry/arrivals", sapporo)
    assert sorted(a["name"] for a in expected) == ["山田　一郎", "山田　太郎", "山田　花子"]
    assert {(a["origin_lg_code"], a["planned_on"], a["arrived"]) for a in expected} == {
        (CHIYODA, planned, False)
    }
    assert get("/registry/arrivals", chiyoda) == []
    assert _reconciled(db, national_db, CHIYODA, SAPPORO)

    people = [get(f"/registry/persons/{p}", chiyoda, show_individual_number="true") for p in family]
    post(
        "move-in",
        {
            "effective_on": today().isoformat(),
            "address": {"line": "北1条西2丁目"},
            "previous_address": "東京都千代田区千代田一丁目1番1号",
            "origin_lg_code": CHIYODA,
            "members": [
                member(
                    p["family_name"],
                    p["given_name"],
                    (p["family_name_kana"], p["given_name_kana"]),
                    birth=p["birth_date"],
                    sex=p["sex"],
                    relationship=p["relationship"],
                    resident_code=p["resident_code"],
                    individual_number=p["individual_number"],
                )
                for p in people
            ],
        },
        sapporo,
    )
    assert not _reconciled(db, national_db, SAPPORO)  # not yet relayed
    second = relay.run_once()
    assert second.errors == []
    assert second.arrivals == 0
    held = national_db.execute(
        select(IdentityRecord).where(IdentityRecord.resident_code.in_(codes))
    ).scalars()
    assert {(r.lg_code, r.status, r.address) for r in held} == {(SAPPORO, "live", "北1条西2丁目")}
    assert get("/registry/arrivals", sapporo) == []
    assert {a["arrived"] for a in get("/registry/arrivals", sapporo, include_arrived="true")} == {True}
    assert _reconciled(db, national_db, CHIYODA, SAPPORO)

    sent = db.execute(
        select(AuditEntry.detail).where(AuditEntry.action == "registry.replication_batch_sent")
    ).scalars()
    assert all("applied=" in d for d in sent)
    assert (
        db.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "registry.expected_arrivals_received")
        ).scalar_one()
        == 1
    )
    idle = relay.run_once()
    assert (idle.sent, idle.batches, idle.arrivals) == (0, 0, 0)


def test_a_relay_killed_before_it_marks_delivery_sends_again_with_no_second_effect(
    client: TestClient, db: Session, national_db: Session, post: Post, chiyoda: Headers
) -> None:
    register(national_db, CHIYODA)
    relay = _relay(client, db, batch_size=2)
    family_from_abroad(post, chiyoda)
    with db.begin_nested():
        batch = relay_service.next_batch(db, lg_codes=None, limit=2)
    assert batch is not None
    assert set(relay.send(batch).values()) == {"applied"}  # then "killed": nothing marked
    assert _undelivered(db) == 3

    report = relay.run_once()
    assert report.sent == 3
    assert _undelivered(db) == 0
    inbox = national_db.execute(select(func.count()).select_from(InboxMessage)).scalar_one()
    applied = national_db.execute(select(func.count()).select_from(IdentityHistory)).scalar_one()
    assert inbox == applied == 3
    details = list(
        db.execute(
            select(AuditEntry.detail)
            .where(AuditEntry.action == "registry.replication_batch_sent")
            .order_by(AuditEntry.id)
        ).scalars()
    )
    assert "duplicate=2" in details[0]
    assert _reconciled(db, national_db, CHIYODA)


def test_the_relay_backs_off_while_the_inbox_is_away_and_gives_up_in_bounded_time(
    client: TestClient, db: Session, national_db: Session, post: Post, chiyoda: Headers
) -> None:
    register(national_db, CHIYODA)
    family_from_abroad(post, chiyoda)
    failures = {"left": 3, "calls": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        failures["calls"] += 1
        if failures["left"] > 0:
            failures["left"] -= 1
            if failures["left"] % 2:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(503, json={"type": "urn:jumin:problem:internal-error"})
        return client.send(request)

    http = httpx.Client(transport=httpx.MockTransport(flaky))
    relay = _relay(client, db, base_delay=0.001, max_delay=0.002)
    relay.http = http
    report = relay.run_once()
    assert report.sent == 3
    assert failures["calls"] >= 4

    family_from_abroad(post, chiyoda, line="千代田二丁目2番2号")
    failures["left"] = 100
    stubborn = _relay(client, db, attempts=4, base_delay=0.001, max_delay=0.002)
    stubborn.http = http
    with pytest.raises(relay_service.RelayUnavailable):
        stubborn.run_once()
    assert _undelivered(db) == 3


def test_a_municipality_the_inbox_does_not_know_is_reported_and_the_others_still_flow(
    client: TestClient, db: Session, national_db: Session, post: Post, chiyoda: Headers, sapporo: Headers
) -> None:
    register(national_db, CHIYODA)
    family_from_abroad(post, chiyoda)
    family_from_abroad(post, sapporo, line="北1条西2丁目")
    report = _relay(client, db).run_once()
    assert report.sent == 3
    assert report.errors
    assert all(SAPPORO in e for e in report.errors)
    assert "403" in report.errors[0]
    assert relay_service.undelivered_count(db, lg_code=SAPPORO) == 3
    assert relay_service.undelivered_count(db, lg_code=CHIYODA) == 0


def test_an_identity_change_carries_the_identity_only(db: Session, post: Post, chiyoda: Headers) -> None:
    family_from_abroad(post, chiyoda)
    batch = relay_service.next_batch(db, lg_codes=[CHIYODA], limit=10)
    assert batch is not None
    message = batch.messages[0]
    assert message["kind"] == "identity_changed"
    assert set(message["payload"]) == {
        "effective_on",
        "change_kind",
        "became_resident_on",
        "identity",
        "alias_kana",
    }
    assert "honseki" not in str(message)
    assert message["seq"] == 1


class _RecordingStop(threading.Event):
    """A stop event that is never set and records each back-off instead of sleeping it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False


def _offline_relay(tmp_path: Path, answer: Callable[[httpx.Request], httpx.Response]) -> relay_service.Relay:
    return relay_service.Relay(
        url="http://national.invalid",
        http=httpx.Client(transport=httpx.MockTransport(answer)),
        stop=_RecordingStop(),
        attempts=8,
        base_delay=0.25,
        max_delay=8.0,
        key_dir=tmp_path,
    )


_BATCH = relay_service.OutgoingBatch(
    sender=CHIYODA, first_id=1, last_id=1, messages=({"idempotency_key": "k-1", "seq": 1},)
)


def test_each_retry_waits_twice_as_long_up_to_a_cap_and_is_signed_afresh(tmp_path: Path) -> None:
    bodies: list[bytes] = []

    def away(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(503, json={"type": "urn:jumin:problem:internal-error"})

    relay = _offline_relay(tmp_path, away)
    with pytest.raises(relay_service.RelayUnavailable):
        relay.send(_BATCH)
    assert len(bodies) == 8
    assert len(set(bodies)) == 8  # a new nonce and time each attempt: a retry is never a replay
    waits = relay.stop.waits  # type: ignore[attr-defined]
    assert len(waits) == 7  # none after the last attempt
    for attempt, waited in enumerate(waits, start=1):
        nominal = min(8.0, 0.25 * 2 ** (attempt - 1))  # 0.25, 0.5, 1, 2, 4, 8, 8
        assert nominal * 0.5 <= waited <= nominal, (attempt, waited)


@pytest.mark.parametrize(
    ("status", "problem", "retried"),
    [
        (403, "urn:jumin:problem:unknown-municipality", False),
        (401, "urn:jumin:problem:replication-refused", False),
        (409, "urn:jumin:problem:replication-conflict", False),
        (409, "urn:jumin:problem:replication-race", True),
        (429, "urn:jumin:problem:too-many-requests", True),
    ],
)
def test_refusals_are_not_retried_and_races_are(
    tmp_path: Path, status: int, problem: str, retried: bool
) -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(status, json={"type": problem, "title": "t", "detail": "d"})
        return httpx.Response(200, json={"results": [{"idempotency_key": "k-1", "status": "applied"}]})

    relay = _offline_relay(tmp_path, answer)
    if retried:
        assert relay.send(_BATCH) == {"k-1": "applied"}
        assert calls["n"] == 2
    else:
        with pytest.raises(relay_service.RelayRefused, match=str(status)):
            relay.send(_BATCH)
        assert calls["n"] == 1
        assert relay.stop.waits == []  # type: ignore[attr-defined]
