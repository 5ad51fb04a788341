"""The PostgreSQL pool tests a connection before use only when it sat idle a while."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from jumin import db
from tests.conftest import PG_URL, _pg_database


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    if not PG_URL:
        pytest.skip("needs PostgreSQL (set JUMIN_TEST_DATABASE_URL)")
    engine = db.make_engine(_pg_database(PG_URL, "pool"))
    yield engine
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(engine: Engine, pid: int) -> None:
    """End a pooled connection's server process from outside the pool, as a restart would."""
    outside = create_engine(engine.url, poolclass=NullPool)
    with outside.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        other.commit()
    outside.dispose()


def test_an_idle_connection_whose_server_side_went_away_is_replaced_unnoticed(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _backend_pid(pg_engine)
    _terminate(pg_engine, pid)
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 0.0)
    pids = {_backend_pid(pg_engine) for _ in range(3)}
    assert pid not in pids


def test_a_connection_handed_back_moments_ago_is_not_pinged(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    monkeypatch.setattr(pg_engine.dialect, "do_ping", lambda conn: pings.append(conn) or True)
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 3600.0)
    for _ in range(3):
        _backend_pid(pg_engine)
    assert pings == []
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 0.0)
    _backend_pid(pg_engine)
    assert len(pings) == 1


def test_after_a_restart_the_first_failure_renews_the_whole_pool(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the idle window a dead connection fails once; the pool is then renewed."""
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 3600.0)
    pid = _backend_pid(pg_engine)
    _terminate(pg_engine, pid)
    with pytest.raises(OperationalError):
        _backend_pid(pg_engine)
    assert _backend_pid(pg_engine) != pid
