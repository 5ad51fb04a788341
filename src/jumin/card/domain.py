"""My Number Card rules: states, validity, PINs, renewal, express issuance. Plain Python.

The validity rules come from DOMAIN.md ("Card and certificates"); each is a function of
dates only, so the age boundaries (15, 18) and 29 February births are tested without a
database. Rules marked (unconfirmed) are kept here, in one place, so they can be
corrected when checked against the source.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from jumin.core.errors import DomainError, InvalidValue, NotFound, RuleViolation, Unauthenticated
from jumin.core.names import legal_age, nth_birthday
from jumin.core.wareki import era_of

__all__ = [
    "ADULT_AGE",
    "AUTH_PIN_TRIES",
    "SIGNING_CERT_MIN_AGE",
    "SIGNING_PIN_TRIES",
    "ApplicationChannel",
    "ApplicationReason",
    "ApplicationStatus",
    "CardRevocationReason",
    "CardStatus",
    "CertificateKind",
    "CertificateRevocationReason",
    "CertificateStatus",
    "ExpressReason",
    "FourFacts",
    "IdentityDocument",
    "ResidentPrincipal",
    "birthday_after",
    "card_valid_until",
    "certificate_valid_until",
    "check_auth_pin",
    "check_identity_documents",
    "check_signing_pin",
    "fiscal_year",
    "new_card_number",
    "renewal_opens_on",
    "signing_certificate_allowed",
]

JST = dt.timezone(dt.timedelta(hours=9), "JST")

ADULT_AGE = 18  # issued at 18 or older: 10 years; younger: 5 (DOMAIN.md)
SIGNING_CERT_MIN_AGE = 15  # no signing certificate for under-15s (DOMAIN.md)
ADULT_CARD_YEARS = 10
MINOR_CARD_YEARS = 5
CERTIFICATE_YEARS = 5
RENEWAL_MONTHS_BEFORE = 3
SIGNING_PIN_TRIES = 5
AUTH_PIN_TRIES = 3
PHOTO_EXEMPT_BELOW_AGE = 1  # 1歳未満は顔写真なしのカード (総務省, 2024-12-02 から; unconfirmed)
EXPRESS_DAYS = 7  # 特急発行: 申請から概ね1週間 (DOMAIN.md)


class ApplicationChannel(StrEnum):
    WINDOW = "window"  # 窓口申請
    ONLINE = "online"  # オンライン申請 (申請書ID)


class ApplicationReason(StrEnum):
    NEW = "new"  # 新規
    RENEWAL = "renewal"  # 有効期限による更新
    REISSUE = "reissue"  # 再交付 (紛失・破損など)


class ApplicationStatus(StrEnum):
    RECEIVED = "received"  # 受付済み、製造待ち
    PRODUCED = "produced"  # カード製造済み
    READY = "ready"  # 交付前設定済み、窓口で交付待ち
    NEEDS_REVIEW = "needs_review"  # 交付前設定で不一致、市区町村の確認待ち
    HANDED_OVER = "handed_over"  # 交付済み
    CANCELLED = "cancelled"  # 取下げ・廃止


class CardStatus(StrEnum):
    PRODUCED = "produced"  # 製造済み、交付前設定待ち
    NEEDS_REVIEW = "needs_review"  # 交付前設定で不一致 (市区町村の作業リスト)
    READY = "ready"  # 交付前設定済み
    ACTIVE = "active"  # 交付済み
    SUSPENDED = "suspended"  # 一時利用停止 (紛失の届出)
    REVOKED = "revoked"  # 廃止・失効


LIVE_CARD_STATUSES = frozenset({CardStatus.ACTIVE, CardStatus.SUSPENDED})


class CardRevocationReason(StrEnum):
    DEATH = "death"
    EMIGRATION = "emigration"  # 国外転出
    REMOVED = "removed"  # 職権消除・失踪宣告など、転出以外の消除
    EXPIRY = "expiry"
    REPLACED = "replaced"  # 新しいカードの交付 (更新・再交付)
    LOST = "lost"  # 紛失・盗難・焼失による再交付の申請
    RETURNED = "returned"  # 返納
    REJECTED = "rejected"  # 交付前設定の不一致で交付しないことにしたカード


CARD_REVOCATION_LABELS: dict[CardRevocationReason, str] = {
    CardRevocationReason.DEATH: "死亡",
    CardRevocationReason.EMIGRATION: "国外転出",
    CardRevocationReason.REMOVED: "住民票の消除",
    CardRevocationReason.EXPIRY: "有効期限切れ",
    CardRevocationReason.REPLACED: "新しいカードの交付",
    CardRevocationReason.LOST: "紛失等による再交付",
    CardRevocationReason.RETURNED: "返納",
    CardRevocationReason.REJECTED: "交付前設定の不一致",
}


class ExpressReason(StrEnum):
    """Who may ask for 特急発行 (since 2024-12-02).

    総務省 names newborns, reissue after loss and the like, and people arriving from
    abroad (unconfirmed in detail against the ministerial notice; kept here only).
    """

    LOSS = "loss"  # 紛失
    THEFT = "theft"  # 盗難
    FIRE = "fire"  # 焼失
    DAMAGE = "damage"  # 破損・故障
    NEWBORN = "newborn"  # 新生児 (1歳未満)
    ARRIVAL_FROM_ABROAD = "arrival_from_abroad"  # 国外からの転入


EXPRESS_LABELS: dict[ExpressReason, str] = {
    ExpressReason.LOSS: "紛失",
    ExpressReason.THEFT: "盗難",
    ExpressReason.FIRE: "焼失",
    ExpressReason.DAMAGE: "破損・故障",
    ExpressReason.NEWBORN: "新生児",
    ExpressReason.ARRIVAL_FROM_ABROAD: "国外からの転入",
}
# Reasons for which the old card no longer exists or cannot be trusted: applying revokes it.
CARD_GONE_REASONS = frozenset({ExpressReason.LOSS, ExpressReason.THEFT, ExpressReason.FIRE})


class CertificateKind(StrEnum):
    SIGNING = "signing"  # 署名用電子証明書
    AUTH = "auth"  # 利用者証明用電子証明書


class CertificateStatus(StrEnum):
    GOOD = "good"
    HOLD = "hold"  # 一時停止: certificateHold, released when the suspension is lifted
    REVOKED = "revoked"
    EXPIRED = "expired"  # past notAfter: off the CRL, answered as revoked by OCSP


class CertificateRevocationReason(StrEnum):
    """Why a certificate was revoked, mapped to RFC 5280 CRLReason in jpki.profile."""

    FOUR_FACTS_CHANGED = "four_facts_changed"  # affiliationChanged: the subject's information changed
    DEATH = "death"  # cessationOfOperation
    CARD_REVOKED = "card_revoked"  # cessationOfOperation
    KEY_COMPROMISE = "key_compromise"  # 紛失・盗難
    SUPERSEDED = "superseded"  # 更新・再発行
    HOLDER_REQUEST = "holder_request"  # 失効申請 (unspecified)


class IdentityDocument(StrEnum):
    """本人確認書類 at hand-over: one with a photo, or two without (unconfirmed list)."""

    DRIVERS_LICENCE = "drivers_licence"  # 運転免許証 (A)
    PASSPORT = "passport"  # 旅券 (A)
    RESIDENCE_CARD = "residence_card"  # 在留カード・特別永住者証明書 (A)
    DISABILITY_CERTIFICATE = "disability_certificate"  # 身体障害者手帳 (A)
    OLD_CARD = "old_card"  # 住基カード・旧マイナンバーカード (写真付き) (A)
    HEALTH_INSURANCE = "health_insurance"  # 健康保険の資格確認書 (B)
    PENSION_BOOK = "pension_book"  # 年金手帳 (B)
    STUDENT_CARD = "student_card"  # 学生証 (B)
    NOTICE = "notice"  # 交付通知書 (B)
    OTHER = "other"  # その他 (B)


PHOTO_DOCUMENTS = frozenset(
    {
        IdentityDocument.DRIVERS_LICENCE,
        IdentityDocument.PASSPORT,
        IdentityDocument.RESIDENCE_CARD,
        IdentityDocument.DISABILITY_CERTIFICATE,
        IdentityDocument.OLD_CARD,
    }
)


# --- errors ---------------------------------------------------------------------------------------


class CardNotFound(NotFound):
    type_slug = "card-not-found"
    title = "カードが見つかりません"


class CardStateError(RuleViolation):
    type_slug = "card-state"
    title = "カードの状態により処理できません"


class NotEligible(RuleViolation):
    type_slug = "card-not-eligible"
    title = "対象外のため処理できません"


class WrongPin(Unauthenticated):
    """The chip's try counter went down; that must survive the refusal."""

    type_slug = "wrong-pin"
    title = "暗証番号が違います"
    commits_recorded_work = True


class PinLocked(DomainError):
    status = 423
    type_slug = "pin-locked"
    title = "暗証番号がロックされています"
    commits_recorded_work = True


class CardAuthenticationFailed(Unauthenticated):
    """A refused card login or suspension request; its audit entry stays."""

    type_slug = "card-authentication-failed"
    title = "カードによる認証に失敗しました"
    commits_recorded_work = True


# --- dates ----------------------------------------------------------------------------------------


def birthday_after(birth: dt.date, on: dt.date, nth: int) -> dt.date:
    """The ``nth`` birthday strictly after the day ``on`` (発行の日後の第n回目の誕生日).

    A birthday falling on ``on`` itself does not count. Someone born on 29 February has
    their birthday on 1 March in non-leap years (``core.names.nth_birthday``): a card or
    certificate "valid to the Nth birthday" runs through 1 March, never cut short to
    28 February. That choice is made once, in ``nth_birthday``.
    """
    if nth < 1:
        raise ValueError("nth must be >= 1")
    if on < birth:
        raise InvalidValue("発行日が生年月日より前です", field="issued_on")
    n = on.year - birth.year
    if nth_birthday(birth, n) <= on:
        n += 1
    return nth_birthday(birth, n + nth - 1)


def card_valid_until(birth: dt.date, issued_on: dt.date, stay_ends_on: dt.date | None = None) -> dt.date:
    """The last day the card is valid (the day itself included).

    Issued at 18 or older (legal age on the day of issue, 年齢計算ニ関スル法律): through the
    10th birthday after issue; younger: the 5th. A foreign resident with a period of stay:
    no later than its last day.
    """
    years = ADULT_CARD_YEARS if legal_age(birth, issued_on) >= ADULT_AGE else MINOR_CARD_YEARS
    until = birthday_after(birth, issued_on, years)
    if stay_ends_on is not None:
        if stay_ends_on < issued_on:
            raise NotEligible("在留期間が満了しているため、カードを交付できません。", field="stay_ends_on")
        until = min(until, stay_ends_on)
    return until


def certificate_valid_until(birth: dt.date, issued_on: dt.date, card_until: dt.date) -> dt.date:
    """Both electronic certificates: through the 5th birthday after issue, never past the card."""
    return min(birthday_after(birth, issued_on, CERTIFICATE_YEARS), card_until)


def end_of_day_utc(d: dt.date) -> dt.datetime:
    """The X.509 notAfter for "valid through day D": 23:59:59 JST of D."""
    return dt.datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=JST).astimezone(dt.UTC)


def signing_certificate_allowed(birth: dt.date, on: dt.date, *, under_guardianship: bool = False) -> bool:
    """No signing certificate for under-15s or adults under guardianship (成年被後見人)."""
    return legal_age(birth, on) >= SIGNING_CERT_MIN_AGE and not under_guardianship


def photo_required(birth: dt.date, on: dt.date) -> bool:
    return legal_age(birth, on) >= PHOTO_EXEMPT_BELOW_AGE


def add_months(d: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (or earlier), clamped to the month's end (31 May − 3 → 28/29 Feb)."""
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(d.day, last))


def renewal_opens_on(valid_until: dt.date) -> dt.date:
    """Renewal (of the card or of a certificate) is accepted from three months before expiry."""
    return add_months(valid_until, -RENEWAL_MONTHS_BEFORE)


def fiscal_year(d: dt.date) -> int:
    """年度: April to March, named by the year it starts in (FY2025 = 2025-04-01…2026-03-31)."""
    return d.year if d.month >= 4 else d.year - 1


def fiscal_year_label(fy: int) -> str:
    """令和7年度 for FY2025. The era is the one in force at the end of the calendar year the
    fiscal year starts in: FY2019 is 令和元年度, FY1988 昭和63年度 (as the government names them)."""
    era = era_of(dt.date(fy, 12, 31))
    n = fy - era.start.year + 1
    return f"{era.name}{'元' if n == 1 else n}年度"


def today_jst(now: dt.datetime) -> dt.date:
    return now.astimezone(JST).date()


# --- PINs and identity checks --------------------------------------------------------------------

_SIGNING_PIN = re.compile(r"[A-Z0-9]{6,16}")
_AUTH_PIN = re.compile(r"[0-9]{4}")


def check_signing_pin(pin: str) -> None:
    """署名用電子証明書の暗証番号: 6–16 characters, upper-case letters and digits, both present.

    (J-LIS: 英字(大文字)と数字をそれぞれ1文字以上; unconfirmed.)
    """
    if not _SIGNING_PIN.fullmatch(pin) or pin.isdigit() or pin.isalpha():
        raise InvalidValue(
            "署名用電子証明書の暗証番号は、英大文字と数字をそれぞれ1文字以上含む6〜16文字にしてください。",
            field="signing_pin",
        )


def check_auth_pin(pin: str) -> None:
    if not _AUTH_PIN.fullmatch(pin):
        raise InvalidValue("利用者証明用電子証明書の暗証番号は数字4桁にしてください。", field="auth_pin")


def check_identity_documents(documents: list[IdentityDocument]) -> None:
    """One photo document, or two documents without a photo."""
    distinct = set(documents)
    if distinct & PHOTO_DOCUMENTS or len(distinct) >= 2:
        return
    raise InvalidValue(
        "本人確認書類は、写真付きのもの1点か、写真のないもの2点を確認してください。",
        field="identity_documents",
    )


# --- identifiers ------------------------------------------------------------------------------------


def _luhn_check(base: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(base)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def new_card_number() -> str:
    """12 digits with a Luhn check digit; a different rule from 個人番号 so the two never mix."""
    base = f"{secrets.randbelow(10**11):011d}"
    return base + str(_luhn_check(base))


def is_card_number(value: str) -> bool:
    return (
        len(value) == 12 and value.isascii() and value.isdigit() and _luhn_check(value[:-1]) == int(value[-1])
    )


def new_application_no() -> str:
    return f"{secrets.randbelow(10**16):016d}"


def new_form_id() -> str:
    """申請書ID: 23 digits, a bearer secret printed on the form (about 76 bits)."""
    return f"{secrets.randbelow(10**23):023d}"


# --- the four facts ----------------------------------------------------------------------------------

FOUR_FACT_FIELDS = ("name", "birth_date", "sex", "address")
FACT_LABELS = {"name": "氏名", "birth_date": "生年月日", "sex": "性別", "address": "住所"}


@dataclass(frozen=True, slots=True)
class FourFacts:
    """基本4情報: what the signing certificate carries and what businesses receive."""

    name: str
    birth_date: dt.date
    sex: str
    address: str

    def differences(self, other: FourFacts) -> tuple[str, ...]:
        return tuple(f for f in FOUR_FACT_FIELDS if getattr(self, f) != getattr(other, f))

    def scoped(self, scope: frozenset[str]) -> dict[str, str]:
        return {f: str(getattr(self, f)) for f in FOUR_FACT_FIELDS if f in scope}


def parse_scope(raw: list[str]) -> frozenset[str]:
    scope = frozenset(raw)
    unknown = scope - set(FOUR_FACT_FIELDS)
    if not scope or unknown:
        raise InvalidValue(
            "提供範囲は name, birth_date, sex, address から1つ以上選んでください。", field="scope"
        )
    return scope


@dataclass(frozen=True, slots=True)
class ResidentPrincipal:
    """A resident logged in with their card's authentication certificate."""

    resident_code: str
    card_id: int
    prefecture_code: str
    session_id: int
    certificate_serial: str
