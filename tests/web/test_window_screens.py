"""The window's other screens in Chromium, as the clerks use them: the one-stop 転入 with the
card's continued use, certificate issuance, card hand-over and PIN reset, protection orders,
extraction approvals and the national audit log.

Every test makes its own residents through the real use cases (tests/web/scenario.py) and
its own staff accounts; screenshots of each step go to test-artifacts/web/ (and, with
JUMIN_UPDATE_DOC_IMAGES=1, to docs/images/ for docs/staff-ui.md).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import select

from jumin.accounts.domain import OrganisationKind, Principal, PrincipalKind, Role
from jumin.audit.models import AuditEntry
from jumin.card import repository as card_repository
from jumin.certificates.models import CertificateIssuancePerson
from jumin.core.wareki import format_wareki
from jumin.db import unit_of_work
from jumin.network.agencies import service as agencies
from jumin.registry import service as registry
from tests.web import scenario
from tests.web.conftest import LiveServer, jst_today, shot, sign_in
from tests.web.scenario import SAPPORO

pytestmark = pytest.mark.slow


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def loose(text: str) -> re.Pattern[str]:
    """An accessible name as Chromium computes it: a full-width space becomes a plain one."""
    return re.compile(re.escape(text).replace("　", r"\s"))


def _tab_to(page: Any, element_id: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    pytest.fail(f"#{element_id} is not reachable with the Tab key")


def test_the_one_stop_window_records_the_move_in_and_the_cards_continued_use(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    people, card_number = scenario.moving_household(live_server.world, members=2, family=("転居", "テンキョ"))
    assert card_number is not None
    sign_in(context, live_server, live_server.staff(Role.CLERK, org=SAPPORO))
    page.goto("/staff/")
    page.get_by_role("navigation", name="メインメニュー").get_by_role(
        "link", name="転入予定者 (ワンストップ窓口)"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("転入予定者")
    arrivals = page.get_by_role("table")
    expect(arrivals).to_contain_text(people[0].name)
    expect(arrivals).to_contain_text("千代田区")
    shot(page, "14-arrivals", doc=True)

    arrivals.get_by_role("link", name=people[0].name).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("転入の記録")
    # Everything the 転出証明書情報 says is there already; the clerk confirms.
    expect(page.get_by_label("町名・番地")).to_have_value("中央区北1条西2丁目1番")
    expect(page.get_by_label(f"{people[0].name}を転入する人に含める")).to_be_checked()
    expect(page.get_by_label(f"{people[1].name}を転入する人に含める")).to_be_checked()
    expect(page.get_by_label(f"続柄 ({people[0].name})")).to_have_value("世帯主")
    expect(page.get_by_label(f"続柄 ({people[1].name})")).to_have_value("子")
    expect(page.get_by_label("マイナンバーカードの提示を受けた (特例転入)")).to_be_checked()
    page.get_by_label("異動年月日 (転入した日)").fill(format_wareki(jst_today()))
    page.get_by_label("方書 (建物名・部屋番号)").fill("札幌ハイツ305")
    shot(page, "15-arrival-form", doc=True)
    page.get_by_role("button", name="転入を記録する").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("マイナンバーカードの継続利用")
    expect(page.get_by_text("転入を記録しました")).to_be_visible()
    # The move travels to the national side; the page polls until it is there.
    waiting = page.get_by_text("全国センターへの転入の反映を待っています").first
    expect(waiting).to_be_visible()
    shot(page, "16-card-waiting", doc=True)
    live_server.relay()
    section = page.get_by_role("region", name=people[0].name)
    expect(section.get_by_role("button", name=re.compile("継続利用を記録する"))).to_be_visible(timeout=15_000)
    expect(section).to_contain_text(card_number)
    expect(section).to_contain_text("千代田一丁目1番1号")
    shot(page, "17-card-continue", doc=True)

    # No document ticked: refused beside the group, nothing recorded.
    section.get_by_role("button", name=re.compile("継続利用を記録する")).click()
    expect(page.get_by_role("alert")).to_contain_text("本人確認書類")
    section = page.get_by_role("region", name=people[0].name)
    section.get_by_label("運転免許証").check()
    section.get_by_role("button", name=re.compile("継続利用を記録する")).click()
    expect(page.get_by_text(f"{people[0].name}さんのカードの継続利用を記録しました")).to_be_visible()
    expect(page.get_by_role("region", name=people[0].name)).to_contain_text(
        "この市区町村で利用できる状態です"
    )
    # The second person has no card: nothing to do.
    expect(page.get_by_role("region", name=people[1].name)).to_contain_text(
        "利用中のマイナンバーカードはありません"
    )
    shot(page, "18-card-continued", doc=True)
    with unit_of_work(live_server.national) as session:
        card = card_repository.card_by_number(session, card_number)
        assert card is not None
        assert card.lg_code == SAPPORO

    # The new record, from the 転出証明書情報, is one click away.
    page.get_by_role("region", name=people[0].name).get_by_role(
        "link", name=re.compile("住民票を見る")
    ).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(people[0].name)
    expect(page.get_by_role("region", name="異動の経過")).to_contain_text("特例転入")


def test_the_one_stop_window_works_with_the_keyboard_alone(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    people, _ = scenario.moving_household(live_server.world, card=False, family=("鍵盤", "ケンバン"))
    sign_in(context, live_server, live_server.staff(Role.CLERK, org=SAPPORO))
    page.goto("/staff/arrivals")
    link = page.get_by_role("link", name=people[0].name)
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == people[0].name:
            break
    else:
        pytest.fail("the arrival is not reachable with the Tab key")
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("転入の記録")
    _tab_to(page, "q-effective-on")
    page.keyboard.press("Control+A")
    page.keyboard.type(format_wareki(jst_today() - dt.timedelta(days=1)))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("マイナンバーカードの継続利用")
    expect(page.get_by_text("転入を記録しました")).to_be_visible()


def test_a_certificate_is_previewed_issued_and_downloaded(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    people = scenario.arrive_from_abroad(live_server.world, members=2, family=("証明", "ショウメイ"))
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    page.goto(f"/staff/residents?kana={people[0].kana}")
    page.get_by_role("link", name=people[0].name).click()
    page.get_by_role("link", name="証明書を交付する").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("証明書の交付")
    page.get_by_label(re.compile(re.escape(people[1].name))).first.check()
    page.get_by_label("住民票記載事項証明書").check()
    page.get_by_label("世帯主・続柄").check()
    shot(page, "19-certificate-form", doc=True)
    page.get_by_role("button", name="プレビュー").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("証明書のプレビュー")
    expect(page.get_by_role("status").first).to_contain_text("まだ交付していません")
    expect(page.get_by_role("img", name=re.compile("プレビュー"))).to_be_visible()
    text = page.get_by_role("region", name="記載内容")
    expect(text).to_contain_text(people[1].name)
    expect(text).to_contain_text("世帯主")
    shot(page, "20-certificate-preview", doc=True)

    # Back to the choices, as they were: a 住民票の写し instead.
    page.get_by_role("button", name="条件を変更する").click()
    expect(page.get_by_label("住民票記載事項証明書")).to_be_checked()
    page.get_by_label("住民票の写し").check()
    page.get_by_role("button", name="プレビュー").click()
    # The same form posted twice (what a double click or a resent request does) issues once.
    answered = page.evaluate(
        """async () => {
            const form = document.querySelector('form[action="/staff/certificates/issue"]');
            const body = () => new URLSearchParams(new FormData(form));
            const post = () => fetch(form.action, {method: "POST", body: body()});
            const [a, b] = await Promise.all([post(), post()]);
            return [a.status, a.url, b.status, b.url];
        }"""
    )
    assert answered[0] == answered[2] == 200
    assert answered[1] == answered[3]
    assert "/staff/certificates/issued/" in answered[1]
    page.get_by_role("button", name="交付する").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("証明書を交付しました")
    expect(page.get_by_role("img", name=re.compile("交付した住民票の写し"))).to_be_visible()
    assert page.url == answered[1]
    shot(page, "21-certificate-issued", doc=True)
    # A reload shows the same result: the page was reached by a redirect, nothing is posted again.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("証明書を交付しました")
    expect(page.get_by_role("link", name=re.compile("署名付きPDFをダウンロード"))).to_be_visible()
    assert _issuances_of(live_server, people[1].person_id) == 1
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("署名付きPDFをダウンロード")).click()
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    with open(download.path(), "rb") as f:
        assert f.read(5) == b"%PDF-"
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="印刷用にPDFを開く").click()
    assert opened.value.url.startswith("blob:")
    opened.value.close()

    # Done: the PDF is erased now; the page (and a reload of it) keeps the ledger's facts.
    number = page.url.rsplit("/", 1)[-1]
    page.get_by_role("button", name=re.compile("交付を終える")).click()
    expect(page.locator("#pdf-gone")).to_contain_text("署名付きPDFは消去しました")
    expect(page.get_by_role("main")).to_contain_text(number)
    expect(page.get_by_role("link", name=re.compile("署名付きPDFをダウンロード"))).to_have_count(0)
    shot(page, "31-certificate-handed-over", doc=True)
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("証明書を交付しました")
    assert _issuances_of(live_server, people[1].person_id) == 1


def _issuances_of(live: LiveServer, person_id: int) -> int:
    """How many certificates the ledger says were issued for the person."""
    with unit_of_work(live.engine) as session:
        return len(
            session.execute(
                select(CertificateIssuancePerson).where(CertificateIssuancePerson.person_id == person_id)
            )
            .scalars()
            .all()
        )


def test_a_card_is_handed_over_and_its_pin_reset(context: Any, page: Any, live_server: LiveServer) -> None:
    person = scenario.arrive_from_abroad(live_server.world, family=("交付", "コウフ"))[0]
    live_server.relay()
    number = scenario.issue_card(live_server.world, person, hand_over=False)
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    page.goto("/staff/cards")
    waiting = page.get_by_role("region", name="交付待ちのカード")
    expect(waiting).to_contain_text(number)
    shot(page, "22-cards", doc=True)
    waiting.get_by_role("link", name=re.compile(number)).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("カードの交付")
    expect(page.get_by_role("main")).to_contain_text(person.name)
    page.get_by_label("学生証").check()
    page.get_by_label("利用者証明用電子証明書の暗証番号").fill("12")
    page.get_by_label("署名用電子証明書の暗証番号").fill("ABCD1234")
    page.get_by_role("button", name="カードを交付する").click()
    expect(page.get_by_role("alert")).to_contain_text("入力内容に誤りがあります")
    expect(page.get_by_label("利用者証明用電子証明書の暗証番号")).to_have_value("")

    page.get_by_label("学生証").uncheck()
    page.get_by_label("運転免許証").check()
    page.get_by_label("利用者証明用電子証明書の暗証番号").fill(scenario.AUTH_PIN)
    page.get_by_label("署名用電子証明書の暗証番号").fill("ABCD1234")
    shot(page, "23-card-hand-over", doc=True)
    page.get_by_role("button", name="カードを交付する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("カードを交付しました")
    secret = page.locator(".secret")
    expect(secret).to_have_text(re.compile(r"^[A-Z0-9]{16}$"))
    shot(page, "24-card-handed-over", doc=True)

    page.get_by_role("link", name="カードの状態を見る").click()
    expect(page.get_by_role("table")).to_contain_text("署名用電子証明書")
    page.get_by_role("link", name="暗証番号を再設定する").click()
    page.get_by_label("利用者証明用電子証明書の暗証番号 (数字4桁)").check()
    page.get_by_label("新しい暗証番号 (本人が入力します)").fill("9876")
    page.get_by_label("旅券 (パスポート)").check()
    shot(page, "25-pin-reset", doc=True)
    page.get_by_role("button", name="暗証番号を再設定する").click()
    expect(page.get_by_role("status").first).to_contain_text("暗証番号を再設定しました")


def test_a_supervisor_registers_and_ends_a_protection_order(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    person = scenario.arrive_from_abroad(live_server.world, family=("保護", "ホゴ"))[0]
    sign_in(context, live_server, live_server.staff(Role.CLERK, Role.SUPERVISOR))
    page.goto(f"/staff/residents?kana={person.kana}")
    page.get_by_role("link", name=person.name).click()
    page.get_by_role("link", name="支援措置を登録する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("支援措置の登録")
    expect(page.get_by_text(f"対象者: {person.name}")).to_be_visible()
    page.get_by_role("button", name="支援措置を登録する").click()
    expect(page.get_by_role("alert")).to_contain_text("制限する相手方")
    page.get_by_label("相手方1の氏名").fill("加害　太郎")
    page.get_by_label("期間の終期").fill(format_wareki(jst_today() + dt.timedelta(days=365)))
    shot(page, "27-protection-order-form", doc=True)
    page.get_by_role("button", name="支援措置を登録する").click()

    expect(page.get_by_role("status").first).to_contain_text("支援措置を登録しました")
    row = page.get_by_role("row", name=loose(person.name))
    expect(row).to_contain_text(loose("加害　太郎"))
    expect(row).to_contain_text("有効")
    shot(page, "26-protection-orders", doc=True)

    # The named party is refused at the window, whoever they claim to be.
    page.goto(f"/staff/residents?kana={person.kana}")
    page.get_by_role("link", name=person.name).click()
    page.get_by_role("link", name="証明書を交付する").click()
    page.get_by_role("radio", name="代理人").check()
    page.get_by_label("請求者の氏名 (代理人・第三者の場合)").fill("加害 太郎")
    page.get_by_label("代理権を証する書類 (代理人の場合)").fill("委任状")
    page.get_by_role("button", name="プレビュー").click()
    expect(page.get_by_role("alert")).to_contain_text("支援措置")

    page.goto("/staff/protection-orders")
    page.get_by_role("row", name=loose(person.name)).get_by_role("link", name=re.compile("終了する")).click()
    page.get_by_role("button", name="支援措置を終了する").click()
    expect(page.get_by_role("status").first).to_contain_text("を終了しました")


def _request_extraction(live: LiveServer) -> str:
    prefecture = Principal(
        kind=PrincipalKind.STAFF,
        subject="tokyo-kyufu",
        organisation_code="130001",
        organisation_kind=OrganisationKind.PREFECTURE,
        roles=frozenset({Role.CLERK}),
        token_id=0,
    )
    with unit_of_work(live.national) as session:
        asked = agencies.request_extraction(
            session,
            principal=prefecture,
            reference_date=jst_today() - dt.timedelta(days=1),
            lg_codes=["131016"],
            min_age=18,
            max_age=None,
            purpose="物価高騰対策給付金の支給対象者の把握",
            target="test",
        )
    return asked.id


def test_the_operator_approves_an_extraction_and_sees_it_produced(
    context: Any, page: Any, live_server: LiveServer
) -> None:
    live_server.relay()  # the demo residents reach the national store
    extraction_id = _request_extraction(live_server)
    operator = live_server.staff(Role.OPERATOR, Role.AUDITOR, org="national", kind=OrganisationKind.NATIONAL)
    sign_in(context, live_server, operator)
    page.goto("/staff/")
    page.get_by_role("navigation", name="メインメニュー").get_by_role("link", name="抽出依頼の承認").click()
    request = page.get_by_role("article", name=re.compile("東京都の依頼")).filter(has_text=extraction_id[:8])
    expect(request).to_contain_text("物価高騰対策給付金の支給対象者の把握")
    request.get_by_label(re.compile("判断の理由")).fill("給付事務の根拠条例を確認した")
    shot(page, "28-approvals", doc=True)
    request.get_by_role("button", name=re.compile("承認する")).click()
    expect(page.get_by_role("status").first).to_contain_text(f"依頼 {extraction_id[:8]} を承認しました")
    produced = page.locator(f"#extraction-{extraction_id}")
    expect(produced).to_contain_text("作成済み", timeout=20_000)
    shot(page, "29-approvals-produced", doc=True)

    page.goto("/staff/audit?log=national")
    expect(page.locator("#chain-status")).to_contain_text("改ざんは検出されませんでした")
    expect(page.get_by_role("table")).to_contain_text("抽出の承認")
    shot(page, "30-audit-national", doc=True)


# ---------------------------------------------------------------------------
# 職権修正の承認: a clerk drafts, another staff member with the supervisor's role decides.


def _desk(browser: Any, live: LiveServer, who: Any) -> Any:
    """A second browser at another desk, signed in as ``who``."""
    ctx = browser.new_context(
        base_url=live.url, locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1100, "height": 760}
    )
    ctx.set_default_timeout(10_000)
    sign_in(ctx, live, who)
    return ctx


def _draft_correction(page: Any, person: scenario.Resident, item: str, value: str, reason: str) -> str:
    page.goto(f"/staff/residents/{person.person_id}")
    page.get_by_role("link", name="職権修正を申請する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("職権修正の承認申請")
    page.get_by_label("異動年月日").fill(format_wareki(jst_today() - dt.timedelta(days=60)))
    page.get_by_label("項目").first.select_option(item)
    page.get_by_label("正しい値").first.fill(value)
    page.get_by_label(re.compile("申請の理由")).fill(reason)
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.get_by_role("status").first).to_contain_text("承認を申請しました")
    match = re.search(r"/staff/approvals/corrections/(\d+)", page.url)
    assert match, page.url
    return match.group(1)


def test_a_clerks_correction_is_approved_by_a_supervisor_and_the_record_shows_it(
    browser: Any, context: Any, page: Any, live_server: LiveServer
) -> None:
    person = scenario.arrive_from_abroad(live_server.world, family=("訂正", "テイセイ"))[0]
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    page.goto(f"/staff/residents/{person.person_id}")
    page.get_by_role("link", name="職権修正を申請する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("職権修正の承認申請")
    # Checked at once, by the event's own rules: errors beside the fields, nothing stored.
    page.get_by_label("項目").first.select_option("family_name_kana")
    page.get_by_label("正しい値").first.fill("teisei")
    page.get_by_role("button", name="承認を申請する").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("異動年月日")
    expect(summary).to_contain_text("申請の理由")
    page.get_by_label("異動年月日").fill(format_wareki(jst_today() - dt.timedelta(days=60)))
    page.get_by_label(re.compile("申請の理由")).fill("戸籍謄本の記載と異なる (本人が窓口で申出)")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.get_by_role("alert")).to_contain_text("振り仮名は全角カタカナで入力してください")
    page.get_by_label("項目").first.select_option("given_name")
    page.get_by_label("正しい値").first.fill("壱郎")
    shot(page, "32-approval-draft", doc=True)
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.get_by_role("status").first).to_contain_text("承認を申請しました")
    expect(page.get_by_role("main")).to_contain_text("自分の申請は承認・却下できません")
    expect(page.get_by_role("button", name="承認して記録する")).to_have_count(0)
    shot(page, "33-approval-drafted", doc=True)

    supervisor = _desk(browser, live_server, live_server.staff(Role.SUPERVISOR))
    desk = supervisor.new_page()
    desk.goto("/staff/")
    desk.get_by_role("navigation", name="メインメニュー").get_by_role("link", name="修正の承認").click()
    pending = desk.get_by_role("region", name=re.compile("承認待ちの申請")).first
    expect(pending).to_contain_text(person.name)
    shot(desk, "34-approvals-pending", doc=True)
    pending.get_by_role("link", name=loose(person.name)).click()
    changed = desk.get_by_role("row", name=re.compile(r"^氏名\s"))
    expect(changed).to_contain_text(person.name)
    expect(changed).to_contain_text("訂正　壱郎")
    expect(changed).to_contain_text("変更")
    desk.get_by_label("判断の理由・確認した事項").fill("戸籍謄本を確認した")
    desk.locator(f"#compare-{person.person_id}-heading").evaluate("e => e.scrollIntoView()")
    shot(desk, "35-approval-compare", doc=True)
    desk.get_by_role("button", name="承認して記録する").click()
    expect(desk.get_by_role("status").first).to_contain_text("申請を承認し、異動を記録しました")
    desk.get_by_role("link", name=re.compile("記録した住民票を見る")).click()
    expect(desk.get_by_role("heading", level=1)).to_contain_text("訂正　壱郎")
    expect(desk.get_by_role("status").first).to_contain_text("職権修正を記録しました")
    expect(desk.get_by_role("region", name="異動の経過")).to_contain_text("職権修正")
    shot(desk, "36-approval-recorded", doc=True)
    supervisor.close()

    # The clerk sees the decision on their list.
    page.goto("/staff/approvals")
    expect(page.get_by_role("region", name="自分の申請").first).to_contain_text("承認済み")


def test_a_supervisor_cannot_approve_their_own_draft(
    browser: Any, context: Any, page: Any, live_server: LiveServer
) -> None:
    person = scenario.arrive_from_abroad(live_server.world, family=("自己", "ジコ"))[0]
    sign_in(context, live_server, live_server.staff(Role.SUPERVISOR))
    page.goto(f"/staff/approvals/new/ex-officio-correction?person={person.person_id}")
    page.get_by_label("異動年月日").fill(format_wareki(jst_today() - dt.timedelta(days=60)))
    page.get_by_label("項目").first.select_option("honseki")
    page.get_by_label("正しい値").first.fill("東京都千代田区丸の内一丁目1番")
    page.get_by_label(re.compile("申請の理由")).fill("本籍地からの通知")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.get_by_role("status").first).to_contain_text("承認を申請しました")
    expect(page.get_by_role("button", name="承認して記録する")).to_have_count(0)
    # Posting the decision anyway (a crafted request) is refused and audited.
    answered = page.evaluate(
        """async () => {
            const token = document.querySelector('input[name="csrf_token"]').value;
            const body = new URLSearchParams({csrf_token: token, decision: "approve"});
            const r = await fetch(location.pathname, {method: "POST", body});
            return [r.status, await r.text()];
        }"""
    )
    assert answered[0] == 403
    assert "自分が申請した内容は承認できません" in answered[1]
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("承認待ち")
    with unit_of_work(live_server.engine) as session:
        denied = (
            session.execute(
                select(AuditEntry).where(
                    AuditEntry.action == "access.denied", AuditEntry.detail.like("%own request%")
                )
            )
            .scalars()
            .all()
        )
        assert denied


def test_an_approval_of_a_record_changed_since_the_draft_is_refused_until_resubmitted(
    browser: Any, context: Any, page: Any, live_server: LiveServer
) -> None:
    person = scenario.arrive_from_abroad(live_server.world, family=("競合", "キョウゴウ"))[0]
    sign_in(context, live_server, live_server.staff(Role.CLERK))
    request_id = _draft_correction(
        page, person, "honseki", "東京都千代田区丸の内二丁目2番", "本籍地からの通知"
    )
    # Meanwhile another clerk records the furigana: the draft's version is no longer current.
    world = live_server.world
    with world.municipal() as session:
        ctx = scenario.clerk_context(world, scenario.CHIYODA)
        current = registry.get_record(session, ctx=ctx, person_id=person.person_id, purpose="テスト")
        registry.run_command(
            session,
            ctx=ctx,
            slug="furigana",
            request=registry.COMMANDS_BY_SLUG["furigana"].request_type.model_validate(
                {
                    "effective_on": jst_today().isoformat(),
                    "person": {"person_id": person.person_id, "version": current.version},
                    "family_name_kana": "キョウゴウ",
                    "given_name_kana": "イチ",
                }
            ),
        )
    supervisor = _desk(browser, live_server, live_server.staff(Role.SUPERVISOR))
    desk = supervisor.new_page()
    desk.goto(f"/staff/approvals/corrections/{request_id}")
    desk.get_by_role("button", name="承認して記録する").click()
    alert = desk.get_by_role("alert")
    expect(alert).to_contain_text("他の職員がこの記録を更新しました。再読み込みしてください。")
    expect(alert).to_contain_text("申請は承認待ちのまま残ります")
    shot(desk, "37-approval-stale", doc=True)
    desk.goto(f"/staff/residents/{person.person_id}")
    expect(desk.get_by_role("main")).not_to_contain_text("丸の内二丁目")

    # The clerk resubmits against the current record; then the approval goes through.
    page.goto("/staff/approvals")
    mine = page.get_by_role("region", name="自分の申請").first
    expect(mine).to_contain_text("再提出が必要")
    mine.get_by_role("link", name=re.compile(f"申請 {request_id}")).click()
    page.get_by_role("link", name="最新の記録に合わせて再提出する").click()
    expect(page.get_by_label("正しい値").first).to_have_value("東京都千代田区丸の内二丁目2番")
    shot(page, "38-approval-resubmit", doc=True)
    page.get_by_role("button", name="再提出する").click()
    expect(page.get_by_role("status").first).to_contain_text("再提出しました")
    desk.goto(f"/staff/approvals/corrections/{request_id}")
    desk.get_by_role("button", name="承認して記録する").click()
    expect(desk.get_by_role("status").first).to_contain_text("申請を承認し、異動を記録しました")
    desk.goto(f"/staff/residents/{person.person_id}")
    expect(desk.get_by_role("main")).to_contain_text("丸の内二丁目2番")
    supervisor.close()
