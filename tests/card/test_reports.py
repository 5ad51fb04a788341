"""Reports computed from the data: expiries per fiscal year, and application/issuance rates
in the shape of the published table; the CLI prints them and draws PNG charts."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from jumin.card import service
from jumin.card.domain import ApplicationReason, fiscal_year
from jumin.cli import app as cli_app
from jumin.config import get_settings
from jumin.db import national_engine, unit_of_work, upgrade
from tests.card.helpers import CHIYODA, CLERK, OPERATOR, PHOTO, issue_card, seed_identity

# The published table, shipped with the package (a byte-for-byte copy of shared/data's).
PUBLISHED = (
    Path(__file__).resolve().parents[2] / "src" / "jumin" / "population" / "data" / "card_rates_2022-12.csv"
)


def _population(db: Session) -> None:
    holders = [seed_identity(db, name=f"千代田　{i}") for i in range(2)]
    seed_identity(db, name="千代田　未申請")
    applicant = seed_identity(db, name="千代田　申請中")
    sapporo = seed_identity(db, lg_code="011011", address="北海道札幌市中央区北1条西2丁目", name="札幌　一")
    seed_identity(db, lg_code="011011", address="北海道札幌市中央区北1条西3丁目", name="札幌　二")
    for code in holders:
        issue_card(db, code)
    issue_card(db, sapporo, lg_code="011011")
    service.apply(
        db,
        actor=CLERK,
        lg_code=CHIYODA,
        resident_code=applicant,
        reason=ApplicationReason.NEW,
        photo_ref=PHOTO,
    )


def test_rates_by_prefecture_and_municipality(national_db: Session) -> None:
    _population(national_db)
    rows = service.issuance_rates(national_db, actor=OPERATOR)
    by = {(r.kind, r.name): r for r in rows}
    tokyo = by[("prefecture", "東京都")]
    assert (tokyo.population, tokyo.applied, tokyo.holders) == (4, 3, 2)
    assert (tokyo.application_rate_pct, tokyo.issuance_rate_pct) == (75.0, 50.0)
    # 札幌市 adds up its wards; the ward itself is not a row.
    sapporo = by[("designated_city", "札幌市")]
    assert (sapporo.population, sapporo.issuance_rate_pct) == (2, 50.0)
    assert by[("special_ward", "千代田区")].population == 4
    assert not [r for r in rows if r.kind == "ward"]
    # Ranked by application rate within each kind, as in the published table.
    prefectures = [r for r in rows if r.kind == "prefecture"]
    assert [r.rank for r in prefectures] == [1, 2]
    assert prefectures[0].name == "東京都"


def test_the_published_table_has_the_columns_we_produce() -> None:
    with PUBLISHED.open(encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == [
        "kind",
        "rank",
        "name",
        "population_2022_01_01",
        "application_rate_pct",
        "issuance_rate_pct",
    ]


def test_expiries_per_fiscal_year(national_db: Session) -> None:
    codes = [seed_identity(national_db, name=f"期限　{i}") for i in range(3)]
    for code in codes:
        issue_card(national_db, code)
    rows = service.expiring_by_fiscal_year(national_db, actor=OPERATOR)
    assert sum(r.cards for r in rows) == 3
    assert sum(r.certificates for r in rows) == 6
    card = service.repository.cards_of(national_db, codes[0])[0]
    assert card.valid_until is not None
    assert fiscal_year(card.valid_until) in {r.fiscal_year for r in rows if r.cards}


def test_cli_prints_reports_and_draws_charts(tmp_path: Path) -> None:
    url = get_settings().national_database_url
    upgrade(url)
    with unit_of_work(national_engine()) as session:
        _population(session)
    runner = CliRunner()
    expiry_png = tmp_path / "expiry.png"
    result = runner.invoke(cli_app, ["card", "report", "expiry", "--chart", str(expiry_png)])
    assert result.exit_code == 0, result.output
    assert "年度別の有効期限到来数" in result.output
    assert "令和" in result.output
    assert expiry_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rates_csv = tmp_path / "rates.csv"
    rates_png = tmp_path / "rates.png"
    result = runner.invoke(
        cli_app,
        ["card", "report", "rates", "--kind", "all", "--csv", str(rates_csv), "--chart", str(rates_png)],
    )
    assert result.exit_code == 0, result.output
    with rates_csv.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["kind", "rank", "name"]
    assert rows[0][3].startswith("population_")
    with PUBLISHED.open(encoding="utf-8") as f:  # the published table's columns, the population's date aside
        published = next(csv.reader(f))
    assert rows[0][:3] + rows[0][4:] == published[:3] + published[4:]
    assert rows[1][:3] == ["prefecture", "1", "東京都"]
    assert rates_png.stat().st_size > 1000
    bad = runner.invoke(cli_app, ["card", "report", "rates", "--kind", "planet"])
    assert bad.exit_code == 2
