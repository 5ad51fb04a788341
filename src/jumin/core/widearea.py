"""The contract of 広域交付 (住民基本台帳法 第12条の4) across the network: nothing else crosses.

A clerk of the issuing municipality (交付地) asks for a record copy of a resident of
another municipality (住所地). The issuer never reads the home register: it asks the
national network, which checks who asks and forwards the question to the home
municipality's registered endpoint; the home register answers from its own database
with the items a 広域交付住民票 may carry, and the issuer renders and signs the PDF with
its own key. Afterwards the issuer tells the home municipality that a copy was issued
(by issue number), through the network again, so that the home keeps a record of it.

Three parties sign:

``jumin.wide_area.request.v1`` / ``jumin.wide_area.issued.v1``
    issuer → national, signed with the issuer's municipality key (the same key and
    headers as the replication's signed envelopes, core.replication).
``jumin.wide_area.forward.v1`` / ``jumin.wide_area.issued_forward.v1``
    national → home, signed with the national network's own key (``X-Jumin-Sender:
    national``); the home trusts that key, not the issuer's, which it does not know.
``jumin.wide_area.answer.v1``
    the home's answer, signed with the home's municipality key and bound to the
    forward's nonce, so the national side can prove which register said what.

Both modules on either side of the boundary (network.identity.widearea,
certificates.widearea) and the network client import this one, so the format is written
once. Plain values only: records travel as the register's own JSON form
(registry.domain.record_to_json), which this module never interprets.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jumin.core.errors import (
    AccessDenied,
    DomainError,
    InvalidValue,
    NotFound,
    RuleViolation,
    Unauthenticated,
    problem_type,
)
from jumin.core.replication import canonical_bytes, format_instant, is_fresh, parse_instant

# issuer → national
WIDE_AREA_RECORDS_PATH = "/network/v1/wide-area/records"
WIDE_AREA_ISSUED_PATH = "/network/v1/wide-area/issued"
# national → the home municipality's registered endpoint
HOME_RECORDS_PATH = "/municipal/v1/wide-area/records"
HOME_ISSUED_PATH = "/municipal/v1/wide-area/issued"

# What the national network signs as (X-Jumin-Sender) and the key file it signs with.
NETWORK_SENDER = "national"
NETWORK_KEY_NAME = "national-network"
# The national key as a municipality installs it (`jumin relay trust-network`).
NETWORK_PUBLIC_KEY_FILE = "national-network.public.pem"

# A window clerk waits for the answer: the home gets this long, then the clerk is told.
HOME_TIMEOUT_SECONDS = 10.0

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_LG = re.compile(r"^[0-9]{6}$")
_CODE = re.compile(r"^[0-9]{11}$")


class WideAreaKind(StrEnum):
    REQUEST = "jumin.wide_area.request.v1"
    FORWARD = "jumin.wide_area.forward.v1"
    ANSWER = "jumin.wide_area.answer.v1"
    ISSUED = "jumin.wide_area.issued.v1"
    ISSUED_FORWARD = "jumin.wide_area.issued_forward.v1"


# ---------------------------------------------------------------------------
# Errors: each side raises these, and a remote client rebuilds them from the problem type.


class HomeUnavailable(DomainError):
    """The home municipality's system did not answer (down, timed out, or refused the network)."""

    status = 503
    type_slug = "home-municipality-unavailable"
    title = "住所地の市区町村のシステムに接続できません"
    commits_recorded_work = True  # the failed attempt stays in the audit trail


class NetworkUnavailable(DomainError):
    """The national network did not answer the issuer."""

    status = 503
    type_slug = "network-unavailable"
    title = "住基ネット (全国センター) に接続できません"
    commits_recorded_work = True


class NetworkRefused(DomainError):
    """The national network refused the issuer's request (key not registered, clock, signature)."""

    status = 502
    type_slug = "network-refused"
    title = "住基ネットが広域交付の照会を受け付けませんでした"
    commits_recorded_work = True


class WideAreaProtected(AccessDenied):
    """A protection order (支援措置) at home: 広域交付 is refused whoever asks."""

    type_slug = "protection-order"
    title = "支援措置の対象のため交付できません"


class WideAreaNotFound(NotFound):
    """The home register holds no live resident with this code; the refusal stays audited."""

    commits_recorded_work = True


class NetworkSignatureRefused(Unauthenticated):
    """The home cannot attribute a request to the national network; the refusal stays audited."""

    type_slug = "network-signature-refused"
    title = "全国センターの署名を確認できないため受け付けません"
    commits_recorded_work = True


class WideAreaReplayed(RuleViolation):
    """The same request (its request id) reached the home twice."""

    type_slug = "wide-area-replayed"
    title = "同じ広域交付の照会は二度処理しません"
    commits_recorded_work = True


_BY_SLUG: Mapping[str, type[DomainError]] = {
    WideAreaProtected.type_slug: WideAreaProtected,
    "not-found": WideAreaNotFound,
    RuleViolation.type_slug: RuleViolation,
    InvalidValue.type_slug: InvalidValue,
    HomeUnavailable.type_slug: HomeUnavailable,
    NetworkUnavailable.type_slug: NetworkUnavailable,
    WideAreaReplayed.type_slug: WideAreaReplayed,
}


def error_from_problem(status: int, body: Any, *, refused: type[DomainError] = NetworkRefused) -> DomainError:
    """The error a problem+json answer stands for; a refusal of the caller itself becomes ``refused``.

    401/403 (other than a protection order) mean the caller's key, signature or clock was
    not accepted: for the window that is a configuration problem of the link, not of the
    clerk, so it becomes ``refused`` with the other side's words kept in the detail.
    """
    problem = body if isinstance(body, dict) else {}
    slug = str(problem.get("type", "")).removeprefix(problem_type(""))
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    field_name = problem.get("field")
    field_text = field_name if isinstance(field_name, str) else None
    cls = _BY_SLUG.get(slug)
    if cls is not None:
        return cls(detail, field=field_text)
    if status >= 500:
        return NetworkUnavailable(detail)
    return refused(f"{problem.get('title', '')}: {detail}".strip(": "), field=field_text)


# ---------------------------------------------------------------------------
# What travels


def _text(d: Mapping[str, Any], key: str, *, pattern: re.Pattern[str] | None = None, limit: int = 200) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidValue(f"{key} がありません、または長すぎます。", field=key)
    if pattern is not None and not pattern.match(value):
        raise InvalidValue(f"{key} の形式が正しくありません。", field=key)
    return value


def _texts(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = d.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= 64 for v in value):
        raise InvalidValue(f"{key} は文字列の配列です。", field=key)
    return tuple(value)


def _int(d: Mapping[str, Any], key: str) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidValue(f"{key} は0以上の整数です。", field=key)
    return value


@dataclass(frozen=True, slots=True)
class RecordRequest:
    """The issuer's question: whose record copy, which items, asked by which clerk."""

    request_id: str
    issuer_lg_code: str
    home_lg_code: str
    resident_code: str
    whole_household: bool
    form: str
    include: tuple[str, ...]
    omit: tuple[str, ...]
    clerk: str  # "staff:<login>": who stands at the issuing window (audited at every hop)

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "issuer_lg_code": self.issuer_lg_code,
            "home_lg_code": self.home_lg_code,
            "resident_code": self.resident_code,
            "whole_household": self.whole_household,
            "form": self.form,
            "include": list(self.include),
            "omit": list(self.omit),
            "clerk": self.clerk,
        }

    @staticmethod
    def from_json(d: Any) -> RecordRequest:
        if not isinstance(d, dict):
            raise InvalidValue("request がありません。", field="request")
        whole = d.get("whole_household")
        if not isinstance(whole, bool):
            raise InvalidValue("whole_household は真偽値です。", field="whole_household")
        return RecordRequest(
            request_id=_text(d, "request_id", pattern=_HEX_ID),
            issuer_lg_code=_text(d, "issuer_lg_code", pattern=_LG),
            home_lg_code=_text(d, "home_lg_code", pattern=_LG),
            resident_code=_text(d, "resident_code", pattern=_CODE),
            whole_household=whole,
            form=_text(d, "form", limit=16),
            include=_texts(d, "include"),
            omit=_texts(d, "omit"),
            clerk=_text(d, "clerk", limit=128),
        )


@dataclass(frozen=True, slots=True)
class ProvidedPerson:
    """One person as the home register states them: its own id, the record, the history lines."""

    person_id: int
    record: Mapping[str, Any]  # registry.domain.record_to_json, items outside the request blanked
    history: tuple[Mapping[str, Any], ...] | None = None  # {effective_on, notified_on, label, address}


@dataclass(frozen=True, slots=True)
class RecordAnswer:
    """The home register's answer to one :class:`RecordRequest`."""

    request_id: str
    home_lg_code: str
    provided_at: str
    items: tuple[str, ...]
    head_name: str | None
    persons: tuple[ProvidedPerson, ...]
    subject_person_id: int  # the person whose 住民票コード was asked (the requester)
    in_reply_to: str = ""  # the nonce of the forward it answers

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": WideAreaKind.ANSWER.value,
            "sender": self.home_lg_code,
            "request_id": self.request_id,
            "in_reply_to": self.in_reply_to,
            "provided_at": self.provided_at,
            "items": list(self.items),
            "head_name": self.head_name,
            "subject_person_id": self.subject_person_id,
            "persons": [
                {
                    "person_id": p.person_id,
                    "record": dict(p.record),
                    "history": None if p.history is None else [dict(h) for h in p.history],
                }
                for p in self.persons
            ],
        }

    @staticmethod
    def from_json(d: Any) -> RecordAnswer:
        if not isinstance(d, dict) or d.get("kind") != WideAreaKind.ANSWER.value:
            raise InvalidValue("住所地の回答の形式が正しくありません。", field="answer")
        persons = d.get("persons")
        if not isinstance(persons, list) or not persons:
            raise InvalidValue("住所地の回答に住民が含まれていません。", field="persons")
        provided = []
        for p in persons:
            if not isinstance(p, dict) or not isinstance(p.get("record"), dict):
                raise InvalidValue("住所地の回答の住民の形式が正しくありません。", field="persons")
            history = p.get("history")
            if history is not None and not (
                isinstance(history, list) and all(isinstance(h, dict) for h in history)
            ):
                raise InvalidValue("住所地の回答の異動履歴の形式が正しくありません。", field="persons")
            provided.append(
                ProvidedPerson(
                    person_id=_int(p, "person_id"),
                    record=p["record"],
                    history=None if history is None else tuple(history),
                )
            )
        head = d.get("head_name")
        return RecordAnswer(
            request_id=_text(d, "request_id", pattern=_HEX_ID),
            home_lg_code=_text(d, "sender", pattern=_LG),
            provided_at=_text(d, "provided_at", limit=40),
            items=_texts(d, "items"),
            head_name=head if isinstance(head, str) else None,
            persons=tuple(provided),
            subject_person_id=_int(d, "subject_person_id"),
            in_reply_to=str(d.get("in_reply_to", "")),
        )


@dataclass(frozen=True, slots=True)
class IssuedNotice:
    """What the issuer tells the home after issuing: which copy, of whom, when, for how much."""

    request_id: str
    issuer_lg_code: str
    home_lg_code: str
    issue_number: str
    issue_date: dt.date
    issued_at: str
    fee_yen: int
    page_count: int
    document_sha256: str
    form: str
    items: tuple[str, ...]
    person_ids: tuple[int, ...]  # the home register's ids, as it gave them
    clerk: str

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "issuer_lg_code": self.issuer_lg_code,
            "home_lg_code": self.home_lg_code,
            "issue_number": self.issue_number,
            "issue_date": self.issue_date.isoformat(),
            "issued_at": self.issued_at,
            "fee_yen": self.fee_yen,
            "page_count": self.page_count,
            "document_sha256": self.document_sha256,
            "form": self.form,
            "items": list(self.items),
            "person_ids": list(self.person_ids),
            "clerk": self.clerk,
        }

    @staticmethod
    def from_json(d: Any) -> IssuedNotice:
        if not isinstance(d, dict):
            raise InvalidValue("notice がありません。", field="notice")
        ids = d.get("person_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and i > 0 for i in ids):
            raise InvalidValue("person_ids は正の整数の配列です。", field="person_ids")
        try:
            issue_date = dt.date.fromisoformat(_text(d, "issue_date", limit=10))
        except ValueError as exc:
            raise InvalidValue("issue_date の形式が正しくありません。", field="issue_date") from exc
        return IssuedNotice(
            request_id=_text(d, "request_id", pattern=_HEX_ID),
            issuer_lg_code=_text(d, "issuer_lg_code", pattern=_LG),
            home_lg_code=_text(d, "home_lg_code", pattern=_LG),
            issue_number=_text(d, "issue_number", limit=32),
            issue_date=issue_date,
            issued_at=_text(d, "issued_at", limit=40),
            fee_yen=_int(d, "fee_yen"),
            page_count=_int(d, "page_count"),
            document_sha256=_text(d, "document_sha256", pattern=re.compile(r"^[0-9a-f]{64}$")),
            form=_text(d, "form", limit=16),
            items=_texts(d, "items"),
            person_ids=tuple(ids),
            clerk=_text(d, "clerk", limit=128),
        )


# ---------------------------------------------------------------------------
# Envelopes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed signed envelope: who says it, when, its nonce, and what it carries."""

    kind: str
    sender: str
    sent_at: dt.datetime
    nonce: str
    body: Mapping[str, Any] = field(default_factory=dict)


def envelope(*, kind: WideAreaKind, sender: str, sent_at: dt.datetime, nonce: str, **body: Any) -> bytes:
    """The canonical bytes of an envelope; the signature covers exactly these."""
    return canonical_bytes(
        {"kind": kind.value, "sender": sender, "sent_at": format_instant(sent_at), "nonce": nonce, **body}
    )


class EnvelopeProblem(InvalidValue):
    """An envelope that is well signed but not what this door takes (kind, sender, age, nonce)."""


def open_envelope(data: bytes, *, expected: WideAreaKind, sender: str, now: dt.datetime) -> Envelope:
    """The envelope in ``data`` if it is of the expected kind, from ``sender`` and fresh."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeProblem("本文が JSON ではありません。", field="body") from exc
    if not isinstance(raw, dict):
        raise EnvelopeProblem("本文が JSON オブジェクトではありません。", field="body")
    if raw.get("kind") != expected.value:
        raise EnvelopeProblem("この送信先に宛てた署名ではありません。", field="kind")
    if raw.get("sender") != sender:
        raise EnvelopeProblem("署名された送信元と X-Jumin-Sender が一致しません。", field="sender")
    sent_at = parse_instant(str(raw.get("sent_at", "")))
    if sent_at is None or not is_fresh(sent_at, now):
        raise EnvelopeProblem(
            "送信時刻が受信側の時刻と5分以上ずれています。時刻を合わせ、新しい署名で送り直してください。",
            field="sent_at",
        )
    nonce = raw.get("nonce")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 64:
        raise EnvelopeProblem("nonce がありません。", field="nonce")
    body = {k: v for k, v in raw.items() if k not in ("kind", "sender", "sent_at", "nonce")}
    return Envelope(kind=expected.value, sender=sender, sent_at=sent_at, nonce=nonce, body=body)


def answer_bytes(answer: RecordAnswer) -> bytes:
    return canonical_bytes(answer.as_json())
