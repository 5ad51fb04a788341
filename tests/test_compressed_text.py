"""The register's JSON documents are stored deflated and read back exactly, old rows included."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from jumin.db import alembic_config, compress_text, expand_text, make_engine, upgrade
from jumin.registry.models import PersonVersion
from tests.conftest import BACKENDS, fresh_database_url

RECORD = {
    "address": {"katagaki": "大淀マンション816", "lg_code": "042021", "line": "鮎川浜1380番地の7"},
    "address_set_on": "2019-06-20",
    "became_resident_on": "2013-11-05",
    "birth_date": "1971-10-06",
    "family_name": "𠮷田",
    "family_name_kana": "ヨシダ",
    "foreign": None,
    "given_name": "淳",
    "given_name_kana": "ジュン",
    "hittousha": "𠮷田　淳",
    "honseki": "茨城県神栖市太田新町2398番地",
    "household_id": 694,
    "individual_number": None,
    "notified_on": "2013-11-06",
    "relationship": "世帯主",
    "resident_code": "98958160291",
    "resident_kind": "japanese",
    "sex": "male",
    "status": "live",
}


@given(st.text())
def test_any_text_comes_back_exactly(value: str) -> None:
    assert expand_text(compress_text(value)) == value


def test_a_record_takes_less_than_half_its_text() -> None:
    document = json.dumps(RECORD, ensure_ascii=False, sort_keys=True)
    stored = compress_text(document)
    assert len(stored) < len(document.encode()) / 2
    assert "𠮷田".encode() not in stored  # nothing of the person readable in the stored bytes


def test_rows_stored_before_compression_read_back_as_they_were() -> None:
    assert expand_text(b'{"tag": "removal"}') == '{"tag": "removal"}'  # converted by the migration
    assert expand_text('{"tag": "removal"}') == '{"tag": "removal"}'  # SQLite text left as it was


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_keeps_records_written_as_text(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path, "compression")
    engine = make_engine(url)
    try:
        # Back to the schema before compression, with a record written as text then.
        config = alembic_config(url)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "store0001-1")
        document = json.dumps(RECORD, ensure_ascii=False, sort_keys=True)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO registry_events (id, lg_code, kind, effective_on, notified_on, "
                    "recorded_at, recorded_by, reason, late, request_id) VALUES (1, '042021', "
                    "'birth', '1971-10-06', '1971-10-06', '2020-01-01 00:00:00', 'test', '', "
                    "false, 'r')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO persons (id, lg_code, resident_code, lifecycle, version, outbox_seq, "
                    "identity_fingerprint, created_at) VALUES (1, '042021', '98958160291', 'live', 1, 0, "
                    "'f', '2020-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO person_versions (id, person_id, lg_code, valid_from, recorded_at, "
                    "event_id, record_json, resident_code, search_kana, birth_date, address_line, "
                    "household_id, status) "
                    "VALUES (1, 1, '042021', '1971-10-06', '2020-01-01 00:00:00', 1, :doc, '98958160291', "
                    "'ヨシダ ジュン', '1971-10-06', 'x', 1, 'live')"
                ),
                {"doc": document},
            )
        upgrade(url)
        with Session(engine) as session:
            old = session.execute(select(PersonVersion).where(PersonVersion.id == 1)).scalar_one()
            assert old.record_json == document
            # A version written now is stored deflated and reads back the same.
            session.add(
                PersonVersion(
                    id=2,
                    person_id=1,
                    lg_code="042021",
                    valid_from=dt.date(1971, 10, 6),
                    recorded_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                    event_id=1,
                    record_json=document,
                    resident_code="98958160291",
                    search_kana="ヨシダ ジュン",
                    birth_date=dt.date(1971, 10, 6),
                    address_line="x",
                    household_id=1,
                    status="live",
                )
            )
            session.commit()
        with engine.connect() as conn:
            stored = {
                r[0]: bytes(r[1]) if not isinstance(r[1], str) else r[1].encode()
                for r in conn.execute(text("SELECT id, record_json FROM person_versions"))
            }
        assert stored[1] == document.encode()
        assert len(stored[2]) < len(document.encode()) / 2
        with Session(engine) as session:
            new = session.execute(select(PersonVersion).where(PersonVersion.id == 2)).scalar_one()
            assert new.record_json == document
    finally:
        engine.dispose()
