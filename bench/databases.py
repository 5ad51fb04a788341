"""The run's PostgreSQL databases: created when missing, emptied and migrated when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

MARKER_TABLE = "bench_dataset"


def libpq(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _admin_url(url: str) -> str:
    base, _, _ = libpq(url).rpartition("/")
    return f"{base}/postgres"


def database_name(url: str) -> str:
    return url.rpartition("/")[2].split("?", 1)[0]


def ensure_database(url: str) -> bool:
    """Create the database if it does not exist; True when it was created."""
    name = database_name(url)
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def empty_and_migrate(*urls: str) -> None:
    """Drop everything in the databases and build their schemas by running the migrations.

    All but the first are migrated by child processes at the same time (Alembic's context
    is process-global, so not by threads).
    """
    from jumin.db import upgrade

    for url in urls:
        ensure_database(url)
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    others = [
        subprocess.Popen(
            [sys.executable, "-c", "import sys; from jumin.db import upgrade; upgrade(sys.argv[1])", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for url in urls[1:]
    ]
    upgrade(urls[0])
    for child in others:
        _, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"migration failed: {err.decode(errors='replace')[-2000:]}")


@contextmanager
def connect(url: str, *, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq(url), autocommit=autocommit) as conn:
        yield conn


def read_marker(url: str) -> dict[str, Any] | None:
    """What dataset the municipal database holds (written by the bench after a complete import)."""
    try:
        with connect(url) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (MARKER_TABLE,)).fetchone()
            if not exists or exists[0] is None:
                return None
            row = conn.execute(f"SELECT body FROM {MARKER_TABLE} WHERE id = 1").fetchone()
    except psycopg.OperationalError:
        return None
    if row is None:
        return None
    body = row[0]
    return body if isinstance(body, dict) else json.loads(body)


def write_marker(url: str, body: dict[str, Any]) -> None:
    with connect(url) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (id int PRIMARY KEY, body jsonb NOT NULL)")
        conn.execute(
            f"INSERT INTO {MARKER_TABLE} (id, body) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
            (json.dumps(body, ensure_ascii=False),),
        )


def server_facts(url: str) -> dict[str, Any]:
    with connect(url) as conn:
        facts: dict[str, Any] = {}
        row = conn.execute("SELECT version()").fetchone()
        facts["version"] = row[0] if row else ""
        for setting in (
            "shared_buffers",
            "max_connections",
            "synchronous_commit",
            "work_mem",
            "max_wal_size",
        ):
            value = conn.execute(f"SHOW {setting}").fetchone()
            facts[setting] = value[0] if value else None
        size = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database())), "
            "pg_database_size(current_database())"
        ).fetchone()
        facts["database_size"] = size[0] if size else None
        facts["database_bytes"] = int(size[1]) if size else None
    return facts
