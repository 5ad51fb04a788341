"""The full moving scenario (転出・転入ワンストップ) in Chromium, one person per browser.

1. A resident of 千代田区 (A) logs in to the portal with the card and files an online
   転出届 with a 転入予約 to 札幌市 (B), for the whole household.
2. The relay carries the 転出証明書情報 through the national network: B expects them.
3. A clerk of B opens the expected arrival at the one-stop window and completes the
   転入 without retyping (「転入を記録する」), then the card's continued use.
4. The resident logs in again and downloads a 住民票の写し, now issued by B.
5. A clerk of A finds the resident's record in A as a 除票.
6. The resident's "who looked at my data" page shows B's clerk's access.

Screenshots of every step: test-artifacts/web/e2e-*.png.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest

from jumin.accounts.domain import Role
from jumin.core.wareki import format_wareki
from tests.portal.live import PortalServer, expect, new_context, portal_log_in, shot, staff_sign_in
from tests.portal.support import CHIYODA, SAPPORO, today

pytestmark = pytest.mark.slow


def test_online_move_out_then_one_stop_move_in_then_a_record_copy_from_the_new_municipality(
    browser: Any, portal_server: PortalServer
) -> None:
    server = portal_server
    who = server.holder(CHIYODA)
    planned = today() + dt.timedelta(days=3)

    # 1. The resident files the 転出届 online, with the 転入予約 to 札幌市.
    resident = new_context(browser, server)
    page = resident.new_page()
    portal_log_in(page, who)
    expect(page.get_by_role("heading", level=1)).to_have_text("マイページ")
    page.get_by_role("link", name="転出の届出 (引越し)").first.click()
    page.get_by_label("都道府県", exact=True).select_option(label="北海道")
    page.get_by_label("転出先の市区町村").select_option(label="札幌市")
    page.get_by_label(re.compile("転出先の住所")).fill("北1条西2丁目3番地 さっぽろハイツ201")
    page.get_by_label(re.compile("転出予定日")).fill(format_wareki(planned))
    page.get_by_label(f"{who.spouse_name} (妻)").check()
    page.get_by_label(re.compile("転入を予約します")).check()
    shot(page, "e2e-01-resident-files-move-out")
    page.get_by_role("button", name="転出届を提出する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("転出の届出を受け付けました")
    shot(page, "e2e-02-move-out-filed")
    page.get_by_role("button", name="ログアウト").click()
    resident.close()

    # 2. The relay: the 転出証明書情報 through the national network to 札幌市.
    report = server.relay()
    assert report.arrivals >= 2, report

    # 3. 札幌市's clerk completes the 転入 from the expected arrival.
    clerk_b = server.staff(Role.CLERK, org=SAPPORO)
    window = new_context(browser, server)
    staff_sign_in(window, server, clerk_b)
    desk = window.new_page()
    desk.goto("/staff/arrivals")
    expect(desk.get_by_role("heading", level=1)).to_contain_text("転入予定者")
    arrivals = desk.get_by_role("table")
    expect(arrivals.get_by_role("link", name=who.name)).to_be_visible()
    expect(arrivals).to_contain_text("東京都千代田区")
    expect(arrivals).to_contain_text(format_wareki(planned))
    shot(desk, "e2e-03-expected-arrivals")
    arrivals.get_by_role("link", name=who.name).click()
    expect(desk.get_by_role("heading", level=1)).to_contain_text("転入の記録")
    # Nothing to retype: the household, the 続柄 and the new address come from the notice.
    expect(desk.get_by_label("町名・番地")).to_have_value(re.compile("北1条西2丁目3番地"))
    expect(desk.get_by_label(f"{who.name}を転入する人に含める")).to_be_checked()
    expect(desk.get_by_label(f"{who.spouse_name}を転入する人に含める")).to_be_checked()
    # They arrived earlier than planned: today.
    desk.get_by_label(re.compile("異動年月日")).fill(format_wareki(today()))
    shot(desk, "e2e-04-arrival-form")
    desk.get_by_role("button", name="転入を記録する").click()
    expect(desk).to_have_url(re.compile(r"/staff/arrivals/\d+/card"))
    # The move travels to the national side; then the card's continued use.
    server.relay()
    # Accessible names fold the full-width space of a name into a plain one.
    name = who.name.replace("　", r"\s")
    panel_button = desk.get_by_role("button", name=re.compile(f"継続利用を記録する.*{name}"))
    expect(panel_button).to_be_visible(timeout=20_000)
    desk.get_by_role("group", name=re.compile(f"本人確認書類.*{name}")).get_by_label("運転免許証").check()
    shot(desk, "e2e-05-card-continued-use")
    panel_button.click()
    expect(desk.get_by_role("status").filter(has_text="利用できる状態です").first).to_be_visible()
    shot(desk, "e2e-06-move-in-recorded")
    window.close()
    server.relay()

    # 4. The resident logs in again and downloads a record copy, now from 札幌市.
    resident = new_context(browser, server)
    page = resident.new_page()
    portal_log_in(page, who)
    page.goto("/portal/record")
    expect(page.get_by_role("heading", level=1)).to_contain_text("北海道札幌市")
    expect(page.get_by_role("region", name=re.compile("記載事項"))).to_contain_text("北1条西2丁目3番地")
    shot(page, "e2e-07-record-in-sapporo")
    shot(page, "portal-14-record-after-moving", doc=True)
    page.goto("/portal/certificates")
    page.get_by_label("世帯全員").check()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="住民票の写しを受け取る (PDF)").click()
    download = download_info.value
    assert download.suggested_filename.startswith(f"{SAPPORO}-"), download.suggested_filename
    pdf = Path(download.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    from pypdf import PdfReader

    text = "".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages)
    squashed = "".join(text.split())
    assert "札幌市" in squashed
    assert who.name.replace("　", "") in squashed
    shot(page, "e2e-08-record-copy-downloaded")

    # 6 (seen by the resident). B's clerk's access is in the access log.
    page.goto("/portal/access-log")
    table = page.get_by_role("table")
    sapporo_rows = table.get_by_role("row").filter(has_text="札幌市").filter(has_text="職員")
    expect(sapporo_rows.filter(has_text="異動の記録").first).to_be_visible()
    expect(sapporo_rows.filter(has_text="カードの継続利用").first).to_be_visible()
    shot(page, "e2e-10-access-log")
    shot(page, "portal-13-access-log", doc=True)
    resident.close()

    # 5. 千代田区's clerk sees the 除票.
    clerk_a = server.staff(Role.CLERK, org=CHIYODA)
    office = new_context(browser, server)
    staff_sign_in(office, server, clerk_a)
    record = office.new_page()
    record.goto(f"/staff/residents/{who.person_id}")
    expect(record.get_by_role("heading", level=1)).to_contain_text("除票")
    expect(record.get_by_role("region", name=re.compile("記載事項"))).to_contain_text("除票 (転出")
    shot(record, "e2e-09-removed-record-in-chiyoda")
    office.close()
