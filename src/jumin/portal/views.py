"""How the portal words things for a resident: plain Japanese labels, 和暦 dates, names of places.

Presentation only; the dates and the record's items are worded as in the staff window
(web/views.py), so a resident and a clerk read the same record the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jumin.card.domain import (
    CARD_REVOCATION_LABELS,
    FACT_LABELS,
    FOUR_FACT_FIELDS,
    CardRevocationReason,
    CardStatus,
    CertificateKind,
    CertificateStatus,
)
from jumin.card.service import CertificateView
from jumin.core.municipalities import load_master
from jumin.portal.service import AccessEntry
from jumin.web.views import jp_date, jp_datetime, municipality_name

__all__ = [
    "AccessRow",
    "access_rows",
    "card_status_text",
    "certificate_rows",
    "fact_choices",
    "jp_date",
    "jp_datetime",
    "municipalities_of",
    "place_name",
    "prefectures",
]

CARD_STATUS_LABELS = {
    CardStatus.PRODUCED: "製造済み (交付前)",
    CardStatus.NEEDS_REVIEW: "交付前の確認中",
    CardStatus.READY: "交付待ち",
    CardStatus.ACTIVE: "利用中",
    CardStatus.SUSPENDED: "一時停止中",
    CardStatus.REVOKED: "廃止",
}
CERTIFICATE_KIND_LABELS = {
    CertificateKind.SIGNING: "署名用電子証明書",
    CertificateKind.AUTH: "利用者証明用電子証明書",
}
CERTIFICATE_STATUS_LABELS = {
    CertificateStatus.GOOD: "有効",
    CertificateStatus.HOLD: "一時停止中",
    CertificateStatus.REVOKED: "失効",
    CertificateStatus.EXPIRED: "有効期限切れ",
}

ACTOR_LABELS = {
    "staff": "職員",
    "agency_client": "行政機関等 (システムによる照会)",
    "resident": "住民 (ご本人以外)",
}
SOURCE_LABELS = {
    "network": "住基ネット",
    "card": "マイナンバーカード",
    "register": "住民基本台帳",
}
ACTION_LABELS = {
    "registry.read": "住民票の閲覧",
    "registry.event_recorded": "異動の記録",
    "registry.individual_number_shown": "個人番号の表示",
    "certificate.refused": "証明書の交付の拒否",
    "certificate.previewed": "証明書の下見",
    "certificate.record_provided": "広域交付・公用請求のための提供",
    "protection_order.registered": "支援措置の登録",
    "protection_order.ended": "支援措置の終了",
    "protection_order.viewed": "支援措置の閲覧",
    "resident_pin.set": "コンビニ交付用暗証番号の設定",
    "access.denied": "権限のない操作 (拒否)",
    "card.applied": "カードの交付申請",
    "card.application_form_issued": "交付申請書の発行",
    "card.handed_over": "カードの交付",
    "card.viewed": "カードの状態の閲覧",
    "card.suspended": "カードの一時停止",
    "card.suspension_lifted": "一時停止の解除",
    "card.revoked": "カードの廃止",
    "card.pin_reset": "暗証番号の再設定",
    "card.continued_use": "カードの継続利用 (転入先の住所の追記)",
    "card.work_item_resolved": "交付前設定の確認",
    "jpki.certificate_issued": "電子証明書の発行",
    "jpki.certificate_revoked": "電子証明書の失効",
}
QUERY_LABELS = {
    "resident_code": "住民票コードによる照会",
    "individual_number": "個人番号による照会",
    "four_facts": "4情報による照会",
    "as_of": "基準日時点の照会",
    "history": "異動履歴の照会",
    "linkage": "機関別符号による照会",
    "feed": "異動情報の提供",
    "prefecture_extraction": "都道府県による基準日抽出",
}


def place_name(lg_code: str) -> str:
    """The name of a municipality (with its prefecture) or a prefecture; the code if unknown."""
    return municipality_name(lg_code) or lg_code


def card_status_text(status: str, revocation_reason: str | None) -> str:
    text = CARD_STATUS_LABELS.get(CardStatus(status), status)
    if status == CardStatus.REVOKED and revocation_reason:
        reason = CARD_REVOCATION_LABELS.get(CardRevocationReason(revocation_reason), revocation_reason)
        text += f" ({reason})"
    return text


@dataclass(frozen=True, slots=True)
class CertificateRow:
    kind: str
    status: str
    valid_until: str


def certificate_rows(certificates: Iterable[CertificateView]) -> list[CertificateRow]:
    return [
        CertificateRow(
            kind=CERTIFICATE_KIND_LABELS.get(c.kind, str(c.kind)),
            status=CERTIFICATE_STATUS_LABELS.get(c.status, str(c.status)),
            valid_until=jp_date(c.valid_until),
        )
        for c in certificates
    ]


def fact_choices() -> list[tuple[str, str]]:
    return [(f, FACT_LABELS[f]) for f in FOUR_FACT_FIELDS]


def prefectures() -> list[tuple[str, str]]:
    """(2-digit number, name) of the 47 prefectures, in code order."""
    return [(p.code[:2], p.name) for p in load_master().prefectures()]


def municipalities_of(prefecture: str) -> list[tuple[str, str]]:
    """(lg_code, name) of the 市区町村 of one prefecture; designated cities, not their wards."""
    if not (len(prefecture) == 2 and prefecture.isdigit()):
        return []
    return [(m.code, m.name) for m in load_master().in_prefecture(prefecture) if m.is_municipality]


@dataclass(frozen=True, slots=True)
class AccessRow:
    accessed_at: str
    organisation: str
    accessor: str
    action: str
    purpose: str
    source: str
    refused: bool


def _action_text(action: str) -> str:
    if action.startswith("network.provided:"):
        kind = action.split(":", 1)[1]
        label = QUERY_LABELS.get(kind) or ("一括照会" if kind.startswith("batch") else "照会")
        return f"本人確認情報の提供 ({label})"
    return ACTION_LABELS.get(action, action)


def access_rows(entries: list[AccessEntry], names: Mapping[str, str]) -> list[AccessRow]:
    rows = []
    for e in entries:
        action = _action_text(e.action)
        if e.refused and "拒否" not in action:
            action += " (拒否)"
        rows.append(
            AccessRow(
                accessed_at=jp_datetime(e.accessed_at),
                organisation=names.get(e.organisation_code) or place_name(e.organisation_code),
                accessor=ACTOR_LABELS.get(e.actor_kind, e.actor_kind),
                action=action,
                purpose=e.purpose or "(記載なし)",
                source=SOURCE_LABELS.get(e.source, e.source),
                refused=e.refused,
            )
        )
    return rows
