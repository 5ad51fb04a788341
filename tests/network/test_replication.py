"""The national inbox: signed, ordered, idempotent; and the timeline of a person across records.

The inbox tests post signed batches through the app (its units of work joined to the
test's transactions). The end-to-end test at the bottom runs `jumin serve` for real.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.audit.models import AuditEntry
from jumin.core.ids import IndividualNumber
from jumin.core.replication import (
    NONCE_HEADER,
    NOTICES_PATH,
    SENDER_HEADER,
    SENT_AT_HEADER,
    SIGNATURE_HEADER,
    MunicipalityDigest,
    PersonDigest,
    format_instant,
    identity_values,
    municipality_key_name,
    notices_envelope,
    sign,
)
from jumin.db import unit_of_work
from jumin.keys import load_or_create_ed25519
from jumin.network.agencies import service as agencies
from jumin.network.identity import service
from jumin.network.identity.domain import TimelineEntry, lay_out
from jumin.network.identity.models import (
    ForwardedNotice,
    IdentityHistory,
    IdentityRecord,
    InboxMessage,
    SourceSequence,
)
from jumin.network.service import number_hash
from jumin.reconcile import DifferenceKind, compare, reconcile
from jumin.registry.models import OutboxMessage
from tests.conftest import BACKENDS
from tests.network.replication_support import (
    CHANGES_PATH,
    CHIYODA,
    OSAKA,
    SAPPORO,
    certificate_message,
    facts,
    identity_message,
    individual_number,
    register,
    resident_code,
    signed,
    voided_message,
)
from tests.network.servers import Server, deployment
from tests.registry.conftest import member, today


def post(
    client: TestClient, sender: str, messages: list[dict[str, Any]], status: int = 200, **kw: Any
) -> Any:
    body, headers = signed(sender, messages, **kw)
    r = client.post(CHANGES_PATH, content=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


def statuses(response: Any) -> list[str]:
    return [r["status"] for r in response["results"]]


def identity(national_db: Session, code: str) -> IdentityRecord:
    return national_db.execute(
        select(IdentityRecord).where(IdentityRecord.resident_code == code)
    ).scalar_one()


def history(national_db: Session, identity_id: int) -> list[tuple[str, str, str | None, str]]:
    rows = national_db.execute(
        select(IdentityHistory).where(IdentityHistory.identity_id == identity_id).order_by(IdentityHistory.id)
    ).scalars()
    return [
        (h.lg_code, h.valid_from.isoformat(), h.valid_to.isoformat() if h.valid_to else None, h.status)
        for h in rows
    ]


def refusals(national_db: Session) -> list[str]:
    return list(
        national_db.execute(
            select(AuditEntry.detail)
            .where(AuditEntry.action == "network.replication_refused")
            .order_by(AuditEntry.id)
        ).scalars()
    )


@pytest.fixture
def keys(national_db: Session) -> None:
    register(national_db, CHIYODA, SAPPORO)


# ---------------------------------------------------------------------------
# Applying, in order, once


@pytest.mark.usefixtures("keys")
def test_a_signed_batch_is_applied_audited_and_keeps_the_number_sealed(
    client: TestClient, national_db: Session
) -> None:
    code, number = resident_code(), individual_number()
    out = post(
        client,
        CHIYODA,
        [identity_message(1, 1, facts(code, number=number), effective_on="2020-05-01", began="2020-05-01")],
    )
    assert out["sender"] == CHIYODA
    assert statuses(out) == ["applied"]
    row = identity(national_db, code)
    assert (row.lg_code, row.prefecture_code, row.status, row.name) == (CHIYODA, "13", "live", "山田　太郎")
    assert row.search_kana == "ヤマダタロウ"
    assert row.changed_on == dt.date(2020, 5, 1)
    assert row.individual_number_hash == number_hash(IndividualNumber(number))
    assert number not in (row.individual_number_encrypted or "")
    assert number not in national_db.execute(select(InboxMessage.payload)).scalar_one()
    assert history(national_db, row.id) == [(CHIYODA, "2020-05-01", None, "live")]
    actions = list(
        national_db.execute(
            select(AuditEntry.action).where(AuditEntry.chain == "national").order_by(AuditEntry.id)
        ).scalars()
    )
    assert actions[-2:] == ["network.identity_change_applied", "network.replication_batch_received"]


@pytest.mark.usefixtures("keys")
def test_a_message_ahead_of_its_turn_is_held_until_the_gap_fills(
    client: TestClient, national_db: Session
) -> None:
    code = resident_code()
    first, second, third = (
        identity_message(
            7,
            seq,
            facts(code, address=f"千代田{seq}丁目"),
            effective_on=f"2021-0{seq}-01",
            began="2021-01-01",
        )
        for seq in (1, 2, 3)
    )
    assert statuses(post(client, CHIYODA, [first])) == ["applied"]
    assert statuses(post(client, CHIYODA, [third])) == ["held"]
    assert identity(national_db, code).address == "千代田1丁目"
    assert statuses(post(client, CHIYODA, [third])) == ["duplicate"]
    filled = post(client, CHIYODA, [second, first])
    assert statuses(filled) == ["applied", "duplicate"]
    assert filled["applied_from_earlier"] == 1
    row = identity(national_db, code)
    assert row.address == "千代田3丁目"
    assert history(national_db, row.id) == [
        (CHIYODA, "2021-01-01", "2021-02-01", "live"),
        (CHIYODA, "2021-02-01", "2021-03-01", "live"),
        (CHIYODA, "2021-03-01", None, "live"),
    ]
    assert national_db.get(SourceSequence, (CHIYODA, 7)).last_seq == 3  # type: ignore[union-attr]
    assert national_db.execute(select(func.count()).select_from(InboxMessage)).scalar_one() == 3


@pytest.mark.usefixtures("keys")
def test_a_batch_fills_its_own_gap(client: TestClient, national_db: Session) -> None:
    code = resident_code()
    one = identity_message(3, 1, facts(code), effective_on="2022-01-01", began="2022-01-01")
    two = identity_message(
        3, 2, facts(code, name="山田　次郎"), effective_on="2022-02-01", began="2022-01-01"
    )
    assert statuses(post(client, CHIYODA, [two, one])) == ["applied", "applied"]
    assert identity(national_db, code).name == "山田　次郎"


@pytest.mark.usefixtures("keys")
def test_another_message_in_the_same_place_is_a_conflict(client: TestClient, national_db: Session) -> None:
    code = resident_code()
    post(
        client, CHIYODA, [identity_message(4, 1, facts(code), effective_on="2022-01-01", began="2022-01-01")]
    )
    clash = post(
        client,
        CHIYODA,
        [identity_message(4, 1, facts(code, name="別人"), effective_on="2022-01-01", began="2022-01-01")],
        status=409,
    )
    assert clash["type"] == "urn:jumin:problem:replication-conflict"
    assert identity(national_db, code).name == "山田　太郎"


# ---------------------------------------------------------------------------
# Who may send


@pytest.mark.usefixtures("keys")
def test_unsigned_forged_unknown_and_replayed_batches_are_refused_and_audited(
    client: TestClient, national_db: Session
) -> None:
    code = resident_code()
    message = identity_message(5, 1, facts(code), effective_on="2022-01-01", began="2022-01-01")
    body, headers = signed(CHIYODA, [message])

    unsigned = client.post(CHANGES_PATH, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert unsigned.headers["content-type"].startswith("application/problem+json")
    assert unsigned.json()["title"] == "署名を確認できないため受け付けません"

    forged = client.post(CHANGES_PATH, content=body.replace(b"2022-01-01", b"2022-01-02", 1), headers=headers)
    assert forged.status_code == 401

    _, sapporo_signed = signed(CHIYODA, [message], signer=SAPPORO)
    assert client.post(CHANGES_PATH, content=body, headers=sapporo_signed).status_code == 401

    unknown_body, unknown = signed(OSAKA, [message])
    assert client.post(CHANGES_PATH, content=unknown_body, headers=unknown).status_code == 403

    mismatch_body, mismatch = signed(CHIYODA, [message], body_sender=SAPPORO)
    assert client.post(CHANGES_PATH, content=mismatch_body, headers=mismatch).status_code == 401

    stale_body, stale = signed(CHIYODA, [message], sent_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
    assert client.post(CHANGES_PATH, content=stale_body, headers=stale).status_code == 401

    wrong_body, wrong = signed(CHIYODA, [message], kind="jumin.notices.v1")
    assert client.post(CHANGES_PATH, content=wrong_body, headers=wrong).status_code == 401

    assert national_db.execute(select(func.count()).select_from(InboxMessage)).scalar_one() == 0
    accepted = client.post(CHANGES_PATH, content=body, headers=headers)
    assert accepted.status_code == 200
    replayed = client.post(CHANGES_PATH, content=body, headers=headers)
    assert replayed.status_code == 401
    assert "二度" in replayed.json()["detail"]
    assert national_db.execute(select(func.count()).select_from(IdentityHistory)).scalar_one() == 1

    assert [d.split()[0] for d in refusals(national_db)] == [
        "reason=unsigned",
        "reason=bad_signature",
        "reason=bad_signature",
        "reason=unknown_municipality",
        "reason=sender_mismatch",
        "reason=stale",
        "reason=wrong_purpose",
        "reason=replayed",
    ]
    denied = national_db.execute(
        select(AuditEntry).where(AuditEntry.action == "network.replication_refused")
    ).scalars()
    assert {(e.outcome, e.target_id) for e in denied} >= {("denied", CHIYODA), ("denied", OSAKA)}


def test_keys_are_registered_for_municipalities_only(national_db: Session) -> None:
    from jumin.core.errors import InvalidValue

    pem = load_or_create_ed25519(municipality_key_name(CHIYODA)).public_pem()
    first = service.register_key(national_db, lg_code=CHIYODA, public_key_pem=pem)
    again = service.register_key(national_db, lg_code=CHIYODA, public_key_pem=pem)
    assert first == again
    with pytest.raises(InvalidValue):
        service.register_key(national_db, lg_code="130001", public_key_pem=pem)  # 東京都
    with pytest.raises(InvalidValue):
        service.register_key(national_db, lg_code=SAPPORO, public_key_pem="not a key")
    registered = national_db.execute(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "network.municipality_key_registered")
    ).scalar_one()
    assert registered == 1


# ---------------------------------------------------------------------------
# A person across records: whichever order the messages come in


def _move(code: str, number: str, moved: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chiyoda's record (born 2000) removed by a move on ``moved``; Sapporo's record from that day."""
    chiyoda = [
        identity_message(11, 1, facts(code, number=number), effective_on="2000-01-01", began="2000-01-01"),
        identity_message(
            11,
            2,
            facts(code, number=number, status="removed", removal_reason="move_out"),
            effective_on=moved,
            began="2000-01-01",
            change_kind="move_out",
        ),
    ]
    sapporo = [
        identity_message(
            21,
            1,
            facts(code, number=number, lg=SAPPORO, address="北1条西2丁目"),
            effective_on=moved,
            began=moved,
            change_kind="move_in",
        )
    ]
    return chiyoda, sapporo


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize("destination_first", [False, True])
def test_the_destination_holds_the_person_whatever_arrives_first(
    client: TestClient, national_db: Session, destination_first: bool
) -> None:
    code, number = resident_code(), individual_number()
    chiyoda, sapporo = _move(code, number, "2024-04-01")
    order = (
        [(SAPPORO, sapporo), (CHIYODA, chiyoda)]
        if destination_first
        else [(CHIYODA, chiyoda), (SAPPORO, sapporo)]
    )
    for sender, messages in order:
        post(client, sender, messages)
    row = identity(national_db, code)
    assert (row.lg_code, row.status, row.address, row.prefecture_code) == (
        SAPPORO,
        "live",
        "北1条西2丁目",
        "01",
    )
    assert (row.source_lg_code, row.source_person_id) == (SAPPORO, 21)
    laid = sorted(history(national_db, row.id))
    assert laid == sorted(
        [
            (CHIYODA, "2000-01-01", "2024-04-01", "live"),
            (CHIYODA, "2024-04-01", "2024-04-01", "removed"),  # the same day: the destination wins
            (SAPPORO, "2024-04-01", None, "live"),
        ]
    )


@pytest.mark.usefixtures("keys")
def test_a_late_message_of_an_older_record_never_takes_the_person_back(
    client: TestClient, national_db: Session
) -> None:
    code, number = resident_code(), individual_number()
    chiyoda, sapporo = _move(code, number, "2024-04-01")
    death = identity_message(
        21,
        2,
        facts(
            code, number=number, lg=SAPPORO, address="北1条西2丁目", status="removed", removal_reason="death"
        ),
        effective_on="2025-01-10",
        began="2024-04-01",
        change_kind="death",
    )
    post(client, SAPPORO, [*sapporo, death])
    post(client, CHIYODA, chiyoda)
    row = identity(national_db, code)
    assert (row.lg_code, row.status, row.removal_reason) == (SAPPORO, "removed", "death")


@pytest.mark.usefixtures("keys")
def test_a_new_resident_code_takes_the_identity_with_it(client: TestClient, national_db: Session) -> None:
    old, new, number = resident_code(), resident_code(), individual_number()
    post(
        client,
        CHIYODA,
        [
            identity_message(31, 1, facts(old, number=number), effective_on="2010-01-01", began="2010-01-01"),
            identity_message(
                31,
                2,
                facts(new, number=number),
                effective_on="2010-01-01",
                began="2010-01-01",
                change_kind="x",
            ),
        ],
    )
    assert (
        national_db.execute(select(IdentityRecord).where(IdentityRecord.resident_code == old)).first() is None
    )
    row = identity(national_db, new)
    codes = national_db.execute(
        select(IdentityHistory.resident_code)
        .where(IdentityHistory.identity_id == row.id)
        .order_by(IdentityHistory.id)
    ).scalars()
    assert list(codes) == [old, new]


@pytest.mark.usefixtures("keys")
def test_a_voided_record_gives_the_person_back_to_the_record_before(
    client: TestClient, national_db: Session
) -> None:
    code, number = resident_code(), individual_number()
    chiyoda, sapporo = _move(code, number, "2024-04-01")
    post(client, CHIYODA, chiyoda)
    post(client, SAPPORO, [*sapporo, voided_message(21, 2, code)])
    row = identity(national_db, code)
    assert (row.lg_code, row.status, row.removal_reason) == (CHIYODA, "removed", "move_out")
    assert [h for h in history(national_db, row.id) if h[0] == SAPPORO] == [
        (SAPPORO, "2024-04-01", "2024-04-01", "live")  # never held
    ]

    alone = resident_code()
    post(
        client,
        CHIYODA,
        [
            identity_message(41, 1, facts(alone), effective_on="2024-01-01", began="2024-01-01"),
            voided_message(41, 2, alone),
        ],
    )
    assert identity(national_db, alone).status == "void"


def test_lay_out_ranks_records_by_when_they_began() -> None:
    a, b = ("131016", 1), ("011002", 2)
    d = dt.date.fromisoformat
    entries = [
        TimelineEntry(1, a, 1, d("2000-01-01")),
        TimelineEntry(2, b, 1, d("2024-03-01")),  # moved in before the origin's planned date
        TimelineEntry(3, a, 2, d("2024-04-01")),
    ]
    layout = lay_out(entries, {a: d("2000-01-01"), b: d("2024-03-01")}, set())
    assert layout.valid_to == {1: d("2024-03-01"), 2: None, 3: d("2024-04-01")}
    assert layout.current == entries[1]
    assert layout.holder == b
    # A message restating an earlier date supersedes what its record said after it.
    restated = lay_out([*entries, TimelineEntry(4, a, 3, d("2010-01-01"))], {a: d("2000-01-01")}, {b})
    assert restated.valid_to == {1: d("2010-01-01"), 2: d("2024-03-01"), 3: d("2024-04-01"), 4: None}
    assert restated.holder == a
    assert lay_out(entries, {a: d("2000-01-01"), b: d("2024-03-01")}, {a, b}).current is None


# ---------------------------------------------------------------------------
# 転出証明書情報


def _get_notices(
    client: TestClient, signer: str, lg_code: str, after_id: int = 0, nonce: str = "n" * 32
) -> Any:
    sent_at = format_instant(dt.datetime.now(dt.UTC))
    key = load_or_create_ed25519(municipality_key_name(signer))
    sig = sign(
        key.private_key,
        notices_envelope(
            sender=signer, sent_at=sent_at, nonce=nonce, lg_code=lg_code, after_id=after_id, limit=100
        ),
    )
    return client.get(
        NOTICES_PATH,
        params={"lg_code": lg_code, "after_id": after_id, "limit": 100},
        headers={SENDER_HEADER: signer, SIGNATURE_HEADER: sig, SENT_AT_HEADER: sent_at, NONCE_HEADER: nonce},
    )


@pytest.mark.usefixtures("keys")
def test_move_out_certificates_reach_their_destination_only(client: TestClient, national_db: Session) -> None:
    code, number = resident_code(), individual_number()
    person = facts(code, number=number)
    post(
        client,
        CHIYODA,
        [
            identity_message(51, 1, person, effective_on="2000-01-01", began="2000-01-01"),
            certificate_message(51, 2, person, destination=SAPPORO, effective_on="2026-04-01"),
        ],
    )
    stored = national_db.execute(select(ForwardedNotice)).scalar_one()
    assert (stored.destination_lg_code, stored.prefecture_code, stored.resident_code) == (SAPPORO, "01", code)
    assert number not in stored.payload

    got = _get_notices(client, SAPPORO, SAPPORO, nonce="a" * 32)
    assert got.status_code == 200, got.text
    notices = got.json()["notices"]
    assert [(n["origin_lg_code"], n["resident_code"], n["effective_on"]) for n in notices] == [
        (CHIYODA, code, "2026-04-01")
    ]
    assert notices[0]["document"]["identity"]["individual_number"] == number
    assert notices[0]["document"]["individual_number"] == number
    assert got.json()["next_after_id"] == notices[0]["id"]
    assert (
        _get_notices(client, SAPPORO, SAPPORO, after_id=notices[0]["id"], nonce="b" * 32).json()["notices"]
        == []
    )

    assert _get_notices(client, SAPPORO, SAPPORO, nonce="a" * 32).status_code == 401  # replayed
    assert _get_notices(client, CHIYODA, SAPPORO, nonce="c" * 32).status_code == 401  # someone else's
    assert _get_notices(client, OSAKA, OSAKA, nonce="d" * 32).status_code == 403
    collected = national_db.execute(
        select(AuditEntry).where(AuditEntry.action == "network.move_out_notices_collected")
    ).scalar_one()
    assert collected.target_id == SAPPORO
    assert [d.split()[0] for d in refusals(national_db)] == [
        "reason=replayed",
        "reason=sender_mismatch",
        "reason=unknown_municipality",
    ]


# ---------------------------------------------------------------------------
# Reconcile's comparison


def _digest(lg: str, salt: bytes, *people: tuple[str, str, str]) -> MunicipalityDigest:
    persons = {}
    for code, name, began in people:
        values = identity_values(
            resident_code=code,
            individual_number=None,
            name=name,
            name_kana=None,
            birth_date=dt.date(2000, 1, 1),
            sex="male",
            address_lg_code=lg,
            address="x",
            status="live",
            removal_reason=None,
            resident_kind="japanese",
        )
        persons[code] = PersonDigest.of(values, salt=salt, started_on=dt.date.fromisoformat(began))
    return MunicipalityDigest(lg_code=lg, persons=persons)


def test_compare_names_each_person_and_field_that_differs() -> None:
    salt = b"s" * 32
    same, renamed, moved, lost, extra, elsewhere = (resident_code() for _ in range(6))
    municipal = _digest(
        CHIYODA,
        salt,
        (same, "甲", "2000-01-01"),
        (renamed, "乙", "2000-01-01"),
        (moved, "丙", "2000-01-01"),
        (lost, "丁", "2000-01-01"),
        (elsewhere, "戊", "2020-01-01"),
    )
    national = _digest(
        CHIYODA,
        salt,
        (same, "甲", "2000-01-01"),
        (renamed, "乙乙", "2000-01-01"),
        (extra, "己", "2000-01-01"),
    )
    holders = {moved: (SAPPORO, dt.date(2024, 1, 1)), elsewhere: (SAPPORO, dt.date(2010, 1, 1))}
    report = compare(municipal, national, holders)
    assert not report.clean
    assert report.moved_on == 1
    found = {(d.resident_code, d.kind, d.fields) for d in report.differences}
    assert found == {
        (renamed, DifferenceKind.FIELDS, ("name",)),
        (lost, DifferenceKind.MISSING, ()),
        (extra, DifferenceKind.UNEXPECTED, ()),
        (elsewhere, DifferenceKind.HELD_ELSEWHERE, ()),
    }
    clean = compare(national, national, {})
    assert clean.clean
    assert clean.municipal_hash == clean.national_hash
    assert (
        _digest(CHIYODA, b"t" * 32, (same, "甲", "2000-01-01")).combined
        != _digest(CHIYODA, salt, (same, "甲", "2000-01-01")).combined
    )


# ---------------------------------------------------------------------------
# End to end: `jumin serve` with two municipalities, over real HTTP


@dataclass
class Clerk:
    login: str
    password: str
    totp_secret: str
    headers: dict[str, str] = field(default_factory=dict)


def _staff(municipal: Engine, lg_code: str, name: str) -> Clerk:
    with unit_of_work(municipal) as session:
        accounts.ensure_organisation(session, code=lg_code, kind=OrganisationKind.MUNICIPALITY, name=name)
        new = accounts.create_staff(
            session,
            actor=None,
            organisation_code=lg_code,
            login=f"clerk-{lg_code}",
            display_name=name,
            roles=[Role.CLERK, Role.SUPERVISOR],
        )
    return Clerk(f"clerk-{lg_code}", new.password, new.totp_secret)


def _national_staff(national: Engine, org: str, kind: OrganisationKind, role: Role, name: str) -> Clerk:
    with unit_of_work(national) as session:
        accounts.ensure_organisation(session, code=org, kind=kind, name=name)
        new = accounts.create_staff(
            session, actor=None, organisation_code=org, login=f"{role}-{org}", display_name=name, roles=[role]
        )
    return Clerk(f"{role}-{org}", new.password, new.totp_secret)


def _agency(http: httpx.Client, national: Engine, org: str, task: str) -> dict[str, str]:
    """An agency client registered by the national operator, holding ``task``: its bearer header."""
    with unit_of_work(national) as session:
        new = agencies.register_agency_client(
            session, actor=None, organisation_code=org, name="照会システム", organisation_name=f"{org} 機関"
        )
        agencies.grant_task(session, actor=None, client_id=new.client_id, task_code=task)
    r = http.post(
        "/network/v1/auth/token", json={"client_id": new.client_id, "client_secret": new.client_secret}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _login(http: httpx.Client, clerk: Clerk, path: str = "/auth/login") -> Clerk:
    r = http.post(
        path,
        json={"login": clerk.login, "password": clerk.password, "totp": pyotp.TOTP(clerk.totp_secret).now()},
    )
    assert r.status_code == 200, r.text
    clerk.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return clerk


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _day(offset: int) -> str:
    return (today() + dt.timedelta(days=offset)).isoformat()


TASK = "pension-benefit"
TOKYO, HOKKAIDO = "130001", "010006"


def _ok(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    r = http.post(path, json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _agency_meets_the_family(
    http: httpx.Client, agency: dict[str, str], family: list[str], sato: str
) -> dict[str, str]:
    """Lookups by code and by four facts, then a batch; returns the agency's codes of the family."""
    father, mother, baby = family
    found = _ok(http, "/network/v1/lookups/by-resident-code", {"task": TASK, "resident_code": father}, agency)
    assert found["address"].startswith("東京都千代田区千代田一丁目1番1号")
    assert (found["status"], found["resident_code"]) == ("live", father)
    assert IndividualNumber.parse(found["individual_number"])  # this task receives it
    codes = {father: found["agency_code"]}
    facts = {
        "name_kana": "やまだ はなこ",
        "birth_date": "昭和57年6月15日",
        "sex": "女",
        "address": "東京都千代田区",
    }
    candidates = _ok(http, "/network/v1/lookups/by-four-facts", {"task": TASK, **facts}, agency)["candidates"]
    assert (candidates[0]["exact"], candidates[0]["person"]["resident_code"]) == (True, mother)
    codes[mother] = candidates[0]["person"]["agency_code"]

    nobody = resident_code()
    csv_body = f"ref,resident_code\nbaby,{baby}\nsato,{sato}\nnobody,{nobody}\n".encode()
    r = http.post(
        "/network/v1/batches",
        params={"task": TASK, "kind": "resident_code"},
        content=csv_body,
        headers={**agency, "Content-Type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    batch = f"/network/v1/batches/{r.json()['id']}"
    status: dict[str, Any] = {}

    def finished() -> bool:
        status.update(http.get(batch, params={"task": TASK}, headers=agency).json())
        return status["status"] in ("done", "failed", "rejected")

    _wait_for("the batch", finished)
    assert (status["status"], status["processed_rows"], status["total_rows"]) == ("done", 3, 3)
    assert (status["matched"], status["not_found"]) == (2, 1)
    result = http.get(f"{batch}/result", params={"task": TASK}, headers=agency)
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert [(row["ref"], row["match"]) for row in rows] == [
        ("baby", "matched"),
        ("sato", "matched"),
        ("nobody", "not_found"),
    ]
    assert rows[0]["address"].startswith("東京都千代田区")
    assert rows[1]["address"].startswith("北海道札幌市")
    codes[baby] = rows[0]["agency_code"]

    r = http.put(
        f"/network/v1/subscriptions/{TASK}", json={"events": ["death", "move_in", "move_out"]}, headers=agency
    )
    assert r.status_code == 200, r.text
    return codes


def _agency_follows_the_family(
    http: httpx.Client, agency: dict[str, str], codes: dict[str, str], family: list[str]
) -> None:
    father = family[0]
    events: list[dict[str, Any]] = []
    cursor: dict[str, str] = {}

    def death_seen() -> bool:
        page = http.get("/network/v1/feed", params={"task": TASK, **cursor}, headers=agency).json()
        events.extend(page["events"])
        cursor["after"] = page["next_cursor"]
        return any(e["event"] == "death" for e in events)

    _wait_for("the death in the change feed", death_seen)
    seen = {(e["event"], e["person"]["resident_code"]) for e in events}
    expected = {(kind, c) for kind in ("move_out", "move_in") for c in family} | {("death", father)}
    assert expected <= seen
    # Only the persons the agency knows, each under the code it was given before the move.
    assert {e["person"]["resident_code"]: e["person"]["agency_code"] for e in events} == codes
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(set(cursors))

    now = _ok(http, "/network/v1/lookups/by-resident-code", {"task": TASK, "resident_code": father}, agency)
    assert (now["status"], now["removal_reason"]) == ("removed", "death")
    assert now["address"].startswith("北海道札幌市")
    then = _ok(
        http, "/network/v1/lookups/as-of", {"task": TASK, "resident_code": father, "on": _day(-1)}, agency
    )
    assert then["address"].startswith("東京都千代田区")


def _prefectures_see_their_own_residents(http: httpx.Client, national: Engine, code: str) -> None:
    def clerk(org: str, name: str) -> dict[str, str]:
        staff = _national_staff(national, org, OrganisationKind.PREFECTURE, Role.CLERK, name)
        return _login(http, staff, "/network/v1/auth/login").headers

    hokkaido, tokyo = clerk(HOKKAIDO, "北海道"), clerk(TOKYO, "東京都")
    body = {"task": "local-tax-assessment", "resident_code": code}
    assert _ok(http, "/network/v1/lookups/by-resident-code", body, hokkaido)["address"].startswith("北海道")
    refused = http.post("/network/v1/lookups/by-resident-code", json=body, headers=tokyo)
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:jumin:problem:outside-area"
    # Tokyo may still see where the person lived in Tokyo, on a date they lived there.
    then = _ok(http, "/network/v1/lookups/as-of", {**body, "on": _day(-1)}, tokyo)
    assert then["address"].startswith("東京都千代田区")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_municipalities_and_the_national_server_over_http(backend: str, tmp_path: Path) -> None:
    with deployment(backend, tmp_path, "e2e") as d:
        municipal, national = d.engine("municipal"), d.engine("national")
        ch, sp = _staff(municipal, CHIYODA, "千代田区"), _staff(municipal, SAPPORO, "札幌市")
        # The loopback relay of `jumin serve`: keys registered by the server itself.
        server = Server(d, relay_interval=0.3).start()
        try:
            http = httpx.Client(base_url=server.url, timeout=30)
            _login(http, ch)
            _login(http, sp)

            def event(clerk: Clerk, slug: str, body: dict[str, Any]) -> dict[str, Any]:
                r = http.post(f"/registry/events/{slug}", json=body, headers=clerk.headers)
                assert r.status_code == 201, r.text
                result: dict[str, Any] = r.json()
                return result

            def read(clerk: Clerk, path: str, **params: Any) -> Any:
                r = http.get(path, headers=clerk.headers, params=params)
                assert r.status_code == 200, r.text
                return r.json()

            def refs(clerk: Clerk, ids: list[int]) -> list[dict[str, int]]:
                return [
                    {"person_id": p, "version": read(clerk, f"/registry/persons/{p}")["version"]} for p in ids
                ]

            family = event(
                ch,
                "move-in-from-abroad",
                {
                    "effective_on": _day(-60),
                    "address": {"line": "千代田一丁目1番1号"},
                    "previous_address": "アメリカ合衆国",
                    "members": [
                        member(),
                        member(
                            "山田",
                            "花子",
                            ("ヤマダ", "ハナコ"),
                            birth="1982-06-15",
                            sex="female",
                            relationship="妻",
                        ),
                    ],
                },
            )
            household = family["household_ids"][0]
            version = read(ch, f"/registry/households/{household}")["version"]
            baby = event(
                ch,
                "birth",
                {
                    "effective_on": _day(-10),
                    "child": member(
                        "山田",
                        "さくら",
                        ("ヤマダ", "サクラ"),
                        birth=_day(-10),
                        sex="female",
                        relationship="子",
                    ),
                    "household": {"household_id": household, "version": version},
                },
            )
            sato = event(
                sp,
                "move-in-from-abroad",
                {
                    "effective_on": _day(-30),
                    "address": {"line": "北3条西1丁目"},
                    "previous_address": "大韓民国",
                    "members": [member("佐藤", "次郎", ("サトウ", "ジロウ"), birth="1950-01-01")],
                },
            )
            movers = [*family["person_ids"], *baby["person_ids"]]

            def drained() -> bool:
                return all(not read(c, "/registry/outbox", undelivered_only="true") for c in (ch, sp))

            # A pension agency meets the family in Chiyoda: lookups, a batch, a subscription.
            _wait_for("the births and arrivals to reach the national store", drained)
            codes = [read(ch, f"/registry/persons/{p}")["resident_code"] for p in movers]
            sato_code = read(sp, f"/registry/persons/{sato['person_ids'][0]}")["resident_code"]
            pension = _agency(http, national, "nenkin", TASK)
            agency_codes = _agency_meets_the_family(http, pension, codes, sato_code)
            event(
                ch,
                "move-out",
                {
                    "effective_on": _day(5),
                    "persons": refs(ch, movers),
                    "destination": "北海道札幌市中央区北1条西2丁目",
                    "destination_lg_code": SAPPORO,
                },
            )
            # Sapporo's window sees the family coming before they arrive.
            _wait_for("expected arrivals", lambda: len(read(sp, "/registry/arrivals")) == 3)
            coming = read(sp, "/registry/arrivals")
            assert {(a["origin_lg_code"], a["planned_on"]) for a in coming} == {(CHIYODA, _day(5))}

            people = [read(ch, f"/registry/persons/{p}", show_individual_number="true") for p in movers]
            arrived = event(
                sp,
                "move-in",
                {
                    "effective_on": _day(0),
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
            )
            father, mother, _ = arrived["person_ids"]
            event(
                sp,
                "death",
                {
                    "effective_on": _day(0),
                    "person": refs(sp, [father])[0],
                    "remaining_head_person_id": mother,
                },
            )
            _wait_for("the outbox to drain", drained)
            assert read(sp, "/registry/arrivals") == []
            assert [a["arrived"] for a in read(sp, "/registry/arrivals", include_arrived="true")] == [
                True
            ] * 3

            # The agency follows them to Sapporo through the change feed; the prefectures
            # see them only while they live in their area; the access log names who looked.
            _agency_follows_the_family(http, pension, agency_codes, codes)
            _prefectures_see_their_own_residents(http, national, codes[0])
            auditor = _login(
                http,
                _national_staff(
                    national, "national", OrganisationKind.NATIONAL, Role.AUDITOR, "全国センター"
                ),
                "/network/v1/auth/login",
            )
            r = http.get(f"/network/v1/access-log/{codes[0]}", headers=auditor.headers)
            assert r.status_code == 200, r.text
            assert {(e["organisation_code"], e["task_code"]) for e in r.json()} == {
                ("nenkin", TASK),
                (HOKKAIDO, "local-tax-assessment"),
                (TOKYO, "local-tax-assessment"),  # as of the day before the move
            }
        finally:
            server.stop()

        # The operator's commands, on SQLite only: they do not depend on the backend, and
        # each costs an interpreter start (the PostgreSQL run calls the same functions).
        if backend == "sqlite":
            arrivals = d.jumin("registry", "arrivals", "--clerk", sp.login, "--include-arrived")
            assert arrivals.returncode == 0, arrivals.stderr
            assert [json.loads(line)["arrived"] for line in arrivals.stdout.splitlines()] == [True] * 3
            reconciled = d.jumin("network", "reconcile")
            assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
            lines = [json.loads(line) for line in reconciled.stdout.splitlines()]
            summary = {s["lg_code"]: (s["clean"], s["municipal_count"], s["national_count"]) for s in lines}
        else:
            report = reconcile(municipal_engine=municipal, national_db=d.engine("national"))
            summary = {
                m.lg_code: (m.clean, m.municipal_count, m.national_count) for m in report.municipalities
            }
        assert summary == {CHIYODA: (True, 0, 0), SAPPORO: (True, 4, 4)}

        national_db = national
        with national_db.connect() as conn:
            codes = [p["resident_code"] for p in people]
            held = conn.execute(
                select(IdentityRecord.lg_code, IdentityRecord.status, IdentityRecord.removal_reason)
                .where(IdentityRecord.resident_code.in_(codes))
                .order_by(IdentityRecord.resident_code)
            ).all()
            assert sorted(held) == sorted(
                [(SAPPORO, "removed", "death"), (SAPPORO, "live", None), (SAPPORO, "live", None)]
            )
            inbox = conn.execute(select(func.count(), func.count(InboxMessage.applied_at))).one()
        with municipal.connect() as conn:
            sent = conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        assert tuple(inbox) == (sent, sent)

        # Reconcile finds what differs: the mother's name altered behind the network's back.
        mother = codes[1]
        with national.begin() as conn:
            conn.execute(
                update(IdentityRecord).where(IdentityRecord.resident_code == mother).values(name="山田　英子")
            )
        if backend == "sqlite":
            tampered = d.jumin("network", "reconcile", "--lg", SAPPORO)
            assert tampered.returncode == 1, tampered.stdout + tampered.stderr
            lines = [json.loads(line) for line in tampered.stdout.splitlines()]
            assert (lines[0]["clean"], lines[0]["differences"]) == (False, 1)
            assert lines[1:] == [
                {
                    "lg_code": SAPPORO,
                    "resident_code": mother,
                    "difference": "fields",
                    "fields": ["name"],
                    "national_lg_code": SAPPORO,
                }
            ]
        else:
            report = reconcile(lg_codes=[SAPPORO], municipal_engine=municipal, national_db=national)
            assert [(x.resident_code, x.kind, x.fields) for x in report.differences] == [
                (mother, DifferenceKind.FIELDS, ("name",))
            ]
