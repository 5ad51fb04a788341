"""The national inbox: signed batches from municipalities, applied in order, exactly once.

A batch is checked (known municipality, valid signature, fresh and unseen envelope)
before any message is looked at; each refusal is audited and the audit entry survives
the refusal. Each message is stored once by its idempotency key; a record's messages are
applied strictly in sequence order, so one that arrives early waits (``applied_at`` is
empty) until the gap fills, in the same request if the batch carries the missing one.
Services flush; the entry point commits, so a batch is applied whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.core.errors import InvalidValue
from jumin.core.ids import LgCode
from jumin.core.municipalities import MunicipalityKind, load_master
from jumin.core.names import normalize_kana
from jumin.core.replication import (
    MAX_CLOCK_SKEW,
    DeliveryStatus,
    EnvelopeKind,
    MessageKind,
    MunicipalityDigest,
    PersonDigest,
    identity_values,
    is_fresh,
    parse_instant,
    public_key_from_pem,
    verify,
)
from jumin.db import utcnow
from jumin.keys import data_keyring, lookup_hash
from jumin.network.identity import repository
from jumin.network.identity.domain import (
    STATUS_LIVE,
    STATUS_VOID,
    ApplyConflict,
    IdentityChange,
    IdentityFacts,
    IncomingMessage,
    MoveOutCertificate,
    RefusalReason,
    ReplicationRefused,
    TimelineEntry,
    UnknownMunicipality,
    lay_out,
)
from jumin.network.identity.models import (
    EnvelopeNonce,
    ForwardedNotice,
    IdentityHistory,
    IdentityRecord,
    InboxMessage,
    MunicipalityKey,
    SourceSequence,
)
from jumin.network.service import NATIONAL_ORGANISATION, NUMBER_HASH_PURPOSE

_LG_CODE = re.compile(r"^[0-9]{6}$")
# Associated data of the 個人番号 sealed inside stored payloads: a sealed value copied
# into another column or table does not open there.
_INBOX_AAD = "national-inbox"
_SEALED = "enc:"


class ReplicationRace(ApplyConflict):
    """Two requests began the same record's first message at once; sending again is safe."""

    type_slug = "replication-race"
    title = "他の受信処理と競合しました"


# ---------------------------------------------------------------------------
# Keys


@dataclass(frozen=True, slots=True)
class KeyView:
    lg_code: str
    fingerprint: str
    registered_at: dt.datetime


def key_fingerprint(public_key_pem: str) -> str:
    """SHA-256 of the PEM text, short enough to read out on the phone when registering."""
    return hashlib.sha256(public_key_pem.strip().encode()).hexdigest()[:32]


def _view(row: MunicipalityKey) -> KeyView:
    return KeyView(row.lg_code, key_fingerprint(row.public_key_pem), row.registered_at)


def _operator() -> Actor:
    return Actor.system(NATIONAL_ORGANISATION)


def _municipality_actor(lg_code: str) -> Actor:
    return Actor(
        kind=ActorKind.SYSTEM, actor_id=f"municipality:{lg_code}", organisation_code=NATIONAL_ORGANISATION
    )


def _require_register_keeper(lg_code: str) -> LgCode:
    """Only a body that keeps a register sends changes: a municipality or a designated-city ward."""
    lg = LgCode.parse(lg_code, field="lg_code")
    entry = load_master().get(lg)
    if entry.kind is MunicipalityKind.PREFECTURE:
        raise InvalidValue(
            f"{entry.name}（{lg.value}）は都道府県のため、住民票の異動を送信しません。", field="lg_code"
        )
    return lg


def register_key(
    session: Session, *, lg_code: str, public_key_pem: str, actor: Actor | None = None
) -> KeyView:
    """Register (or replace, when rotating) a municipality's public key; the same key twice is a no-op."""
    lg = _require_register_keeper(lg_code)
    pem = public_key_pem.strip() + "\n"
    if public_key_from_pem(pem) is None:
        raise InvalidValue("Ed25519 の公開鍵 (PEM 形式) を指定してください。", field="public_key")
    row = repository.municipality_key(session, lg.value)
    if row is not None and row.public_key_pem == pem:
        return _view(row)
    now = utcnow()
    if row is None:
        row = MunicipalityKey(
            lg_code=lg.value, public_key_pem=pem, registered_at=now, prefecture_code=lg.prefecture_code
        )
        repository.add(session, row)
    else:
        row.public_key_pem = pem
        row.registered_at = now
        session.flush()
    audit.record(
        session,
        actor=actor or _operator(),
        action=AuditAction.MUNICIPALITY_KEY_REGISTERED,
        target_kind="municipality",
        target_id=lg.value,
        detail=f"fingerprint={key_fingerprint(pem)}",
        now=now,
    )
    return _view(row)


def list_keys(session: Session) -> list[KeyView]:
    return [_view(r) for r in repository.municipality_keys(session)]


# ---------------------------------------------------------------------------
# Who is sending


def _refuse(
    session: Session, *, claimed: str | None, reason: RefusalReason, route: str, message: str
) -> ReplicationRefused | UnknownMunicipality:
    target = claimed if claimed is not None and _LG_CODE.match(claimed) else "invalid"
    audit.record(
        session,
        actor=_municipality_actor(target),
        action=AuditAction.REPLICATION_REFUSED,
        target_kind="municipality",
        target_id=target,
        outcome=Outcome.DENIED,
        detail=f"reason={reason.value} route={route}",
    )
    if reason is RefusalReason.UNKNOWN_MUNICIPALITY:
        return UnknownMunicipality(message, field="X-Jumin-Sender")
    return ReplicationRefused(message, field="X-Jumin-Signature")


def authenticate(
    session: Session, *, sender: str | None, signature: str | None, signed: bytes, route: str
) -> str:
    """The municipality that signed ``signed``; anything else is refused and audited."""
    if not sender or not signature:
        raise _refuse(
            session,
            claimed=sender,
            reason=RefusalReason.UNSIGNED,
            route=route,
            message="X-Jumin-Sender と X-Jumin-Signature の両方が必要です。",
        )
    key = repository.municipality_key(session, sender) if _LG_CODE.match(sender) else None
    if key is None:
        raise _refuse(
            session,
            claimed=sender,
            reason=RefusalReason.UNKNOWN_MUNICIPALITY,
            route=route,
            message="送信元の団体の公開鍵が登録されていません。全国センターに鍵の登録を依頼してください。",
        )
    if not verify(key.public_key_pem, signed, signature):
        raise _refuse(
            session,
            claimed=sender,
            reason=RefusalReason.BAD_SIGNATURE,
            route=route,
            message="署名が送信元の団体の公開鍵で検証できません。",
        )
    return sender


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """What makes an envelope unique and attributable, as the sender signed it."""

    kind: str
    sender: str
    sent_at: str
    nonce: str


def _accept_envelope(
    session: Session,
    *,
    sender: str,
    expected: EnvelopeKind,
    header: EnvelopeHeader,
    route: str,
    now: dt.datetime,
) -> None:
    """A fresh envelope for this purpose from this sender, never seen before; remembered from now on."""

    def refuse(reason: RefusalReason, message: str) -> ReplicationRefused | UnknownMunicipality:
        return _refuse(session, claimed=sender, reason=reason, route=route, message=message)

    if header.kind != expected.value:
        raise refuse(RefusalReason.WRONG_PURPOSE, "この送信先に宛てた署名ではありません。")
    if header.sender != sender:
        raise refuse(RefusalReason.SENDER_MISMATCH, "署名された送信元と X-Jumin-Sender が一致しません。")
    sent_at = parse_instant(header.sent_at)
    if sent_at is None or not is_fresh(sent_at, now):
        raise refuse(
            RefusalReason.STALE,
            f"送信時刻が全国センターの時刻と{int(MAX_CLOCK_SKEW.total_seconds() // 60)}分以上ずれています。"
            "時刻を合わせ、新しい署名で送り直してください。",
        )
    if not 16 <= len(header.nonce) <= 64 or repository.nonce_seen(session, header.nonce):
        raise refuse(
            RefusalReason.REPLAYED,
            "同じ署名付きの送信を二度は受け付けません。新しい署名で送り直してください。",
        )
    repository.forget_nonces_before(session, now - 2 * MAX_CLOCK_SKEW)
    repository.add(
        session,
        EnvelopeNonce(
            nonce=header.nonce, lg_code=sender, prefecture_code=sender[:2], sent_at=sent_at, received_at=now
        ),
    )


# ---------------------------------------------------------------------------
# Stored payloads: 個人番号 sealed with the national data key


def _seal(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (_SEALED + data_keyring().encrypt(v, _INBOX_AAD))
            if k == "individual_number" and isinstance(v, str)
            else _seal(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_seal(v) for v in value]
    return value


def _unseal(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: data_keyring().decrypt(v[len(_SEALED) :], _INBOX_AAD)
            if k == "individual_number" and isinstance(v, str) and v.startswith(_SEALED)
            else _unseal(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unseal(v) for v in value]
    return value


def _facts_json(facts: IdentityFacts) -> dict[str, Any]:
    return {
        "resident_code": facts.resident_code,
        "individual_number": facts.individual_number,
        "name": facts.name,
        "name_kana": facts.name_kana,
        "birth_date": facts.birth_date.isoformat(),
        "sex": facts.sex,
        "address_lg_code": facts.address_lg_code,
        "address": facts.address,
        "status": facts.status,
        "removal_reason": facts.removal_reason,
        "resident_kind": facts.resident_kind,
    }


def _facts_from(d: Mapping[str, Any]) -> IdentityFacts:
    return IdentityFacts(
        resident_code=d["resident_code"],
        individual_number=d["individual_number"],
        name=d["name"],
        name_kana=d["name_kana"],
        birth_date=dt.date.fromisoformat(d["birth_date"]),
        sex=d["sex"],
        address_lg_code=d["address_lg_code"],
        address=d["address"],
        status=d["status"],
        removal_reason=d["removal_reason"],
        resident_kind=d["resident_kind"],
    )


def _date_or_none(text: Any) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def _stored(message: IncomingMessage) -> str:
    body = message.body
    if isinstance(body, MoveOutCertificate):
        document: dict[str, Any] = dict(body.document) | {
            "effective_on": body.effective_on.isoformat(),
            "identity": _facts_json(body.facts),
        }
    else:
        document = {
            "effective_on": body.effective_on.isoformat() if body.effective_on else None,
            "change_kind": body.change_kind,
            "became_resident_on": body.became_resident_on.isoformat() if body.became_resident_on else None,
            "identity": _facts_json(body.facts) if body.facts else None,
            "alias_kana": body.alias_kana,
        }
    return json.dumps(_seal(document), ensure_ascii=False, sort_keys=True)


def _change_of(row: InboxMessage) -> IdentityChange:
    d = _unseal(json.loads(row.payload))
    return IdentityChange(
        effective_on=_date_or_none(d["effective_on"]),
        change_kind=d["change_kind"],
        became_resident_on=_date_or_none(d["became_resident_on"]),
        facts=_facts_from(d["identity"]) if d["identity"] else None,
        alias_kana=d.get("alias_kana"),
    )


# ---------------------------------------------------------------------------
# Receiving a batch


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    idempotency_key: str
    status: DeliveryStatus


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    sender: str
    results: tuple[MessageOutcome, ...]
    applied_from_earlier: int  # messages held by earlier batches that this one released


def receive_changes(
    session: Session,
    *,
    sender: str,
    header: EnvelopeHeader,
    messages: Sequence[IncomingMessage],
    route: str,
    now: dt.datetime | None = None,
) -> BatchOutcome:
    """Store each new message once, then apply every record's messages that are next in line.

    ``sender`` has been authenticated (:func:`authenticate`); every message of the batch
    comes from its register.
    """
    now = now or utcnow()
    _accept_envelope(
        session, sender=sender, expected=EnvelopeKind.CHANGES, header=header, route=route, now=now
    )
    known = repository.inbox_keys_among(session, (m.idempotency_key for m in messages))
    stored: dict[str, InboxMessage] = {}
    statuses: dict[int, DeliveryStatus] = {}
    order: list[int] = []
    for index, message in enumerate(messages):
        if message.idempotency_key in known or message.idempotency_key in stored:
            statuses[index] = DeliveryStatus.DUPLICATE
            continue
        if message.kind is MessageKind.MOVE_OUT_CERTIFICATE and message.destination_lg_code is None:
            raise InvalidValue("転出証明書情報には転出先の団体コードが必要です。", field=f"messages.{index}")
        taken = repository.inbox_at(session, sender, message.source_person_id, message.seq)
        if taken is not None:
            raise ApplyConflict(
                f"{index}番目のメッセージ (seq={message.seq}) と同じ記録・同じ通番の"
                "別のメッセージを受信済みです。送信元の送信待ちを確認してください。",
                field=f"messages.{index}.seq",
            )
        row = InboxMessage(
            idempotency_key=message.idempotency_key,
            source_lg_code=sender,
            source_person_id=message.source_person_id,
            seq=message.seq,
            kind=message.kind.value,
            resident_code=message.resident_code,
            destination_lg_code=message.destination_lg_code,
            prefecture_code=sender[:2],
            payload=_stored(message),
            received_at=now,
            applied_at=None,
        )
        session.add(row)
        stored[message.idempotency_key] = row
        if message.source_person_id not in order:
            order.append(message.source_person_id)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent request stored the same message first
        raise ReplicationRace("同じメッセージを別の送信が同時に届けました。再送してください。") from exc

    applied = 0
    try:
        for person_id in order:
            applied += _drain(session, sender, person_id, now)
    except IntegrityError as exc:  # another batch created the same person's identity first
        raise ReplicationRace("同じ本人確認情報を別の送信が同時に更新しました。再送してください。") from exc
    released_here = 0
    for index, message in enumerate(messages):
        if index in statuses:
            continue
        if stored[message.idempotency_key].applied_at is not None:
            statuses[index] = DeliveryStatus.APPLIED
            released_here += 1
        else:
            statuses[index] = DeliveryStatus.HELD
    results = tuple(MessageOutcome(m.idempotency_key, statuses[i]) for i, m in enumerate(messages))
    counts = {s: sum(1 for r in results if r.status is s) for s in DeliveryStatus}
    audit.record(
        session,
        actor=_municipality_actor(sender),
        action=AuditAction.REPLICATION_BATCH_RECEIVED,
        target_kind="municipality",
        target_id=sender,
        detail=" ".join(f"{s.value}={n}" for s, n in counts.items()) + f" released={applied - released_here}",
        now=now,
    )
    return BatchOutcome(sender=sender, results=results, applied_from_earlier=applied - released_here)


def _drain(session: Session, lg_code: str, person_id: int, now: dt.datetime) -> int:
    """Apply the record's messages from the next expected sequence number on, as far as they go."""
    sequence = repository.source_sequence(session, lg_code, person_id, for_update=True)
    if sequence is None:
        sequence = SourceSequence(
            source_lg_code=lg_code,
            source_person_id=person_id,
            last_seq=0,
            prefecture_code=lg_code[:2],
            void=False,
        )
        try:
            repository.add(session, sequence)
        except IntegrityError as exc:
            raise ReplicationRace(
                "同じ記録の最初のメッセージを別の送信が同時に届けました。再送してください。"
            ) from exc
    applied = 0
    while True:
        message = repository.inbox_at(session, lg_code, person_id, sequence.last_seq + 1)
        if message is None or message.applied_at is not None:
            return applied
        if message.kind == MessageKind.MOVE_OUT_CERTIFICATE.value:
            _forward(session, message, now)
        else:
            _apply_identity(session, sequence, message, now)
        message.applied_at = now
        sequence.last_seq += 1
        applied += 1
        session.flush()


def _forward(session: Session, message: InboxMessage, now: dt.datetime) -> None:
    destination = message.destination_lg_code
    assert destination is not None  # checked on receipt
    repository.add(
        session,
        ForwardedNotice(
            inbox_id=message.id,
            destination_lg_code=destination,
            prefecture_code=destination[:2],
            resident_code=message.resident_code,
            payload=message.payload,
            created_at=now,
        ),
    )
    audit.record(
        session,
        actor=_municipality_actor(message.source_lg_code),
        action=AuditAction.MOVE_OUT_NOTICE_FORWARDED,
        target_kind="resident_code",
        target_id=message.resident_code,
        purpose="転出証明書情報の通知 (住民基本台帳法 第24条の2)",
        detail=f"from={message.source_lg_code} to={destination} inbox={message.id}",
        now=now,
    )


def _number_hash(number: str | None) -> str | None:
    return lookup_hash(number, NUMBER_HASH_PURPOSE) if number else None


def _apply_identity(
    session: Session, sequence: SourceSequence, message: InboxMessage, now: dt.datetime
) -> None:
    change = _change_of(message)
    facts = change.facts
    if facts is None:
        sequence.void = True
        session.flush()
        target = message.resident_code
        if sequence.identity_id is not None:
            record = repository.identity(session, sequence.identity_id, for_update=True)
            if record is not None:
                _rebuild(session, record, now)
                target = record.resident_code
    else:
        record = _identity_for(session, sequence, facts)
        if record is None:
            record = IdentityRecord()
            _show(record, facts, change, holder=(sequence.source_lg_code, sequence.source_person_id), now=now)
            repository.add(session, record)
        sequence.identity_id = record.id
        sequence.started_on = change.became_resident_on or change.effective_on
        sequence.void = False
        assert change.effective_on is not None
        repository.add(
            session,
            IdentityHistory(
                identity_id=record.id,
                resident_code=facts.resident_code,
                prefecture_code=sequence.source_lg_code[:2],
                lg_code=sequence.source_lg_code,
                valid_from=change.effective_on,
                valid_to=None,
                recorded_at=now,
                status=facts.status,
                removal_reason=facts.removal_reason,
                resident_kind=facts.resident_kind,
                name=facts.name,
                name_kana=facts.name_kana,
                search_kana=_search_kana(facts, change.alias_kana),
                birth_date=facts.birth_date,
                sex=facts.sex,
                address_lg_code=facts.address_lg_code,
                address=facts.address,
                individual_number_hash=_number_hash(facts.individual_number),
                change_kind=change.change_kind,
                inbox_id=message.id,
            ),
        )
        _rebuild(session, record, now)
        target = facts.resident_code
    audit.record(
        session,
        actor=_municipality_actor(message.source_lg_code),
        action=AuditAction.IDENTITY_CHANGE_APPLIED,
        target_kind="resident_code",
        target_id=target,
        purpose="本人確認情報の更新 (住民基本台帳法 第30条の6)",
        detail=f"source={message.source_lg_code} seq={message.seq} inbox={message.id} "
        f"kind={change.change_kind}{' voided' if facts is None else ''}",
        now=now,
    )


def _identity_for(session: Session, sequence: SourceSequence, facts: IdentityFacts) -> IdentityRecord | None:
    """The identity this record feeds: the one it fed before, else the person's by code or by number.

    By number: a person given a new 住民票コード elsewhere keeps their 個人番号, so the
    new record joins the identity the old one fed instead of starting a second one.
    """
    if sequence.identity_id is not None:
        found = repository.identity(session, sequence.identity_id, for_update=True)
        if found is not None:
            return found
    found = repository.identity_by_code(session, facts.resident_code, for_update=True)
    if found is None and facts.individual_number:
        hashed = _number_hash(facts.individual_number)
        assert hashed is not None
        found = repository.identity_by_number_hash(session, hashed)
    return found


def _search_kana(facts: IdentityFacts, alias_kana: str | None) -> str:
    parts = [facts.name_kana or "", alias_kana or ""]
    return " ".join(normalize_kana(p) for p in parts if p)


def _show(
    record: IdentityRecord,
    facts: IdentityFacts,
    change: IdentityChange,
    *,
    holder: tuple[str, int],
    now: dt.datetime,
) -> None:
    """Make the current row say what the holding record's latest message says."""
    lg_code, person_id = holder
    assert change.effective_on is not None
    record.resident_code = facts.resident_code
    record.prefecture_code = lg_code[:2]
    record.lg_code = lg_code
    record.status = facts.status
    record.removal_reason = facts.removal_reason
    record.resident_kind = facts.resident_kind
    record.name = facts.name
    record.name_kana = facts.name_kana
    record.search_kana = _search_kana(facts, change.alias_kana)
    record.birth_date = facts.birth_date
    record.sex = facts.sex
    record.address_lg_code = facts.address_lg_code
    record.address = facts.address
    record.individual_number_hash = _number_hash(facts.individual_number)
    # Bound to the resident code, like the national number table: a ciphertext moved to
    # another row does not open.
    record.individual_number_encrypted = (
        data_keyring().encrypt(facts.individual_number, associated=facts.resident_code)
        if facts.individual_number
        else None
    )
    record.change_kind = change.change_kind
    record.changed_on = change.effective_on
    record.updated_at = now
    record.source_lg_code = lg_code
    record.source_person_id = person_id


def _rebuild(session: Session, record: IdentityRecord, now: dt.datetime) -> None:
    """Lay the identity's history out again and show its holder's latest message (domain.lay_out)."""
    rows = repository.timeline(session, record.id)
    sources = repository.sources_of(session, record.id)
    started = {(s.source_lg_code, s.source_person_id): s.started_on for s in sources if s.started_on}
    void = {(s.source_lg_code, s.source_person_id) for s in sources if s.void}
    layout = lay_out(
        (
            TimelineEntry(
                h.id, (m.source_lg_code, m.source_person_id), m.seq, h.valid_from, h.status == STATUS_LIVE
            )
            for h, m in rows
        ),
        started,
        void,
    )
    for history, _ in rows:
        ends = layout.valid_to.get(history.id, history.valid_to)
        if ends != history.valid_to:
            history.valid_to = ends
    if layout.current is None or layout.holder is None:
        record.status = STATUS_VOID
        record.updated_at = now
        session.flush()
        return
    message = next(m for h, m in rows if h.id == layout.current.history_id)
    change = _change_of(message)
    assert change.facts is not None
    if change.facts.resident_code != record.resident_code:
        other = repository.identity_by_code(session, change.facts.resident_code)
        if other is not None and other.id != record.id:
            raise ApplyConflict(
                "住民票コードの変更先のコードが別の本人確認情報に使われています。全国センターで確認してください。",
                field="resident_code",
            )
    _show(record, change.facts, change, holder=layout.holder, now=now)
    session.flush()


# ---------------------------------------------------------------------------
# 転出証明書情報 for the destination


@dataclass(frozen=True, slots=True)
class NoticeView:
    id: int
    origin_lg_code: str
    resident_code: str
    effective_on: dt.date
    document: dict[str, Any]
    created_at: dt.datetime


def collect_notices(
    session: Session,
    *,
    sender: str,
    header: EnvelopeHeader,
    lg_code: str,
    after_id: int,
    limit: int,
    route: str,
    now: dt.datetime | None = None,
) -> list[NoticeView]:
    """The 転出証明書情報 addressed to the sender after ``after_id``; a municipality collects only its own."""
    now = now or utcnow()
    _accept_envelope(
        session, sender=sender, expected=EnvelopeKind.NOTICES, header=header, route=route, now=now
    )
    if lg_code != sender:
        raise _refuse(
            session,
            claimed=sender,
            reason=RefusalReason.SENDER_MISMATCH,
            route=route,
            message="他の団体宛ての転出証明書情報は受け取れません。",
        )
    views = []
    for notice in repository.notices_for(session, lg_code, after_id, limit):
        inbox = repository.inbox_message(session, notice.inbox_id)
        assert inbox is not None
        document: dict[str, Any] = _unseal(json.loads(notice.payload))
        views.append(
            NoticeView(
                id=notice.id,
                origin_lg_code=inbox.source_lg_code,
                resident_code=notice.resident_code,
                effective_on=dt.date.fromisoformat(document["effective_on"]),
                document=document,
                created_at=notice.created_at,
            )
        )
    if views:
        audit.record(
            session,
            actor=_municipality_actor(sender),
            action=AuditAction.MOVE_OUT_NOTICES_COLLECTED,
            target_kind="municipality",
            target_id=lg_code,
            purpose="転出証明書情報の通知 (住民基本台帳法 第24条の2)",
            detail=f"count={len(views)} first={views[0].id} last={views[-1].id}",
            now=now,
        )
    return views


# ---------------------------------------------------------------------------
# Reconcile: this side's digest


def identity_digest(
    session: Session, *, lg_code: str, salt: bytes, actor: Actor | None = None
) -> MunicipalityDigest:
    """Every identity the national store holds under ``lg_code``, as keyed hashes (core.replication)."""
    lg = LgCode.parse(lg_code, field="lg_code")
    persons: dict[str, PersonDigest] = {}
    for row, started_on in repository.identities_of(session, lg.value):
        number = (
            data_keyring().decrypt(row.individual_number_encrypted, row.resident_code)
            if row.individual_number_encrypted
            else None
        )
        persons[row.resident_code] = PersonDigest.of(
            identity_values(
                resident_code=row.resident_code,
                individual_number=number,
                name=row.name,
                name_kana=row.name_kana,
                birth_date=row.birth_date,
                sex=row.sex,
                address_lg_code=row.address_lg_code,
                address=row.address,
                status=row.status,
                removal_reason=row.removal_reason,
                resident_kind=row.resident_kind,
            ),
            salt=salt,
            started_on=started_on,
        )
    audit.record(
        session,
        actor=actor or _operator(),
        action=AuditAction.NATIONAL_RECONCILE_DIGEST,
        target_kind="municipality",
        target_id=lg.value,
        purpose="本人確認情報の整合性確認",
        detail=f"count={len(persons)}",
    )
    return MunicipalityDigest(lg_code=lg.value, persons=persons)


def holders_of(session: Session, resident_codes: Sequence[str]) -> dict[str, tuple[str, dt.date | None]]:
    """Which municipality holds each code now, and when its record began; codes nobody holds are absent."""
    return repository.holders(session, resident_codes)


def pending_count(session: Session, *, lg_code: str | None = None) -> int:
    """Messages received but waiting for an earlier one (a gap the sender has yet to fill)."""
    return repository.count_pending(session, lg_code)
