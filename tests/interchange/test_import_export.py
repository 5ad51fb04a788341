"""Import and export end to end: round trips, the national store, bad rows, re-runs."""

from __future__ import annotations

import csv
import datetime as dt
import math
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from jumin.audit.domain import Actor, ActorKind, AuditAction
from jumin.audit.models import AuditEntry
from jumin.core.ids import LgCode, ResidentCode
from jumin.db import make_engine, unit_of_work
from jumin.demo_residents import seed_residents
from jumin.interchange import service
from jumin.interchange.files import read_municipalities
from jumin.interchange.service import NationalFeed, export_directory, import_directory
from jumin.network.identity.models import IdentityRecord
from jumin.network_client import InProcessNetworkClient
from jumin.reconcile import reconcile
from jumin.registry import service as registry
from jumin.registry.models import OutboxMessage, Person
from jumin.registry.schemas import MoveWithinRequest, PersonRef
from tests.conftest import PG_URL, fresh_database_url
from tests.interchange.conftest import Databases, same_files


def _count(engine_scope: AbstractContextManager[Session], model: type[object]) -> int:
    with engine_scope as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _rows(directory: Path, name: str) -> list[list[str]]:
    with (directory / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_generated_files_import_feed_the_national_store_and_export_unchanged(
    databases: Databases, generated: Path, tmp_path: Path
) -> None:
    report = import_directory(generated, municipal_engine=databases.municipal, national_db=databases.national)
    assert report.ok, [e.describe() for e in report.errors[:5]]
    persons = len(_rows(generated, "persons")) - 1
    assert report.imported_persons == persons
    assert report.seeded == persons
    assert report.left_for_relay == 0
    assert _count(unit_of_work(databases.national), IdentityRecord) == persons

    clean = reconcile(municipal_engine=databases.municipal, national_db=databases.national)
    assert clean.clean
    assert sum(m.municipal_count for m in clean.municipalities) == persons

    exported = tmp_path / "exported"
    export_directory(exported, municipal_engine=databases.municipal)
    assert same_files(generated, exported) == []

    again = import_directory(generated, municipal_engine=databases.municipal, national_db=databases.national)
    assert again.ok
    assert again.imported_persons == 0
    assert {m.status for m in again.municipalities} == {"skipped"}
    assert _count(unit_of_work(databases.municipal), Person) == persons


def test_worker_processes_import_the_same_register_in_the_files_order(
    databases: Databases, generated: Path, tmp_path: Path
) -> None:
    """Two processes at once on PostgreSQL (SQLite, one writer at a time, imports alone)."""
    finished: list[str] = []
    report = import_directory(
        generated,
        municipal_engine=databases.municipal,
        national_db=databases.national,
        workers=2,
        on_municipality=lambda outcome: finished.append(outcome.lg_code),
    )
    assert report.ok, [e.describe() for e in report.errors[:5]]
    in_files = list(dict.fromkeys(row[0] for row in _rows(generated, "persons")[1:]))
    assert finished == in_files == [m.lg_code for m in report.municipalities]
    persons = len(_rows(generated, "persons")) - 1
    assert report.imported_persons == report.seeded == persons
    assert reconcile(municipal_engine=databases.municipal, national_db=databases.national).clean
    exported = tmp_path / "exported"
    export_directory(exported, municipal_engine=databases.municipal)
    assert same_files(generated, exported) == []
    again = import_directory(
        generated, municipal_engine=databases.municipal, national_db=databases.national, workers=2
    )
    assert {m.status for m in again.municipalities} == {"skipped"}
    assert _count(unit_of_work(databases.municipal), Person) == persons


def test_imported_records_read_back_through_the_register_and_take_new_events(
    databases: Databases, generated: Path
) -> None:
    assert import_directory(
        generated, municipal_engine=databases.municipal, national_db=databases.national
    ).ok
    first = _rows(generated, "persons")[1]
    header = _rows(generated, "persons")[0]
    row = dict(zip(header, first, strict=True))
    network = InProcessNetworkClient(lambda: unit_of_work(databases.national))
    with unit_of_work(databases.municipal) as session:
        person = session.execute(
            select(Person).where(Person.resident_code == row["resident_code"])
        ).scalar_one()
        ctx = registry.RegistryContext(
            actor=Actor(kind=ActorKind.STAFF, actor_id="clerk", organisation_code=row["lg_code"]),
            lg_code=row["lg_code"],
            network=network,
        )
        view = registry.get_record(session, ctx=ctx, person_id=person.id, purpose="確認")
        assert view.record.individual_number == row["individual_number"]
        assert view.record.family_name == row["family_name"]
        assert registry.replay_matches(session, person.id)
        # The 個人番号 is sealed: the digits appear in no stored row.
        stored = session.execute(
            select(OutboxMessage.payload).where(OutboxMessage.person_id == person.id)
        ).scalar_one()
        assert row["individual_number"] not in stored
        household = registry.get_household(
            session, ctx=ctx, household_id=view.record.household_id, purpose="確認"
        )
        outcome = registry.move_within(
            session,
            ctx=ctx,
            request=MoveWithinRequest(
                effective_on=ctx.today - dt.timedelta(days=1),
                address={"line": "テスト町一丁目1番1号"},
                persons=[PersonRef(person_id=m.person_id, version=m.version) for m in household.members],
            ),
        )
        assert person.id in outcome.person_ids
        seqs = session.execute(
            select(OutboxMessage.seq).where(OutboxMessage.person_id == person.id).order_by(OutboxMessage.seq)
        ).scalars()
        assert list(seqs) == [1, 2]
    # The national network finds an imported resident's 個人番号; it does not issue another.
    number = network.individual_number_for(
        resident_code=ResidentCode(row["resident_code"]), lg_code=LgCode(row["lg_code"])
    )
    assert number.value == row["individual_number"]


def test_a_register_kept_in_jumin_exports_and_imports_into_another_system_unchanged(
    databases: Databases, second: Databases, tmp_path: Path
) -> None:
    network = InProcessNetworkClient(lambda: unit_of_work(databases.national))
    with unit_of_work(databases.municipal) as session:
        assert seed_residents(session, lg_code="131016", clerk_login="clerk", network=network)
    first = tmp_path / "first"
    export_directory(first, municipal_engine=databases.municipal)
    kinds = {r[3] for r in _rows(first, "events")[1:]}
    assert {"move_in_from_abroad", "birth", "move_within", "death"} <= kinds
    assert any(r[26] == "removed" for r in _rows(first, "persons")[1:])
    assert len(_rows(first, "aliases")) > 1

    report = import_directory(first, municipal_engine=second.municipal, national_db=second.national)
    assert report.ok, [e.describe() for e in report.errors]
    assert reconcile(municipal_engine=second.municipal, national_db=second.national).clean
    again = tmp_path / "again"
    export_directory(again, municipal_engine=second.municipal)
    assert same_files(first, again) == []
    # Exporting the first register twice gives the same 宛名番号 again.
    twice = tmp_path / "twice"
    export_directory(twice, municipal_engine=databases.municipal)
    assert same_files(first, twice) == []


def test_every_bad_row_is_reported_and_its_municipality_is_refused_whole(
    databases: Databases, generated: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(generated, broken)
    persons = _rows(broken, "persons")
    events = _rows(broken, "events")
    target = persons[1][0]
    other = next(r[0] for r in persons[1:] if r[0] != target)
    persons[1][2] = persons[1][2][:-1] + str((int(persons[1][2][-1]) + 1) % 10)  # check digit
    bad_date = next(i for i, r in enumerate(events) if i and r[0] == target)
    events[bad_date][4] = "2022-02-30"
    victim = next(i for i, r in enumerate(persons) if i and r[0] == other)
    persons[victim][11] = "99999999"  # no such household
    for name, rows in (("persons", persons), ("events", events)):
        with (broken / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)

    report = import_directory(broken, municipal_engine=databases.municipal, national_db=databases.national)
    assert not report.ok
    where = {(e.file, e.line, e.field) for e in report.errors}
    assert ("persons.csv", 2, "resident_code") in where
    assert ("events.csv", bad_date + 1, "effective_on") in where
    assert ("persons.csv", victim + 1, "household_no") in where
    refused = {m.lg_code for m in report.municipalities if m.status == "refused"}
    assert refused == {target, other}
    with unit_of_work(databases.municipal) as session:
        imported = set(session.execute(select(Person.lg_code).distinct()).scalars())
    assert imported
    assert not imported & refused
    assert all(m.status == "imported" for m in report.municipalities if m.lg_code not in refused)
    # Reasons are Japanese and say which item is wrong.
    assert any("チェックデジット" in e.reason for e in report.errors)


def test_rows_out_of_order_stop_the_import_before_anything_is_written(
    databases: Databases, generated: Path, tmp_path: Path
) -> None:
    shuffled = tmp_path / "shuffled"
    shutil.copytree(generated, shuffled)
    rows = _rows(shuffled, "households")
    rows[1], rows[-1] = rows[-1], rows[1]
    with (shuffled / "households.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    report = import_directory(shuffled, municipal_engine=databases.municipal, national_db=databases.national)
    assert [e.file for e in report.fatal] == ["households.csv"]
    assert report.municipalities == []
    assert _count(unit_of_work(databases.municipal), Person) == 0


def test_relay_mode_leaves_the_national_store_to_the_relay_and_the_import_is_audited(
    databases: Databases, generated: Path
) -> None:
    report = import_directory(
        generated,
        municipal_engine=databases.municipal,
        national_db=databases.national,
        feed=NationalFeed.RELAY,
    )
    assert report.ok
    assert report.seeded == 0
    with unit_of_work(databases.municipal) as session:
        undelivered = session.execute(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
        ).scalar_one()
        audited = session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == AuditAction.REGISTER_IMPORTED.value)
        ).scalar_one()
    assert undelivered == report.imported_persons
    assert audited == len(report.municipalities)
    assert _count(unit_of_work(databases.national), IdentityRecord) == 0
    assert not reconcile(municipal_engine=databases.municipal, national_db=databases.national).clean


def test_check_only_writes_nothing(databases: Databases, generated: Path) -> None:
    report = import_directory(
        generated, municipal_engine=databases.municipal, national_db=databases.national, check_only=True
    )
    assert report.ok
    assert {m.status for m in report.municipalities} == {"checked"}
    assert _count(unit_of_work(databases.municipal), Person) == 0


def test_worker_processes_refresh_statistics_at_doublings_of_the_whole_import(
    generated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The parent counts every worker's residents: a count per chunk, restarting at zero, made
    thousands of rounds of ANALYZE at 10,000,000 residents (docs/performance.md)."""
    if not PG_URL:
        pytest.skip("needs PostgreSQL (set JUMIN_TEST_DATABASE_URL): worker processes import there only")
    databases = Databases(
        make_engine(fresh_database_url("postgresql", tmp_path, "interchange_m")),
        make_engine(fresh_database_url("postgresql", tmp_path, "interchange_n")),
    )
    monkeypatch.setattr(service, "SEED_GROUP", 20)  # chunks of about 20 residents: about 10 of them
    monkeypatch.setattr(service, "STATISTICS_FROM", 10)
    refreshes: list[Engine | None] = []
    real = service.refresh_statistics

    def counted(municipal: Engine, national: Engine | None) -> None:
        refreshes.append(national)
        real(municipal, national)

    monkeypatch.setattr(service, "refresh_statistics", counted)
    report = import_directory(
        generated, municipal_engine=databases.municipal, national_db=databases.national, workers=2
    )
    assert report.ok
    persons = report.imported_persons
    chunks = len(list(service._chunks_of(read_municipalities(generated), 20)))
    assert chunks >= 8
    # At 10, 20, 40, ... of the whole import (as results come in): never once per chunk.
    assert 1 <= len(refreshes) <= math.floor(math.log2(persons / 10)) + 1 < chunks
    assert all(national is databases.national for national in refreshes)
    with databases.municipal.connect() as conn:
        analysed = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'persons'")).scalar_one()
    with databases.national.connect() as conn:
        national_analysed = conn.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = 'national_identities'")
        ).scalar_one()
    databases.municipal.dispose()
    databases.national.dispose()
    assert analysed > 0
    assert national_analysed > 0
