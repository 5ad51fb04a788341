"""Fresh municipal and national databases for whole-directory imports (they commit per municipality).

The ``db`` fixture's rolled-back transaction cannot hold an import that commits one
municipality at a time, so these tests get their own pair of databases, on SQLite and
again on PostgreSQL when JUMIN_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from jumin.cli import app
from jumin.db import make_engine
from tests.conftest import BACKENDS, fresh_database_url


@dataclass
class Databases:
    municipal: Engine
    national: Engine


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """A municipal and a national database, empty and migrated."""
    municipal = make_engine(fresh_database_url(request.param, tmp_path, "interchange_m"))
    national = make_engine(fresh_database_url(request.param, tmp_path, "interchange_n"))
    yield Databases(municipal, national)
    municipal.dispose()
    national.dispose()


@pytest.fixture
def second(databases: Databases, tmp_path: Path) -> Iterator[Databases]:
    """Another pair on the same backend: the system a register is migrated to."""
    backend = databases.municipal.dialect.name
    municipal = make_engine(fresh_database_url(backend, tmp_path / "b", "interchange_m2"))
    national = make_engine(fresh_database_url(backend, tmp_path / "b", "interchange_n2"))
    yield Databases(municipal, national)
    municipal.dispose()
    national.dispose()


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small population of Tokyo and Hokkaido (about 200 residents in 70 municipalities)."""
    out = tmp_path_factory.mktemp("generated") / "p"
    result = CliRunner().invoke(
        app,
        [
            "population", "generate", "--out", str(out), "--quiet", "--residents", "2000", "--seed", "4",
            "--prefecture", "13", "--prefecture", "01",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


FILES = ("households", "persons", "foreign_residents", "aliases", "events", "cards")


def same_files(a: Path, b: Path) -> list[str]:
    """The interchange files that differ between two directories."""
    return [name for name in FILES if (a / f"{name}.csv").read_bytes() != (b / f"{name}.csv").read_bytes()]
