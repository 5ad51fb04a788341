"""Helpers for the certificate tests: a window desk on the services, PDFs read back.

Most tests work at the service level through ``Desk``: residents are recorded with the
register's own use cases and certificates issued with the certificate service, in the
test's rolled-back transaction. That keeps each test well under a second (a staff login
costs two argon2 hashes); the HTTP surface has its own end-to-end tests per channel.

Programs the tests drive for real (pdftotext, pdfsig, zbarimg, certutil, pdftoppm) are
found with ``require_program``: missing, a test skips with the reason — except under
JUMIN_TEST_STRICT=1 (CI), where it fails, so a missing install step cannot hide.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
from base64 import b64decode, b64encode
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Signing keys are encrypted with this; set before any certificate code reads it.
os.environ.setdefault("JUMIN_CA_PASSPHRASE", "test-ca-passphrase")

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from jumin.api_support import get_session
from jumin.app import create_app
from jumin.audit.domain import Actor, ActorKind
from jumin.card import service as card_service
from jumin.card.domain import CertificateKind
from jumin.certificates import service
from jumin.certificates.schemas import WindowIssueRequest
from jumin.core.replication import municipality_key_name
from jumin.db import finish_failed, utcnow
from jumin.keys import load_or_create_ed25519
from jumin.network.identity import service as national
from jumin.network.identity import widearea as national_wide_area
from jumin.network.identity.models import IdentityHistory, IdentityRecord
from jumin.network.identity.widearea import HomeGateway, HomeReply
from jumin.network_client import InProcessNetworkClient
from jumin.registry import service as registry
from jumin.registry.domain import EventOutcome, ResidentRecord
from tests.card.helpers import AUTH_PIN, issue_card
from tests.conftest import STRICT
from tests.registry.conftest import (  # noqa: F401 (fixtures and helpers for the tests here)
    CHIYODA,
    SAPPORO,
    Headers,
    Post,
    chiyoda,
    days_ago,
    get,
    member,
    post,
    sapporo,
    today,
)

PROGRAM_PACKAGES = {
    "pdftotext": "poppler-utils",
    "pdftoppm": "poppler-utils",
    "pdfsig": "poppler-utils",
    "zbarimg": "zbar-tools",
    "certutil": "libnss3-tools",
}


def require_program(name: str) -> str:
    """The program's path; skip when it is missing, or fail under JUMIN_TEST_STRICT=1."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} がありません (Debian パッケージ {PROGRAM_PACKAGES.get(name, name)})"
    if STRICT:
        pytest.fail(f"{reason}: JUMIN_TEST_STRICT=1 では必須です")
    pytest.skip(reason)


def squash(text: str) -> str:
    """Text with every kind of whitespace removed: pdftotext rebuilds spaces from gaps."""
    return "".join(text.split())


def pypdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def pdftotext(pdf: bytes, tmp_path: Path) -> str:
    program = require_program("pdftotext")
    source = tmp_path / "extract.pdf"
    source.write_bytes(pdf)
    done = subprocess.run([program, "-enc", "UTF-8", str(source), "-"], capture_output=True, check=True)
    return done.stdout.decode("utf-8")


def staff_actor(lg_code: str = CHIYODA, login: str = "window-clerk") -> Actor:
    return Actor(kind=ActorKind.STAFF, actor_id=login, organisation_code=lg_code)


@dataclass
class Desk:
    """A municipality's window, driven through the services in the test's transaction."""

    db: Session
    network: InProcessNetworkClient
    lg_code: str = CHIYODA
    login: str = "window-clerk"
    now: dt.datetime | None = None

    @property
    def ctx(self) -> registry.RegistryContext:
        ctx = service.context(
            actor=staff_actor(self.lg_code, self.login), lg_code=self.lg_code, network=self.network
        )
        return replace(ctx, now=self.now) if self.now is not None else ctx

    def at(self, moment: dt.datetime) -> Desk:
        return replace(self, now=moment)

    def event(self, slug: str, body: dict[str, Any]) -> EventOutcome:
        command = registry.COMMANDS_BY_SLUG[slug]
        return registry.run_command(
            self.db, ctx=self.ctx, slug=slug, request=command.request_type.model_validate(body)
        )

    def family(self, *, moved: int = 30, line: str = "千代田一丁目1番1号") -> EventOutcome:
        """山田 太郎 (head), 花子 (wife) and 一郎 (child) arriving from abroad."""
        return self.event(
            "move-in-from-abroad",
            {
                "effective_on": days_ago(moved),
                "notified_on": days_ago(moved - 2),
                "address": {"line": line, "katagaki": "千代田ハイツ101"},
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
                    member("山田", "一郎", ("ヤマダ", "イチロウ"), birth="2012-02-29", relationship="子"),
                ],
            },
        )

    def one(self, family: str, given: str, kana: tuple[str, str], **extra: Any) -> int:
        outcome = self.event(
            "move-in-from-abroad",
            {
                "effective_on": days_ago(20),
                "address": {"line": "千代田二丁目2番"},
                "previous_address": "大韓民国",
                "members": [member(family, given, kana, **extra)],
            },
        )
        return outcome.person_ids[0]

    def record(self, person_id: int) -> ResidentRecord:
        return registry.get_record(self.db, ctx=self.ctx, person_id=person_id, purpose="テスト").record

    def version(self, person_id: int) -> int:
        return registry.get_record(self.db, ctx=self.ctx, person_id=person_id, purpose="テスト").version

    def window(self, body: dict[str, Any]) -> service.IssuedCertificate:
        return service.issue_at_window(self.db, ctx=self.ctx, request=WindowIssueRequest.model_validate(body))


# ---------------------------------------------------------------------------
# 広域交付's road in one process: the national side reaches the home municipalities'
# endpoints over HTTP into an app of their own, whose unit of work is a savepoint of the
# test's municipal transaction (so a refusal at home rolls back the home's work only).

HOME_URL = "http://testserver"


class InProcessHomes(HomeGateway):
    """The national side's HTTP to the homes, answered by the real app in this process."""

    def __init__(self, make_app: Callable[[], FastAPI]) -> None:
        super().__init__()
        self._make_app = make_app
        self._client: TestClient | None = None
        self.calls = 0
        self.down = False  # True: the homes do not answer, as when their systems are off

    def post(self, url: str, *, body: bytes, signature: str) -> HomeReply | None:
        self.calls += 1
        if self.down:
            return None
        if self._client is None:
            self._client = TestClient(self._make_app(), raise_server_exceptions=False)
        self._http = self._client
        return super().post(url, body=body, signature=signature)


@contextmanager
def joined(session: Session) -> Iterator[Session]:
    """A unit of work joined to the test's transaction (a savepoint released at the end)."""
    try:
        yield session
        session.commit()
    except BaseException as exc:
        finish_failed(session, exc)
        raise


def national_scope(national_db: Session) -> Callable[[], AbstractContextManager[Session]]:
    @contextmanager
    def scope() -> Iterator[Session]:
        try:
            yield national_db
            national_db.commit()
        except BaseException as exc:
            finish_failed(national_db, exc)
            raise

    return scope


def link_municipalities(national_db: Session, *codes: str, url: str = HOME_URL) -> None:
    """What `jumin serve` does for the municipalities it hosts: keys and endpoints registered."""
    for code in codes:
        key = load_or_create_ed25519(municipality_key_name(code))
        national.register_key(national_db, lg_code=code, public_key_pem=key.public_pem())
        national_wide_area.register_endpoint(national_db, lg_code=code, url=url)
    national_db.commit()


@pytest.fixture
def homes(engine: Engine, db: Session, national_engine: Engine, national_db: Session) -> InProcessHomes:
    def make_app() -> FastAPI:
        home_app = create_app(
            engine, InProcessNetworkClient(national_scope(national_db)), national_engine=national_engine
        )

        def home_session() -> Iterator[Session]:
            nested = db.begin_nested()
            try:
                yield db
                nested.commit()
            except BaseException as exc:
                if getattr(exc, "commits_recorded_work", False):
                    nested.commit()
                else:
                    nested.rollback()
                raise

        home_app.dependency_overrides[get_session] = home_session
        return home_app

    return InProcessHomes(make_app)


@pytest.fixture
def network(national_db: Session, homes: InProcessHomes) -> InProcessNetworkClient:
    """The national network in this process (as in tests/conftest.py), able to reach the homes."""
    link_municipalities(national_db, CHIYODA, SAPPORO)
    return InProcessNetworkClient(national_scope(national_db), homes=homes)


@pytest.fixture
def app(app: FastAPI, homes: InProcessHomes) -> FastAPI:
    """The root app, its national routes reaching the homes the same way."""
    app.state.wide_area_homes = homes
    return app


@pytest.fixture
def desk(db: Session, network: InProcessNetworkClient) -> Desk:
    return Desk(db, network)


@pytest.fixture
def sapporo_desk(db: Session, network: InProcessNetworkClient) -> Desk:
    return Desk(db, network, lg_code=SAPPORO, login="sapporo-window")


def self_request(person_id: int, **extra: Any) -> dict[str, Any]:
    """A window request by the person themself, for their own record copy."""
    return {
        "kind": "record_copy",
        "person_ids": [person_id],
        "requester": {"kind": "self", "person_id": person_id},
        **extra,
    }


def card_holder(national_db: Session, record: ResidentRecord, lg_code: str = CHIYODA) -> str:
    """A My Number Card handed over to the resident of ``record``; returns the card number.

    The national identity store gets the person as the replication would write them (a
    current row and its history row), then the card goes through application,
    production, setup and hand-over with the card service's own use cases.
    """
    now = utcnow()
    identity = IdentityRecord(
        resident_code=record.resident_code,
        prefecture_code=lg_code[:2],
        lg_code=lg_code,
        status="live",
        removal_reason=None,
        resident_kind=record.resident_kind.value,
        name=record.name,
        name_kana=record.name_kana,
        search_kana=(record.name_kana or "").replace("　", ""),
        birth_date=record.birth_date,
        sex=record.sex.value,
        address_lg_code=lg_code,
        address=record.address.line,
        change_kind="move_in",
        changed_on=record.became_resident_on,
        updated_at=now,
        source_lg_code=lg_code,
        source_person_id=0,
    )
    national_db.add(identity)
    national_db.flush()
    national_db.add(
        IdentityHistory(
            identity_id=identity.id,
            resident_code=identity.resident_code,
            prefecture_code=identity.prefecture_code,
            lg_code=identity.lg_code,
            valid_from=record.became_resident_on,
            valid_to=None,
            recorded_at=now,
            status=identity.status,
            removal_reason=None,
            resident_kind=identity.resident_kind,
            name=identity.name,
            name_kana=identity.name_kana,
            search_kana=identity.search_kana,
            birth_date=identity.birth_date,
            sex=identity.sex,
            address_lg_code=lg_code,
            address=identity.address,
            change_kind=identity.change_kind,
            inbox_id=0,
        )
    )
    national_db.commit()
    card_number, _secret = issue_card(national_db, record.resident_code, lg_code=lg_code)
    return card_number


def card_login(client: TestClient, national_db: Session, card_number: str) -> dict[str, str]:
    """What a kiosk does with the card: sign the challenge with the auth PIN, log in."""
    challenge = client.post("/card/v1/login/challenge").json()
    signature = card_service.sign_with_card(
        national_db,
        card_number=card_number,
        kind=CertificateKind.AUTH,
        pin=AUTH_PIN,
        data=b64decode(challenge["to_sign"]),
    )
    certificate = card_service.read_certificate(
        national_db, card_number=card_number, kind=CertificateKind.AUTH
    )
    r = client.post(
        "/card/v1/login",
        json={
            "challenge_id": challenge["challenge_id"],
            "certificate": b64encode(certificate).decode(),
            "signature": b64encode(signature).decode(),
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
