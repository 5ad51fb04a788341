"""The resident portal in Chromium, as a resident uses it: with the keyboard, the card and its PIN.

Each test makes its own card holder on the real server. Screenshots of each step go to
test-artifacts/web/portal-*.png; the documented ones also to docs/images/ when
JUMIN_UPDATE_DOC_IMAGES=1 (docs/portal.md shows them).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from jumin.core.wareki import format_wareki
from jumin.portal.pages import router
from tests.portal.live import PortalServer, expect, portal_log_in, shot
from tests.portal.support import today

pytestmark = pytest.mark.slow


def _tab_to(page: Any, element_id: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    pytest.fail(f"#{element_id} is not reachable with the Tab key")


def _focus_is_visible(page: Any) -> bool:
    style = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    return bool(style[0] != "none" and style[1] != "0px")


def _tab_to_link(page: Any, text: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.textContent.trim()") == text:
            return
    pytest.fail(f"the link {text!r} is not reachable with the Tab key")


def test_keyboard_only_card_login_then_my_record(portal_page: Any, portal_server: PortalServer) -> None:
    page = portal_page
    who = portal_server.holder()
    page.goto("/portal/record")
    expect(page).to_have_url(re.compile(r"/portal/login\?reason=required"))
    expect(page.get_by_role("status")).to_contain_text("マイナンバーカードでログインしてください")
    # The card number has the focus on arrival; the rest is typing, Tab and Enter.
    assert page.evaluate("document.activeElement.id") == "card_number"
    page.keyboard.type(who.card_number)
    page.keyboard.press("Tab")
    page.keyboard.type(who.pin)
    assert _focus_is_visible(page)
    shot(page, "portal-01-login", doc=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("住民票と世帯")
    record = page.get_by_role("region", name=re.compile("記載事項"))
    expect(record).to_contain_text(who.name)
    expect(record).to_contain_text("東京都千代田区")
    household = page.get_by_role("region", name=re.compile("世帯"))
    expect(household).to_contain_text(who.spouse_name)
    expect(household).to_contain_text("世帯主")
    cookie = next(c for c in page.context.cookies() if c["name"] == "jumin_resident")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/portal")
    shot(page, "portal-03-record", doc=True)

    # The first Tab stop is the skip link; the menu is reachable from the keyboard.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "本文へ移動"
    assert _focus_is_visible(page)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.goto("/portal/")
    _tab_to_link(page, "自分の情報の閲覧記録")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("自分の情報の閲覧記録")
    page.goto("/portal/")
    shot(page, "portal-02-home", doc=True)
    page.get_by_role("button", name="ログアウト").click()
    expect(page.get_by_role("status")).to_contain_text("ログアウトしました")


def test_a_wrong_pin_says_how_many_tries_remain(portal_page: Any, portal_server: PortalServer) -> None:
    page = portal_page
    who = portal_server.holder()
    portal_log_in(page, who, pin="9999")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("暗証番号が違います。あと2回誤るとロックされます。")
    expect(page.get_by_label("利用者証明用電子証明書の暗証番号")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("カード番号")).to_have_value(who.card_number)
    shot(page, "portal-04-wrong-pin", doc=True)
    page.get_by_label("利用者証明用電子証明書の暗証番号").fill(who.pin)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("マイページ")


def test_keyboard_only_online_move_out_with_the_municipality_list_from_htmx(
    portal_page: Any, portal_server: PortalServer
) -> None:
    page = portal_page
    who = portal_server.holder()
    portal_log_in(page, who)
    page.goto("/portal/move-out")
    expect(page.get_by_label("転出先の市区町村")).to_be_disabled()
    _tab_to(page, "f-prefecture")
    page.keyboard.press("ArrowDown")  # 北海道, the first prefecture; htmx fetches its municipalities
    municipality = page.get_by_label("転出先の市区町村")
    expect(municipality).to_be_enabled()
    expect(municipality.locator("option", has_text="札幌市")).to_have_count(1)
    _tab_to(page, "f-destination-lg-code")
    page.keyboard.press("ArrowDown")  # 札幌市, the first municipality of 北海道 in code order
    expect(municipality).to_have_value("011002")
    _tab_to(page, "f-destination-line")
    page.keyboard.type("北1条西2丁目3番地")
    _tab_to(page, "f-planned-on")
    page.keyboard.type(format_wareki(today() + dt.timedelta(days=14)))
    _tab_to(page, f"person-{who.household[1]}")
    page.keyboard.press("Space")  # the spouse moves too
    _tab_to(page, "f-confirmed")
    page.keyboard.press("Space")
    shot(page, "portal-05-move-out", doc=True)
    # First with a date too far ahead.
    page.get_by_label(re.compile("転出予定日")).fill(format_wareki(today() + dt.timedelta(days=40)))
    _tab_to(page, "f-confirmed")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "転出届を提出する"
    page.keyboard.press("Enter")
    # Too far ahead: the error beside the date, and a summary linking to it.
    expect(page.get_by_role("alert")).to_contain_text("30日前から届け出られます")
    planned = page.get_by_label(re.compile("転出予定日"))
    expect(planned).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("link", name=re.compile("転出予定日:"))).to_have_attribute(
        "href", "#f-planned-on"
    )
    expect(page.get_by_label("転出先の市区町村")).to_have_value("011002")
    shot(page, "portal-06-move-out-error", doc=True)
    planned.fill(format_wareki(today() + dt.timedelta(days=14)))
    # What was chosen stays chosen.
    expect(page.get_by_label(f"{who.spouse_name} (妻)")).to_be_checked()
    expect(page.get_by_label(re.compile(f"{who.name} \\(世帯主\\)"))).to_be_checked()
    expect(page.get_by_label(re.compile("転入を予約します"))).to_be_checked()
    page.get_by_role("button", name="転出届を提出する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("転出の届出を受け付けました")
    expect(page.get_by_role("status")).to_contain_text("北海道札幌市への転入予約を受け付けました")
    shot(page, "portal-07-move-out-filed", doc=True)
    page.goto("/portal/record")
    expect(page.get_by_role("status")).to_contain_text("転出の届出が済んでいます")


def test_a_record_copy_downloads_as_a_signed_pdf(portal_page: Any, portal_server: PortalServer) -> None:
    page = portal_page
    who = portal_server.holder()
    portal_log_in(page, who)
    page.goto("/portal/certificates")
    page.get_by_label("世帯全員").check()
    page.get_by_label("世帯主・続柄").check()
    shot(page, "portal-08-certificate", doc=True)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="住民票の写しを受け取る (PDF)").click()
    download = download_info.value
    assert re.fullmatch(r"131016-\d{4}-\d{7}\.pdf", download.suggested_filename)
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF")
    assert b"/ByteRange" in data


def test_consent_and_the_lost_card(portal_page: Any, portal_server: PortalServer) -> None:
    from jumin.audit.domain import Actor, ActorKind
    from jumin.card import fourfacts

    page = portal_page
    who = portal_server.holder()
    with portal_server.national_unit() as national:
        code = f"bank-{who.card_number[-6:]}"
        fourfacts.register_business(
            national,
            actor=Actor(kind=ActorKind.STAFF, actor_id="operator", organisation_code="national"),
            code=code,
            name="みらい銀行",
            webhook_url=None,
        )
    portal_log_in(page, who)
    page.goto("/portal/consents")
    page.get_by_role("combobox", name=re.compile("^事業者")).select_option(label=f"みらい銀行 ({code})")
    page.get_by_label("生年月日").uncheck()
    page.get_by_label("性別").uncheck()
    page.get_by_role("button", name="同意する").click()
    expect(page.get_by_role("status")).to_contain_text("同意を登録しました")
    table = page.get_by_role("table")
    expect(table).to_contain_text("みらい銀行")
    expect(table).to_contain_text("氏名・住所")
    shot(page, "portal-09-consents", doc=True)

    page.goto("/portal/card")
    expect(page.get_by_role("region", name="カードの状態")).to_contain_text("利用中")
    page.get_by_role("button", name="カードを一時停止する").click()
    expect(page.get_by_role("alert")).to_contain_text("チェックを入れてください")
    page.get_by_label("カードをなくしたため、カードと電子証明書を一時停止します").check()
    shot(page, "portal-10-card-suspend", doc=True)
    page.get_by_role("button", name="カードを一時停止する").click()
    expect(page).to_have_url(re.compile(r"/portal/login\?reason=suspended"))
    expect(page.get_by_role("status")).to_contain_text("一時停止を受け付けました")
    shot(page, "portal-11-suspended", doc=True)
    portal_log_in(page, who)
    expect(page.get_by_role("alert")).to_contain_text("カードによる認証に失敗しました")


def _serious(results: Any) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def test_no_portal_page_has_a_serious_or_critical_axe_violation(
    portal_page: Any, portal_server: PortalServer
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page = portal_page
    axe = Axe()
    found: dict[str, list[str]] = {}
    visited: set[str] = set()

    def check(url: str | None = None, label: str = "") -> None:
        if url is not None:
            page.goto(url)
        visited.add(re.sub(r"\?.*$", "", page.url.removeprefix(portal_server.url)))
        problems = _serious(axe.run(page))
        if problems:
            found[label or page.url] = problems

    who = portal_server.holder()
    check("/portal/suspend", "suspend a lost card")
    page.get_by_role("button", name="カードを一時停止する").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check(label="suspend a lost card with errors")
    check("/portal/login", "login")
    page.get_by_label("カード番号").fill(who.card_number)
    page.get_by_label("利用者証明用電子証明書の暗証番号").fill("0000")
    page.get_by_role("button", name="ログイン").click()
    check(label="login with error")
    page.get_by_label("利用者証明用電子証明書の暗証番号").fill(who.pin)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("マイページ")
    check("/portal/", "home")
    check("/portal/record", "record")
    check("/portal/certificates", "certificates")
    check("/portal/move-out", "move-out")
    page.get_by_label("都道府県", exact=True).select_option(label="北海道")
    expect(page.get_by_label("転出先の市区町村")).to_be_enabled()
    check(label="move-out with the municipality list")
    page.get_by_role("button", name="転出届を提出する").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check(label="move-out with errors")
    page.get_by_label("都道府県", exact=True).select_option(label="北海道")
    expect(page.get_by_label("転出先の市区町村")).to_be_enabled()
    page.get_by_label("転出先の市区町村").select_option(label="札幌市")
    page.get_by_label(re.compile("転出先の住所")).fill("北1条西2丁目")
    page.get_by_label(re.compile("転出予定日")).fill(format_wareki(today() + dt.timedelta(days=5)))
    page.get_by_label(f"{who.spouse_name} (妻)").check()
    page.get_by_label(re.compile("転入を予約します")).check()
    page.get_by_role("button", name="転出届を提出する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("転出の届出を受け付けました")
    check(label="move-out filed")
    check("/portal/move-out", "move-out already filed")
    check("/portal/consents", "consents")
    page.get_by_role("button", name="同意する").click()
    check(label="consents with errors")
    check("/portal/card", "card")
    page.get_by_role("button", name="カードを一時停止する").click()
    check(label="card with errors")
    check("/portal/access-log", "access log")
    check("/portal/no-such-page", "not found page")
    assert found == {}, "\n".join(f"{p}: {problems}" for p, problems in found.items())
    # Every page the portal serves was checked (the htmx fragment is part of the move-out page).
    pages = {
        route.path  # type: ignore[attr-defined]
        for route in router.routes
        if "GET" in getattr(route, "methods", set()) and not route.path.endswith("/municipalities")  # type: ignore[attr-defined]
    }
    assert pages - {"/portal"} <= visited, pages - visited


def test_a_lost_card_is_suspended_without_logging_in(portal_page: Any, portal_server: PortalServer) -> None:
    page = portal_page
    who = portal_server.holder()
    page.goto("/portal/login")
    page.get_by_role("link", name="カードを一時停止").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("なくしたカードの一時停止")
    page.get_by_label("カード番号").fill(who.card_number)
    page.get_by_label("一時停止用の確認コード").fill("ABCDEFGHJKLMNPQR")
    page.get_by_role("button", name="カードを一時停止する").click()
    expect(page.get_by_role("alert")).to_contain_text("確認コードが正しくありません")
    page.get_by_label("一時停止用の確認コード").fill(who.suspension_secret)
    shot(page, "portal-12-suspend-lost-card", doc=True)
    page.get_by_role("button", name="カードを一時停止する").click()
    expect(page.get_by_role("status")).to_contain_text("一時停止を受け付けました")
