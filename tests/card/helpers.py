"""Seeding the national identity store and walking a card through its life, in one line each.

The identity rows are written as the replication would write them (a current row and a
history row per change), so that the card service reads them through
``network.identity.lookup`` exactly as in production. Tests speak in full addresses
(東京都千代田区千代田1番1号); the store keeps the municipality's code and the line within
it, as the register sends them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind
from jumin.card import repository, service
from jumin.card.domain import ApplicationReason, CertificateKind, IdentityDocument
from jumin.core.ids import ResidentCode
from jumin.db import utcnow
from jumin.network.identity.lookup import full_address
from jumin.network.identity.models import IdentityHistory, IdentityRecord

CHIYODA = "131016"
SAPPORO_CHUO = "011011"
ADDRESS = "東京都千代田区千代田1番1号"
_rng = random.Random(20251201)
_person = itertools.count(1)

CLERK = Actor(kind=ActorKind.STAFF, actor_id="clerk", organisation_code=CHIYODA)
OPERATOR = Actor(kind=ActorKind.STAFF, actor_id="operator", organisation_code="national")
PHOTO = "photo:sha256:0f1e2d"
AUTH_PIN = "1234"
SIGNING_PIN = "ABCD1234"
DOCS = [IdentityDocument.DRIVERS_LICENCE]


def years_ago(years: int, *, days: int = 0) -> dt.date:
    today = service.today_jst(utcnow())
    try:
        d = today.replace(year=today.year - years)
    except ValueError:
        d = today.replace(year=today.year - years, day=28)
    return d - dt.timedelta(days=days)


def seed_identity(
    db: Session,
    *,
    name: str = "山田　太郎",
    birth: dt.date | None = None,
    sex: str = "male",
    address: str = ADDRESS,
    lg_code: str = CHIYODA,
    kind: str = "japanese",
) -> str:
    code = ResidentCode.random(_rng).value
    now = utcnow()
    line = _line(address, lg_code)
    birth = birth or years_ago(40)
    row = IdentityRecord(
        resident_code=code,
        prefecture_code=lg_code[:2],
        lg_code=lg_code,
        status="live",
        removal_reason=None,
        resident_kind=kind,
        name=name,
        name_kana="ヤマダ　タロウ",
        search_kana="ヤマダタロウ",
        birth_date=birth,
        sex=sex,
        address_lg_code=lg_code,
        address=line,
        change_kind="birth",
        changed_on=birth,
        updated_at=now,
        source_lg_code=lg_code,
        source_person_id=next(_person),
    )
    db.add(row)
    db.flush()
    _history(db, row, birth)
    # Committed, as the replication would (a savepoint here): a later failed request
    # rolls back its own work, not the people it works on.
    db.commit()
    return code


def _line(address: str, lg_code: str) -> str:
    """The line within the municipality, as the store keeps it."""
    prefix = full_address(lg_code, "")
    assert address.startswith(prefix), f"{address} is not in {prefix}"
    return address.removeprefix(prefix)


def _history(db: Session, row: IdentityRecord, valid_from: dt.date) -> None:
    db.add(
        IdentityHistory(
            identity_id=row.id,
            resident_code=row.resident_code,
            prefecture_code=row.prefecture_code,
            lg_code=row.lg_code,
            valid_from=valid_from,
            valid_to=None,
            recorded_at=utcnow(),
            status=row.status,
            removal_reason=row.removal_reason,
            resident_kind=row.resident_kind,
            name=row.name,
            name_kana=row.name_kana,
            search_kana=row.search_kana,
            birth_date=row.birth_date,
            sex=row.sex,
            address_lg_code=row.address_lg_code,
            address=row.address,
            change_kind=row.change_kind,
            inbox_id=0,
        )
    )
    db.flush()


def change_identity(db: Session, code: str, *, change_kind: str = "move_within", **changes: object) -> None:
    """A change as the replication applies it: the current row updated, a history row added."""
    row = db.query(IdentityRecord).filter_by(resident_code=code).one()
    if "address" in changes:
        changes["address"] = _line(
            str(changes["address"]), str(changes.get("address_lg_code", row.address_lg_code))
        )
    for key, value in changes.items():
        setattr(row, key, value)
    row.change_kind = change_kind
    row.changed_on = service.today_jst(utcnow())
    db.flush()
    _history(db, row, row.changed_on)
    db.commit()


def issue_card(
    db: Session,
    code: str,
    *,
    signing_pin: str | None = SIGNING_PIN,
    photo: str | None = PHOTO,
    lg_code: str = CHIYODA,
) -> tuple[str, str]:
    """Apply, produce, set up and hand over; returns (card number, suspension secret)."""
    clerk = Actor(kind=ActorKind.STAFF, actor_id="clerk", organisation_code=lg_code)
    service.apply(
        db, actor=clerk, lg_code=lg_code, resident_code=code, reason=ApplicationReason.NEW, photo_ref=photo
    )
    service.produce(db, actor=OPERATOR)
    service.pre_issuance_setup(db, actor=OPERATOR)
    card = repository.cards_of(db, code)[-1]
    result = service.hand_over(
        db,
        actor=clerk,
        lg_code=lg_code,
        card_number=card.card_number,
        identity_documents=DOCS,
        auth_pin=AUTH_PIN,
        signing_pin=signing_pin,
    )
    db.commit()
    return card.card_number, result.suspension_secret


def certificate_der(db: Session, card_number: str, kind: CertificateKind = CertificateKind.AUTH) -> bytes:
    return service.read_certificate(db, card_number=card_number, kind=kind)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def run_openssl(openssl: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([openssl, *args], capture_output=True, text=True, timeout=30, check=False)


def pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
