"""Import one municipality's validated rows into the register, set-based, in one transaction.

What the register would have written had each record been entered through its own use
cases is written here in bulk: households, persons, their 異動 events and changes, the
versions those changes fold into (registry.domain.fold, the register's own rule), and
the outbox messages that tell the national network about each person. The history
before the migration is kept as the source's event log; the record itself starts as it
stands in the files (docs/interchange.md, "What an import makes of the history").

個人番号 is sealed exactly as the register seals it: AES-GCM under the data key ring
with the register's associated data, beside a keyed hash for lookups; it never lies in
the database in clear, not even inside JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, AuditAction
from jumin.db import is_one_of
from jumin.interchange.bulk import BulkLoader, analyze, reclaim_updated_rows
from jumin.interchange.layout import PERSONS, REMOVAL_EVENT_KINDS, EventRow, PersonRow, RowError
from jumin.interchange.models import AtenaNumber, CardRecord, ImportLedger
from jumin.interchange.validate import ValidMunicipality
from jumin.keys import data_keyring, lookup_hasher
from jumin.registry import relay
from jumin.registry.domain import (
    Address,
    AliasRecord,
    Change,
    EventKind,
    ForeignItems,
    ForeignResidentCategory,
    ItemCorrection,
    PlannedMoveOut,
    RecordStatus,
    Registration,
    Removal,
    RemovalReason,
    ResidentKind,
    ResidentRecord,
    Sex,
    TimedChange,
    fold,
    record_to_json,
)
from jumin.registry.models import (
    Household,
    OutboxMessage,
    Person,
    PersonVersion,
    RegistryEvent,
    RegistryEventChange,
)

__all__ = [
    "IMPORT_ACTOR_ID",
    "ImportOutcome",
    "import_municipality",
    "reclaim_delivered_outbox",
    "refresh_statistics",
]

IMPORT_ACTOR_ID = "interchange-import"
IMPORT_PURPOSE = "住民基本台帳の移行 (交換レイアウトの一括取込)"
# The register's sealing (registry.service): the same prefix and associated data, so that
# the register opens what the import sealed. tests/interchange checks it through the
# register's own reads.
_SEALED = "enc:"
_NUMBER_AAD = "registry-individual-number"
_NUMBER_HASH = "individual_number"
_IDENTITY_CHANGED = "identity_changed"
_NO_OP = json.dumps({"data": {"items": []}, "tag": "item_correction"}, ensure_ascii=False, sort_keys=True)


@dataclass
class ImportOutcome:
    lg_code: str
    status: str  # imported / skipped (already imported from the same rows) / refused
    persons: int = 0
    households: int = 0
    events: int = 0
    outbox: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Validating and writing this municipality (its national seed, done in groups, apart).
    seconds: float = 0.0
    # The outbox's messages as the relay sends them (only when asked for: the national seed).
    messages: list[dict[str, Any]] = field(default_factory=list)


def _foreign_items(valid: ValidMunicipality, atena: str) -> ForeignItems | None:
    f = valid.foreign.get(atena)
    if f is None:
        return None
    return ForeignItems(
        nationality=f.nationality,
        category=ForeignResidentCategory(f.category),
        status_of_residence=f.status_of_residence,
        period_of_stay=f.period_of_stay,
        stay_expires_on=f.stay_expires_on,
        residence_card_number=f.residence_card_number,
        became_foreign_resident_on=f.became_foreign_resident_on,
        name_alphabet=f.name_alphabet,
        alias=f.alias,
        alias_kana=f.alias_kana,
        alias_history=tuple(
            AliasRecord(
                alias=a.alias,
                alias_kana=a.alias_kana or "",
                recorded_on=a.recorded_on,
                recorded_lg_code=a.recorded_lg_code,
                deleted_on=a.deleted_on,
                deleted_lg_code=a.deleted_lg_code,
            )
            for a in valid.aliases.get(atena, [])
        ),
    )


def live_record(p: PersonRow, household_id: int, foreign: ForeignItems | None) -> ResidentRecord:
    """The person's record as it stands, but live: a removal is applied as its own change."""
    return ResidentRecord(
        resident_kind=ResidentKind(p.resident_kind),
        family_name=p.family_name,
        given_name=p.given_name,
        family_name_kana=p.family_name_kana,
        given_name_kana=p.given_name_kana,
        birth_date=p.birth_date,
        sex=Sex(p.sex),
        household_id=household_id,
        relationship=p.relationship,
        address=Address(p.lg_code, p.address_line, p.katagaki or ""),
        became_resident_on=p.became_resident_on,
        address_set_on=p.address_set_on,
        notified_on=p.notified_on,
        resident_code=p.resident_code,
        individual_number=p.individual_number,
        honseki=p.honseki,
        hittousha=p.hittousha,
        old_surname=p.old_surname,
        old_surname_kana=p.old_surname_kana,
        previous_address=p.previous_address,
        foreign=foreign,
        planned_move_out=None
        if p.planned_move_out_on is None or p.planned_move_out_destination is None
        else PlannedMoveOut(
            p.planned_move_out_on, p.planned_move_out_destination, p.planned_move_out_lg_code
        ),
    )


class _Sealer:
    """個人番号 sealed and hashed as the register does, with the keys read once per import."""

    def __init__(self) -> None:
        self.encrypt = data_keyring().encryptor()
        self.hash: Callable[[str], str] = lookup_hasher(_NUMBER_HASH)

    def seal(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The record's (or a payload's) 個人番号 sealed, where the register's _seal would find it.

        A record has it at the top and, in an identity payload, inside ``identity``; no other
        item of a record is called individual_number, so this is the register's walk
        without the walk.
        """
        sealed = dict(fields)
        if isinstance(sealed.get("individual_number"), str):
            sealed["individual_number"] = _SEALED + self.encrypt(sealed["individual_number"], _NUMBER_AAD)
        identity = sealed.get("identity")
        if isinstance(identity, dict) and isinstance(identity.get("individual_number"), str):
            sealed["identity"] = identity | {
                "individual_number": _SEALED + self.encrypt(identity["individual_number"], _NUMBER_AAD)
            }
        return sealed


def _identity_payload(
    record: ResidentRecord, fields: dict[str, Any], *, effective_on: dt.date, kind: str
) -> dict[str, Any]:
    """What registry.service._identity_payload writes for an identity change (unsealed)."""
    identity = record.identity()
    return fields | {
        "lg_code": record.address.lg_code,
        "prefecture_code": record.address.lg_code[:2],
        "effective_on": effective_on.isoformat(),
        "change_kind": kind,
        "identity": {
            "resident_code": identity.resident_code,
            "individual_number": identity.individual_number,
            "name": identity.name,
            "name_kana": identity.name_kana,
            "birth_date": identity.birth_date.isoformat(),
            "sex": identity.sex.value,
            "address_lg_code": identity.address_lg_code,
            "address": identity.address,
            "status": identity.status.value,
            "removal_reason": identity.removal_reason.value if identity.removal_reason else None,
            "resident_kind": identity.resident_kind.value,
        },
    }


def refresh_statistics(session: Session) -> None:
    """ANALYZE what an import grows and then queries: without it, the conflict checks and
    acknowledgements of a large import slow down quadratically (docs/performance.md)."""
    analyze(session, (Person, PersonVersion, OutboxMessage, Household))


def reclaim_delivered_outbox(engine: Engine) -> None:
    """Free the space of the outbox rows the national seed has just marked delivered."""
    reclaim_updated_rows(engine, (OutboxMessage,))


def municipality_is_empty(session: Session, lg_code: str) -> bool:
    persons = session.execute(
        select(func.count()).select_from(Person).where(Person.lg_code == lg_code)
    ).scalar_one()
    households = session.execute(
        select(func.count()).select_from(Household).where(Household.lg_code == lg_code)
    ).scalar_one()
    return int(persons) == 0 and int(households) == 0


def already_imported(session: Session, lg_code: str, digest: str) -> bool:
    return (
        session.execute(
            select(ImportLedger.id).where(ImportLedger.lg_code == lg_code, ImportLedger.digest == digest)
        ).first()
        is not None
    )


def _conflicts(session: Session, valid: ValidMunicipality, number_hashes: dict[str, str]) -> list[RowError]:
    """Live resident codes and 個人番号 already held by a live record elsewhere in this register."""
    lines_by_code = {p.resident_code: line for line, p in valid.persons if p.status == "live"}
    lines_by_hash = {
        number_hashes[p.atena_no]: line for line, p in valid.persons if p.atena_no in number_hashes
    }
    taken_codes: set[str] = set()
    taken_hashes: set[str] = set()
    for among in is_one_of(session, Person.resident_code, list(lines_by_code)):
        taken_codes.update(
            session.execute(select(Person.resident_code).where(among, Person.lifecycle == "live")).scalars()
        )
    for among in is_one_of(session, PersonVersion.individual_number_hash, list(lines_by_hash)):
        taken_hashes.update(
            h
            for h in session.execute(
                select(PersonVersion.individual_number_hash)
                .join(Person, Person.id == PersonVersion.person_id)
                .where(among, Person.lifecycle == "live")
            ).scalars()
            if h is not None
        )
    errors = [
        RowError(
            PERSONS.filename,
            lines_by_code[c],
            "この住民票コードの住民は既に他の団体の住民票に記載されています",
            "resident_code",
            valid.lg_code,
        )
        for c in sorted(taken_codes, key=lambda c: lines_by_code[c])
    ]
    errors += [
        RowError(
            PERSONS.filename,
            lines_by_hash[h],
            "この個人番号の住民は既に他の住民票に記載されています",
            "individual_number",
            valid.lg_code,
        )
        for h in sorted(taken_hashes, key=lambda h: lines_by_hash[h])
    ]
    return sorted(errors, key=lambda e: e.line)


def import_municipality(
    session: Session,
    valid: ValidMunicipality,
    *,
    actor: Actor,
    now: dt.datetime,
    request_id: str,
    keep_messages: bool = False,
) -> ImportOutcome:
    """Write the municipality's records, or refuse with the reasons; the caller commits or rolls back."""
    lg = valid.lg_code
    if already_imported(session, lg, valid.digest):
        return ImportOutcome(lg, "skipped")
    if not municipality_is_empty(session, lg):
        return ImportOutcome(
            lg,
            "refused",
            errors=[
                RowError(
                    PERSONS.filename,
                    valid.persons[0][0] if valid.persons else 0,
                    "この団体の住民基本台帳には既に記録があります。移行の取込は記録のない団体にだけ行えます",
                    "lg_code",
                    lg,
                )
            ],
        )
    loader = BulkLoader(session)
    sealer = _Sealer()
    number_hashes = {
        p.atena_no: sealer.hash(p.individual_number) for _, p in valid.persons if p.individual_number
    }
    conflicts = _conflicts(session, valid, number_hashes)
    if conflicts:
        return ImportOutcome(lg, "refused", errors=conflicts)

    household_ids = dict(
        zip(
            (h.household_no for _, h in valid.households),
            loader.reserve_ids(Household, len(valid.households)),
            strict=True,
        )
    )
    person_ids = dict(
        zip(
            (p.atena_no for _, p in valid.persons),
            loader.reserve_ids(Person, len(valid.persons)),
            strict=True,
        )
    )
    event_ids: dict[str, int] = {}
    event_rows: dict[str, EventRow] = {}
    events_of: dict[str, list[EventRow]] = defaultdict(list)
    for _, e in valid.events:
        if e.event_no not in event_rows:
            event_rows[e.event_no] = e
        events_of[e.atena_no].append(e)
    for no, event_id in zip(event_rows, loader.reserve_ids(RegistryEvent, len(event_rows)), strict=True):
        event_ids[no] = event_id

    household_rows = [
        {
            "id": household_ids[h.household_no],
            "lg_code": lg,
            "household_no": h.household_no,
            "version": 1,
            "created_at": now,
        }
        for _, h in valid.households
    ]
    event_table_rows = [
        {
            "id": event_ids[no],
            "lg_code": lg,
            "kind": e.event_kind,
            "effective_on": e.effective_on,
            "notified_on": e.notified_on,
            "recorded_at": now,
            "recorded_by": actor.actor_id,
            "reason": e.reason or "",
            "late": e.late,
            "cancels_event_id": None,
            "cancelled_by_event_id": None,
            "request_id": request_id,
        }
        for no, e in event_rows.items()
    ]
    persons: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    atena_rows: list[dict[str, Any]] = []
    card_rows: list[dict[str, Any]] = []
    wire: list[dict[str, Any]] = []
    for _, p in valid.persons:
        person_id = person_ids[p.atena_no]
        record = live_record(p, household_ids[p.household_no], _foreign_items(valid, p.atena_no))
        mine = sorted(events_of[p.atena_no], key=lambda e: (e.effective_on, event_ids[e.event_no]))
        first = mine[0]
        removal_event: EventRow | None = None
        if p.status == "removed":
            removal_event = max(
                (e for e in mine if e.event_kind in REMOVAL_EVENT_KINDS and e.effective_on == p.removed_on),
                key=lambda e: event_ids[e.event_no],
            )
        planned: list[tuple[EventRow, Change, str]] = []
        # One serialisation of the live record serves every version that equals it (all but
        # the closed one), the registration and the first message: it is the costly step.
        live_json = record_to_json(replace(record, individual_number=None))
        live_fields: dict[str, Any] = json.loads(live_json) | {"individual_number": p.individual_number}
        sealed_record = sealer.seal(live_fields)
        for e in mine:
            change: Change
            if e is first:
                change = Registration(record)
                stored = json.dumps(
                    {"data": {"record": sealed_record}, "tag": "registration"},
                    ensure_ascii=False,
                    sort_keys=True,
                )
            elif e is removal_event:
                assert p.removal_reason is not None
                change = Removal(RemovalReason(p.removal_reason))
                stored = json.dumps({"data": {"reason": p.removal_reason}, "tag": "removal"}, sort_keys=True)
            else:
                change = ItemCorrection(())
                stored = _NO_OP
            planned.append((e, change, stored))
        if removal_event is first:  # created and closed by one event: the removal follows the creation
            assert p.removal_reason is not None
            planned.append(
                (
                    first,
                    Removal(RemovalReason(p.removal_reason)),
                    json.dumps({"data": {"reason": p.removal_reason}, "tag": "removal"}, sort_keys=True),
                )
            )
        timed = [TimedChange(e.effective_on, event_ids[e.event_no], c) for e, c, _ in planned]
        folded = fold(timed, lg_code=lg)
        number = p.individual_number
        number_sealed = sealer.encrypt(number, _NUMBER_AAD) if number else None
        number_hash = number_hashes.get(p.atena_no)
        starts = {
            e.effective_on: event_ids[e.event_no]
            for e, _, _ in sorted(planned, key=lambda t: event_ids[t[0].event_no])
        }
        for version in folded:
            v = version.record
            versions.append(
                {
                    "person_id": person_id,
                    "lg_code": lg,
                    "valid_from": version.valid_from,
                    "valid_to": version.valid_to,
                    "recorded_at": now,
                    "superseded_at": None,
                    "event_id": starts[version.valid_from],
                    "record_json": live_json
                    if v.status is RecordStatus.LIVE
                    else record_to_json(replace(v, individual_number=None)),
                    "individual_number_encrypted": number_sealed,
                    "individual_number_hash": number_hash,
                    "resident_code": v.resident_code,
                    "search_kana": v.search_kana(),
                    "birth_date": v.birth_date,
                    "address_line": v.address.line,
                    "household_id": v.household_id,
                    "status": v.status.value,
                }
            )
        for e, _, stored in planned:
            changes.append(
                {
                    "event_id": event_ids[e.event_no],
                    "person_id": person_id,
                    "effective_on": e.effective_on,
                    "change_json": stored,
                }
            )
        final = folded[-1].record
        confirmed = any(e.event_kind == EventKind.MOVE_OUT_CONFIRMED.value for e in mine)
        if final.status is RecordStatus.LIVE:
            lifecycle = "live"
        elif final.removal_reason is RemovalReason.MOVE_OUT and not confirmed:
            lifecycle = "moving_out"
        else:
            lifecycle = "removed"
        # What the national network must hear of: everything but a 転出 already confirmed
        # by the destination, which holds the person now (as reconcile also reads it).
        messages: list[tuple[ResidentRecord, dt.date, str]] = []
        if not (lifecycle == "removed" and final.removal_reason is RemovalReason.MOVE_OUT):
            messages.append((record, folded[0].valid_from, first.event_kind))
            if removal_event is not None:
                assert p.removed_on is not None
                messages.append((final, p.removed_on, removal_event.event_kind))
        for seq, (message_record, effective_on, kind) in enumerate(messages, start=1):
            fields = live_fields if seq == 1 else json.loads(record_to_json(message_record))
            payload = _identity_payload(message_record, fields, effective_on=effective_on, kind=kind)
            key = uuid.uuid4().hex
            row = {
                "lg_code": lg,
                "person_id": person_id,
                "resident_code": p.resident_code,
                "seq": seq,
                "kind": _IDENTITY_CHANGED,
                "destination_lg_code": None,
                "idempotency_key": key,
                "payload": json.dumps(sealer.seal(payload), ensure_ascii=False, sort_keys=True),
                "event_id": event_ids[(first if seq == 1 else removal_event or first).event_no],
                "created_at": now,
                "delivered_at": None,
            }
            outbox.append(row)
            if keep_messages:
                # What the relay would send (registry.relay.wire_fields), kept so that the
                # national seed need not read back and unseal what was just written.
                wire.append(
                    relay.wire_fields(
                        kind=_IDENTITY_CHANGED,
                        idempotency_key=key,
                        person_id=person_id,
                        seq=seq,
                        resident_code=p.resident_code,
                        destination_lg_code=None,
                        created_at=now,
                        payload=payload,
                    )
                )
        persons.append(
            {
                "id": person_id,
                "lg_code": lg,
                "resident_code": p.resident_code,
                "lifecycle": lifecycle,
                "version": 1,
                "outbox_seq": len(messages),
                "identity_fingerprint": final.identity().fingerprint(),
                "created_at": now,
            }
        )
        atena_rows.append({"person_id": person_id, "lg_code": lg, "atena_no": p.atena_no})
        card = valid.cards.get(p.atena_no)
        if card is not None:
            card_rows.append(
                {
                    "person_id": person_id,
                    "lg_code": lg,
                    "card_status": card.card_status,
                    "card_issued_on": card.card_issued_on,
                    "card_valid_until": card.card_valid_until,
                    "signing_cert_issued_on": card.signing_cert_issued_on,
                    "signing_cert_valid_until": card.signing_cert_valid_until,
                    "auth_cert_issued_on": card.auth_cert_issued_on,
                    "auth_cert_valid_until": card.auth_cert_valid_until,
                    "name_romaji": card.name_romaji,
                }
            )

    version_ids = loader.reserve_ids(PersonVersion, len(versions))
    for row, version_id in zip(versions, version_ids, strict=True):
        row["id"] = version_id
    for row, change_id in zip(changes, loader.reserve_ids(RegistryEventChange, len(changes)), strict=True):
        row["id"] = change_id
    for row, outbox_id in zip(outbox, loader.reserve_ids(OutboxMessage, len(outbox)), strict=True):
        row["id"] = outbox_id

    loader.insert(Household, household_rows)
    loader.insert(Person, persons)
    loader.insert(RegistryEvent, event_table_rows)
    loader.insert(RegistryEventChange, changes)
    loader.insert(PersonVersion, versions)
    loader.insert(OutboxMessage, outbox)
    loader.insert(AtenaNumber, atena_rows)
    loader.insert(CardRecord, card_rows)
    session.add(
        ImportLedger(
            lg_code=lg,
            digest=valid.digest,
            persons=len(persons),
            households=len(household_rows),
            events=len(event_table_rows),
            imported_at=now,
            request_id=request_id,
        )
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REGISTER_IMPORTED,
        target_kind="register",
        target_id=lg,
        purpose=IMPORT_PURPOSE,
        detail=f"persons={len(persons)} households={len(household_rows)} events={len(event_table_rows)} "
        f"cards={len(card_rows)} digest={valid.digest[:16]}",
        now=now,
    )
    session.flush()
    return ImportOutcome(
        lg, "imported", len(persons), len(household_rows), len(event_table_rows), len(outbox), messages=wire
    )
