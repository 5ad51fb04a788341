"""The relay: the register's outbox to the national inbox over HTTP, and 転出証明書情報 back.

Delivery is at-least-once and the inbox's idempotency keys make the effect exactly-once:
a batch is read in one short municipal transaction, sent (signed afresh on every
attempt) with no transaction open, and marked delivered in another transaction only for
the keys the inbox acknowledged. A relay killed anywhere in between sends the same
messages again next time; the inbox answers "duplicate" and nothing is applied twice.

The relay speaks HTTP only: it imports nothing of jumin.network, as a relay in another
building would. Collected 転出証明書情報 become expected arrivals (arrival_models), so the
destination's window sees who is coming before they come.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind
from jumin.audit import service as audit
from jumin.audit.domain import Actor, AuditAction
from jumin.certificates import widearea
from jumin.core.errors import InvalidValue, NotFound, RuleViolation
from jumin.core.municipalities import load_master
from jumin.core.replication import (
    ACKNOWLEDGED,
    CHANGES_PATH,
    MAX_BATCH,
    MAX_NOTICES,
    NONCE_HEADER,
    NOTICES_PATH,
    SENDER_HEADER,
    SENT_AT_HEADER,
    SIGNATURE_HEADER,
    DeliveryStatus,
    MessageKind,
    MunicipalityDigest,
    PersonDigest,
    canonical_bytes,
    changes_envelope,
    format_instant,
    identity_values,
    municipality_key_name,
    notices_envelope,
    parse_instant,
    record_rank,
    sign,
)
from jumin.db import default_engine, unit_of_work, utcnow
from jumin.keys import SigningKey, data_keyring, load_or_create_ed25519
from jumin.registry import outbox_repository, service
from jumin.registry.arrival_models import ExpectedArrival
from jumin.registry.domain import RELATIONSHIP_HEAD, EventKind, EventOutcome, RecordStatus, RemovalReason
from jumin.registry.models import OutboxMessage
from jumin.registry.schemas import ArrivalMoveInRequest, ForeignInput, MoveInRequest, PersonInput
from jumin.request_context import current_request_id, new_request_id, set_request_id

log = logging.getLogger("jumin.relay")
# httpx logs every request's full URL, query included, at INFO; logs here name routes only.
logging.getLogger("httpx").setLevel(logging.WARNING)

RELAY_PURPOSE = "本人確認情報の通知 (住民基本台帳法 第30条の6)"
ARRIVALS_PURPOSE = "転出証明書情報の受領 (住民基本台帳法 第24条の2)"
_ARRIVAL_AAD = "registry-expected-arrival"
_SEALED = "enc:"


# ---------------------------------------------------------------------------
# The outbox, as messages on the wire (core.replication)


@dataclass(frozen=True, slots=True)
class OutgoingBatch:
    """Undelivered messages of one municipality, in outbox order."""

    sender: str
    first_id: int
    last_id: int
    messages: tuple[dict[str, Any], ...]

    @property
    def keys(self) -> list[str]:
        return [m["idempotency_key"] for m in self.messages]


def wire_message(message: OutboxMessage, payload: Mapping[str, Any]) -> dict[str, Any]:
    """One outbox message as the inbox takes it (:func:`wire_fields`)."""
    return wire_fields(
        kind=message.kind,
        idempotency_key=message.idempotency_key,
        person_id=message.person_id,
        seq=message.seq,
        resident_code=message.resident_code,
        destination_lg_code=message.destination_lg_code,
        created_at=message.created_at,
        payload=payload,
    )


def wire_fields(
    *,
    kind: str,
    idempotency_key: str,
    person_id: int,
    seq: int,
    resident_code: str,
    destination_lg_code: str | None,
    created_at: dt.datetime,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """An outbox message's fields as the inbox takes them (a bulk import has them before the row).

    An identity change carries the 本人確認情報 only, not the whole record: the national
    store keeps nothing else (本籍, 続柄 stay in the register). The 転出証明書情報 is the
    record the destination needs, so it goes whole, with the time the 転出 was recorded.
    """
    if kind == MessageKind.IDENTITY_CHANGED.value:
        if payload.get("voided"):
            body: dict[str, Any] = {"voided": True, "change_kind": payload["change_kind"]}
        else:
            foreign = payload.get("foreign") or {}
            body = {
                "effective_on": payload["effective_on"],
                "change_kind": payload["change_kind"],
                "became_resident_on": payload.get("became_resident_on"),
                "identity": payload["identity"],
                "alias_kana": foreign.get("alias_kana"),
            }
    else:
        body = dict(payload) | {"recorded_at": format_instant(created_at)}
    return {
        "idempotency_key": idempotency_key,
        "source_person_id": person_id,
        "seq": seq,
        "kind": kind,
        "resident_code": resident_code,
        "destination_lg_code": destination_lg_code,
        "payload": body,
    }


def served_municipalities(session: Session) -> list[str]:
    """The municipalities whose register lives in this database."""
    codes = set(outbox_repository.outbox_lg_codes(session)) | set(outbox_repository.person_lg_codes(session))
    codes |= {o.code for o in accounts.list_organisations(session) if o.kind is OrganisationKind.MUNICIPALITY}
    return sorted(codes)


def next_batch(session: Session, *, lg_codes: Collection[str] | None, limit: int) -> OutgoingBatch | None:
    """The oldest undelivered messages of the municipality whose message is oldest.

    One municipality per batch, as each is signed with one municipality's key. A
    record's messages keep their order (the outbox id follows the record's sequence);
    messages of different municipalities need no common order, as the inbox ranks a
    person's records by when they began, not by when their messages arrive.
    """
    if lg_codes is None:
        rows = service.outbox(session, lg_code=None, undelivered_only=True, limit=limit)
    else:
        merged = [
            r
            for lg in lg_codes
            for r in service.outbox(session, lg_code=lg, undelivered_only=True, limit=limit)
        ]
        rows = sorted(merged, key=lambda r: r[0].id)[:limit]
    if not rows:
        return None
    sender = rows[0][0].lg_code
    mine = [(m, p) for m, p in rows if m.lg_code == sender]
    return OutgoingBatch(
        sender=sender,
        first_id=mine[0][0].id,
        last_id=mine[-1][0].id,
        messages=tuple(wire_message(m, p) for m, p in mine),
    )


def acknowledge(
    session: Session, *, batch: OutgoingBatch, statuses: Mapping[str, str], now: dt.datetime | None = None
) -> int:
    """Mark what the inbox acknowledged as delivered, and audit that the batch left."""
    now = now or utcnow()
    acknowledged = {s.value for s in ACKNOWLEDGED}
    keys = [k for k in batch.keys if statuses.get(k) in acknowledged]
    marked = outbox_repository.mark_delivered(session, keys, now)
    counts = {s.value: sum(1 for k in batch.keys if statuses.get(k) == s.value) for s in DeliveryStatus}
    audit.record(
        session,
        actor=Actor.system(batch.sender),
        action=AuditAction.REPLICATION_BATCH_SENT,
        target_kind="municipality",
        target_id=batch.sender,
        purpose=RELAY_PURPOSE,
        detail=f"count={len(batch.messages)} first_id={batch.first_id} last_id={batch.last_id} "
        + " ".join(f"{k}={v}" for k, v in counts.items()),
        now=now,
    )
    return marked


def undelivered_count(session: Session, *, lg_code: str | None = None) -> int:
    return outbox_repository.undelivered_count(session, lg_code)


# ---------------------------------------------------------------------------
# Expected arrivals


def _seal(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (_SEALED + data_keyring().encrypt(v, _ARRIVAL_AAD))
            if k == "individual_number" and isinstance(v, str)
            else _seal(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_seal(v) for v in value]
    return value


def arrival_cursor(session: Session, *, lg_code: str) -> int:
    """The last national notice id stored: collection resumes after it."""
    return outbox_repository.arrival_cursor(session, lg_code)


def store_arrivals(
    session: Session, *, lg_code: str, notices: Sequence[Mapping[str, Any]], now: dt.datetime | None = None
) -> int:
    """Keep each collected 転出証明書情報 once, its 個人番号 sealed; returns how many were new."""
    now = now or utcnow()
    have = outbox_repository.stored_notice_ids(session, lg_code, {int(n["id"]) for n in notices})
    rows = []
    for notice in notices:
        notice_id = int(notice["id"])
        if notice_id in have:
            continue
        have.add(notice_id)
        document = dict(notice["document"])
        identity = document["identity"]
        announced = parse_instant(str(document.get("recorded_at", ""))) or parse_instant(notice["created_at"])
        rows.append(
            ExpectedArrival(
                lg_code=lg_code,
                notice_id=notice_id,
                origin_lg_code=notice["origin_lg_code"],
                resident_code=notice["resident_code"],
                name=identity["name"],
                name_kana=identity["name_kana"],
                birth_date=dt.date.fromisoformat(identity["birth_date"]),
                sex=identity["sex"],
                planned_on=dt.date.fromisoformat(notice["effective_on"]),
                origin_address=identity["address"],
                payload=json.dumps(_seal(document), ensure_ascii=False, sort_keys=True),
                announced_at=announced or now,
                received_at=now,
            )
        )
    if rows:
        outbox_repository.add_arrivals(session, rows)
        audit.record(
            session,
            actor=Actor.system(lg_code),
            action=AuditAction.EXPECTED_ARRIVALS_RECEIVED,
            target_kind="register",
            target_id="expected_arrivals",
            purpose=ARRIVALS_PURPOSE,
            detail=f"count={len(rows)} first_notice={rows[0].notice_id} last_notice={rows[-1].notice_id}",
            now=now,
        )
    return len(rows)


@dataclass(frozen=True, slots=True)
class ArrivalView:
    id: int
    notice_id: int
    origin_lg_code: str
    resident_code: str
    name: str
    name_kana: str | None
    birth_date: dt.date
    sex: str
    planned_on: dt.date
    origin_address: str
    received_at: dt.datetime
    arrived: bool  # a record with this 住民票コード was made here after the 転出 was recorded


def list_arrivals(
    session: Session,
    *,
    actor: Actor,
    lg_code: str,
    include_arrived: bool = False,
    limit: int = 500,
    offset: int = 0,
    purpose: str,
) -> list[ArrivalView]:
    """転入予定者: persons announced to this municipality, the earliest planned move first."""
    rows = outbox_repository.arrivals(session, lg_code, limit=limit, offset=offset)
    registered = outbox_repository.registered_since(session, lg_code, {r.resident_code for r in rows})
    views = []
    for r in rows:
        made = registered.get(r.resident_code)
        arrived = made is not None and made >= r.announced_at
        if arrived and not include_arrived:
            continue
        views.append(
            ArrivalView(
                id=r.id,
                notice_id=r.notice_id,
                origin_lg_code=r.origin_lg_code,
                resident_code=r.resident_code,
                name=r.name,
                name_kana=r.name_kana,
                birth_date=r.birth_date,
                sex=r.sex,
                planned_on=r.planned_on,
                origin_address=r.origin_address,
                received_at=r.received_at,
                arrived=arrived,
            )
        )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REGISTRY_READ,
        target_kind="register",
        target_id="expected_arrivals",
        purpose=purpose,
        detail=f"rows={len(views)} include_arrived={include_arrived}",
    )
    return views


# ---------------------------------------------------------------------------
# The one-stop window (書かないワンストップ窓口): a 転入 completed from expected arrivals

# 特例転入 only within 30 days of the planned move date given at the 転出 (DOMAIN.md "Moves and
# deadlines"; 住基法施行令 第24条の2, unconfirmed against its text). Later, the person needs
# the paper 転出証明書 and an ordinary 転入届.
CARD_HOLDER_MOVE_IN_DAYS = 30
ARRIVAL_MOVE_IN_REASON = "転出証明書情報による転入 (書かないワンストップ窓口)"
_FOREIGN_INPUT_KEYS = frozenset(ForeignInput.model_fields)


def _unseal_arrival(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: data_keyring().decrypt(v[len(_SEALED) :], _ARRIVAL_AAD)
            if k == "individual_number" and isinstance(v, str) and v.startswith(_SEALED)
            else _unseal_arrival(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unseal_arrival(v) for v in value]
    return value


def _document(row: ExpectedArrival) -> dict[str, Any]:
    """The 転出証明書情報 as the origin sent it, its 個人番号 opened."""
    return dict(_unseal_arrival(json.loads(row.payload)))


@dataclass(frozen=True, slots=True)
class ArrivingPerson:
    arrival_id: int
    resident_code: str
    name: str
    name_kana: str | None
    birth_date: dt.date
    sex: str
    resident_kind: str
    origin_relationship: str
    relationship: str  # suggested for the new household
    has_individual_number: bool
    arrived: bool


@dataclass(frozen=True, slots=True)
class ArrivalDetail:
    """An expected arrival and the others of its origin household announced for the same day."""

    arrival: ArrivalView
    # Everyone of the origin household announced for the same day, arrived or not: head
    # first, then by birth date.
    persons: tuple[ArrivingPerson, ...]
    origin_address: str
    destination: str  # the new address the person gave at the 転出
    address_line: str  # the destination without this municipality's name: what the clerk confirms
    head_comes_along: bool  # False: the suggested 続柄 need the clerk's check
    card_holder_until: dt.date  # the last day a 特例転入 can be notified


def _place_names(lg_code: str) -> tuple[str, ...]:
    """How an address in ``lg_code`` may begin: with or without its prefecture."""
    master = load_master()
    entry = master.find(lg_code)
    if entry is None:
        return ()
    prefecture = master.find(entry.prefecture_code)
    names = [entry.name]
    if prefecture is not None and prefecture.code != entry.code:
        names.insert(0, prefecture.name + entry.name)
    return tuple(names)


def address_line_of(destination: str, lg_code: str) -> str:
    """The part of a full address after the municipality's name (the register's address line)."""
    text = destination.strip()
    for name in _place_names(lg_code):
        if text.startswith(name):
            return text[len(name) :].strip()
    return text


def _arrived(session: Session, lg_code: str, rows: Sequence[ExpectedArrival]) -> dict[int, bool]:
    registered = outbox_repository.registered_since(session, lg_code, {r.resident_code for r in rows})
    return {
        r.id: (made := registered.get(r.resident_code)) is not None and made >= r.announced_at for r in rows
    }


def arrival(session: Session, *, actor: Actor, lg_code: str, arrival_id: int, purpose: str) -> ArrivalDetail:
    """One expected arrival with its household, as the one-stop window pre-fills the 転入 from it."""
    row = outbox_repository.arrivals_by_ids(session, lg_code, [arrival_id]).get(arrival_id)
    if row is None:
        raise NotFound("この転入予定者はこの団体に届いていません。", field="arrival_id")
    document = _document(row)
    household = document.get("household_id")
    group = [
        (r, d)
        for r in outbox_repository.arrivals_from(
            session, lg_code, origin_lg_code=row.origin_lg_code, planned_on=row.planned_on
        )
        if (d := (document if r.id == row.id else _document(r))).get("household_id") == household
    ]
    arrived = _arrived(session, lg_code, [r for r, _ in group])
    group.sort(key=lambda rd: (rd[1].get("relationship") != RELATIONSHIP_HEAD, rd[0].birth_date, rd[0].id))
    coming = [r.id for r, _ in group if not arrived[r.id]]
    head_along = any(d.get("relationship") == RELATIONSHIP_HEAD for r, d in group if r.id in coming)
    persons = []
    for r, d in group:
        origin_relationship = str(d.get("relationship") or "")
        # Without the head, the eldest still to come heads the new household; the others'
        # 続柄 are to the old head, so they are left for the clerk to give.
        first = bool(coming) and r.id == coming[0]
        suggested = origin_relationship if head_along else (RELATIONSHIP_HEAD if first else "")
        persons.append(
            ArrivingPerson(
                arrival_id=r.id,
                resident_code=r.resident_code,
                name=r.name,
                name_kana=r.name_kana,
                birth_date=r.birth_date,
                sex=r.sex,
                resident_kind=str(d.get("resident_kind") or "japanese"),
                origin_relationship=origin_relationship,
                relationship=suggested,
                has_individual_number=bool(d.get("individual_number")),
                arrived=arrived[r.id],
            )
        )
    planned = document.get("planned_move_out") or {}
    destination = str(planned.get("destination") or "")
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REGISTRY_READ,
        target_kind="expected_arrival",
        target_id=str(row.id),
        purpose=purpose,
        detail=f"persons={len(persons)}",
    )
    return ArrivalDetail(
        arrival=ArrivalView(
            id=row.id,
            notice_id=row.notice_id,
            origin_lg_code=row.origin_lg_code,
            resident_code=row.resident_code,
            name=row.name,
            name_kana=row.name_kana,
            birth_date=row.birth_date,
            sex=row.sex,
            planned_on=row.planned_on,
            origin_address=row.origin_address,
            received_at=row.received_at,
            arrived=arrived[row.id],
        ),
        persons=tuple(persons),
        origin_address=row.origin_address,
        destination=destination,
        address_line=address_line_of(destination, lg_code),
        head_comes_along=head_along,
        card_holder_until=row.planned_on + dt.timedelta(days=CARD_HOLDER_MOVE_IN_DAYS),
    )


def _person_input(document: Mapping[str, Any], relationship: str, index: int) -> PersonInput:
    foreign = document.get("foreign")
    data = {
        "resident_kind": document.get("resident_kind") or "japanese",
        "family_name": document.get("family_name"),
        "given_name": document.get("given_name") or "",
        "family_name_kana": document.get("family_name_kana"),
        "given_name_kana": document.get("given_name_kana"),
        "birth_date": document.get("birth_date"),
        "sex": document.get("sex"),
        "relationship": relationship,
        "honseki": document.get("honseki"),
        "hittousha": document.get("hittousha"),
        "old_surname": document.get("old_surname"),
        "old_surname_kana": document.get("old_surname_kana"),
        "resident_code": document.get("resident_code"),
        "individual_number": document.get("individual_number"),
        "foreign": {k: v for k, v in foreign.items() if k in _FOREIGN_INPUT_KEYS} if foreign else None,
    }
    try:
        return PersonInput.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        field_name = f"members.{index}.relationship" if where == "relationship" else f"members.{index}"
        raise InvalidValue(
            f"転出証明書情報の内容を転入に使えません ({where})。通常の転入届として入力してください。",
            field=field_name,
        ) from exc


def move_in_from_arrivals(
    session: Session, *, ctx: service.RegistryContext, request: ArrivalMoveInRequest
) -> EventOutcome:
    """転入 (特例転入 when the card is shown) of announced persons, without retyping them.

    Everything the 転出証明書情報 says is taken as the origin sent it; the request adds
    the new address, the dates, the household and each person's 続柄. The origin's
    records are closed by the move-in itself (service.move_in's 転入通知).
    """
    ids = [m.arrival_id for m in request.members]
    if len(set(ids)) != len(ids):
        raise InvalidValue("同じ転入予定者が2回指定されています。", field="members")
    rows = outbox_repository.arrivals_by_ids(session, ctx.lg_code, ids)
    for index, arrival_id in enumerate(ids):
        if arrival_id not in rows:
            raise NotFound("この転入予定者はこの団体に届いていません。", field=f"members.{index}.arrival_id")
    ordered = [rows[i] for i in ids]
    origins = {r.origin_lg_code for r in ordered}
    if len(origins) != 1:
        raise RuleViolation(
            "転出元の市区町村が異なる人は、別々の転入として記録してください。", field="members"
        )
    arrived = _arrived(session, ctx.lg_code, ordered)
    for index, r in enumerate(ordered):
        if arrived[r.id]:
            raise RuleViolation(
                f"{r.name}さんの転入は既に記録されています。", field=f"members.{index}.arrival_id"
            )
    notified = request.notified_on or ctx.today
    documents = [_document(r) for r in ordered]
    if request.card_holder:
        for r, d in zip(ordered, documents, strict=True):
            last = r.planned_on + dt.timedelta(days=CARD_HOLDER_MOVE_IN_DAYS)
            if notified > last:
                raise RuleViolation(
                    f"転出予定日から{CARD_HOLDER_MOVE_IN_DAYS}日を過ぎているため特例転入はできません"
                    f" ({r.name}さん、期限 {last.isoformat()})。"
                    "転出証明書による通常の転入として記録してください。",
                    field="card_holder",
                )
            if not d.get("individual_number"):
                raise RuleViolation(
                    f"{r.name}さんの転出証明書情報に個人番号がないため特例転入はできません。",
                    field="card_holder",
                )
    members = [
        _person_input(d, m.relationship, i)
        for i, (m, d) in enumerate(zip(request.members, documents, strict=True))
    ]
    move_in = MoveInRequest(
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason or ARRIVAL_MOVE_IN_REASON,
        address=request.address,
        previous_address=ordered[0].origin_address[:200],
        origin_lg_code=ordered[0].origin_lg_code,
        household=request.household,
        members=members,
    )
    kind = EventKind.MOVE_IN_CARD_HOLDER if request.card_holder else EventKind.MOVE_IN
    return service.move_in(session, ctx=ctx, request=move_in, kind=kind)


# ---------------------------------------------------------------------------
# Reconcile: this side's digest


def register_digest(
    session: Session, *, lg_code: str, salt: bytes, actor: Actor | None = None
) -> MunicipalityDigest:
    """The identity information the register holds now, one entry per 住民票コード (core.replication).

    A record closed by a confirmed 転出 is left out: the destination's record holds the
    person now. Of two records here with the same code (back from abroad), the one that
    began last counts, as on the national side.
    """
    chosen: dict[str, tuple[tuple[dt.date, bool, int], PersonDigest]] = {}
    for person, version in outbox_repository.latest_versions(session, lg_code):
        record = service.version_summary(version)
        if person.lifecycle == "removed" and record.removal_reason is RemovalReason.MOVE_OUT:
            continue
        identity = record.identity()
        digest = PersonDigest.of(
            identity_values(
                resident_code=identity.resident_code,
                individual_number=identity.individual_number,
                name=identity.name,
                name_kana=identity.name_kana,
                birth_date=identity.birth_date,
                sex=identity.sex.value,
                address_lg_code=identity.address_lg_code,
                address=identity.address,
                status=identity.status.value,
                removal_reason=identity.removal_reason.value if identity.removal_reason else None,
                resident_kind=identity.resident_kind.value,
            ),
            salt=salt,
            started_on=record.became_resident_on,
        )
        rank = record_rank(record.became_resident_on, identity.status is RecordStatus.LIVE, person.id)
        held = chosen.get(identity.resident_code)
        if held is None or held[0] < rank:
            chosen[identity.resident_code] = (rank, digest)
    audit.record(
        session,
        actor=actor or Actor.system(lg_code),
        action=AuditAction.REGISTRY_RECONCILE_DIGEST,
        target_kind="register",
        target_id=lg_code,
        purpose="本人確認情報の整合性確認",
        detail=f"count={len(chosen)}",
    )
    return MunicipalityDigest(lg_code=lg_code, persons={code: d for code, (_, d) in chosen.items()})


# ---------------------------------------------------------------------------
# Over HTTP


class RelayError(Exception):
    """The relay cannot go on now. Messages say what and why, never whom."""


class RelayRefused(RelayError):
    """The inbox refused (key not registered, clock off, a message it cannot take): retrying will not help."""


class RelayUnavailable(RelayError):
    """The inbox did not answer after every attempt."""


@dataclass
class RelayReport:
    sent: int = 0  # messages the inbox acknowledged
    batches: int = 0
    arrivals: int = 0  # 転出証明書情報 newly stored as expected arrivals
    errors: list[str] = field(default_factory=list)
    wide_area_notices: int = 0  # 広域交付: copy-issued notices the home municipalities received

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "batches": self.batches,
            "arrivals": self.arrivals,
            "wide_area_notices": self.wide_area_notices,
            "errors": self.errors,
        }


_RETRYABLE_PROBLEMS = ("urn:jumin:problem:replication-race",)


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}"
    problem = f"{body.get('type', '')} {body.get('title', '')}: {body.get('detail', '')}"
    return f"HTTP {response.status_code} {problem}"


def _retryable(response: httpx.Response) -> bool:
    if response.status_code >= 500 or response.status_code in (408, 429):
        return True
    if response.status_code == 409:
        try:
            return bool(response.json().get("type") in _RETRYABLE_PROBLEMS)
        except (ValueError, AttributeError):
            return False
    return False


class Relay:
    """Drains the outbox and collects notices, over one HTTP client, with bounded back-off.

    ``attempts`` tries per request; between them the wait doubles from ``base_delay`` up
    to ``max_delay``, each scaled by a random factor in [0.5, 1] so that relays restarted
    together do not retry in step.
    """

    def __init__(
        self,
        *,
        url: str,
        engine: Engine | None = None,
        session_scope: Callable[[], AbstractContextManager[Session]] | None = None,
        lg_codes: Collection[str] | None = None,
        batch_size: int = 100,
        attempts: int = 8,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        timeout: float = 30.0,
        key_dir: Path | None = None,
        http: httpx.Client | None = None,
        stop: threading.Event | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be within 1..{MAX_BATCH}")
        self.url = url.rstrip("/")
        # One municipal unit of work per step; a test joins them to its own transaction.
        self._scope = session_scope or (lambda: unit_of_work(engine or default_engine()))
        self.lg_codes = sorted(set(lg_codes)) if lg_codes else None
        self.batch_size = batch_size
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.key_dir = key_dir
        self.http = http or httpx.Client(timeout=timeout)
        self.stop = stop or threading.Event()
        self._now = now
        self._keys: dict[str, SigningKey] = {}
        self._random = random.Random()  # noqa: S311 (jitter, not a secret)

    def close(self) -> None:
        self.http.close()

    def _key(self, lg_code: str) -> SigningKey:
        key = self._keys.get(lg_code)
        if key is None:
            key = self._keys[lg_code] = load_or_create_ed25519(municipality_key_name(lg_code), self.key_dir)
        return key

    def _wait(self, attempt: int) -> None:
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * self._random.uniform(0.5, 1.0)
        self.stop.wait(delay)

    def _call(self, what: str, request: Callable[[], httpx.Response]) -> httpx.Response:
        reason = ""
        for attempt in range(1, self.attempts + 1):
            if self.stop.is_set():
                raise RelayUnavailable(f"{what}: 停止の指示により中断しました")
            try:
                response = request()
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code == 200:
                    return response
                if not _retryable(response):
                    raise RelayRefused(f"{what}: {_problem(response)}")
                reason = _problem(response)
            if attempt < self.attempts:
                log.warning(
                    "national inbox unavailable, retrying",
                    extra={"what": what, "attempt": attempt, "reason": reason},
                )
                self._wait(attempt)
        raise RelayUnavailable(
            f"{what}: {self.attempts}回試みましたが全国センターに届きませんでした ({reason})"
        )

    def send(self, batch: OutgoingBatch) -> dict[str, str]:
        """POST one batch until the inbox answers; each attempt is a new envelope (new nonce)."""
        key = self._key(batch.sender)

        def post() -> httpx.Response:
            body = canonical_bytes(
                changes_envelope(
                    sender=batch.sender,
                    sent_at=self._now(),
                    nonce=token_hex(16),
                    messages=list(batch.messages),
                )
            )
            return self.http.post(
                self.url + CHANGES_PATH,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Request-ID": current_request_id(),
                    SENDER_HEADER: batch.sender,
                    SIGNATURE_HEADER: sign(key.private_key, body),
                },
            )

        response = self._call(f"送信 {batch.sender}", post)
        return {r["idempotency_key"]: r["status"] for r in response.json()["results"]}

    def fetch_notices(self, lg_code: str, after_id: int, limit: int = MAX_NOTICES) -> dict[str, Any]:
        key = self._key(lg_code)

        def get() -> httpx.Response:
            sent_at = format_instant(self._now())
            nonce = token_hex(16)
            signed = notices_envelope(
                sender=lg_code, sent_at=sent_at, nonce=nonce, lg_code=lg_code, after_id=after_id, limit=limit
            )
            return self.http.get(
                self.url + NOTICES_PATH,
                params={"lg_code": lg_code, "after_id": after_id, "limit": limit},
                headers={
                    "X-Request-ID": current_request_id(),
                    SENDER_HEADER: lg_code,
                    SENT_AT_HEADER: sent_at,
                    NONCE_HEADER: nonce,
                    SIGNATURE_HEADER: sign(key.private_key, signed),
                },
            )

        data: dict[str, Any] = self._call(f"受信 {lg_code}", get).json()
        return data

    def drain(self, report: RelayReport) -> None:
        """Send batches until the outbox has nothing undelivered (or every sender left is refused)."""
        refused: set[str] = set()
        while not self.stop.is_set():
            with self._scope() as session:
                lg_codes = self.lg_codes
                if refused:
                    lg_codes = [c for c in (lg_codes or served_municipalities(session)) if c not in refused]
                batch = next_batch(session, lg_codes=lg_codes, limit=self.batch_size)
            if batch is None:
                return
            try:
                statuses = self.send(batch)
            except RelayRefused as exc:
                report.errors.append(str(exc))
                refused.add(batch.sender)
                continue
            with self._scope() as session:
                acknowledge(session, batch=batch, statuses=statuses)
            acked = sum(1 for k in batch.keys if statuses.get(k) in {s.value for s in ACKNOWLEDGED})
            report.sent += acked
            report.batches += 1
            if acked == 0:
                report.errors.append(f"送信 {batch.sender}: 全国センターがどのメッセージも受領しませんでした")
                refused.add(batch.sender)

    def collect(self, report: RelayReport) -> None:
        """Fetch each served municipality's new 転出証明書情報 and store them as expected arrivals."""
        with self._scope() as session:
            codes = self.lg_codes or served_municipalities(session)
            cursors = {lg: arrival_cursor(session, lg_code=lg) for lg in codes}
        for lg_code in codes:
            after = cursors[lg_code]
            while not self.stop.is_set():
                try:
                    data = self.fetch_notices(lg_code, after)
                except RelayRefused as exc:
                    report.errors.append(str(exc))
                    break
                notices = data["notices"]
                if not notices:
                    break
                with self._scope() as session:
                    report.arrivals += store_arrivals(session, lg_code=lg_code, notices=notices)
                after = int(data["next_after_id"])

    def run_once(self) -> RelayReport:
        # One id per cycle, sent along: both sides' audit entries of a cycle share it.
        set_request_id("relay-" + new_request_id())
        report = RelayReport()
        self.drain(report)
        self.collect(report)
        self.deliver_wide_area_notices(report)
        return report

    def deliver_wide_area_notices(self, report: RelayReport) -> None:
        """Tell home municipalities of the 広域交付 copies issued here (certificates.widearea)."""
        delivered, errors = widearea.deliver_issued_notices(
            self._scope, http=self.http, url=self.url, lg_codes=self.lg_codes, key_dir=self.key_dir
        )
        report.wide_area_notices += delivered
        report.errors.extend(errors)

    def run_forever(self, *, interval: float, before_each: Callable[[], None] | None = None) -> None:
        """Cycle until ``stop`` is set; a failed cycle is logged and the next one tries again."""
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if before_each is not None:
                    before_each()
                report = self.run_once()
                if report.sent or report.arrivals or report.wide_area_notices:
                    log.info(
                        "relay cycle",
                        extra={
                            "sent": report.sent,
                            "arrivals": report.arrivals,
                            "wide_area_notices": report.wide_area_notices,
                        },
                    )
                for error in report.errors:
                    log.error("relay refused", extra={"reason": error})
            except RelayError as exc:
                log.warning("relay cycle failed", extra={"reason": str(exc)})
            except Exception:
                log.exception("relay cycle failed")
            self.stop.wait(max(0.0, interval - (time.monotonic() - started)))
