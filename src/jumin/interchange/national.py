"""The national side of a bulk import: seeding the identity store from a municipality's first messages.

A municipality's register, just imported, holds one or two outbox messages per person
(core.replication's wire format: the person live from the start of the record, and
closed on its removal). The inbox would apply them one by one; this applies the same
messages in bulk, writing exactly what the inbox would write for them — the inbox rows
(applied), the identity, its history, the record's sequence, the allocation of the
resident code and the 個人番号 — so that later messages of the same records follow on
as if the inbox had applied the first ones, and ``jumin network reconcile`` proves the two
sides equal.

Only messages the inbox would apply without looking at anything else are seeded: a
record's first messages, in sequence from 1, for a resident code the store does not hold
yet. Anything else (a person already known nationally, from another municipality) is
left for the relay, which applies it through the inbox's ordinary rules.

This module is national code: it imports nothing of the municipal register.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, AuditAction
from jumin.core.municipalities import MunicipalityKind, load_master
from jumin.core.names import normalize_kana
from jumin.core.replication import DeliveryStatus
from jumin.db import is_one_of
from jumin.interchange.bulk import BulkLoader, analyze
from jumin.keys import data_keyring, lookup_hasher
from jumin.network.identity.domain import STATUS_LIVE, TimelineEntry, lay_out
from jumin.network.identity.models import (
    IdentityHistory,
    IdentityRecord,
    InboxMessage,
    SourceSequence,
)
from jumin.network.identity.schemas import IdentityChangedMessage
from jumin.network.models import NationalIndividualNumber, NationalResidentCode

__all__ = ["SeedOutcome", "refresh_statistics", "seed_identities"]

SEED_PURPOSE = "本人確認情報の一括登録 (住民基本台帳の移行)"
# The inbox's sealing (network.identity.service): same prefix and associated data.
_SEALED = "enc:"
_INBOX_AAD = "national-inbox"
_NUMBER_HASH = "individual_number"
# A number the store did not derive (it came with a migrated register): its counter is
# below every derived one, so a later 番号変更 derives from counter 0 on.
IMPORTED_COUNTER = -1


@dataclass
class SeedOutcome:
    statuses: dict[str, str] = field(default_factory=dict)  # idempotency key → applied / duplicate
    left: dict[str, str] = field(default_factory=dict)  # idempotency key → why the relay must carry it
    persons: int = 0


def _existing(session: Session, column: Any, values: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for among in is_one_of(session, column, values):
        found.update(str(v) for v in session.execute(select(column).where(among)).scalars())
    return found


def refresh_statistics(session: Session) -> None:
    """ANALYZE the national tables a bulk seed grows and queries (see importer.refresh_statistics)."""
    analyze(
        session,
        (
            IdentityRecord,
            IdentityHistory,
            InboxMessage,
            SourceSequence,
            NationalResidentCode,
            NationalIndividualNumber,
        ),
    )


def seed_identities(
    session: Session, *, sender: str, messages: Sequence[Mapping[str, Any]], now: dt.datetime | None = None
) -> SeedOutcome:
    """Apply ``sender``'s first messages in bulk; the caller commits (one national unit of work)."""
    now = now or dt.datetime.now(dt.UTC)
    outcome = SeedOutcome()
    entry = load_master().find(sender)
    if entry is None or entry.kind is MunicipalityKind.PREFECTURE:
        outcome.left = {
            str(m.get("idempotency_key")): "送信元が住民基本台帳を持つ団体ではありません" for m in messages
        }
        return outcome

    parsed: dict[int, list[IdentityChangedMessage]] = defaultdict(list)
    for raw in messages:
        key = str(raw.get("idempotency_key"))
        try:
            message = IdentityChangedMessage.model_validate(raw)
        except ValidationError as exc:
            outcome.left[key] = f"メッセージの形式が不正です: {exc.errors()[0]['msg']}"
            continue
        parsed[message.source_person_id].append(message)

    keys = [m.idempotency_key for ms in parsed.values() for m in ms]
    known = _existing(session, InboxMessage.idempotency_key, keys)
    for person_id in list(parsed):
        fresh = [m for m in parsed[person_id] if m.idempotency_key not in known]
        for m in parsed[person_id]:
            if m.idempotency_key in known:
                outcome.statuses[m.idempotency_key] = DeliveryStatus.DUPLICATE.value
        if fresh:
            parsed[person_id] = sorted(fresh, key=lambda m: m.seq)
        else:
            del parsed[person_id]

    person_ids = list(parsed)
    sequenced: set[int] = set()
    for among in is_one_of(session, SourceSequence.source_person_id, person_ids):
        sequenced.update(
            int(v)
            for v in session.execute(
                select(SourceSequence.source_person_id).where(SourceSequence.source_lg_code == sender, among)
            ).scalars()
        )
    codes = sorted({m.resident_code for ms in parsed.values() for m in ms})
    held_codes = _existing(session, IdentityRecord.resident_code, codes)
    numbered_codes = _existing(session, NationalIndividualNumber.resident_code, codes)
    allocated = _existing(session, NationalResidentCode.code, codes)
    hash_of = lookup_hasher(_NUMBER_HASH)
    number_hashes: dict[str, str] = {}
    for ms in parsed.values():
        facts = ms[-1].payload.identity
        if facts is not None and facts.individual_number:
            number_hashes[facts.resident_code] = hash_of(facts.individual_number)
    taken_hashes = _existing(
        session, NationalIndividualNumber.number_hash, sorted(set(number_hashes.values()))
    )

    def leave(ms: list[IdentityChangedMessage], reason: str) -> None:
        for m in ms:
            outcome.left[m.idempotency_key] = reason

    seedable: list[tuple[int, list[IdentityChangedMessage]]] = []
    for person_id, ms in parsed.items():
        codes_here = {m.resident_code for m in ms}
        if person_id in sequenced or [m.seq for m in ms] != list(range(1, len(ms) + 1)):
            leave(ms, "この記録のメッセージは既に受信を始めています (中継で送ります)")
        elif any(m.payload.voided or m.payload.identity is None for m in ms) or len(codes_here) != 1:
            leave(ms, "取消し・住民票コードの変更を含むメッセージは一括登録できません (中継で送ります)")
        elif codes_here & held_codes or codes_here & numbered_codes:
            leave(ms, "この住民票コードの本人確認情報は既にあります (中継で送ります)")
        elif number_hashes.get(ms[0].resident_code) in taken_hashes:
            leave(ms, "この個人番号は既に他の者に指定されています (中継で送ります)")
        else:
            seedable.append((person_id, ms))

    if not seedable:
        return outcome
    loader = BulkLoader(session)
    encrypt = data_keyring().encryptor()
    message_count = sum(len(ms) for _, ms in seedable)
    inbox_ids = iter(loader.reserve_ids(InboxMessage, message_count))
    identity_ids = iter(loader.reserve_ids(IdentityRecord, len(seedable)))
    history_ids = iter(loader.reserve_ids(IdentityHistory, message_count))
    number_ids = iter(loader.reserve_ids(NationalIndividualNumber, len(seedable)))
    inbox_rows: list[dict[str, Any]] = []
    identity_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    sequence_rows: list[dict[str, Any]] = []
    code_rows: list[dict[str, Any]] = []
    number_rows: list[dict[str, Any]] = []
    block_id = f"interchange-{uuid.uuid4().hex[:20]}"
    pref = sender[:2]

    def seal(document: dict[str, Any]) -> dict[str, Any]:
        # The inbox's _seal walks the document; its only 個人番号 is the identity's.
        identity = document["identity"]
        number = identity.get("individual_number")
        if isinstance(number, str):
            document = document | {
                "identity": identity | {"individual_number": _SEALED + encrypt(number, _INBOX_AAD)}
            }
        return document

    for person_id, ms in seedable:
        identity_id = next(identity_ids)
        entries: list[TimelineEntry] = []
        rows_here: list[dict[str, Any]] = []
        for m in ms:
            change = m.payload
            facts = change.identity
            assert facts is not None
            assert change.effective_on is not None
            inbox_id = next(inbox_ids)
            facts_json = facts.model_dump(mode="json")
            document = {
                "effective_on": change.effective_on.isoformat(),
                "change_kind": change.change_kind,
                "became_resident_on": change.became_resident_on.isoformat()
                if change.became_resident_on
                else None,
                "identity": facts_json,
                "alias_kana": change.alias_kana,
            }
            inbox_rows.append(
                {
                    "id": inbox_id,
                    "idempotency_key": m.idempotency_key,
                    "source_lg_code": sender,
                    "source_person_id": person_id,
                    "seq": m.seq,
                    "kind": m.kind,
                    "resident_code": m.resident_code,
                    "destination_lg_code": None,
                    "prefecture_code": pref,
                    "payload": json.dumps(seal(document), ensure_ascii=False, sort_keys=True),
                    "received_at": now,
                    "applied_at": now,
                }
            )
            history_id = next(history_ids)
            search_kana = " ".join(
                normalize_kana(p) for p in (facts.name_kana or "", change.alias_kana or "") if p
            )
            number_hash = hash_of(facts.individual_number) if facts.individual_number else None
            rows_here.append(
                {
                    "id": history_id,
                    "identity_id": identity_id,
                    "resident_code": facts.resident_code,
                    "prefecture_code": pref,
                    "lg_code": sender,
                    "valid_from": change.effective_on,
                    "valid_to": None,
                    "recorded_at": now,
                    "status": facts.status,
                    "removal_reason": facts.removal_reason,
                    "resident_kind": facts.resident_kind,
                    "name": facts.name,
                    "name_kana": facts.name_kana,
                    "search_kana": search_kana,
                    "birth_date": facts.birth_date,
                    "sex": facts.sex,
                    "address_lg_code": facts.address_lg_code,
                    "address": facts.address,
                    "individual_number_hash": number_hash,
                    "change_kind": change.change_kind,
                    "inbox_id": inbox_id,
                }
            )
            entries.append(
                TimelineEntry(
                    history_id, (sender, person_id), m.seq, change.effective_on, facts.status == STATUS_LIVE
                )
            )
        last = ms[-1].payload
        facts = last.identity
        assert facts is not None
        assert last.effective_on is not None
        started_on = last.became_resident_on or last.effective_on
        layout = lay_out(entries, {(sender, person_id): started_on}, set())
        for row in rows_here:
            row["valid_to"] = layout.valid_to.get(row["id"])
        history_rows.extend(rows_here)
        number = facts.individual_number
        identity_rows.append(
            {
                "id": identity_id,
                "resident_code": facts.resident_code,
                "prefecture_code": pref,
                "lg_code": sender,
                "status": facts.status,
                "removal_reason": facts.removal_reason,
                "resident_kind": facts.resident_kind,
                "name": facts.name,
                "name_kana": facts.name_kana,
                "search_kana": rows_here[-1]["search_kana"],
                "birth_date": facts.birth_date,
                "sex": facts.sex,
                "address_lg_code": facts.address_lg_code,
                "address": facts.address,
                "individual_number_hash": number_hashes.get(facts.resident_code),
                # Bound to the resident code, as the inbox binds it.
                "individual_number_encrypted": encrypt(number, facts.resident_code) if number else None,
                "change_kind": last.change_kind,
                "changed_on": last.effective_on,
                "updated_at": now,
                "source_lg_code": sender,
                "source_person_id": person_id,
            }
        )
        sequence_rows.append(
            {
                "source_lg_code": sender,
                "source_person_id": person_id,
                "last_seq": ms[-1].seq,
                "prefecture_code": pref,
                "identity_id": identity_id,
                "started_on": started_on,
                "void": False,
            }
        )
        if facts.resident_code not in allocated:
            allocated.add(facts.resident_code)
            code_rows.append(
                {
                    "code": facts.resident_code,
                    "allocated_to_lg_code": sender,
                    "prefecture_code": pref,
                    "allocated_at": now,
                    "block_id": block_id,
                }
            )
        if number:
            number_rows.append(
                {
                    "id": next(number_ids),
                    "resident_code": facts.resident_code,
                    "number_hash": number_hashes[facts.resident_code],
                    "number_encrypted": encrypt(number, facts.resident_code),
                    "derivation_counter": IMPORTED_COUNTER,
                    "issued_at": now,
                    "superseded_at": None,
                    "prefecture_code": pref,
                }
            )
        for m in ms:
            outcome.statuses[m.idempotency_key] = DeliveryStatus.APPLIED.value
        outcome.persons += 1

    loader.insert(InboxMessage, inbox_rows)
    loader.insert(IdentityRecord, identity_rows)
    loader.insert(IdentityHistory, history_rows)
    loader.insert(SourceSequence, sequence_rows)
    loader.insert(NationalResidentCode, code_rows)
    loader.insert(NationalIndividualNumber, number_rows)
    audit.record(
        session,
        actor=Actor.system("national"),
        action=AuditAction.NATIONAL_SEEDED,
        target_kind="municipality",
        target_id=sender,
        purpose=SEED_PURPOSE,
        detail=f"persons={outcome.persons} messages={message_count} block={block_id}",
        now=now,
    )
    session.flush()
    return outcome
