"""Export one municipality's register in the interchange layout (the rows an import takes back).

Each record is written as its latest version says; its standing events (not cancelled,
and not the cancellations themselves) as the event log, numbered 1, 2, ... in the order
they were recorded. A record without a 宛名番号 (entered in Jumin, not imported) is given
one now, ``J`` and its internal number, and keeps it: exporting twice gives the same file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, AuditAction
from jumin.interchange.layout import AliasRow, CardRow, EventRow, ForeignRow, HouseholdRow, PersonRow
from jumin.interchange.models import AtenaNumber, CardRecord
from jumin.keys import data_keyring
from jumin.registry.domain import EventKind, RecordStatus, ResidentRecord, record_from_json
from jumin.registry.models import Household, Person, PersonVersion, RegistryEvent, RegistryEventChange

__all__ = ["EXPORT_PURPOSE", "ExportedMunicipality", "export_municipality", "exportable_municipalities"]

EXPORT_PURPOSE = "住民基本台帳の移行 (交換レイアウトへの一括出力)"
_NUMBER_AAD = "registry-individual-number"  # registry.service's associated data for 個人番号
_NATIVE_PREFIX = "J"


@dataclass
class ExportedMunicipality:
    lg_code: str
    households: list[HouseholdRow] = field(default_factory=list)
    persons: list[PersonRow] = field(default_factory=list)
    foreign: list[ForeignRow] = field(default_factory=list)
    aliases: list[AliasRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    cards: list[CardRow] = field(default_factory=list)


def exportable_municipalities(session: Session) -> list[str]:
    return sorted(str(c) for c in session.execute(select(Person.lg_code).distinct()).scalars())


def _latest_versions(session: Session, lg_code: str) -> Iterator[tuple[int, PersonVersion]]:
    rows = session.execute(
        select(PersonVersion)
        .where(PersonVersion.lg_code == lg_code, PersonVersion.superseded_at.is_(None))
        .order_by(PersonVersion.person_id, PersonVersion.valid_from, PersonVersion.id)
        .execution_options(yield_per=5000)
    ).scalars()
    current: PersonVersion | None = None
    for version in rows:
        if current is not None and current.person_id != version.person_id:
            yield current.person_id, current
        current = version
    if current is not None:
        yield current.person_id, current


def _atena_numbers(session: Session, lg_code: str, person_ids: list[int]) -> dict[int, str]:
    known = {
        int(pid): str(no)
        for pid, no in session.execute(
            select(AtenaNumber.person_id, AtenaNumber.atena_no).where(AtenaNumber.lg_code == lg_code)
        ).all()
    }
    taken = set(known.values())
    fresh = []
    for pid in person_ids:
        if pid not in known:
            number = f"{_NATIVE_PREFIX}{pid}"
            suffix = 1
            while number in taken:  # an imported record already uses it
                suffix += 1
                number = f"{_NATIVE_PREFIX}{pid}-{suffix}"
            taken.add(number)
            known[pid] = number
            fresh.append(AtenaNumber(person_id=pid, lg_code=lg_code, atena_no=number))
    session.add_all(fresh)
    return known


def _person_row(lg: str, atena: str, household_no: str, r: ResidentRecord) -> PersonRow:
    planned = r.planned_move_out
    return PersonRow(
        lg_code=lg,
        atena_no=atena,
        resident_code=r.resident_code,
        individual_number=r.individual_number,
        resident_kind=r.resident_kind.value,
        family_name=r.family_name,
        given_name=r.given_name,
        family_name_kana=r.family_name_kana or None,
        given_name_kana=r.given_name_kana or None,
        birth_date=r.birth_date,
        sex=r.sex.value,
        household_no=household_no,
        relationship=r.relationship,
        address_line=r.address.line,
        katagaki=r.address.katagaki or None,
        became_resident_on=r.became_resident_on,
        address_set_on=r.address_set_on,
        notified_on=r.notified_on,
        honseki=r.honseki or None,
        hittousha=r.hittousha or None,
        old_surname=r.old_surname or None,
        old_surname_kana=r.old_surname_kana or None,
        previous_address=r.previous_address or None,
        planned_move_out_on=planned.planned_on if planned else None,
        planned_move_out_destination=planned.destination if planned else None,
        planned_move_out_lg_code=planned.destination_lg_code if planned else None,
        status=r.status.value,
        removal_reason=r.removal_reason.value if r.removal_reason else None,
        removed_on=r.removed_on,
    )


def export_municipality(
    session: Session, *, lg_code: str, actor: Actor, now: dt.datetime
) -> ExportedMunicipality:
    """Every record of ``lg_code`` as interchange rows; reading them is audited once for the municipality."""
    out = ExportedMunicipality(lg_code)
    keyring = data_keyring()
    records: list[tuple[int, ResidentRecord]] = []
    for person_id, version in _latest_versions(session, lg_code):
        record = record_from_json(json.loads(version.record_json))
        if version.individual_number_encrypted:
            number = keyring.decrypt(version.individual_number_encrypted, _NUMBER_AAD)
            record = replace(record, individual_number=number)
        records.append((person_id, record))
    atena = _atena_numbers(session, lg_code, [pid for pid, _ in records])
    households = session.execute(
        select(Household.id, Household.household_no)
        .where(Household.lg_code == lg_code)
        .order_by(Household.id)
    ).all()
    number_of = {int(hid): str(no) for hid, no in households}
    live_members: dict[int, list[tuple[int, ResidentRecord]]] = defaultdict(list)
    for person_id, record in records:
        if record.status is RecordStatus.LIVE:
            live_members[record.household_id].append((person_id, record))
    for hid, no in households:
        live = live_members.get(int(hid), [])
        head = next((pid for pid, r in live if r.is_head), None)
        out.households.append(
            HouseholdRow(lg_code, str(no), atena[head] if head is not None else None, len(live))
        )

    cards = {
        int(c.person_id): c
        for c in session.execute(select(CardRecord).where(CardRecord.lg_code == lg_code)).scalars()
    }
    for person_id, r in records:
        a = atena[person_id]
        out.persons.append(_person_row(lg_code, a, number_of[r.household_id], r))
        f = r.foreign
        if f is not None:
            out.foreign.append(
                ForeignRow(
                    lg_code=lg_code,
                    atena_no=a,
                    nationality=f.nationality,
                    category=f.category.value,
                    status_of_residence=f.status_of_residence or None,
                    period_of_stay=f.period_of_stay or None,
                    stay_expires_on=f.stay_expires_on,
                    residence_card_number=f.residence_card_number or None,
                    became_foreign_resident_on=f.became_foreign_resident_on,
                    name_alphabet=f.name_alphabet,
                    alias=f.alias or None,
                    alias_kana=f.alias_kana or None,
                )
            )
            out.aliases.extend(
                AliasRow(
                    lg_code=lg_code,
                    atena_no=a,
                    alias=h.alias,
                    alias_kana=h.alias_kana or None,
                    recorded_on=h.recorded_on,
                    recorded_lg_code=h.recorded_lg_code,
                    deleted_on=h.deleted_on,
                    deleted_lg_code=h.deleted_lg_code,
                )
                for h in f.alias_history
            )
        card = cards.get(person_id)
        if card is not None:
            out.cards.append(
                CardRow(
                    lg_code=lg_code,
                    atena_no=a,
                    card_status=card.card_status,
                    card_issued_on=card.card_issued_on,
                    card_valid_until=card.card_valid_until,
                    signing_cert_issued_on=card.signing_cert_issued_on,
                    signing_cert_valid_until=card.signing_cert_valid_until,
                    auth_cert_issued_on=card.auth_cert_issued_on,
                    auth_cert_valid_until=card.auth_cert_valid_until,
                    name_romaji=card.name_romaji,
                )
            )

    exported = {pid for pid, _ in records}
    pairs = session.execute(
        select(RegistryEvent, RegistryEventChange.person_id)
        .join(RegistryEventChange, RegistryEventChange.event_id == RegistryEvent.id)
        .where(
            RegistryEvent.lg_code == lg_code,
            RegistryEvent.cancelled_by_event_id.is_(None),
            RegistryEvent.kind != EventKind.CANCELLATION.value,
        )
        .order_by(RegistryEvent.id, RegistryEventChange.person_id)
        .execution_options(yield_per=5000)
    ).all()
    numbers: dict[int, int] = {}
    seen: set[tuple[int, int]] = set()
    for event, person_id in pairs:
        pid = int(person_id)
        if pid not in exported or (event.id, pid) in seen:
            continue
        seen.add((event.id, pid))
        event_no = numbers.setdefault(event.id, len(numbers) + 1)
        out.events.append(
            EventRow(
                lg_code=lg_code,
                event_no=str(event_no),
                atena_no=atena[pid],
                event_kind=event.kind,
                effective_on=event.effective_on,
                notified_on=event.notified_on,
                late=event.late,
                reason=event.reason or None,
            )
        )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REGISTER_EXPORTED,
        target_kind="register",
        target_id=lg_code,
        purpose=EXPORT_PURPOSE,
        detail=f"persons={len(out.persons)} households={len(out.households)} events={len(numbers)}",
        now=now,
    )
    return out
