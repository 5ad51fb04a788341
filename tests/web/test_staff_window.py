"""The staff window in Chromium, as a clerk uses it: log in, find a resident, record a 転居.

Each test takes its own staff account (a TOTP code logs in once) and works on the demo
residents `make run` seeds. Screenshots of each step go to test-artifacts/web/.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import update

from jumin.accounts.domain import OrganisationKind, Role
from jumin.accounts.models import ApiToken, StaffAccount
from jumin.core.wareki import format_wareki
from jumin.db import unit_of_work
from jumin.registry.service import EVENT_COMMANDS
from jumin.web.views import NEW_RECORD_SLUGS
from tests.web import scenario
from tests.web.conftest import LiveServer, jst_today, shot, sign_in
from tests.web.scenario import SAPPORO
from tests.web.test_window_screens import _request_extraction

pytestmark = pytest.mark.slow

EXPECT_TIMEOUT = 10_000


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def wrong_code(secret: str) -> str:
    right = {
        pyotp.TOTP(secret).at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * k)) for k in (-1, 0, 1)
    }
    return next(c for c in ("000000", "111111", "222222") if c not in right)


def person_id_of(page: Any) -> int:
    match = re.search(r"/staff/residents/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


def open_record(page: Any, kana: str, name: str) -> int:
    page.goto(f"/staff/residents?kana={kana}&include_removed=1")
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    return person_id_of(page)


def test_login_with_a_wrong_totp_shows_the_error_then_a_right_one_logs_in(
    page: Any, live_server: LiveServer
) -> None:
    demo = live_server.credentials["chiyoda-clerk"]
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/staff/login"))
    expect(page.get_by_role("status")).to_contain_text("ログインしてください")
    page.get_by_label("ログイン名").fill(demo.login)
    page.get_by_label(re.compile(r"^パスワード")).fill(demo.password)
    page.get_by_label("ワンタイムパスワード").fill(wrong_code(demo.totp_secret))
    shot(page, "01-login", doc=True)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("alert")).to_contain_text("ワンタイムパスワードが正しくありません")
    expect(page.get_by_label("ログイン名")).to_have_value(demo.login)
    shot(page, "02-login-wrong-totp", doc=True)

    page.get_by_label(re.compile(r"^パスワード")).fill(demo.password)
    page.get_by_label("ワンタイムパスワード").fill(pyotp.TOTP(demo.totp_secret).now())
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("メニュー")
    nav = page.get_by_role("navigation", name="メインメニュー")
    expect(nav.get_by_role("link", name="住民の検索")).to_be_visible()
    # A clerk's menu has no audit log and no supervisor-only 職権記載.
    expect(nav.get_by_role("link", name="監査ログ")).to_have_count(0)
    expect(nav.get_by_role("link", name="職権記載の届出")).to_have_count(0)
    cookie = next(c for c in page.context.cookies() if c["name"] == "jumin_staff")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/staff"
    shot(page, "03-menu", doc=True)

    page.get_by_role("button", name="ログアウト").click()
    expect(page.get_by_role("status")).to_contain_text("ログアウトしました")


def test_search_finds_residents_and_the_record_page_shows_household_timeline_and_history(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    page.goto("/staff/residents")
    page.get_by_label("カナ氏名").fill("やまだ")
    page.get_by_role("button", name="検索").click()
    results = page.get_by_role("table")
    expect(results.get_by_role("link", name="山田　太郎")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("全3件")
    assert "kana=" in page.url  # htmx pushed the query: the result can be bookmarked
    shot(page, "04-search", doc=True)

    # 除票 are found only when asked for.
    page.get_by_label("カナ氏名").fill("スズキ")
    page.get_by_role("button", name="検索").click()
    expect(page.get_by_role("status")).to_contain_text("見つかりませんでした")
    page.get_by_label("除票").check()
    page.get_by_role("button", name="検索").click()
    expect(page.get_by_role("table")).to_contain_text("除票")

    # A bad birth date is reported beside its field, in Japanese.
    page.get_by_label("生年月日").fill("令和元年4月30日")
    page.get_by_role("button", name="検索").click()
    expect(page.get_by_label("生年月日")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#q-birth-date-error")).to_contain_text("令和の期間")

    open_record(page, "ヤマダ タロウ", "山田　太郎")
    household = page.get_by_role("region", name=re.compile("世帯"))
    expect(household.get_by_role("row")).to_have_count(4)  # header + 3 members
    expect(household).to_contain_text("世帯主")
    timeline = page.get_by_role("region", name="異動の経過")
    expect(timeline).to_contain_text("国外転入")
    expect(timeline).to_contain_text("転居")
    history = page.get_by_role("region", name="版の履歴")
    expect(history.get_by_role("row")).not_to_have_count(1)
    shot(page, "05-record", doc=True)


def test_a_move_within_recorded_through_the_form_shows_in_the_timeline(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    open_record(page, "ヤマダ ハナコ", "山田　花子")
    page.get_by_role("link", name="転居", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("転居の記録")

    # Submitted empty: each error beside its field, and a summary linking to them.
    page.get_by_role("button", name="転居を記録する").click()
    expect(page.get_by_role("alert")).to_contain_text("入力内容に誤りがあります")
    effective = page.get_by_label("異動年月日")
    expect(effective).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-effective-on-error")).to_contain_text("入力してください")
    shot(page, "06-move-within-errors", doc=True)

    moved = jst_today() - dt.timedelta(days=3)
    effective.fill(format_wareki(moved))
    page.get_by_label("町名・番地").fill("一番町4番")
    page.get_by_label("方書").fill("一番町コート303")
    # The whole household moves by default; everyone is listed with a box to untick.
    expect(page.get_by_label("山田　太郎を対象にする")).to_be_checked()
    shot(page, "07-move-within-form", doc=True)
    page.get_by_role("button", name="転居を記録する").click()

    expect(page.get_by_role("status").first).to_contain_text("転居を記録しました")
    timeline = page.get_by_role("region", name="異動の経過")
    expect(timeline.get_by_role("listitem").first).to_contain_text("転居")
    expect(timeline.get_by_role("listitem").first).to_contain_text(format_wareki(moved))
    expect(page.get_by_role("region", name=re.compile("記載事項"))).to_contain_text("一番町4番")
    shot(page, "08-move-within-recorded", doc=True)


def test_the_record_as_of_a_date_given_in_wareki(context: Any, page: Any, live_server: LiveServer) -> None:
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    open_record(page, "ヤマダ タロウ", "山田　太郎")
    back_then = jst_today() - dt.timedelta(days=200)
    page.get_by_label("表示する日付").fill(format_wareki(back_then))
    page.get_by_role("button", name="この日付で表示").click()
    record = page.get_by_role("region", name=re.compile("記載事項"))
    expect(record.get_by_role("heading")).to_contain_text(f"{format_wareki(back_then)}時点")
    # Before the 転居 of 120 days ago: the first address.
    expect(record).to_contain_text("千代田一丁目1番1号")
    expect(record).not_to_contain_text("九段南")
    shot(page, "09-as-of", doc=True)


def test_a_stale_version_is_reported_with_a_reload_link(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    person = open_record(page, "スミス", "SMITH　JOHN")
    page.goto(f"/staff/events/move-within?person={person}")
    page.get_by_label("異動年月日").fill(format_wareki(jst_today() - dt.timedelta(days=2)))
    page.get_by_label("町名・番地").fill("二番町1番")

    # Meanwhile another clerk records a 転居 of the same person through the API.
    other = live_server.staff(Role.CLERK)
    headers = {"Authorization": f"Bearer {live_server.token(other)}"}
    with httpx.Client(base_url=live_server.url, headers=headers) as api:
        version = api.get(f"/registry/persons/{person}").json()["version"]
        recorded = api.post(
            "/registry/events/move-within",
            json={
                "effective_on": (jst_today() - dt.timedelta(days=5)).isoformat(),
                "persons": [{"person_id": person, "version": version}],
                "address": {"line": "三番町7番"},
            },
        )
        assert recorded.status_code == 201, recorded.text

    page.get_by_role("button", name="転居を記録する").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("他の職員がこの記録を更新しました。再読み込みしてください。")
    shot(page, "10-stale-version", doc=True)
    alert.get_by_role("link", name="最新の内容を読み込む").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("転居の記録")
    expect(page.get_by_role("alert")).to_have_count(0)


def test_an_expired_session_goes_back_to_the_login_page_with_a_message(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    who = live_server.staff(Role.CLERK)
    sign_in(context, live_server, who)
    page.goto("/staff/residents")
    expect(page.get_by_role("heading", level=1)).to_have_text("住民の検索")
    with unit_of_work(live_server.engine) as session:
        account = session.query(StaffAccount).filter_by(login=who.login).one()
        session.execute(
            update(ApiToken)
            .where(ApiToken.account_id == account.id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    page.reload()
    expect(page).to_have_url(re.compile(r"/staff/login\?reason=expired"))
    expect(page.get_by_role("status")).to_contain_text("有効期限が切れた")
    shot(page, "11-session-expired", doc=True)


def test_the_audit_viewer_shows_the_chain_status_and_entries(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    sign_in(context, live_server, live_server.staff(Role.AUDITOR, Role.SUPERVISOR))
    page.goto("/staff/audit")
    expect(page.locator("#chain-status")).to_contain_text("改ざんは検出されませんでした")
    entries = page.get_by_role("table")
    expect(entries).to_contain_text("住民記録の閲覧")
    page.get_by_label("操作の種類").select_option("registry.event_recorded")
    page.get_by_role("button", name="検索").click()
    expect(page.get_by_role("table")).to_contain_text("異動の記録")
    expect(page.get_by_role("table")).not_to_contain_text("住民記録の閲覧")
    shot(page, "12-audit", doc=True)


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


def test_keyboard_only_login_and_event_form(page: Any, live_server: LiveServer) -> None:
    who = live_server.staff(Role.CLERK)
    page.goto("/staff/login")
    # The login name has the focus on arrival; the rest is Tab, typing and Enter.
    assert page.evaluate("document.activeElement.id") == "login"
    page.keyboard.type(who.login)
    page.keyboard.press("Tab")
    page.keyboard.type(who.password)
    page.keyboard.press("Tab")
    page.keyboard.type(who.code())
    assert _focus_is_visible(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("メニュー")

    # On every other page the first Tab stop is the skip link, and it leads to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "本文へ移動"
    assert _focus_is_visible(page)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "住民の検索"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("住民の検索")
    _tab_to(page, "q-kana")
    page.keyboard.type("スミス")
    page.keyboard.press("Enter")
    link = page.get_by_role("link", name="SMITH　JOHN")
    expect(link).to_be_visible()
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("SMITH")
    person = person_id_of(page)
    page.goto(f"/staff/events/furigana?person={person}")
    _tab_to(page, "f-effective-on")
    page.keyboard.type(format_wareki(jst_today() - dt.timedelta(days=1)))
    _tab_to(page, "f-family-name-kana")
    page.keyboard.type("スミス")
    page.keyboard.press("Tab")
    page.keyboard.type("ジョン")
    assert _focus_is_visible(page)
    shot(page, "13-keyboard-form")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("振り仮名の記載・修正を記録しました")


def _serious(results: Any) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def test_no_page_has_a_serious_or_critical_axe_violation(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found: dict[str, list[str]] = {}

    def check(url: str | None = None, label: str = "") -> None:
        if url is not None:
            page.goto(url)
        problems = _serious(axe.run(page))
        if problems:
            found[label or page.url] = problems

    check("/staff/login", "login")
    page.get_by_label("ログイン名").fill("nobody")
    page.get_by_role("button", name="ログイン").click()
    check(label="login with error")

    sign_in(context, live_server, live_server.staff(Role.CLERK, Role.SUPERVISOR, Role.AUDITOR))
    check("/staff/", "menu")
    check("/staff/residents", "search")
    check("/staff/residents?kana=ヤマダ", "search results")
    check("/staff/residents?birth_date=2019-04-31", "search with error")
    page.goto("/staff/residents?kana=ヤマダ タロウ")
    page.get_by_role("link", name="山田　太郎").click()
    person = person_id_of(page)
    check(label="record")
    check(f"/staff/residents/{person}?on=R1.5.1", "record as of a date")
    # One form per request model: kinds sharing a model (転入 and 国外転入, 死亡 and 職権消除...)
    # render the same page apart from its title.
    seen: set[type] = set()
    for command in EVENT_COMMANDS:
        if command.request_type in seen:
            continue
        seen.add(command.request_type)
        query = "" if command.slug in NEW_RECORD_SLUGS else f"?person={person}"
        check(f"/staff/events/{command.slug}{query}", f"form {command.slug}")
    page.goto(f"/staff/events/move-out?person={person}")
    page.get_by_role("button", name="転出を記録する").click()
    check(label="form with errors")
    page.goto("/staff/audit")
    expect(page.locator("#chain-status")).to_be_visible()
    check(label="audit")
    check("/staff/audit/chain", "audit chain page")
    check("/staff/no-such-page", "not found page")

    # The window's other screens, each in its states (tests/web/test_window_screens.py drives them).
    world = live_server.world
    check("/staff/certificates", "certificate start")
    check(f"/staff/certificates?person={person}", "certificate form")
    page.get_by_role("button", name="プレビュー").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("プレビュー")
    check(label="certificate preview")
    page.get_by_role("button", name="交付する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("証明書を交付しました")
    check(label="certificate issued")
    page.get_by_role("button", name=re.compile("交付を終える")).click()
    check(label="certificate handed over (PDF erased)")
    page.goto(f"/staff/certificates?person={person}")
    page.get_by_role("radio", name="第三者").check()
    page.get_by_role("button", name="プレビュー").click()
    check(label="certificate form with errors")

    holder = scenario.arrive_from_abroad(world, family=("検査", "ケンサ"))[0]
    live_server.relay()
    number = scenario.issue_card(world, holder, hand_over=False)
    check("/staff/cards", "cards")
    check(f"/staff/cards/{number}", "card (ready)")
    check(f"/staff/cards/{number}/hand-over", "card hand-over")
    page.get_by_role("button", name="カードを交付する").click()
    check(label="card hand-over with errors")
    page.get_by_label("運転免許証").check()
    page.get_by_label("利用者証明用電子証明書の暗証番号").fill(scenario.AUTH_PIN)
    page.get_by_label("署名用電子証明書を発行する").uncheck()
    page.get_by_role("button", name="カードを交付する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("カードを交付しました")
    check(label="card handed over")
    check(f"/staff/cards/{number}/pin-reset", "card PIN reset")
    page.get_by_role("button", name="暗証番号を再設定する").click()
    check(label="card PIN reset with errors")

    check("/staff/protection-orders", "protection orders (none)")
    check(f"/staff/protection-orders/new?person={holder.person_id}", "protection order form")
    page.get_by_role("button", name="支援措置を登録する").click()
    check(label="protection order form with errors")
    page.get_by_label("相手方1の氏名").fill("加害　花子")
    page.get_by_role("button", name="支援措置を登録する").click()
    check(label="protection orders")
    page.get_by_role("link", name=re.compile("終了する")).first.click()
    check(label="protection order end")

    people, _ = scenario.moving_household(world, family=("点検", "テンケン"))
    context.clear_cookies()
    sign_in(context, live_server, live_server.staff(Role.CLERK, org=SAPPORO))
    check("/staff/arrivals", "arrivals")
    page.get_by_role("link", name=people[0].name).click()
    check(label="arrival form")
    page.get_by_label("町名・番地").fill("")
    page.get_by_role("button", name="転入を記録する").click()
    check(label="arrival form with errors")
    page.get_by_label("町名・番地").fill("北1条西2丁目1番")
    page.get_by_role("button", name="転入を記録する").click()
    expect(page.get_by_text("全国センターへの転入の反映を待っています")).to_be_visible()
    check(label="card continued use (waiting)")
    live_server.relay()
    button = page.get_by_role("button", name=re.compile("継続利用を記録する"))
    expect(button).to_be_visible(timeout=15_000)
    check(label="card continued use (form)")
    button.click()
    check(label="card continued use with errors")
    page.get_by_label("運転免許証").check()
    page.get_by_role("button", name=re.compile("継続利用を記録する")).click()
    check(label="card continued use (done)")

    extraction = _request_extraction(live_server)
    context.clear_cookies()
    operator = live_server.staff(Role.OPERATOR, Role.AUDITOR, org="national", kind=OrganisationKind.NATIONAL)
    sign_in(context, live_server, operator)
    check("/staff/approvals", "approvals")
    page.get_by_role("button", name=re.compile(f"却下する.*{extraction[:8]}")).click()
    check(label="approvals decided")
    page.goto("/staff/audit?log=national")
    expect(page.locator("#chain-status")).to_be_visible()
    check(label="national audit log")

    # Approvals of drafted corrections (test_window_screens.py drives them): the drafter's
    # screens, then another supervisor's.
    context.clear_cookies()
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    check(f"/staff/residents/{person}", "record (clerk, with drafts)")
    check(f"/staff/approvals/new/ex-officio-correction?person={person}", "approval draft form")
    page.get_by_role("button", name="承認を申請する").click()
    check(label="approval draft form with errors")
    page.get_by_label("異動年月日").fill("令和2年1月1日")
    page.get_by_label("項目").first.select_option("old_surname")
    page.get_by_label("正しい値").first.fill("山本")
    page.get_by_label(re.compile("申請の理由")).fill("旧氏の記載の申出")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.get_by_role("status").first).to_contain_text("承認を申請しました")
    check(label="approval request (drafter)")
    request_url = page.url.split("?")[0]
    check(f"{request_url}/edit", "approval resubmission form")
    check(f"/staff/approvals/new/cancellation?person={person}", "approval draft form (cancellation)")
    check("/staff/approvals", "approvals (clerk)")
    context.clear_cookies()
    sign_in(context, live_server, live_server.staff(Role.SUPERVISOR))
    check("/staff/approvals", "approvals (supervisor)")
    check(request_url, "approval request (to decide)")
    page.get_by_role("button", name="却下する").click()
    check(label="approval request with an error")
    page.get_by_label("判断の理由・確認した事項").fill("旧氏の根拠となる戸籍の提示がない")
    page.get_by_role("button", name="却下する").click()
    expect(page.get_by_role("status").first).to_contain_text("申請を却下しました")
    check(label="approval request (refused)")
    assert found == {}, "\n".join(f"{page}: {problems}" for page, problems in found.items())
