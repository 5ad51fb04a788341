"""`jumin registry` in a separate process against real SQLite files, municipal and national.

Each invocation starts Python afresh (about 1-3 s), so the world is built once per module
(migrate, seed the demo, one family moving in from abroad) and each test adds only the
few commands its point needs. The family's name is not among the demo's residents, so
what a search finds is theirs alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CLERK = "chiyoda-clerk"  # clerk only
SUPERVISOR = "chiyoda-admin"  # administrator, supervisor, auditor


def _today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()


def _days_ago(n: int) -> str:
    return (_today() - dt.timedelta(days=n)).isoformat()


def _member(family: str, given: str, kana: tuple[str, str], **items: Any) -> dict[str, Any]:
    return {
        "family_name": family,
        "given_name": given,
        "family_name_kana": kana[0],
        "given_name_kana": kana[1],
        "honseki": "東京都千代田区千代田1番",
        "hittousha": "高橋　太郎",
        **items,
    }


@dataclass
class World:
    root: Path
    env: dict[str, str]
    family: dict[str, Any]  # the move-in's outcome

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jumin", *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=stdin,
            check=False,
            timeout=120,
        )

    def ok(self, *args: str, stdin: str | None = None) -> list[Any]:
        """Run a command that must succeed; its output, one JSON value per line."""
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / "jumin.db") as conn:
            return conn.execute(query).fetchall()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("registry-cli")
    env = {
        **os.environ,
        "JUMIN_DATABASE_URL": f"sqlite:///{root / 'jumin.db'}",
        "JUMIN_NATIONAL_DATABASE_URL": f"sqlite:///{root / 'national.db'}",
        "JUMIN_VAR_DIR": str(root),
        "JUMIN_KEY_DIR": str(root / "keys"),
    }
    w = World(root, env, {})
    # "heads": features keep their migrations on branches of their own (jumin.db.upgrade).
    w.ok("db", "upgrade", "heads")
    w.run("demo", "seed").check_returncode()
    body = root / "family.json"
    body.write_text(
        json.dumps(
            {
                "effective_on": _days_ago(30),
                "notified_on": _days_ago(28),
                "address": {"line": "千代田一丁目1番1号", "katagaki": "千代田ハイツ101"},
                "previous_address": "アメリカ合衆国",
                "members": [
                    # 和暦 and ISO dates alike, as at the window.
                    _member("高橋", "太郎", ("タカハシ", "タロウ"), birth_date="昭和55年4月1日", sex="male")
                    | {"relationship": "世帯主"},
                    _member("高橋", "花子", ("タカハシ", "ハナコ"), birth_date="1982-06-15", sex="female")
                    | {"relationship": "妻"},
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    [w.family] = w.ok("registry", "move-in-from-abroad", "--clerk", CLERK, "--file", str(body))
    return w


def test_the_family_is_recorded_and_shown_as_of_a_date(world: World) -> None:
    assert world.family["kind"] == "move_in_from_abroad"
    assert world.family["label"] == "国外転入"
    assert world.family["late"] is False
    father = world.family["person_ids"][0]

    [record] = world.ok("registry", "show", str(father), "--clerk", CLERK)
    assert record["name"] == "高橋　太郎"
    assert record["birth_date"] == "1980-04-01"
    assert record["birth_date_wareki"] == "昭和55年4月1日"
    assert record["relationship"] == "世帯主"
    assert record["previous_address"] == "アメリカ合衆国"
    assert record["became_resident_on"] == _days_ago(30)
    assert re.fullmatch(r"\*{8}[0-9]{4}", record["individual_number"])

    before = world.run("registry", "show", str(father), "--clerk", CLERK, "--on", _days_ago(31))
    assert before.returncode == 2
    assert "時点の記録はありません" in before.stderr
    assert before.stdout == ""


def test_birth_and_move_within_appear_in_search_events_and_history(world: World) -> None:
    father, mother = world.family["person_ids"]
    [household_id] = world.family["household_ids"]
    [household] = world.ok("registry", "household", str(household_id), "--clerk", CLERK)
    assert household["head_person_id"] == father
    versions = {m["person_id"]: m["version"] for m in household["members"]}

    # The family moves within the ward, then a child is born at the new address.
    moved = {
        "effective_on": _days_ago(10),
        "persons": [{"person_id": p, "version": versions[p]} for p in (father, mother)],
        "address": {"line": "九段南一丁目2番"},
    }
    [within] = world.ok("registry", "move-within", "--clerk", CLERK, "--file", "-", stdin=json.dumps(moved))
    assert within["kind"] == "move_within"
    born = _days_ago(5)
    child = _member("高橋", "さくら", ("タカハシ", "サクラ"), birth_date=born, sex="female") | {
        "relationship": "子"
    }
    birth = {
        "effective_on": born,
        "child": child,
        "household": {"household_id": household_id, "version": household["version"]},
    }
    [baby] = world.ok("registry", "birth", "--clerk", CLERK, "--json", json.dumps(birth, ensure_ascii=False))
    assert baby["label"] == "出生"

    [found] = world.ok("registry", "search", "--clerk", CLERK, "--kana", "たかはし")
    assert {r["person_id"] for r in found["results"]} == {father, mother, *baby["person_ids"]}
    assert {r["address_line"] for r in found["results"]} == {"九段南一丁目2番"}

    events = world.ok("registry", "events", str(father), "--clerk", CLERK)
    assert [e["kind"] for e in events] == ["move_in_from_abroad", "move_within"]
    assert [e["recorded_by"] for e in events] == [CLERK, CLERK]

    history = world.ok("registry", "history", str(father), "--clerk", CLERK)
    addresses = [
        (v["valid_from"], v["valid_to"], v["address_line"]) for v in history if not v["superseded_at"]
    ]
    assert addresses == [
        (_days_ago(30), _days_ago(10), "千代田一丁目1番1号"),
        (_days_ago(10), None, "九段南一丁目2番"),
    ]


def test_the_outbox_shows_messages_with_the_individual_number_masked(world: World) -> None:
    messages = world.ok("registry", "outbox", "--clerk", SUPERVISOR)
    mine = [m for m in messages if m["person_id"] in world.family["person_ids"]]
    assert mine
    assert {m["kind"] for m in mine} >= {"identity_changed"}
    for m in mine:
        assert re.fullmatch(r"\*{8}[0-9]{4}", m["payload"]["identity"]["individual_number"])
    assert not re.search(r'"individual_number": "[0-9]{12}"', json.dumps(messages))


def test_a_clerk_is_refused_a_supervisor_only_event_and_the_refusal_is_audited(world: World) -> None:
    father = world.family["person_ids"][0]
    events_before = world.sql("SELECT count(*) FROM registry_events")
    correction = {
        "effective_on": _days_ago(30),
        "person": {"person_id": father, "version": 1},
        "items": {"given_name": "太朗"},
    }
    refused = world.run(
        "registry", "ex-officio-correction", "--clerk", CLERK, "--json", json.dumps(correction)
    )
    assert refused.returncode == 2
    assert "監督職員" in refused.stderr
    assert world.sql("SELECT count(*) FROM registry_events") == events_before
    denied = world.sql(
        "SELECT target_id, outcome, detail FROM audit_entries "
        f"WHERE action = 'access.denied' AND actor_id = '{CLERK}'"
    )
    assert ("cli registry ex-officio-correction", "denied", "missing role") in denied


def test_a_malformed_body_is_refused_field_by_field_and_changes_nothing(world: World) -> None:
    def satos() -> int:
        [found] = world.ok("registry", "search", "--clerk", CLERK, "--kana", "サトウ", "--include-removed")
        return int(found["total"])

    before = satos()
    events_before = world.sql("SELECT count(*) FROM registry_events")
    body = {
        "effective_on": _days_ago(3),
        "address": {"line": "神田神保町二丁目2番"},
        "previous_address": "大阪府大阪市北区梅田一丁目1番",
        "origin_lg_code": "271276",
        "members": [
            _member("佐藤", "健", ("サトウ", "ケン"), sex="male", relationship="世帯主")
            # 平成 ended in its 31st year; the check digit of this resident code is wrong.
            | {"birth_date": "平成32年1月1日", "resident_code": "24727059609"}
        ],
    }
    bad = world.run("registry", "move-in", "--clerk", CLERK, "--file", "-", stdin=json.dumps(body))
    assert bad.returncode == 2
    assert "members.0.birth_date" in bad.stderr
    assert "平成" in bad.stderr
    assert "members.0.resident_code" in bad.stderr
    assert "チェックデジット" in bad.stderr
    assert satos() == before
    assert world.sql("SELECT count(*) FROM registry_events") == events_before


def test_the_cli_reads_with_the_apis_default_purpose() -> None:
    from jumin.registry import api, cli

    assert cli.DEFAULT_PURPOSE == api.DEFAULT_PURPOSE
