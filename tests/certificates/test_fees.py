"""Fees per municipality and channel from configuration, and the statistics of issuance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jumin.certificates import service
from jumin.certificates.domain import Channel, DocumentKind, Item
from jumin.certificates.schemas import KioskIssueRequest, WideAreaIssueRequest
from jumin.certificates.settings import OVERRIDE_NAME, load_settings
from jumin.config import get_settings
from tests.certificates.conftest import Desk, Headers, self_request


@pytest.fixture
def override() -> Iterator[Path]:
    path = get_settings().var_dir / OVERRIDE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    yield path
    path.unlink(missing_ok=True)


def test_defaults_and_per_municipality_fees() -> None:
    settings = load_settings()
    chiyoda, sapporo = settings.municipality("131016"), settings.municipality("011002")
    assert (chiyoda.fees.window, chiyoda.fees.kiosk, chiyoda.fees.official) == (300, 200, 0)
    assert (sapporo.fees.window, sapporo.fees.kiosk, sapporo.fees.wide_area) == (300, 150, 300)
    assert chiyoda.mayor_title == "千代田区長"
    assert chiyoda.prefecture == "東京都"
    # A municipality not in the file gets the defaults and a title made from its name.
    tobetsu = settings.municipality("013030")
    assert tobetsu.mayor_title == "当別町長"
    assert tobetsu.fees.window == 300


def test_a_deployment_overrides_fees_in_its_own_file(desk: Desk, override: Path) -> None:
    override.write_text("[municipalities.131016.fees]\nwindow = 450\n", encoding="utf-8")
    head = desk.family().person_ids[0]
    assert desk.window(self_request(head)).fee_yen == 450
    assert load_settings().municipality("131016").fees.kiosk == 200  # untouched tables stay
    override.write_text("[fees]\nwindow = -1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="non-negative"):
        load_settings().municipality("131016")


def test_every_issuance_counts_in_the_statistics(
    desk: Desk, sapporo_desk: Desk, client: TestClient, chiyoda: Headers
) -> None:
    head, wife, _ = desk.family().person_ids
    desk.window(self_request(head))
    desk.window(self_request(wife, kind="record_certificate"))
    service.set_pin(desk.db, ctx=desk.ctx, person_id=head, pin="1357")
    code = desk.record(head).resident_code
    service.issue_at_kiosk(
        desk.db,
        network=desk.network,
        request=KioskIssueRequest(lg_code="131016", resident_code=code, pin="1357"),
    )
    service.issue_wide_area(
        sapporo_desk.db,
        ctx=sapporo_desk.ctx,
        request=WideAreaIssueRequest(home_lg_code="131016", resident_code=code),
    )

    stats = service.statistics(desk.db, lg_code="131016")
    assert set(stats.rows) == {
        (Channel.KIOSK, DocumentKind.RECORD_COPY, 1, 200),
        (Channel.WINDOW, DocumentKind.RECORD_CERTIFICATE, 1, 300),
        (Channel.WINDOW, DocumentKind.RECORD_COPY, 1, 300),
    }
    assert (stats.total_count, stats.total_fees) == (3, 800)
    # 広域交付 counts for the municipality that issued it (and collected the fee).
    assert service.statistics(desk.db, lg_code="011002").rows == (
        (Channel.WIDE_AREA, DocumentKind.RECORD_COPY, 1, 300),
    )

    body = client.get("/certificates/statistics", headers=chiyoda).json()
    assert body["total_count"] == 3
    assert body["total_fees_yen"] == 800
    listed = client.get("/certificates/issuances", headers=chiyoda).json()
    # The ledger shows what Chiyoda issued and what was issued about its residents elsewhere.
    assert listed["total"] == 4
    assert {i["channel"] for i in listed["results"]} == {"window", "kiosk", "wide_area"}


def test_official_tasks_come_from_the_settings_and_are_checked(override: Path) -> None:
    pension = load_settings().official_task("national-pension")
    assert pension is not None
    assert DocumentKind.RECORD_COPY in pension.kinds
    assert Item.HONSEKI not in pension.items
    assert load_settings().official_task("curiosity") is None
    override.write_text(
        '[official_tasks.school]\ntitle = "就学事務"\nbasis = "学校教育法施行令第1条"\n'
        'kinds = ["record_certificate"]\nitems = []\n',
        encoding="utf-8",
    )
    school = load_settings().official_task("school")
    assert school is not None
    assert school.kinds == {DocumentKind.RECORD_CERTIFICATE}
    assert "school" in {t.code for t in load_settings().official_tasks()}
    override.write_text(
        '[official_tasks.bad]\ntitle = "x"\nbasis = "x"\nkinds = ["record_copy"]\nitems = ["birth_date"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="only optional items"):
        load_settings().official_task("bad")
