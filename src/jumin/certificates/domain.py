"""What a certificate is, what it may show, and who may have it.

Plain rules and values only: which items each document kind prints, which a requester
may ask for, who a protection order names, what a fee is. The service decides with
these and the register's records; layout and pdf turn the decision into a page.

Legal sources are named where a rule comes from; those marked (unconfirmed) follow
common municipal practice and are kept here, in one place, so they can be corrected.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from jumin.core.errors import (
    AccessDenied,
    DomainError,
    InvalidValue,
    NotFound,
    RuleViolation,
    Unauthenticated,
)


class DocumentKind(StrEnum):
    RECORD_COPY = "record_copy"  # 住民票の写し
    RECORD_CERTIFICATE = "record_certificate"  # 住民票記載事項証明書
    REMOVED_RECORD_COPY = "removed_record_copy"  # 除票の写し
    REMOVED_RECORD_CERTIFICATE = "removed_record_certificate"  # 除票記載事項証明書

    @property
    def label(self) -> str:
        return DOCUMENT_TITLES[self]

    @property
    def for_removed(self) -> bool:
        return self in (DocumentKind.REMOVED_RECORD_COPY, DocumentKind.REMOVED_RECORD_CERTIFICATE)

    @property
    def is_copy(self) -> bool:
        return self in (DocumentKind.RECORD_COPY, DocumentKind.REMOVED_RECORD_COPY)


DOCUMENT_TITLES: Mapping[DocumentKind, str] = {
    DocumentKind.RECORD_COPY: "住民票の写し",
    DocumentKind.RECORD_CERTIFICATE: "住民票記載事項証明書",
    DocumentKind.REMOVED_RECORD_COPY: "除票の写し",
    DocumentKind.REMOVED_RECORD_CERTIFICATE: "除票記載事項証明書",
}

# 認証文. The copy wording is the one 住民基本台帳事務処理要領 gives for 住民票の写し; the
# record-certificate wordings follow common municipal forms (unconfirmed: municipalities
# word them slightly differently; the meaning — "these items are as the register says" —
# is the same).
CERTIFICATION_TEXTS: Mapping[DocumentKind, str] = {
    DocumentKind.RECORD_COPY: "この写しは、住民票の原本と相違ないことを証明する。",
    DocumentKind.RECORD_CERTIFICATE: "上記の事項は、住民票に記載されている事項と相違ないことを証明する。",
    DocumentKind.REMOVED_RECORD_COPY: "この写しは、除票の原本と相違ないことを証明する。",
    DocumentKind.REMOVED_RECORD_CERTIFICATE: (
        "上記の事項は、除票に記載されている事項と相違ないことを証明する。"
    ),
}


class Form(StrEnum):
    HOUSEHOLD = "household"  # 世帯連記式: the chosen members of one household, several per page
    INDIVIDUAL = "individual"  # 個人票: one person


FORM_LABELS: Mapping[Form, str] = {Form.HOUSEHOLD: "世帯連記式", Form.INDIVIDUAL: "個人票"}


class Channel(StrEnum):
    WINDOW = "window"  # 窓口
    KIOSK = "kiosk"  # コンビニ交付・キオスク端末
    WIDE_AREA = "wide_area"  # 広域交付 (another municipality's window)
    OFFICIAL = "official"  # 公用請求


CHANNEL_LABELS: Mapping[Channel, str] = {
    Channel.WINDOW: "窓口",
    Channel.KIOSK: "コンビニ交付・キオスク端末",
    Channel.WIDE_AREA: "広域交付",
    Channel.OFFICIAL: "公用請求",
}


class RequesterKind(StrEnum):
    SELF = "self"  # 本人
    HOUSEHOLD_MEMBER = "household_member"  # 同一世帯の者
    AGENT = "agent"  # 代理人 (委任状・法定代理人の資格を証する書類)
    THIRD_PARTY = "third_party"  # 第三者 (正当な理由のある者, 法第12条の3)
    OFFICIAL = "official"  # 国・地方公共団体の機関 (法第12条の2)


REQUESTER_LABELS: Mapping[RequesterKind, str] = {
    RequesterKind.SELF: "本人",
    RequesterKind.HOUSEHOLD_MEMBER: "同一世帯の者",
    RequesterKind.AGENT: "代理人",
    RequesterKind.THIRD_PARTY: "第三者",
    RequesterKind.OFFICIAL: "公用請求",
}


class Item(StrEnum):
    """Everything a certificate can print about a person."""

    NAME = "name"  # 氏名 and its 振り仮名
    BIRTH_DATE = "birth_date"
    SEX = "sex"
    ADDRESS = "address"
    HEAD_AND_RELATIONSHIP = "head_and_relationship"  # 世帯主の氏名・続柄
    HONSEKI = "honseki"  # 本籍・筆頭者
    RESIDENT_CODE = "resident_code"
    INDIVIDUAL_NUMBER = "individual_number"
    BECAME_RESIDENT_ON = "became_resident_on"
    ADDRESS_SET_ON = "address_set_on"  # 住所を定めた年月日 and 届出年月日
    PREVIOUS_ADDRESS = "previous_address"
    OLD_SURNAME = "old_surname"
    PLANNED_MOVE_OUT = "planned_move_out"
    REMOVAL = "removal"  # 消除の事由と年月日
    HISTORY = "history"  # 異動履歴 (events and previous addresses)
    NATIONALITY = "nationality"  # 国籍・地域
    FOREIGN_STATUS = "foreign_status"  # 区分・在留資格・在留期間・満了日・外国人住民となった年月日
    RESIDENCE_CARD_NUMBER = "residence_card_number"  # 在留カード等の番号
    ALIAS = "alias"  # 通称とその記載・削除の履歴


ITEM_LABELS: Mapping[Item, str] = {
    Item.NAME: "氏名",
    Item.BIRTH_DATE: "生年月日",
    Item.SEX: "性別",
    Item.ADDRESS: "住所",
    Item.HEAD_AND_RELATIONSHIP: "世帯主・続柄",
    Item.HONSEKI: "本籍・筆頭者",
    Item.RESIDENT_CODE: "住民票コード",
    Item.INDIVIDUAL_NUMBER: "個人番号",
    Item.BECAME_RESIDENT_ON: "住民となった年月日",
    Item.ADDRESS_SET_ON: "住所を定めた年月日・届出年月日",
    Item.PREVIOUS_ADDRESS: "前住所",
    Item.OLD_SURNAME: "旧氏",
    Item.PLANNED_MOVE_OUT: "転出予定",
    Item.REMOVAL: "消除",
    Item.HISTORY: "異動履歴",
    Item.NATIONALITY: "国籍・地域",
    Item.FOREIGN_STATUS: "在留資格等",
    Item.RESIDENCE_CARD_NUMBER: "在留カード等の番号",
    Item.ALIAS: "通称",
}

# A copy prints the whole record except what 法第12条第5項 lets the municipality omit
# "unless specially requested" (世帯主・続柄, 本籍・筆頭者, 住民票コード, 個人番号) and the
# history; foreign residents' items (施行令 第30条の26) are printed unless the requester
# asks to omit them.
_FOREIGN_ITEMS = frozenset({Item.NATIONALITY, Item.FOREIGN_STATUS, Item.RESIDENCE_CARD_NUMBER, Item.ALIAS})
_COPY_BASE = frozenset(
    {
        Item.NAME,
        Item.BIRTH_DATE,
        Item.SEX,
        Item.ADDRESS,
        Item.BECAME_RESIDENT_ON,
        Item.ADDRESS_SET_ON,
        Item.PREVIOUS_ADDRESS,
        Item.OLD_SURNAME,
        Item.PLANNED_MOVE_OUT,
        Item.REMOVAL,
    }
    | _FOREIGN_ITEMS
)
# A record certificate certifies only the items asked for; name and address always, so
# that it says whom it is about, and a 除票's removal, so that it cannot pass for a live one.
_CERTIFICATE_BASE = frozenset({Item.NAME, Item.ADDRESS, Item.REMOVAL})
_OPTIONAL = frozenset(
    {Item.HEAD_AND_RELATIONSHIP, Item.HONSEKI, Item.RESIDENT_CODE, Item.INDIVIDUAL_NUMBER, Item.HISTORY}
)
_ALWAYS = frozenset({Item.NAME, Item.ADDRESS, Item.REMOVAL})

# 法第12条の3第7項: a third party receives only what its reason needs, and never the
# 本籍, the 住民票コード or the 個人番号. 住民票コード and 個人番号 go only to the person
# and their household (法第12条第5項 but書); an agent's copy with them is mailed to the
# person in practice, which this system does not model, so agents are refused them.
_NUMBERS = frozenset({Item.RESIDENT_CODE, Item.INDIVIDUAL_NUMBER})
FORBIDDEN_FOR: Mapping[RequesterKind, frozenset[Item]] = {
    RequesterKind.SELF: frozenset(),
    RequesterKind.HOUSEHOLD_MEMBER: frozenset(),
    RequesterKind.AGENT: _NUMBERS,
    RequesterKind.THIRD_PARTY: _NUMBERS | {Item.HONSEKI},
    RequesterKind.OFFICIAL: frozenset(),
}
# 広域交付住民票 carries no 本籍・筆頭者 (法第12条の4第1項, 施行令第15条の4); the visiting
# municipality has no business with the 個人番号 either (unconfirmed: some guidance allows
# it with the home municipality's consent; refusing is the safe side).
FORBIDDEN_ON_CHANNEL: Mapping[Channel, frozenset[Item]] = {
    Channel.WINDOW: frozenset(),
    Channel.KIOSK: frozenset(),
    Channel.WIDE_AREA: frozenset({Item.HONSEKI, Item.INDIVIDUAL_NUMBER}),
    Channel.OFFICIAL: frozenset(),
}


def select_items(
    kind: DocumentKind,
    *,
    include: Sequence[Item] = (),
    omit: Sequence[Item] = (),
    requester: RequesterKind,
    channel: Channel,
) -> frozenset[Item]:
    """The items a document prints, or a clear refusal naming the item that may not be."""
    base = _COPY_BASE if kind.is_copy else _CERTIFICATE_BASE
    for item in omit:
        if item in _ALWAYS or (kind.is_copy and item not in _FOREIGN_ITEMS):
            raise InvalidValue(f"「{ITEM_LABELS[item]}」は{kind.label}から省略できません。", field="omit")
    for item in include:
        forbidden = FORBIDDEN_FOR[requester] | FORBIDDEN_ON_CHANNEL[channel]
        if item in forbidden:
            who = (
                CHANNEL_LABELS[channel]
                if item in FORBIDDEN_ON_CHANNEL[channel]
                else REQUESTER_LABELS[requester]
            )
            raise RuleViolation(f"「{ITEM_LABELS[item]}」は{who}の請求では記載できません。", field="include")
    if set(include) & set(omit):
        raise InvalidValue("同じ項目を記載と省略の両方に指定することはできません。", field="omit")
    return frozenset((base | set(include)) - set(omit))


def optional_items() -> frozenset[Item]:
    return _OPTIONAL


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for the certificate, as the clerk recorded it."""

    kind: RequesterKind
    name: str
    resident_code: str | None = None
    organisation_code: str | None = None
    person_id: int | None = None  # the requester's own record, when they are a resident here
    authority: str | None = None  # 委任状等: what shows an agent's authority
    reason: str | None = None  # a third party's legitimate reason, or an official task's
    task_code: str | None = None  # 公用請求: the statutory task the agency named


# A stated reason must say something; two characters ("私用") say nothing (unconfirmed:
# the law asks for 利用の目的 without a length, this is a floor against empty boxes).
MIN_REASON_LENGTH = 5


def check_requester(requester: Requester) -> None:
    """What each kind of requester must bring (住民基本台帳法 第12条・第12条の3)."""
    if requester.kind is RequesterKind.AGENT:
        if not (requester.authority or "").strip():
            raise InvalidValue(
                "代理人の請求には委任状等、代理権を証する書類の記録が必要です。", field="requester.authority"
            )
        if not requester.name.strip():
            raise InvalidValue("代理人の氏名を入力してください。", field="requester.name")
    if requester.kind is RequesterKind.THIRD_PARTY:
        if not requester.name.strip():
            raise InvalidValue("請求者の氏名を入力してください。", field="requester.name")
        if len((requester.reason or "").strip()) < MIN_REASON_LENGTH:
            raise InvalidValue(
                f"第三者の請求には利用の目的 (正当な理由) を{MIN_REASON_LENGTH}文字以上で記録してください。",
                field="requester.reason",
            )
    if requester.kind in (RequesterKind.SELF, RequesterKind.HOUSEHOLD_MEMBER) and requester.person_id is None:
        raise InvalidValue(
            "本人・同一世帯の者の請求では、請求者の住民ID (person_id) を指定してください。",
            field="requester.person_id",
        )


# ---------------------------------------------------------------------------
# Protection orders (支援措置: 住民基本台帳事務処理要領 第5-10)


def normalize_name(name: str) -> str:
    """A name as compared for protection orders: NFKC, no spaces of any width."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", name) if not ch.isspace())


@dataclass(frozen=True, slots=True)
class RestrictedParty:
    """Someone a protection order keeps away: a name, and what else identifies them."""

    name: str
    resident_code: str | None = None
    organisation_code: str | None = None

    def matches(self, requester: Requester) -> bool:
        if self.resident_code and requester.resident_code == self.resident_code:
            return True
        if self.organisation_code and requester.organisation_code == self.organisation_code:
            return True
        # A name alone matches too: an abuser who comes as "agent" under their own name
        # must be stopped even without a code. A namesake is stopped as well, and told to
        # ask a supervisor, which is the safe failure.
        return bool(self.name) and normalize_name(self.name) == normalize_name(requester.name)


@dataclass(frozen=True, slots=True)
class ProtectionOrderView:
    order_id: int
    lg_code: str
    person_id: int
    reason: str
    valid_until: dt.date | None
    registered_at: dt.datetime
    registered_by: str
    ended_at: dt.datetime | None
    parties: tuple[RestrictedParty, ...] = field(default=())

    def active_on(self, day: dt.date) -> bool:
        return self.ended_at is None and (self.valid_until is None or day <= self.valid_until)

    def restricts(self, requester: Requester) -> bool:
        return any(p.matches(requester) for p in self.parties)


class ProtectedRecord(AccessDenied):
    """A protection order names the requester: refused, and the refusal is kept as evidence."""

    type_slug = "protection-order"
    title = "支援措置の対象のため交付できません"


class KioskRefused(AccessDenied):
    """A kiosk may not issue this; the window can, after checking in person."""

    type_slug = "kiosk-refused"
    title = "この証明書はコンビニ交付・キオスク端末では交付できません"


# ---------------------------------------------------------------------------
# Resident authentication for kiosks (a PIN set at the window)

PIN_LENGTH = 4
MAX_PIN_ATTEMPTS = 3


def check_pin_format(pin: str) -> None:
    if not (len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()):
        raise InvalidValue(f"暗証番号は数字{PIN_LENGTH}桁で指定してください。", field="pin")


class ResidentAuthenticationFailed(Unauthenticated):
    """The failure count must survive the refusal, or lock-out never comes."""

    type_slug = "resident-authentication-failed"
    title = "本人確認に失敗しました"
    commits_recorded_work = True


class ResidentLocked(DomainError):
    status = 423
    type_slug = "resident-pin-locked"
    title = "暗証番号がロックされています"
    commits_recorded_work = True


GENERIC_RESIDENT_FAILURE = "住民票コードまたは暗証番号が正しくありません。"


# ---------------------------------------------------------------------------
# Fees


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Yen per document, by channel, for one municipality."""

    window: int
    kiosk: int
    wide_area: int
    official: int

    def for_channel(self, channel: Channel) -> int:
        return {
            Channel.WINDOW: self.window,
            Channel.KIOSK: self.kiosk,
            Channel.WIDE_AREA: self.wide_area,
            Channel.OFFICIAL: self.official,
        }[channel]


# ---------------------------------------------------------------------------
# Verification


VERIFICATION_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed
VERIFICATION_CODE_LENGTH = 12


def format_verification_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalize_verification_code(raw: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", raw).upper() if ch.isalnum())


def issue_number(lg_code: str, year: int, seq: int) -> str:
    """発行番号: the issuing municipality, the year and a per-year sequence."""
    return f"{lg_code}-{year:04d}-{seq:07d}"


class UnknownCertificate(NotFound):
    """A failed check is evidence too (someone probing numbers): its audit entry is kept."""

    type_slug = "certificate-not-found"
    title = "該当する証明書はありません"
    commits_recorded_work = True


class TooManyRequests(DomainError):
    status = 429
    type_slug = "too-many-requests"
    title = "リクエストが多すぎます"


class SigningUnavailable(DomainError):
    """The deployment cannot sign: a missing passphrase or font is an operator's problem."""

    status = 503
    type_slug = "certificate-signing-unavailable"
    title = "証明書を発行できる状態ではありません"


class UnprintableCharacter(RuleViolation):
    type_slug = "unprintable-character"
    title = "証明書に印字できない文字があります"


@dataclass(frozen=True, slots=True)
class PinCredentials:
    """What a resident without a card types at a kiosk: the resident code and a PIN."""

    resident_code: str
    pin: str


@dataclass(frozen=True, slots=True)
class CardCredentials:
    """A card login the national card service has verified (``POST /card/v1/login``).

    The card's 利用者証明用電子証明書 signed a fresh challenge with the PIN on the chip and
    was checked against JPKI (chain and OCSP) before the session behind this was opened;
    what reaches the kiosk is who the card says the resident is.
    """

    resident_code: str
    card_id: int
    certificate_serial: str


@dataclass(frozen=True, slots=True)
class AuthenticatedResident:
    person_id: int
    lg_code: str
    method: str  # "pin" or "card"


# ---------------------------------------------------------------------------
# Official requests (公用請求, 住民基本台帳法 第12条の2)


@dataclass(frozen=True, slots=True)
class OfficialTask:
    """A task for which the municipality accepts an agency's 公用請求 through the API.

    法第12条の2 lets a public body ask for the 写し "for a task laid down by law"; which
    tasks, which documents and which optional items each may have is configuration
    (``[official_tasks.*]`` in the certificate settings), and a supervisor grants each
    agency the tasks it performs (``grant_official_task``).
    """

    code: str
    title: str
    basis: str  # 根拠法令
    kinds: frozenset[DocumentKind]
    items: frozenset[Item]  # optional items the task may ask for (of ``optional_items()``)

    def check(self, kind: DocumentKind, include: Sequence[Item]) -> None:
        """Refuse a document kind or an item the task does not need."""
        if kind not in self.kinds:
            raise OfficialTaskNotGranted(
                f"事務「{self.title}」({self.code}) では{kind.label}は請求できません。", field="kind"
            )
        for item in include:
            if item in _OPTIONAL and item not in self.items:
                raise OfficialTaskNotGranted(
                    f"事務「{self.title}」({self.code}) では「{ITEM_LABELS[item]}」の記載は請求できません。",
                    field="include",
                )


class OfficialTaskNotGranted(AccessDenied):
    """An agency asked outside its granted tasks: refused, and the refusal is kept."""

    type_slug = "official-task-not-granted"
    title = "この事務による公用請求は認められていません"
