"""How register data reads on screen: 和暦 dates, Japanese labels, masked numbers.

Presentation only. What a record *is* comes from the register's service; this module
decides how a clerk sees it, in one place so that every page words it the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jumin.accounts.domain import Principal, Role
from jumin.api_support import AccessRule
from jumin.core.errors import DomainError, InvalidValue
from jumin.core.municipalities import load_master
from jumin.core.wareki import format_wareki
from jumin.registry.approvals import APPROVABLE_SLUGS
from jumin.registry.domain import (
    EVENT_LABELS,
    REMOVAL_LABELS,
    EventKind,
    RecordStatus,
    ResidentKind,
    ResidentRecord,
    Sex,
)
from jumin.registry.service import EVENT_COMMANDS, EventCommand
from jumin.web import security
from jumin.web.forms import ENUM_LABELS

JST = dt.timezone(dt.timedelta(hours=9), "JST")

ROLE_LABELS = {
    Role.CLERK: "窓口職員",
    Role.SUPERVISOR: "監督職員",
    Role.AUDITOR: "監査担当",
    Role.ADMINISTRATOR: "管理者",
    Role.OPERATOR: "全国センター運用者",
}

# Every audit action in words; an action without a label shows its code, so a new action
# is readable at once.
AUDIT_ACTION_LABELS = {
    "login.succeeded": "ログイン",
    "login.failed": "ログイン失敗",
    "login.locked_out": "ロック中のログイン",
    "logout": "ログアウト",
    "client.token_issued": "機関クライアントのトークン発行",
    "client.token_refused": "機関クライアントのトークン拒否",
    "account.created": "アカウントの作成",
    "account.unlocked": "アカウントのロック解除",
    "account.mfa_reset": "二要素認証の再設定",
    "account.deactivated": "アカウントの無効化",
    "organisation.created": "団体の登録",
    "agency_client.created": "機関クライアントの登録",
    "access.denied": "権限のない操作",
    "registry.event_recorded": "異動の記録",
    "registry.read": "住民記録の閲覧",
    "registry.individual_number_shown": "個人番号の表示",
    "registry.approval_requested": "承認の申請",
    "registry.approval_resubmitted": "承認の申請の再提出",
    "registry.approval_withdrawn": "承認の申請の取下げ",
    "registry.approval_approved": "申請の承認 (異動の記録)",
    "registry.approval_refused": "申請の却下",
    "registry.approval_failed": "承認できなかった申請",
    "registry.approval_viewed": "承認の申請の閲覧",
    "registry.replication_batch_sent": "住基ネットへの送信",
    "registry.expected_arrivals_received": "転出証明書情報の受信",
    "registry.reconcile_digest": "整合性確認 (市区町村)",
    "interchange.imported": "住民記録の一括取込み",
    "interchange.exported": "住民記録の一括出力",
    "interchange.national_seeded": "本人確認情報の一括登録",
    "audit.viewed": "監査ログの閲覧",
    "audit.verified": "監査ログの検証",
    "network.resident_codes_allocated": "住民票コードの割当て",
    "network.individual_number_issued": "個人番号の生成",
    "network.individual_number_provided": "個人番号の提供",
    "network.individual_number_changed": "個人番号の変更",
    "network.municipality_key_registered": "市区町村の署名鍵の登録",
    "network.replication_refused": "通知の受信拒否",
    "network.replication_batch_received": "通知の受信",
    "network.identity_change_applied": "本人確認情報の更新",
    "network.move_out_notice_forwarded": "転出証明書情報の転送",
    "network.move_out_notices_collected": "転出証明書情報の引渡し",
    "network.reconcile_digest": "整合性確認 (全国センター)",
    "network.agency_client_registered": "機関の登録",
    "network.agency_task_granted": "事務の許可",
    "network.agency_task_revoked": "事務の許可の取消し",
    "network.identity_lookup": "本人確認情報の照会",
    "network.agency_code_translated": "機関別符号の変換",
    "network.batch_submitted": "一括照会の受付",
    "network.batch_verified": "一括照会の照合",
    "network.batch_finished": "一括照会の完了",
    "network.batch_result_downloaded": "一括照会結果の取得",
    "network.feed_subscribed": "異動通知の購読",
    "network.feed_unsubscribed": "異動通知の購読停止",
    "network.feed_read": "異動通知の取得",
    "network.extraction_requested": "抽出の依頼",
    "network.extraction_approved": "抽出の承認",
    "network.extraction_rejected": "抽出の却下",
    "network.extraction_produced": "抽出結果の作成",
    "network.extraction_downloaded": "抽出結果の取得",
    "network.access_log_viewed": "提供状況の閲覧",
    "certificate.issued": "証明書の交付",
    "certificate.refused": "証明書の交付拒否",
    "certificate.previewed": "証明書のプレビュー",
    "certificate.record_provided": "証明書用の記録の提供",
    "certificate.verified": "証明書の真正性確認",
    "certificate.signer_created": "証明書の署名鍵の作成",
    "certificate.issuances_viewed": "交付記録の閲覧",
    "certificate.handover_shown": "交付した証明書PDFの表示",
    "certificate.handover_erased": "交付した証明書PDFの消去",
    "protection_order.registered": "支援措置の登録",
    "protection_order.ended": "支援措置の終了",
    "protection_order.viewed": "支援措置の閲覧",
    "resident_pin.set": "コンビニ交付用暗証番号の設定",
    "resident.login_succeeded": "住民のログイン",
    "resident.login_failed": "住民のログイン失敗",
    "resident.locked_out": "住民のロック",
    "card.applied": "カードの交付申請",
    "card.application_form_issued": "交付申請書の発行",
    "card.batch_produced": "カードの製造",
    "card.setup_batch": "交付前設定",
    "card.work_list_viewed": "カードの作業リストの閲覧",
    "card.work_item_resolved": "カードの作業リストの処理",
    "card.handed_over": "カードの交付",
    "card.viewed": "カードの閲覧",
    "card.suspended": "カードの一時停止",
    "card.suspension_refused": "カードの一時停止の拒否",
    "card.suspension_lifted": "カードの一時停止の解除",
    "card.revoked": "カードの廃止",
    "card.pin_reset": "暗証番号の再設定",
    "card.pin_failed": "暗証番号の誤り",
    "card.continued_use": "カードの継続利用",
    "card.renewal_notices": "有効期限通知書の作成",
    "card.expiry_run": "有効期限切れの処理",
    "card.identity_sweep": "本人確認情報の変更の反映",
    "card.login_succeeded": "カードによるログイン",
    "card.login_failed": "カードによるログインの失敗",
    "card.report_viewed": "カードの統計の閲覧",
    "jpki.ca_created": "認証局の作成",
    "jpki.certificate_issued": "電子証明書の発行",
    "jpki.certificate_revoked": "電子証明書の失効",
    "four_facts.business_registered": "最新4情報提供の事業者登録",
    "four_facts.consented": "最新4情報提供への同意",
    "four_facts.consent_withdrawn": "最新4情報提供の同意の撤回",
    "four_facts.queued": "最新4情報提供の準備",
    "four_facts.provided": "最新4情報の提供",
    "four_facts.delivery_failed": "最新4情報の提供の失敗",
}

OUTCOME_LABELS = {"success": "成功", "failure": "失敗", "denied": "拒否"}

# Event kinds entered from a search rather than from an existing record: they create one.
NEW_RECORD_SLUGS = ("move-in", "move-in-from-abroad", "move-in-card-holder", "ex-officio-entry")
# The kinds a window clerk records most, shown first on the record page.
COMMON_SLUGS = (
    "move-within",
    "move-out",
    "birth",
    "death",
    "household-change",
    "household-split",
    "head-change",
    "name-change",
    "ex-officio-correction",
    "cancellation",
)


def jp_date(d: dt.date | None) -> str:
    if d is None:
        return ""
    try:
        return format_wareki(d)
    except InvalidValue:
        return seireki(d)


def seireki(d: dt.date | None) -> str:
    return "" if d is None else f"{d.year}年{d.month}月{d.day}日"


def jp_datetime(t: dt.datetime | None) -> str:
    if t is None:
        return ""
    local = t.astimezone(JST)
    return f"{jp_date(local.date())} {local:%H:%M:%S}"


def birth_date_text(record: ResidentRecord) -> str:
    # DOMAIN.md: Japanese residents' birth dates in 和暦, foreign residents' in 西暦.
    if record.resident_kind is ResidentKind.JAPANESE:
        return jp_date(record.birth_date)
    return seireki(record.birth_date)


def municipality_name(lg_code: str) -> str:
    try:
        master = load_master()
        entry = master.get(lg_code)
        prefecture = master.get(entry.prefecture_code)
    except DomainError:
        return ""
    return entry.name if entry.code == prefecture.code else prefecture.name + entry.name


def address_text(record: ResidentRecord) -> str:
    return record.address.text(municipality_name(record.address.lg_code))


def masked_number(number: str | None) -> str:
    return f"********{number[-4:]}" if number else "(未記載)"


def status_text(record: ResidentRecord) -> str:
    if record.status is RecordStatus.LIVE:
        if record.planned_move_out is not None:
            return f"住民 (転出予定 {jp_date(record.planned_move_out.planned_on)})"
        return "住民"
    reason = REMOVAL_LABELS[record.removal_reason] if record.removal_reason else "消除"
    return f"除票 ({reason} {jp_date(record.removed_on)})"


def sex_text(record: ResidentRecord) -> str:
    return ENUM_LABELS[type(record.sex)].get(record.sex.value, record.sex.value)


def record_rows(record: ResidentRecord) -> list[tuple[str, str]]:
    """The record's items in the order a 住民票 lists them."""
    sex = sex_text(record)
    rows = [
        ("状態", status_text(record)),
        ("氏名", record.name),
        ("氏名の振り仮名", record.name_kana or "(未記載)"),
        ("生年月日", birth_date_text(record)),
        ("性別", sex),
        ("続柄", record.relationship),
        ("住所", address_text(record)),
        ("住民となった年月日", jp_date(record.became_resident_on)),
        ("住所を定めた年月日", jp_date(record.address_set_on)),
        ("届出年月日", jp_date(record.notified_on)),
        ("従前の住所", record.previous_address or ""),
        ("本籍", record.honseki or ""),
        ("筆頭者", record.hittousha or ""),
        ("旧氏", record.old_surname or ""),
        ("住民票コード", record.resident_code),
        ("個人番号", masked_number(record.individual_number)),
    ]
    f = record.foreign
    if f is not None:
        category = ENUM_LABELS[type(f.category)].get(f.category.value, f.category.value)
        rows += [
            ("国籍・地域", f.nationality),
            ("氏名 (アルファベット)", f.name_alphabet),
            ("外国人住民の区分", category),
            ("在留資格", f.status_of_residence or ""),
            ("在留期間", f.period_of_stay or ""),
            ("在留期間の満了の日", jp_date(f.stay_expires_on)),
            ("在留カード等の番号", f.residence_card_number or ""),
            ("通称", f.alias or ""),
        ]
    if record.planned_move_out is not None:
        rows.append(("転出先", record.planned_move_out.destination))
    return [(k, v) for k, v in rows if v]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    event_id: int
    label: str
    effective_on: str
    notified_on: str
    recorded_at: str
    recorded_by: str
    reason: str
    late: bool
    cancelled_by: int | None
    cancels: int | None


def timeline(events: Iterable[Any]) -> list[TimelineEntry]:
    """Every event of a person, newest first, with its 取消し and 届出期間経過 marks."""
    entries = [
        TimelineEntry(
            event_id=e.id,
            label=EVENT_LABELS[EventKind(e.kind)],
            effective_on=jp_date(e.effective_on),
            notified_on=jp_date(e.notified_on),
            recorded_at=jp_datetime(e.recorded_at),
            recorded_by=e.recorded_by,
            reason=e.reason,
            late=e.late,
            cancelled_by=e.cancelled_by_event_id,
            cancels=e.cancels_event_id,
        )
        for e in events
    ]
    return sorted(entries, key=lambda t: t.event_id, reverse=True)


@dataclass(frozen=True, slots=True)
class VersionEntry:
    valid_from: str
    valid_to: str
    recorded_at: str
    superseded_at: str
    superseded: bool
    event_id: int
    status: str
    name: str
    address: str


def versions(rows: Iterable[tuple[Any, ResidentRecord]]) -> list[VersionEntry]:
    """The bitemporal history: when each version held, and when the register learned it."""
    return [
        VersionEntry(
            valid_from=jp_date(v.valid_from),
            valid_to=jp_date(v.valid_to) if v.valid_to else "現在",
            recorded_at=jp_datetime(v.recorded_at),
            superseded_at=jp_datetime(v.superseded_at) if v.superseded_at else "",
            superseded=v.superseded_at is not None,
            event_id=v.event_id,
            status=status_text(record),
            name=record.name,
            address=address_text(record),
        )
        for v, record in rows
    ]


@dataclass(frozen=True, slots=True)
class MenuItem:
    label: str
    href: str
    description: str


def _command(slug: str) -> EventCommand:
    return next(c for c in EVENT_COMMANDS if c.slug == slug)


def menu_for(principal: Principal) -> list[MenuItem]:
    """The organisation's and the role's menu: only pages whose access rule lets them in."""
    candidates: list[tuple[AccessRule, MenuItem]] = [
        (
            security.READER,
            MenuItem("住民の検索", "/staff/residents", "カナ氏名・住民票コード・生年月日・住所で探す"),
        ),
    ]
    for slug in NEW_RECORD_SLUGS:
        command = _command(slug)
        rule = security.SUPERVISOR if command.supervisor_only else security.CLERK
        candidates.append(
            (rule, MenuItem(f"{command.label}の届出", f"/staff/events/{slug}", "新しい住民を記録する"))
        )
    candidates += [
        (
            security.CLERK,
            MenuItem(
                "転入予定者 (ワンストップ窓口)",
                "/staff/arrivals",
                "転出証明書情報から転入を記録し、マイナンバーカードの継続利用を行う",
            ),
        ),
        (
            security.CLERK,
            MenuItem("証明書の交付", "/staff/certificates", "住民票の写し・記載事項証明書のプレビューと交付"),
        ),
        (
            security.CLERK,
            MenuItem("マイナンバーカード", "/staff/cards", "カードの交付と暗証番号の再設定"),
        ),
        (
            security.SUPERVISOR,
            MenuItem("支援措置 (DV等)", "/staff/protection-orders", "支援措置の一覧・登録・終了"),
        ),
        (
            security.OPERATOR,
            MenuItem("抽出依頼の承認", "/staff/approvals", "都道府県からの基準日抽出の依頼を承認・却下する"),
        ),
        (
            security.SUPERVISOR,
            MenuItem(
                "修正の承認",
                "/staff/approvals",
                "窓口職員が申請した職権修正・職権消除・取消しを承認・却下する",
            ),
        ),
        (security.AUDITOR, MenuItem("監査ログ", "/staff/audit", "ハッシュチェーンの検証と操作記録の検索")),
    ]
    items = [item for rule, item in candidates if security.allows(rule, principal)]
    if security.allows(security.CLERK, principal) and not security.allows(security.SUPERVISOR, principal):
        # A clerk's own drafts of supervisor-only events, and what the supervisors decided.
        position = next((i for i, item in enumerate(items) if item.href == "/staff/audit"), len(items))
        items.insert(
            position,
            MenuItem("承認の申請", "/staff/approvals", "職権修正などの申請と、監督職員の判断の確認"),
        )
    return items


def may_run(command: EventCommand, principal: Principal) -> bool:
    rule = security.SUPERVISOR if command.supervisor_only else security.CLERK
    return security.allows(rule, principal)


def record_actions(principal: Principal) -> tuple[list[EventCommand], list[EventCommand]]:
    """Event kinds the clerk may start from a record: the common ones, then the rest."""
    allowed = [c for c in EVENT_COMMANDS if c.slug not in NEW_RECORD_SLUGS and may_run(c, principal)]
    common = [c for slug in COMMON_SLUGS for c in allowed if c.slug == slug]
    rest = [c for c in allowed if c.slug not in COMMON_SLUGS]
    return common, rest


def draft_actions(principal: Principal) -> list[EventCommand]:
    """Supervisor-only kinds this account may not record but may draft for a supervisor's approval."""
    return [
        c
        for c in EVENT_COMMANDS
        if c.slug in APPROVABLE_SLUGS
        and not may_run(c, principal)
        and security.allows(security.CLERK, principal)
    ]


def role_names(roles: Sequence[Role] | frozenset[Role]) -> str:
    return "・".join(ROLE_LABELS[r] for r in sorted(roles))


def sex_label(value: str) -> str:
    return ENUM_LABELS[Sex].get(value, value)


CARD_STATUS_LABELS = {
    "produced": "製造済み (交付前設定待ち)",
    "needs_review": "交付前設定で不一致 (確認待ち)",
    "ready": "交付待ち",
    "active": "利用中",
    "suspended": "一時停止中",
    "revoked": "廃止",
}

CERTIFICATE_KIND_LABELS = {"signing": "署名用電子証明書", "auth": "利用者証明用電子証明書"}

CERTIFICATE_STATUS_LABELS = {
    "good": "有効",
    "hold": "一時停止中",
    "revoked": "失効",
    "expired": "有効期限切れ",
}

# 本人確認書類: A = one is enough (a photo), B = two are needed (card/domain.py).
IDENTITY_DOCUMENT_LABELS = {
    "drivers_licence": "運転免許証",
    "passport": "旅券 (パスポート)",
    "residence_card": "在留カード・特別永住者証明書",
    "disability_certificate": "身体障害者手帳",
    "old_card": "住基カード (写真付き)・旧マイナンバーカード",
    "health_insurance": "健康保険の資格確認書",
    "pension_book": "年金手帳",
    "student_card": "学生証",
    "notice": "交付通知書",
    "other": "その他の書類",
}

EXTRACTION_STATUS_LABELS = {
    "requested": "承認待ち",
    "approved": "承認済み (作成待ち)",
    "rejected": "却下",
    "producing": "作成中",
    "ready": "作成済み",
    "failed": "作成に失敗",
}


def place_name(lg_code: str) -> str:
    return municipality_name(lg_code) or lg_code


# ---------------------------------------------------------------------------
# Approval requests (registry.approvals)


@dataclass(frozen=True, slots=True)
class ComparedRow:
    label: str
    current: str
    proposed: str
    changed: bool


def compare_records(current: ResidentRecord, proposed: ResidentRecord | None) -> list[ComparedRow]:
    """A record now beside the record as an approval would leave it, row by row, in 住民票 order."""
    before = dict(record_rows(current))
    after = dict(record_rows(proposed)) if proposed is not None else {}
    labels = list(before) + [label for label in after if label not in before]
    absent = "(記載なし)"
    return [
        ComparedRow(
            label,
            before.get(label, ""),
            after.get(label, "") if proposed is not None else absent,
            before.get(label, "") != (after.get(label, "") if proposed is not None else absent),
        )
        for label in labels
    ]


def _shown_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    text = str(value)
    if name.endswith("_on") or name in ("birth_date", "became_resident_on", "address_set_on"):
        try:
            return jp_date(dt.date.fromisoformat(text))
        except ValueError:
            return text
    if name == "sex":
        return ENUM_LABELS[Sex].get(text, text)
    return text


def request_rows(request: Any) -> list[tuple[str, str]]:
    """What a drafted event says, in the form's words: persons and versions left to the table."""
    from jumin.web.forms import CORRECTABLE_LABELS, LABELS

    data: dict[str, Any] = request.model_dump(mode="json", exclude_none=True)
    rows: list[tuple[str, str]] = []
    for name, value in data.items():
        label = LABELS.get(name, name)
        if name == "items" and isinstance(value, dict):
            rows += [
                (
                    f"{label}: {CORRECTABLE_LABELS.get(k, k)}",
                    _shown_value(k, v) if v is not None else "(削除)",
                )
                for k, v in value.items()
            ]
        elif name in ("person", "versions", "household") or isinstance(value, dict | list):
            continue
        elif value != "":
            rows.append((label, _shown_value(name, value)))
    return rows
