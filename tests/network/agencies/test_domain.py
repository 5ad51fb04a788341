"""The agency side's pure rules: the task catalogue, matching, batch rows, sealed files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jumin.core.errors import InvalidValue
from jumin.core.names import legal_age, normalize_kana
from jumin.network.agencies import service, storage
from jumin.network.agencies.domain import (
    CHANGE_KIND_EVENTS,
    BatchKind,
    BatchRow,
    CandidateFacts,
    FourFacts,
    IdentityField,
    RowError,
    TaskCatalogue,
    _kana_key,
    _one_edit_apart,
    age_on,
    birth_dates_for_ages,
    normalize_address,
    parse_batch_header,
    parse_batch_row,
    score_candidate,
)


def test_the_shipped_catalogue_covers_the_published_uses() -> None:
    catalogue = service.catalogue()
    codes = {t.code for t in catalogue.all()}
    assert {
        "pension-benefit",
        "pension-status-check",
        "national-tax",
        "passport-issuance",
        "local-tax-assessment",
        "election-roll",
        "unknown-owner-land",
        "forest-land-register",
        "waste-management",
    } <= codes
    for task in catalogue.all():
        assert task.law == "住民基本台帳法"
        assert task.confirmed or "unconfirmed" in task.provision, task.code
        assert task.fields, task.code
        if task.individual_number_key:
            assert task.allows(IdentityField.INDIVIDUAL_NUMBER)


def test_a_malformed_catalogue_is_refused() -> None:
    good = {
        "code": "x-task",
        "title": "t",
        "agency": "a",
        "law": "l",
        "provision": "p",
        "basis": "b",
        "description": "d",
        "fields": ["name"],
    }
    assert len(TaskCatalogue.parse(json.dumps({"tasks": [good]}))) == 1
    with pytest.raises(ValueError, match="duplicate"):
        TaskCatalogue.parse(json.dumps({"tasks": [good, good]}))
    with pytest.raises(ValueError, match="malformed"):
        TaskCatalogue.parse(json.dumps({"tasks": [{**good, "fields": ["shoe_size"]}]}))
    with pytest.raises(ValueError, match="without receiving"):
        TaskCatalogue.parse(json.dumps({"tasks": [{**good, "individual_number_key": True}]}))


def test_every_feed_event_has_a_change_kind() -> None:
    from jumin.network.agencies.domain import FeedEvent

    assert set(CHANGE_KIND_EVENTS.values()) == set(FeedEvent)


@given(st.text(max_size=40))
def test_address_normalisation_is_idempotent(s: str) -> None:
    assert normalize_address(normalize_address(s)) == normalize_address(s)


def test_address_normalisation_folds_width_spaces_and_dashes() -> None:
    assert normalize_address("東京都 千代田区　霞が関１－２") == "東京都千代田区霞が関1-2"


_KANA = st.text(alphabet="アイウエオカキクケコサシスセソ", min_size=1, max_size=8)


@settings(max_examples=300)
@given(
    q_kana=_KANA,
    c_kana=_KANA,
    q_birth=st.dates(dt.date(1900, 1, 1), dt.date(2030, 1, 1)),
    c_birth=st.dates(dt.date(1900, 1, 1), dt.date(2030, 1, 1)),
    same_sex=st.booleans(),
)
def test_scores_stay_within_bounds_and_exact_means_100(
    q_kana: str, c_kana: str, q_birth: dt.date, c_birth: dt.date, same_sex: bool
) -> None:
    q = FourFacts.parse(name_kana=q_kana, birth_date=q_birth, sex="male", address="東京都千代田区")
    c = CandidateFacts(
        identity_id=1,
        search_kana=c_kana,
        birth_date=c_birth,
        sex="male" if same_sex else "female",
        full_address="東京都千代田区千代田1番",
        municipality_prefix="東京都千代田区",
        prefecture_name="東京都",
    )
    s = score_candidate(q, c)
    assert 0 <= s.score <= 100
    assert s.exact == (s.score == 100)
    assert s.exact == (q_kana == c_kana and q_birth == c_birth and same_sex)


@given(st.text(alphabet="ab", max_size=6), st.text(alphabet="ab", max_size=6))
def test_one_edit_apart_agrees_with_edit_distance(a: str, b: str) -> None:
    def distance(x: str, y: str) -> int:
        prev = list(range(len(y) + 1))
        for i, cx in enumerate(x, 1):
            cur = [i]
            for j, cy in enumerate(y, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (cx != cy)))
            prev = cur
        return prev[-1]

    assert _one_edit_apart(a, b) == (distance(a, b) == 1)


def test_batch_rows_are_parsed_or_refused_with_their_line_and_column() -> None:
    columns = parse_batch_header(
        BatchKind.FOUR_FACTS, ["\ufeffref", "Name_Kana", "birth_date", "sex", "address"]
    )
    ok = parse_batch_row(BatchKind.FOUR_FACTS, columns, 2, ["r", "やまだ たろう", "S55.4.1", "男", "東京都"])
    assert isinstance(ok, BatchRow)
    assert ok.facts is not None
    assert ok.facts.name_kana == "ヤマダタロウ"
    assert ok.facts.family_kana == "ヤマダ"
    assert ok.facts.birth_date == dt.date(1980, 4, 1)
    for values, field in (
        (["r", "山田", "1980-04-01", "male", "東京都"], "name_kana"),
        (["r", "ヤマダ", "1980-13-01", "male", "東京都"], "birth_date"),
        (["r", "ヤマダ", "1980-04-01", "x", "東京都"], "sex"),
        (["r", "ヤマダ", "1980-04-01", "male", "東"], "address"),
        (["r" * 65, "ヤマダ", "1980-04-01", "male", "東京都"], "ref"),
        (["r", "ヤマダ"], None),
    ):
        bad = parse_batch_row(BatchKind.FOUR_FACTS, columns, 7, values)
        assert isinstance(bad, RowError), values
        assert (bad.line, bad.field) == (7, field), (values, bad)
    with pytest.raises(InvalidValue, match="必須列"):
        parse_batch_header(BatchKind.RESIDENT_CODE, ["ref"])
    with pytest.raises(InvalidValue, match="不明な列"):
        parse_batch_header(BatchKind.RESIDENT_CODE, ["resident_code", "name"])


# --- sealed files ------------------------------------------------------------------------------------


def _seal(path: Path, data: bytes, purpose: str = "p") -> str:
    writer = storage.SealedWriter(path, purpose=purpose)
    for i in range(0, len(data), 1000):
        writer.write(data[i : i + 1000])
    writer.close()
    return writer.sha256


def test_sealed_files_round_trip_and_hash_the_plaintext(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 3000  # several records
    digest = _seal(tmp_path / "f", data)
    assert b"".join(storage.read_sealed(tmp_path / "f", purpose="p")) == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert data[:1000] not in (tmp_path / "f").read_bytes()
    assert oct((tmp_path / "f").stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "purpose"])
def test_a_damaged_or_misplaced_sealed_file_is_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "f"
    _seal(path, b"x" * (storage.RECORD_SIZE * 2 + 10))
    raw = bytearray(path.read_bytes())
    purpose = "p"
    if damage == "flip":
        raw[-20] ^= 1
    elif damage == "truncate":
        raw = raw[: len(raw) - 30]
    elif damage == "append":
        raw += b"more"
    else:
        purpose = "another job"
    path.write_bytes(bytes(raw))
    with pytest.raises(storage.SealedFileError):
        b"".join(storage.read_sealed(path, purpose=purpose))


def test_an_aborted_writer_leaves_nothing(tmp_path: Path) -> None:
    writer = storage.SealedWriter(tmp_path / "f", purpose="p")
    writer.write(b"personal data")
    writer.abort()
    assert not (tmp_path / "f").exists()


@settings(max_examples=60, deadline=None)
@given(
    on=st.one_of(
        st.dates(dt.date(1960, 1, 1), dt.date(2100, 12, 31)),
        st.sampled_from(
            [dt.date(2023, 2, 28), dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1)]
        ),
    ),
    min_age=st.one_of(st.none(), st.integers(0, 150)),
    max_age=st.one_of(st.none(), st.integers(0, 150)),
)
def test_an_age_range_is_the_birth_date_range_the_extraction_queries(
    on: dt.date, min_age: int | None, max_age: int | None
) -> None:
    earliest, latest = birth_dates_for_ages(on, min_age, max_age)
    edges = {b for b in (earliest, latest) if b is not None}
    around = {
        e + dt.timedelta(days=d)
        for e in edges | {on.replace(day=1), dt.date(on.year - 19, 3, 1)}
        for d in range(-3, 4)
    }
    for birth in sorted(b for b in around if b <= on):
        age = legal_age(birth, on)
        wanted = (min_age is None or age >= min_age) and (max_age is None or age <= max_age)
        inside = (earliest is None or birth >= earliest) and (latest is None or birth <= latest)
        assert wanted == inside, (birth, age)


_KANA_ALPHABET = [chr(c) for c in range(0x30A0, 0x3100)] + [
    " ",
    "\u3000",
    "\t",
    "a",
    "ｶ",
    "ﾞ",
    "か",
    "\u3099",
    "゛",
]


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(_KANA_ALPHABET), max_size=10) | st.text(max_size=10))
def test_the_batch_reading_key_is_normalize_kana(s: str) -> None:
    assert _kana_key(s) == normalize_kana(s)


@settings(max_examples=500)
@given(
    birth=st.dates(dt.date(1850, 1, 1), dt.date(2100, 12, 31)),
    on=st.dates(dt.date(1850, 1, 1), dt.date(2100, 12, 31)),
)
def test_the_extraction_age_is_the_legal_age(birth: dt.date, on: dt.date) -> None:
    if on < birth:
        with pytest.raises(InvalidValue):
            age_on(birth, on)
    else:
        assert age_on(birth, on) == legal_age(birth, on)


def test_the_extraction_age_around_29_february() -> None:
    for birth in (dt.date(2004, 2, 28), dt.date(2004, 2, 29), dt.date(2004, 3, 1)):
        on = dt.date(2004, 2, 28)
        while on < dt.date(2009, 3, 5):
            if on >= birth:
                assert age_on(birth, on) == legal_age(birth, on), (birth, on)
            on += dt.timedelta(days=1)
