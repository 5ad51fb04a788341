"""`jumin network` for the agency side, in-process against the settings' national database."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from jumin.cli import app
from jumin.config import get_settings
from jumin.db import national_engine, upgrade
from tests.network.agencies.store import Store, new_resident_code


@pytest.fixture(scope="module")
def migrated() -> None:
    upgrade(get_settings().national_database_url)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_clients_tasks_and_a_batch_from_the_console(migrated: None, tmp_path: Path) -> None:
    code, out, _ = _run(
        "network", "create-client", "--org", "cli-nenkin", "--name", "年金CLI", "--org-name", "日本年金機構"
    )
    assert code == 0, out
    client_id = json.loads(out)["client_id"]
    assert json.loads(out)["client_secret"]

    code, out, _ = _run("network", "grant-task", client_id, "pension-benefit")
    assert code == 0, out
    assert json.loads(out) == {"client_id": client_id, "task": "pension-benefit", "title": "年金給付の支給"}
    code, _, err = _run("network", "grant-task", client_id, "no-such-task")
    assert code == 2
    assert "別表事務コード「no-such-task」は登録されていません" in err
    code, _, err = _run("network", "grant-task", "agc_unknown", "pension-benefit")
    assert code == 2
    assert "行政機関クライアントではありません" in err
    code, out, _ = _run("network", "client-tasks", client_id)
    assert json.loads(out.splitlines()[0])["task"] == "pension-benefit"

    with Session(national_engine()) as session:
        people = [Store(session).person() for _ in range(3)]
        session.commit()
    source = tmp_path / "in.csv"
    source.write_text(
        "ref,resident_code\n"
        + "".join(f"{i},{p.resident_code}\n" for i, p in enumerate(people))
        + f"x,{new_resident_code()}\n"
    )
    output = tmp_path / "out.csv"
    code, out, err = _run(
        "network",
        "verify-batch",
        str(source),
        "--client-id",
        client_id,
        "--task",
        "pension-benefit",
        "--kind",
        "resident_code",
        "-o",
        str(output),
    )
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["rows"], summary["matched"], summary["not_found"]) == (4, 3, 1)
    rows = list(csv.DictReader(output.open(encoding="utf-8")))
    assert [r["match"] for r in rows] == ["matched", "matched", "matched", "not_found"]
    assert rows[0]["individual_number"] == people[0].individual_number

    code, _, err = _run(
        "network",
        "verify-batch",
        str(source),
        "--client-id",
        client_id,
        "--task",
        "national-tax",
        "--kind",
        "resident_code",
        "-o",
        str(output),
    )
    assert code == 2
    assert "national-tax" in err

    code, out, _ = _run("network", "tasks", "--json")
    assert code == 0
    assert "pension-benefit" in [json.loads(line)["code"] for line in out.splitlines()]
    assert _run("network", "tasks")[0] == 0
