"""What every CLI command shares: one unit of work, a request id, errors as messages."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from jumin.core.errors import DomainError
from jumin.db import unit_of_work
from jumin.request_context import new_request_id, set_request_id


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@contextmanager
def command_unit(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction per command; a domain error becomes a message and exit status 2.

    ``engine`` is the municipal database unless a national command names the national one.
    """
    set_request_id("cli-" + new_request_id())
    try:
        with unit_of_work(engine) as session:
            yield session
    except DomainError as exc:
        where = f" ({exc.field})" if exc.field else ""
        fail(f"{exc.title}{where}: {exc.detail}")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
