"""Test databases built by the migrations, each test inside a rolled-back transaction.

Every test that takes ``db`` runs on SQLite, and again on PostgreSQL when
JUMIN_TEST_DATABASE_URL is set (CI sets it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Settings are read once per process: point them at throw-away folders before any
# jumin module reads them.
_TMP = Path(tempfile.mkdtemp(prefix="jumin-tests-"))
os.environ["JUMIN_VAR_DIR"] = str(_TMP / "var")
os.environ["JUMIN_KEY_DIR"] = str(_TMP / "keys")
os.environ.setdefault("JUMIN_AUDIT_CHECKPOINT_EVERY", "10")
# The JPKI CAs refuse to run without a passphrase outside the demo (card.jpki.config).
os.environ.setdefault("JUMIN_JPKI_PASSPHRASE", "test-jpki-passphrase")
# `jumin serve` processes started by tests run no card worker unless a test asks for one.
os.environ.setdefault("JUMIN_CARD_WORKER_INTERVAL_SECONDS", "0")

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from jumin.api_support import get_national_session, get_session
from jumin.app import create_app
from jumin.db import finish_failed, make_engine, upgrade
from jumin.network_client import InProcessNetworkClient

PG_URL = os.environ.get("JUMIN_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]
STRICT = os.environ.get("JUMIN_TEST_STRICT") == "1"


def _pg_sibling(url: str, database: str) -> str:
    """Another database on the same PostgreSQL server, created if missing."""
    base, _, _ = url.rpartition("/")
    admin = make_engine(f"{base}/postgres").execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return f"{base}/{database}"


def _pg_database(url: str, name: str) -> str:
    """The PostgreSQL database for ``name``, one set per xdist worker so workers never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if name == "test" and not worker:
        return url
    suffix = f"_{worker}" if worker else ""
    return _pg_sibling(url, f"{url.rpartition('/')[2]}_{name}{suffix}")


def fresh_database_url(backend: str, tmp: Path, name: str = "test") -> str:
    """An empty database of the given backend, migrated to head.

    ``name`` tells the municipal database ("test") from the national one: the two roles
    never share a database, as in production.
    """
    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'{name}.db'}"
    else:
        assert PG_URL is not None
        url = _pg_database(PG_URL, name)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = fresh_database_url(request.param, tmp_path_factory.mktemp(request.param))
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def national_engine(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The national network's own database, on the same backend as ``engine``."""
    url = fresh_database_url(engine.dialect.name, tmp_path_factory.mktemp("national"), "national")
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session whose commits are savepoints inside one transaction rolled back at the end."""
    yield from _rolled_back_session(engine)


@pytest.fixture
def national_db(national_engine: Engine) -> Iterator[Session]:
    yield from _rolled_back_session(national_engine)


def _rolled_back_session(engine: Engine) -> Iterator[Session]:
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def network(national_db: Session) -> InProcessNetworkClient:
    """The national network in this process, its work joined to the national test transaction."""

    @contextmanager
    def scope() -> Iterator[Session]:
        try:
            yield national_db
            national_db.commit()
        except BaseException as exc:
            finish_failed(national_db, exc)
            raise

    return InProcessNetworkClient(scope)


@pytest.fixture
def app(
    engine: Engine,
    db: Session,
    national_engine: Engine,
    national_db: Session,
    network: InProcessNetworkClient,
) -> FastAPI:
    """The real app, with each request's units of work joined to the test's transactions."""
    application = create_app(engine, network, national_engine=national_engine)

    def joined(session: Session) -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except BaseException as exc:
            finish_failed(session, exc)
            raise

    def test_session() -> Iterator[Session]:
        yield from joined(db)

    def test_national_session() -> Iterator[Session]:
        yield from joined(national_db)

    application.dependency_overrides[get_session] = test_session
    application.dependency_overrides[get_national_session] = test_national_session
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


CHROMIUM = Path("/usr/bin/chromium")
# The flags that keep Chromium off the network on these machines (no update checks,
# no sync, no QUIC probes), besides the headless ones STACK.md names.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_unavailable(reason: str) -> None:
    if STRICT:
        pytest.fail(f"{reason} (JUMIN_TEST_STRICT=1: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium per test process, for the staff window's, the portal's and the e2e tests.

    Defined here, once: Playwright's sync API allows one running instance per thread, so
    two session fixtures (one per front end) failed whenever a worker drew tests of both.
    """
    if not CHROMIUM.exists():
        browser_unavailable(f"{CHROMIUM} がありません (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("playwright がインストールされていません (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
