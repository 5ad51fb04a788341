"""Test databases built by the migrations, each test inside a rolled-back transaction.

Every test that takes ``db`` runs on SQLite, and again on PostgreSQL when
JUMIN_TEST_DATABASE_URL is set (CI sets it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Settings are read once per process: point them at throw-away folders before any
# jumin module reads them.
_TMP = Path(tempfile.mkdtemp(prefix="jumin-tests-"))
os.environ["JUMIN_VAR_DIR"] = str(_TMP / "var")
os.environ["JUMIN_KEY_DIR"] = str(_TMP / "keys")
os.environ.setdefault("JUMIN_AUDIT_CHECKPOINT_EVERY", "10")

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from jumin.api_support import get_session
from jumin.app import create_app
from jumin.db import finish_failed, make_engine, upgrade

PG_URL = os.environ.get("JUMIN_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]
STRICT = os.environ.get("JUMIN_TEST_STRICT") == "1"


def fresh_database_url(backend: str, tmp: Path) -> str:
    """An empty database of the given backend, migrated to head."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'test.db'}"
    else:
        assert PG_URL is not None
        url = PG_URL
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


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session whose commits are savepoints inside one transaction rolled back at the end."""
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
def app(engine: Engine, db: Session) -> FastAPI:
    """The real app, with each request's unit of work joined to the test's transaction."""
    application = create_app(engine)

    def test_session() -> Iterator[Session]:
        try:
            yield db
            db.commit()
        except BaseException as exc:
            finish_failed(db, exc)
            raise

    application.dependency_overrides[get_session] = test_session
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
