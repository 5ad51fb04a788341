"""Use cases of the register: every 異動, and the queries on the history.

Every event goes through :func:`_record_event`: check dates and versions, append the
event and its changes, rebuild the touched persons' versions by folding their changes,
check the household rule on every date from the earliest change, write the outbox
messages for changed identity information, and audit — all in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction
from jumin.core.errors import Forbidden, InvalidValue, NotFound, RuleViolation
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.core.municipalities import load_master
from jumin.core.names import normalize_kana
from jumin.core.wareki import parse_date
from jumin.db import utcnow
from jumin.keys import data_keyring, lookup_hash
from jumin.network_client import NetworkClient
from jumin.registry import repository
from jumin.registry.domain import (
    ALLOWED_ON_REMOVED,
    CORRECTABLE_ITEMS,
    EVENT_LABELS,
    RELATIONSHIP_HEAD,
    Address,
    AddressChange,
    AliasChange,
    AliasRecord,
    BecomeForeign,
    BecomeJapanese,
    Change,
    EventKind,
    EventOutcome,
    ForeignItems,
    FuriganaChange,
    HouseholdAssignment,
    ImmigrationUpdate,
    IndividualNumberChange,
    ItemCorrection,
    MoveOutPlanned,
    NameChange,
    OldSurnameChange,
    PlannedMoveOut,
    RecordStatus,
    Registration,
    Removal,
    RemovalReason,
    ResidentCodeChange,
    ResidentRecord,
    Sex,
    StaleVersion,
    TimedChange,
    Version,
    change_from_json,
    change_to_json,
    check_dates,
    check_kana,
    check_one_head,
    check_relationship,
    fold,
    record_from_json,
    record_on,
    record_to_json,
)
from jumin.registry.models import (
    Household,
    OutboxMessage,
    Person,
    PersonVersion,
    RegistryEvent,
    RegistryEventChange,
    ResidentCodePool,
)
from jumin.registry.schemas import (
    AliasEntryRequest,
    BecomeJapaneseRequest,
    BirthRequest,
    CancellationRequest,
    CorrectionRequest,
    FuriganaRequest,
    HeadChangeRequest,
    HouseholdChangeRequest,
    HouseholdMergeRequest,
    HouseholdSplitRequest,
    ImmigrationNoticeRequest,
    MemberRelationship,
    MoveInRequest,
    MoveOutConfirmedRequest,
    MoveOutRequest,
    MoveWithinRequest,
    NameChangeRequest,
    NationalityLostRequest,
    OldSurnameRequest,
    PersonInput,
    PersonOnlyRequest,
    PersonRef,
    RemovalRequest,
)
from jumin.request_context import current_request_id

CODE_POOL_REFILL = 100
_SEALED = "enc:"
_NUMBER_AAD = "registry-individual-number"


class OutboxKind:
    IDENTITY_CHANGED = "identity_changed"
    MOVE_OUT_CERTIFICATE = "move_out_certificate"


@dataclass(frozen=True, slots=True)
class RegistryContext:
    """Who acts, for which municipality, through which network door, and when."""

    actor: Actor
    lg_code: str
    network: NetworkClient
    now: dt.datetime = field(default_factory=utcnow)

    @property
    def today(self) -> dt.date:
        # The register's dates are Japanese calendar dates.
        return (self.now + dt.timedelta(hours=9)).date()


@dataclass(frozen=True, slots=True)
class PlannedChange:
    person_id: int
    effective_on: dt.date
    change: Change


# ---------------------------------------------------------------------------
# Sealing: 個人番号 never lies in the database in clear, not even inside JSON.


def _seal(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (_SEALED + data_keyring().encrypt(v, _NUMBER_AAD))
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
            k: data_keyring().decrypt(v[len(_SEALED) :], _NUMBER_AAD)
            if k == "individual_number" and isinstance(v, str) and v.startswith(_SEALED)
            else _unseal(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unseal(v) for v in value]
    return value


def _store_change(change: Change) -> str:
    return json.dumps(_seal(json.loads(change_to_json(change))), ensure_ascii=False, sort_keys=True)


def _load_change(text: str) -> Change:
    return change_from_json(json.dumps(_unseal(json.loads(text)), ensure_ascii=False))


def _record_of(version: PersonVersion) -> ResidentRecord:
    record = record_from_json(json.loads(version.record_json))
    number = (
        data_keyring().decrypt(version.individual_number_encrypted, _NUMBER_AAD)
        if version.individual_number_encrypted
        else None
    )
    return replace(record, individual_number=number)


# ---------------------------------------------------------------------------
# The engine


def _person_in_scope(session: Session, ctx: RegistryContext, person_id: int) -> Person:
    person = repository.person(session, person_id)
    if person is None or person.lg_code != ctx.lg_code:
        # Another municipality's resident is "not found", not "forbidden": a clerk must
        # not learn who lives elsewhere.
        raise NotFound(f"住民 {person_id} はこの団体の住民基本台帳にありません。", field="person_id")
    return person


def _household_in_scope(session: Session, ctx: RegistryContext, household_id: int) -> Household:
    household = repository.household(session, household_id)
    if household is None or household.lg_code != ctx.lg_code:
        raise NotFound(f"世帯 {household_id} はこの団体にありません。", field="household_id")
    return household


def _versions_of(session: Session, person_id: int) -> list[Version]:
    return [
        Version(v.valid_from, v.valid_to, _record_of(v))
        for v in repository.current_versions(session, person_id)
    ]


def _latest(session: Session, person_id: int) -> ResidentRecord:
    versions = _versions_of(session, person_id)
    if not versions:
        raise RuleViolation("この住民票は取り消されています。", field="person_id")
    return versions[-1].record


def _fingerprint_versions(versions: Sequence[Version]) -> list[tuple[dt.date, dt.date | None, str]]:
    return [(v.valid_from, v.valid_to, record_to_json(v.record)) for v in versions]


def _rebuild(session: Session, ctx: RegistryContext, person: Person, event_id: int) -> list[Version]:
    """Fold the person's standing changes and store what differs from the current versions."""
    rows = repository.changes_of(session, person.id)
    timed = [
        TimedChange(
            effective_on=change_row.effective_on,
            event_seq=event_row.id,
            change=_load_change(change_row.change_json),
        )
        for change_row, event_row in rows
    ]
    confirmed = any(event_row.kind == EventKind.MOVE_OUT_CONFIRMED.value for _, event_row in rows)
    new_versions = fold(timed, lg_code=person.lg_code)
    old_rows = list(repository.current_versions(session, person.id))
    old = _fingerprint_versions([Version(r.valid_from, r.valid_to, _record_of(r)) for r in old_rows])
    new = _fingerprint_versions(new_versions)
    same = 0
    while same < min(len(old), len(new)) and old[same] == new[same]:
        same += 1
    for row in old_rows[same:]:
        row.superseded_at = ctx.now
    for version in new_versions[same:]:
        record = version.record
        number = record.individual_number
        session.add(
            PersonVersion(
                person_id=person.id,
                lg_code=person.lg_code,
                valid_from=version.valid_from,
                valid_to=version.valid_to,
                recorded_at=ctx.now,
                superseded_at=None,
                event_id=event_id,
                record_json=record_to_json(replace(record, individual_number=None)),
                individual_number_encrypted=data_keyring().encrypt(number, _NUMBER_AAD) if number else None,
                individual_number_hash=lookup_hash(number, "individual_number") if number else None,
                resident_code=record.resident_code,
                search_kana=record.search_kana(),
                birth_date=record.birth_date,
                address_line=record.address.line,
                household_id=record.household_id,
                status=record.status.value,
            )
        )
    person.lifecycle = _lifecycle(new_versions, confirmed=confirmed)
    if new_versions:
        person.resident_code = new_versions[-1].record.resident_code
    return new_versions


def _lifecycle(versions: Sequence[Version], *, confirmed: bool) -> str:
    """live, moving_out (転出届済み: another municipality may take the person in), or removed.

    A domestic move-out stays ``moving_out`` until the destination's 転入通知 confirms it,
    so that the move-in there, not the calendar, closes the record.
    """
    if not versions:
        return "removed"
    last = versions[-1].record
    if last.status is RecordStatus.LIVE:
        return "live"
    if last.removal_reason is RemovalReason.MOVE_OUT and not confirmed:
        return "moving_out"
    return "removed"


def _households_touched(before: Iterable[Version], after: Iterable[Version], since: dt.date) -> set[int]:
    ids: set[int] = set()
    for v in (*before, *after):
        if v.valid_to is None or v.valid_to > since:
            ids.add(v.record.household_id)
    return ids


def _check_households(session: Session, household_ids: Iterable[int], since: dt.date) -> None:
    for household_id in sorted(household_ids):
        for on in repository.household_version_dates(session, household_id, since):
            members = {
                v.person_id: _record_of(v)
                for v in repository.household_versions_on(session, household_id, on)
            }
            check_one_head(members, household_id, on)


def _identity_payload(
    person: Person, record: ResidentRecord, effective_on: dt.date, kind: EventKind
) -> dict[str, Any]:
    identity = record.identity()
    payload = json.loads(record_to_json(record)) | {
        "lg_code": person.lg_code,
        "prefecture_code": person.lg_code[:2],
        "effective_on": effective_on.isoformat(),
        "change_kind": kind.value,
        "identity": json.loads(
            json.dumps(
                {
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
                }
            )
        ),
    }
    return dict(_seal(payload))


def _emit(
    session: Session,
    ctx: RegistryContext,
    person: Person,
    *,
    event_id: int,
    kind: str,
    payload: dict[str, Any],
    destination: str | None = None,
) -> None:
    person.outbox_seq += 1
    session.add(
        OutboxMessage(
            lg_code=person.lg_code,
            person_id=person.id,
            resident_code=person.resident_code,
            seq=person.outbox_seq,
            kind=kind,
            destination_lg_code=destination,
            idempotency_key=uuid.uuid4().hex,
            payload=json.dumps(payload, ensure_ascii=False, sort_keys=True),
            event_id=event_id,
            created_at=ctx.now,
        )
    )


def _record_event(
    session: Session,
    ctx: RegistryContext,
    *,
    kind: EventKind,
    effective_on: dt.date,
    notified_on: dt.date | None,
    reason: str,
    changes: Sequence[PlannedChange],
    person_versions: Mapping[int, int],
    household_versions: Mapping[int, int] = {},
    cancels: RegistryEvent | None = None,
    new_person_ids: Iterable[int] = (),
    move_out_destination: str | None = None,
    movers: frozenset[int] = frozenset(),
    caused_by: int | None = None,
) -> EventOutcome:
    notified = notified_on or ctx.today
    late = check_dates(kind, effective_on=effective_on, notified_on=notified, today=ctx.today)
    for person_id, expected in sorted(person_versions.items()):
        _person_in_scope(session, ctx, person_id)
        if not repository.bump_person_version(session, person_id, expected):
            raise StaleVersion(
                f"住民 {person_id} の記録は他の操作で更新されています。最新の内容を読み込み直してください。",
                field="version",
            )
    for household_id, expected in sorted(household_versions.items()):
        _household_in_scope(session, ctx, household_id)
        if not repository.bump_household_version(session, household_id, expected):
            raise StaleVersion(
                f"世帯 {household_id} は他の操作で更新されています。最新の内容を読み込み直してください。",
                field="household.version",
            )
    touched = sorted({c.person_id for c in changes} | set(person_versions))
    new_ids = set(new_person_ids)
    missing = [p for p in touched if p not in person_versions and p not in new_ids]
    if missing:
        raise InvalidValue(f"住民 {missing[0]} の版 (version) を指定してください。", field="version")
    before: dict[int, list[Version]] = {}
    for person_id in touched:
        before[person_id] = _versions_of(session, person_id)
        if kind in ALLOWED_ON_REMOVED or kind is EventKind.MOVE_OUT_CONFIRMED or person_id in new_ids:
            continue
        person = _person_in_scope(session, ctx, person_id)
        state = record_on(before[person_id], effective_on)
        if person.lifecycle == "removed" or state is None or state.status is RecordStatus.REMOVED:
            raise RuleViolation(
                f"住民 {person_id} の住民票は消除されています (または異動日に記載がありません)。"
                "取消しと修正のほかは記録できません。",
                field="person_id",
            )

    event = RegistryEvent(
        lg_code=ctx.lg_code,
        kind=kind.value,
        effective_on=effective_on,
        notified_on=notified,
        recorded_at=ctx.now,
        recorded_by=ctx.actor.actor_id,
        reason=reason,
        late=late,
        cancels_event_id=cancels.id if cancels else None,
        caused_by_event_id=caused_by,
        request_id=current_request_id(),
    )
    session.add(event)
    session.flush()
    if cancels is not None:
        cancels.cancelled_by_event_id = event.id
    for planned in changes:
        session.add(
            RegistryEventChange(
                event_id=event.id,
                person_id=planned.person_id,
                effective_on=planned.effective_on,
                change_json=_store_change(planned.change),
            )
        )
    session.flush()

    since = min([effective_on, *(c.effective_on for c in changes)])
    households: set[int] = set(household_versions)
    after: dict[int, list[Version]] = {}
    try:
        # No autoflush while rebuilding: a second live record must surface at the explicit
        # flush below, as a RuleViolation, not from whichever query happens to autoflush.
        with session.no_autoflush:
            for person_id in touched:
                person = _person_in_scope(session, ctx, person_id)
                after[person_id] = _rebuild(session, ctx, person, event.id)
                households |= _households_touched(before[person_id], after[person_id], since)
        session.flush()
    except IntegrityError as exc:
        raise RuleViolation(
            "同じ住民票コードの住民票が既に記載されています。二重の記載はできません。", field="resident_code"
        ) from exc
    _check_households(session, households, since)

    for person_id in touched:
        person = _person_in_scope(session, ctx, person_id)
        versions = after[person_id]
        if versions:
            record = versions[-1].record
            fingerprint = record.identity().fingerprint()
            last_from = versions[-1].valid_from
        else:
            record = None
            fingerprint = "void"
            last_from = effective_on
        if fingerprint != person.identity_fingerprint:
            person.identity_fingerprint = fingerprint
            if record is not None:
                _emit(
                    session,
                    ctx,
                    person,
                    event_id=event.id,
                    kind=OutboxKind.IDENTITY_CHANGED,
                    payload=_identity_payload(person, record, last_from, kind),
                )
            else:
                _emit(
                    session,
                    ctx,
                    person,
                    event_id=event.id,
                    kind=OutboxKind.IDENTITY_CHANGED,
                    payload={"lg_code": person.lg_code, "voided": True, "change_kind": kind.value},
                )
        if move_out_destination is not None and record is not None and person_id in movers:
            _emit(
                session,
                ctx,
                person,
                event_id=event.id,
                kind=OutboxKind.MOVE_OUT_CERTIFICATE,
                payload=_identity_payload(person, record, effective_on, kind),
                destination=move_out_destination,
            )
        audit.record(
            session,
            actor=ctx.actor,
            action=AuditAction.REGISTRY_EVENT_RECORDED,
            target_kind="person",
            target_id=str(person_id),
            purpose="住民基本台帳法に基づく記録",
            detail=f"event={event.id} kind={kind.value}",
        )
    session.flush()
    return EventOutcome(
        event_id=event.id,
        kind=kind,
        late=late,
        person_ids=tuple(touched),
        household_ids=tuple(sorted(households)),
    )


# ---------------------------------------------------------------------------
# Codes


def take_resident_code(session: Session, ctx: RegistryContext) -> str:
    """A fresh 住民票コード from this municipality's pool, refilled from the network."""
    code = repository.take_pooled_code(session, ctx.lg_code, ctx.now)
    if code is not None:
        return code
    fresh = ctx.network.allocate_resident_codes(lg_code=LgCode.parse(ctx.lg_code), count=CODE_POOL_REFILL)
    session.add_all(ResidentCodePool(lg_code=ctx.lg_code, code=str(c)) for c in fresh)
    session.flush()
    code = repository.take_pooled_code(session, ctx.lg_code, ctx.now)
    assert code is not None
    return code


def _new_household(session: Session, ctx: RegistryContext) -> Household:
    number = repository.next_household_no(session, ctx.lg_code)
    household = Household(lg_code=ctx.lg_code, household_no=f"{number:08d}", version=1, created_at=ctx.now)
    session.add(household)
    session.flush()
    return household


def _new_person(session: Session, ctx: RegistryContext, resident_code: str) -> Person:
    existing = repository.live_person_by_resident_code(session, resident_code)
    if existing is not None:
        raise RuleViolation(
            "この住民票コードの住民は既に他の住民票に記載されています。"
            "転出の届出 (または転入による消除) を経ずに二重に記載することはできません。",
            field="resident_code",
        )
    person = Person(
        lg_code=ctx.lg_code,
        resident_code=resident_code,
        lifecycle="live",
        version=1,
        outbox_seq=0,
        identity_fingerprint="",
        created_at=ctx.now,
    )
    session.add(person)
    session.flush()
    return person


def _foreign_items(f: Any, default_since: dt.date, lg_code: str) -> ForeignItems:
    history: tuple[AliasRecord, ...] = ()
    if f.alias:
        history = (AliasRecord(f.alias, f.alias_kana or "", default_since, lg_code),)
    return ForeignItems(
        nationality=f.nationality,
        category=f.category,
        status_of_residence=f.status_of_residence,
        period_of_stay=f.period_of_stay,
        stay_expires_on=f.stay_expires_on,
        residence_card_number=f.residence_card_number,
        became_foreign_resident_on=f.became_foreign_resident_on or default_since,
        name_alphabet=f.name_alphabet,
        alias=f.alias,
        alias_kana=check_kana(f.alias_kana, "alias_kana"),
        alias_history=history,
    )


def _check_address(ctx: RegistryContext) -> None:
    entry = load_master().find(ctx.lg_code)
    if entry is None or not entry.is_municipality:
        raise Forbidden("住民基本台帳を持つ市区町村の職員のみが異動を記録できます。")


def _record_from_input(
    ctx: RegistryContext,
    member: PersonInput,
    *,
    resident_code: str,
    individual_number: str | None,
    household_id: int,
    address: Address,
    effective_on: dt.date,
    notified_on: dt.date,
    previous_address: str | None,
    became_resident_on: dt.date,
    index: int,
) -> ResidentRecord:
    prefix = f"members.{index}."
    if member.birth_date > effective_on:
        raise InvalidValue("生年月日が異動年月日より後になっています。", field=prefix + "birth_date")
    return ResidentRecord(
        resident_kind=member.resident_kind,
        family_name=member.family_name,
        given_name=member.given_name,
        family_name_kana=check_kana(member.family_name_kana, prefix + "family_name_kana"),
        given_name_kana=check_kana(member.given_name_kana, prefix + "given_name_kana"),
        birth_date=member.birth_date,
        sex=member.sex,
        household_id=household_id,
        relationship=check_relationship(member.relationship, prefix + "relationship"),
        address=address,
        became_resident_on=became_resident_on,
        address_set_on=effective_on,
        notified_on=notified_on,
        resident_code=resident_code,
        individual_number=individual_number,
        honseki=member.honseki,
        hittousha=member.hittousha,
        old_surname=member.old_surname,
        old_surname_kana=check_kana(member.old_surname_kana, prefix + "old_surname_kana"),
        previous_address=previous_address,
        foreign=_foreign_items(member.foreign, effective_on, ctx.lg_code) if member.foreign else None,
    )


# ---------------------------------------------------------------------------
# Events that create records: 転入, 特例転入, 国外転入, 職権記載, 出生

_MOVE_IN_KINDS = frozenset(
    {
        EventKind.MOVE_IN,
        EventKind.MOVE_IN_CARD_HOLDER,
        EventKind.MOVE_IN_FROM_ABROAD,
        EventKind.EX_OFFICIO_ENTRY,
    }
)


def move_in(
    session: Session, *, ctx: RegistryContext, request: MoveInRequest, kind: EventKind = EventKind.MOVE_IN
) -> EventOutcome:
    """転入 / 特例転入 / 国外転入 / 職権記載: new records, in a new or an existing household."""
    if kind not in _MOVE_IN_KINDS:
        raise ValueError(f"{kind} is not a move-in kind")
    _check_address(ctx)
    notified = request.notified_on or ctx.today
    heads = [m for m in request.members if m.relationship.strip() == RELATIONSHIP_HEAD]
    household_versions: dict[int, int] = {}
    if request.household.household_id is None:
        if len(heads) != 1:
            raise RuleViolation("新しい世帯には世帯主がちょうど1人必要です。", field="members")
        household = _new_household(session, ctx)
    else:
        assert request.household.version is not None
        household = _household_in_scope(session, ctx, request.household.household_id)
        household_versions[household.id] = request.household.version
    address = Address(ctx.lg_code, request.address.line, request.address.katagaki)
    changes: list[PlannedChange] = []
    new_ids: list[int] = []
    closing: list[Person] = []
    for index, member in enumerate(request.members):
        code = member.resident_code
        number = member.individual_number
        if kind in (EventKind.MOVE_IN, EventKind.MOVE_IN_CARD_HOLDER) and code is None:
            raise InvalidValue(
                "転入には転出証明書に記載された住民票コードが必要です。",
                field=f"members.{index}.resident_code",
            )
        if kind is EventKind.MOVE_IN_CARD_HOLDER and number is None:
            raise InvalidValue(
                "特例転入には個人番号カードの個人番号が必要です。", field=f"members.{index}.individual_number"
            )
        if code is not None:
            for other in repository.persons_by_resident_code(session, code):
                if other.lifecycle == "moving_out":
                    closing.append(other)
        else:
            code = take_resident_code(session, ctx)
        if number is None:
            number = str(
                ctx.network.individual_number_for(
                    resident_code=ResidentCode.parse(code), lg_code=LgCode.parse(ctx.lg_code)
                )
            )
        record = _record_from_input(
            ctx,
            member,
            resident_code=code,
            individual_number=number,
            household_id=household.id,
            address=address,
            effective_on=request.effective_on,
            notified_on=notified,
            previous_address=request.previous_address,
            became_resident_on=request.effective_on,
            index=index,
        )
        person = _new_person(session, ctx, code)
        new_ids.append(person.id)
        changes.append(PlannedChange(person.id, request.effective_on, Registration(record)))
    outcome = _record_event(
        session,
        ctx,
        kind=kind,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=changes,
        person_versions={},
        household_versions=household_versions,
        new_person_ids=new_ids,
    )
    by_origin: dict[str, list[Person]] = {}
    for origin in closing:
        by_origin.setdefault(origin.lg_code, []).append(origin)
    for origins in by_origin.values():
        _confirm_move_out(session, origins, moved_on=request.effective_on, by=ctx, move_in=outcome.event_id)
    return outcome


def _confirm_move_out(
    session: Session, origins: list[Person], *, moved_on: dt.date, by: RegistryContext, move_in: int
) -> None:
    """転入通知: the destination's move-in closes the origin's planned move-out records.

    One event per origin municipality, so that a household leaving together is closed
    together and never stands without its head in between. The removal date becomes the
    actual move date when that is earlier than the planned one; a later actual date is
    left for the origin's 職権修正, as in practice.
    """
    lg_code = origins[0].lg_code
    origin_ctx = RegistryContext(actor=Actor.system(lg_code), lg_code=lg_code, network=by.network, now=by.now)
    on = min(moved_on, origin_ctx.today)
    _record_event(
        session,
        origin_ctx,
        kind=EventKind.MOVE_OUT_CONFIRMED,
        effective_on=on,
        notified_on=origin_ctx.today,
        reason=f"転入通知 ({by.lg_code})",
        changes=[PlannedChange(o.id, on, Removal(RemovalReason.MOVE_OUT)) for o in origins],
        person_versions={o.id: o.version for o in origins},
        caused_by=move_in,
    )


def move_out_confirmed(
    session: Session, *, ctx: RegistryContext, request: MoveOutConfirmedRequest
) -> EventOutcome:
    """転入通知の受理 from a municipality outside this deployment (a household at once)."""
    for ref in request.persons:
        if _person_in_scope(session, ctx, ref.person_id).lifecycle != "moving_out":
            raise RuleViolation(
                f"住民 {ref.person_id} には転出の届出がないため転入通知を受理できません。", field="persons"
            )
    return _record_event(
        session,
        ctx,
        kind=EventKind.MOVE_OUT_CONFIRMED,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=[
            PlannedChange(r.person_id, request.effective_on, Removal(RemovalReason.MOVE_OUT))
            for r in request.persons
        ],
        person_versions=_versions(request.persons),
    )


def birth(session: Session, *, ctx: RegistryContext, request: BirthRequest) -> EventOutcome:
    """出生: the child joins a household with a new resident code and individual number."""
    _check_address(ctx)
    child = request.child
    if child.birth_date != request.effective_on:
        raise InvalidValue("出生の異動年月日は生年月日と同じ日にしてください。", field="effective_on")
    household = _household_in_scope(session, ctx, request.household.household_id)
    members = repository.household_versions_on(session, household.id, min(ctx.today, request.effective_on))
    live = [_record_of(v) for v in members if v.status == RecordStatus.LIVE.value]
    if not live:
        raise RuleViolation("出生の届出先の世帯に住民がいません。", field="household.household_id")
    address = next(r for r in live if r.is_head).address if any(r.is_head for r in live) else live[0].address
    code = child.resident_code or take_resident_code(session, ctx)
    number = child.individual_number or str(
        ctx.network.individual_number_for(
            resident_code=ResidentCode.parse(code), lg_code=LgCode.parse(ctx.lg_code)
        )
    )
    notified = request.notified_on or ctx.today
    record = _record_from_input(
        ctx,
        child,
        resident_code=code,
        individual_number=number,
        household_id=household.id,
        address=address,
        effective_on=request.effective_on,
        notified_on=notified,
        previous_address=None,
        became_resident_on=request.effective_on,
        index=0,
    )
    person = _new_person(session, ctx, code)
    return _record_event(
        session,
        ctx,
        kind=EventKind.BIRTH,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=[PlannedChange(person.id, request.effective_on, Registration(record))],
        person_versions={},
        household_versions={household.id: request.household.version},
        new_person_ids=[person.id],
    )


# ---------------------------------------------------------------------------
# Moves


def move_within(session: Session, *, ctx: RegistryContext, request: MoveWithinRequest) -> EventOutcome:
    """転居: a new address in the same municipality."""
    address = Address(ctx.lg_code, request.address.line, request.address.katagaki)
    changes = []
    for ref in request.persons:
        previous = _latest(session, ref.person_id).address
        changes.append(
            PlannedChange(ref.person_id, request.effective_on, AddressChange(address, previous.line))
        )
    return _record_event(
        session,
        ctx,
        kind=EventKind.MOVE_WITHIN,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=changes,
        person_versions=_versions(request.persons),
    )


def _versions(refs: Iterable[PersonRef]) -> dict[int, int]:
    out: dict[int, int] = {}
    for ref in refs:
        if ref.person_id in out:
            raise InvalidValue(f"住民 {ref.person_id} が重複しています。", field="persons")
        out[ref.person_id] = ref.version
    return out


def _new_head_changes(
    session: Session,
    ctx: RegistryContext,
    *,
    leaving: set[int],
    remaining_head: int | None,
    effective_on: dt.date,
) -> tuple[list[PlannedChange], dict[int, int]]:
    """When the head leaves a household that keeps members, name the new head."""
    changes: list[PlannedChange] = []
    versions: dict[int, int] = {}
    if remaining_head is None:
        return changes, versions
    person = _person_in_scope(session, ctx, remaining_head)
    if remaining_head in leaving:
        raise InvalidValue("新しい世帯主は残る世帯員から選んでください。", field="remaining_head_person_id")
    # The household the new head belongs to on the day the head leaves, which must be
    # the leaving person's household then (a later move must not redirect the change).
    record = record_on(_versions_of(session, remaining_head), effective_on)
    left = {
        r.household_id
        for p in leaving
        if (r := record_on(_versions_of(session, p), effective_on)) is not None
    }
    if record is None or record.household_id not in left:
        raise InvalidValue(
            "新しい世帯主は、異動日に同じ世帯にいる世帯員から選んでください。",
            field="remaining_head_person_id",
        )
    changes.append(
        PlannedChange(
            remaining_head, effective_on, HouseholdAssignment(record.household_id, RELATIONSHIP_HEAD)
        )
    )
    versions[remaining_head] = person.version
    return changes, versions


def move_out(session: Session, *, ctx: RegistryContext, request: MoveOutRequest) -> EventOutcome:
    """転出 / 国外転出: 転出予定 from the notification, removal on the planned date.

    Writes the 転出証明書情報 message addressed to the destination municipality.
    """
    kind = EventKind.MOVE_OUT_ABROAD if request.abroad else EventKind.MOVE_OUT
    if request.abroad and request.destination_lg_code:
        raise InvalidValue("国外転出に転出先の団体コードは指定できません。", field="destination_lg_code")
    if request.destination_lg_code == ctx.lg_code:
        raise InvalidValue("同じ市区町村内の移動は転居として届け出てください。", field="destination_lg_code")
    notified = request.notified_on or ctx.today
    planned = PlannedMoveOut(request.effective_on, request.destination, request.destination_lg_code)
    reason = RemovalReason.MOVE_OUT_ABROAD if request.abroad else RemovalReason.MOVE_OUT
    changes: list[PlannedChange] = []
    for ref in request.persons:
        if request.effective_on > notified:
            changes.append(PlannedChange(ref.person_id, notified, MoveOutPlanned(planned)))
        changes.append(PlannedChange(ref.person_id, request.effective_on, Removal(reason)))
    versions = _versions(request.persons)
    head_changes, head_versions = _new_head_changes(
        session,
        ctx,
        leaving=set(versions),
        remaining_head=request.remaining_head_person_id,
        effective_on=request.effective_on,
    )
    return _record_event(
        session,
        ctx,
        kind=kind,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=changes + head_changes,
        person_versions=versions | head_versions,
        move_out_destination=request.destination_lg_code,
        movers=frozenset(versions),
    )


def removal(
    session: Session, *, ctx: RegistryContext, request: RemovalRequest, kind: EventKind
) -> EventOutcome:
    """死亡 / 失踪宣告 / 職権消除."""
    reasons = {
        EventKind.DEATH: RemovalReason.DEATH,
        EventKind.DECLARED_MISSING: RemovalReason.DECLARED_MISSING,
        EventKind.EX_OFFICIO_REMOVAL: RemovalReason.EX_OFFICIO,
    }
    if kind not in reasons:
        raise ValueError(f"{kind} is not a removal kind")
    person_id = request.person.person_id
    head_changes, head_versions = _new_head_changes(
        session,
        ctx,
        leaving={person_id},
        remaining_head=request.remaining_head_person_id,
        effective_on=request.effective_on,
    )
    return _record_event(
        session,
        ctx,
        kind=kind,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=[PlannedChange(person_id, request.effective_on, Removal(reasons[kind])), *head_changes],
        person_versions={person_id: request.person.version} | head_versions,
    )


# ---------------------------------------------------------------------------
# Households


def _member_versions(session: Session, ctx: RegistryContext, person_ids: Iterable[int]) -> dict[int, int]:
    return {pid: _person_in_scope(session, ctx, pid).version for pid in person_ids}


def _assignments(
    session: Session,
    ctx: RegistryContext,
    members: Sequence[MemberRelationship],
    household_id: int,
    on: dt.date,
) -> list[PlannedChange]:
    out = []
    for i, m in enumerate(members):
        _person_in_scope(session, ctx, m.person_id)
        out.append(
            PlannedChange(
                m.person_id,
                on,
                HouseholdAssignment(
                    household_id, check_relationship(m.relationship, f"members.{i}.relationship")
                ),
            )
        )
    return out


def _members_on(session: Session, household_id: int, on: dt.date) -> set[int]:
    return {
        v.person_id
        for v in repository.household_versions_on(session, household_id, on)
        if v.status == RecordStatus.LIVE.value
    }


def household_split(
    session: Session, *, ctx: RegistryContext, request: HouseholdSplitRequest
) -> EventOutcome:
    """世帯分離: some members found a new household at the same address."""
    source = _household_in_scope(session, ctx, request.household.household_id)
    members = _members_on(session, source.id, request.effective_on)
    leaving = {m.person_id for m in request.members}
    if not leaving <= members:
        raise InvalidValue("分離する世帯員が元の世帯にいません。", field="members")
    if leaving == members:
        raise RuleViolation("世帯員全員を分離することはできません。", field="members")
    target = _new_household(session, ctx)
    changes = _assignments(session, ctx, request.members, target.id, request.effective_on)
    changes += _assignments(session, ctx, request.remaining_relationships, source.id, request.effective_on)
    return _record_event(
        session,
        ctx,
        kind=EventKind.HOUSEHOLD_SPLIT,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=changes,
        person_versions=_member_versions(session, ctx, {c.person_id for c in changes}),
        household_versions={source.id: request.household.version},
    )


def household_merge(
    session: Session, *, ctx: RegistryContext, request: HouseholdMergeRequest
) -> EventOutcome:
    """世帯合併: every member of one household joins another."""
    source = _household_in_scope(session, ctx, request.from_household.household_id)
    target = _household_in_scope(session, ctx, request.into_household.household_id)
    if source.id == target.id:
        raise InvalidValue("同じ世帯同士は合併できません。", field="into_household")
    moving = _members_on(session, source.id, request.effective_on)
    given = {m.person_id for m in request.relationships}
    if not moving <= given:
        raise InvalidValue("合併される世帯の全員の新しい続柄を指定してください。", field="relationships")
    changes = _assignments(session, ctx, request.relationships, target.id, request.effective_on)
    return _record_event(
        session,
        ctx,
        kind=EventKind.HOUSEHOLD_MERGE,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=changes,
        person_versions=_member_versions(session, ctx, given),
        household_versions={
            source.id: request.from_household.version,
            target.id: request.into_household.version,
        },
    )


def household_change(
    session: Session, *, ctx: RegistryContext, request: HouseholdChangeRequest
) -> EventOutcome:
    """世帯変更: members move from their households into another existing one."""
    target = _household_in_scope(session, ctx, request.into_household.household_id)
    versions = {request.into_household.household_id: request.into_household.version}
    for ref in request.from_households:
        _household_in_scope(session, ctx, ref.household_id)
        versions[ref.household_id] = ref.version
    changes = _assignments(session, ctx, request.members, target.id, request.effective_on)
    for m in request.members:
        if _latest(session, m.person_id).household_id not in versions:
            raise InvalidValue(
                "移る世帯員の元の世帯を from_households に含めてください。", field="from_households"
            )
    for r in request.remaining_relationships:
        household_id = _latest(session, r.person_id).household_id
        changes += _assignments(session, ctx, [r], household_id, request.effective_on)
    return _record_event(
        session,
        ctx,
        kind=EventKind.HOUSEHOLD_CHANGE,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=changes,
        person_versions=_member_versions(session, ctx, {c.person_id for c in changes}),
        household_versions=versions,
    )


def head_change(session: Session, *, ctx: RegistryContext, request: HeadChangeRequest) -> EventOutcome:
    """世帯主変更: new relationships in the household, exactly one of them 世帯主."""
    household = _household_in_scope(session, ctx, request.household.household_id)
    members = _members_on(session, household.id, request.effective_on)
    if not {m.person_id for m in request.relationships} <= members:
        raise InvalidValue("世帯員でない住民が含まれています。", field="relationships")
    changes = _assignments(session, ctx, request.relationships, household.id, request.effective_on)
    return _record_event(
        session,
        ctx,
        kind=EventKind.HEAD_CHANGE,
        effective_on=request.effective_on,
        notified_on=request.notified_on,
        reason=request.reason,
        changes=changes,
        person_versions=_member_versions(session, ctx, {c.person_id for c in changes}),
        household_versions={household.id: request.household.version},
    )


# ---------------------------------------------------------------------------
# Items of one person


def _single(
    session: Session,
    ctx: RegistryContext,
    *,
    kind: EventKind,
    ref: PersonRef,
    change: Change,
    common: Any,
    effective_on: dt.date | None = None,
) -> EventOutcome:
    on = effective_on or common.effective_on
    return _record_event(
        session,
        ctx,
        kind=kind,
        effective_on=common.effective_on,
        notified_on=common.notified_on,
        reason=common.reason,
        changes=[PlannedChange(ref.person_id, on, change)],
        person_versions={ref.person_id: ref.version},
    )


def name_change(session: Session, *, ctx: RegistryContext, request: NameChangeRequest) -> EventOutcome:
    change = NameChange(
        request.family_name,
        request.given_name,
        check_kana(request.family_name_kana, "family_name_kana"),
        check_kana(request.given_name_kana, "given_name_kana"),
    )
    return _single(
        session, ctx, kind=EventKind.NAME_CHANGE, ref=request.person, change=change, common=request
    )


def old_surname_entry(session: Session, *, ctx: RegistryContext, request: OldSurnameRequest) -> EventOutcome:
    change = OldSurnameChange(request.old_surname, check_kana(request.old_surname_kana, "old_surname_kana"))
    return _single(
        session, ctx, kind=EventKind.OLD_SURNAME_ENTRY, ref=request.person, change=change, common=request
    )


def old_surname_deletion(
    session: Session, *, ctx: RegistryContext, request: PersonOnlyRequest
) -> EventOutcome:
    if _latest(session, request.person.person_id).old_surname is None:
        raise RuleViolation("削除する旧氏が記載されていません。", field="person_id")
    return _single(
        session,
        ctx,
        kind=EventKind.OLD_SURNAME_DELETION,
        ref=request.person,
        change=OldSurnameChange(None, None),
        common=request,
    )


def furigana(session: Session, *, ctx: RegistryContext, request: FuriganaRequest) -> EventOutcome:
    family = check_kana(request.family_name_kana, "family_name_kana")
    given = check_kana(request.given_name_kana, "given_name_kana") or ""
    assert family is not None
    return _single(
        session,
        ctx,
        kind=EventKind.FURIGANA,
        ref=request.person,
        change=FuriganaChange(family, given),
        common=request,
    )


def _correction_items(items: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    parsed: list[tuple[str, Any]] = []
    for name, value in sorted(items.items()):
        kind = CORRECTABLE_ITEMS.get(name)
        if kind is None:
            raise InvalidValue(
                f"項目 {name} は修正できません (修正できる項目: {', '.join(sorted(CORRECTABLE_ITEMS))})。",
                field=f"items.{name}",
            )
        if value is None and not kind.endswith("?"):
            raise InvalidValue(f"項目 {name} は空にできません。", field=f"items.{name}")
        if value is None:
            parsed.append((name, None))
        elif kind == "date":
            parsed.append((name, parse_date(str(value), field=f"items.{name}")))
        elif kind == "sex":
            try:
                parsed.append((name, Sex(value)))
            except ValueError as exc:
                raise InvalidValue("性別は male または female です。", field=f"items.{name}") from exc
        elif kind.startswith("kana"):
            parsed.append((name, check_kana(str(value), f"items.{name}")))
        else:
            text = str(value).strip()
            if name == "relationship":
                text = check_relationship(text, f"items.{name}")
            if not text and not kind.endswith("?"):
                raise InvalidValue(f"項目 {name} は空にできません。", field=f"items.{name}")
            parsed.append((name, text or None))
    return tuple(parsed)


def correction(
    session: Session, *, ctx: RegistryContext, request: CorrectionRequest, kind: EventKind
) -> EventOutcome:
    """職権修正 / 誤記修正: the right value holds from ``effective_on``, which may lie in the past."""
    if kind not in (EventKind.EX_OFFICIO_CORRECTION, EventKind.CLERICAL_CORRECTION):
        raise ValueError(f"{kind} is not a correction kind")
    items = _correction_items(request.items)
    versions = _versions_of(session, _person_in_scope(session, ctx, request.person.person_id).id)
    if not versions:
        raise RuleViolation("修正の対象となる住民票がありません。", field="person_id")
    # A value wrong "from the start" is corrected from the record's first day: the
    # record did not exist before it, so there is nothing earlier to correct.
    on = max(request.effective_on, versions[0].valid_from)
    return _single(
        session,
        ctx,
        kind=kind,
        ref=request.person,
        change=ItemCorrection(items),
        common=request,
        effective_on=on,
    )


def resident_code_change(
    session: Session, *, ctx: RegistryContext, request: PersonOnlyRequest
) -> EventOutcome:
    """住民票コードの変更請求 (住民基本台帳法 第30条の4): a new code from the pool."""
    code = take_resident_code(session, ctx)
    return _single(
        session,
        ctx,
        kind=EventKind.RESIDENT_CODE_CHANGE,
        ref=request.person,
        change=ResidentCodeChange(code),
        common=request,
    )


def individual_number_change(
    session: Session, *, ctx: RegistryContext, request: PersonOnlyRequest
) -> EventOutcome:
    """個人番号の変更 (番号法 第7条第2項): the network issues a new number for the same person."""
    record = _latest(session, request.person.person_id)
    number = ctx.network.change_individual_number(
        resident_code=ResidentCode.parse(record.resident_code),
        lg_code=LgCode.parse(ctx.lg_code),
        current_number=IndividualNumber.parse(record.individual_number) if record.individual_number else None,
    )
    return _single(
        session,
        ctx,
        kind=EventKind.INDIVIDUAL_NUMBER_CHANGE,
        ref=request.person,
        change=IndividualNumberChange(str(number)),
        common=request,
    )


def immigration_notice(
    session: Session, *, ctx: RegistryContext, request: ImmigrationNoticeRequest
) -> EventOutcome:
    if not any(
        [
            request.status_of_residence,
            request.period_of_stay,
            request.stay_expires_on,
            request.residence_card_number,
            request.category,
        ]
    ):
        raise InvalidValue("変更する在留資格等の項目を1つ以上指定してください。", field="status_of_residence")
    change = ImmigrationUpdate(
        request.status_of_residence,
        request.period_of_stay,
        request.stay_expires_on,
        request.residence_card_number,
        request.category,
    )
    return _single(
        session, ctx, kind=EventKind.IMMIGRATION_NOTICE, ref=request.person, change=change, common=request
    )


def alias_entry(session: Session, *, ctx: RegistryContext, request: AliasEntryRequest) -> EventOutcome:
    change = AliasChange(request.alias, check_kana(request.alias_kana, "alias_kana"))
    return _single(
        session, ctx, kind=EventKind.ALIAS_ENTRY, ref=request.person, change=change, common=request
    )


def alias_deletion(session: Session, *, ctx: RegistryContext, request: PersonOnlyRequest) -> EventOutcome:
    return _single(
        session,
        ctx,
        kind=EventKind.ALIAS_DELETION,
        ref=request.person,
        change=AliasChange(None, None),
        common=request,
    )


def become_japanese(
    session: Session, *, ctx: RegistryContext, request: BecomeJapaneseRequest, kind: EventKind
) -> EventOutcome:
    """帰化 / 国籍取得."""
    if kind not in (EventKind.NATURALISATION, EventKind.NATIONALITY_ACQUIRED):
        raise ValueError(f"{kind} is not a nationality kind")
    change = BecomeJapanese(
        request.family_name,
        request.given_name,
        check_kana(request.family_name_kana, "family_name_kana"),
        check_kana(request.given_name_kana, "given_name_kana"),
        request.honseki,
        request.hittousha,
    )
    return _single(session, ctx, kind=kind, ref=request.person, change=change, common=request)


def nationality_lost(
    session: Session, *, ctx: RegistryContext, request: NationalityLostRequest
) -> EventOutcome:
    change = BecomeForeign(_foreign_items(request.foreign, request.effective_on, ctx.lg_code))
    return _single(
        session, ctx, kind=EventKind.NATIONALITY_LOST, ref=request.person, change=change, common=request
    )


def cancel(session: Session, *, ctx: RegistryContext, request: CancellationRequest) -> EventOutcome:
    """異動の取消し: the earlier event stops counting; every touched record is rebuilt without it."""
    target = repository.event(session, request.event_id)
    if target is None or target.lg_code != ctx.lg_code:
        raise NotFound(f"異動 {request.event_id} はこの団体にありません。", field="event_id")
    if target.cancelled_by_event_id is not None:
        raise RuleViolation("この異動は既に取り消されています。", field="event_id")
    if target.kind == EventKind.CANCELLATION.value:
        raise RuleViolation(
            "取消しそのものは取り消せません。誤った取消しは改めて記録してください。", field="event_id"
        )
    persons = repository.persons_of_event(session, target.id)
    versions = _versions(request.versions)
    if set(versions) != set(persons):
        raise InvalidValue(
            f"取り消す異動の対象者 ({', '.join(map(str, persons))}) の版をすべて指定してください。",
            field="versions",
        )
    outcome = _record_event(
        session,
        ctx,
        kind=EventKind.CANCELLATION,
        effective_on=min(target.effective_on, ctx.today),
        notified_on=request.notified_on,
        reason=request.reason,
        changes=[],
        person_versions=versions,
        cancels=target,
    )
    _withdraw_consequences(session, ctx, target)
    return outcome


def _withdraw_consequences(session: Session, by: RegistryContext, cause: RegistryEvent) -> None:
    """A cancelled move-in withdraws its 転入通知: the origin's records are moving out again.

    Without this the person would stand closed at the origin and absent at the destination,
    live nowhere; withdrawn, the origin may take a corrected move-in again.
    """
    for caused in repository.events_caused_by(session, cause.id):
        if caused.cancelled_by_event_id is not None:
            continue
        origin_ctx = RegistryContext(
            actor=Actor.system(caused.lg_code), lg_code=caused.lg_code, network=by.network, now=by.now
        )
        persons = repository.persons_of_event(session, caused.id)
        _record_event(
            session,
            origin_ctx,
            kind=EventKind.CANCELLATION,
            effective_on=min(caused.effective_on, origin_ctx.today),
            notified_on=origin_ctx.today,
            reason=f"転入の取消し ({by.lg_code})",
            changes=[],
            person_versions={p: _person_in_scope(session, origin_ctx, p).version for p in persons},
            cancels=caused,
        )


# ---------------------------------------------------------------------------
# Reads


@dataclass(frozen=True, slots=True)
class RecordView:
    person_id: int
    lg_code: str
    version: int
    valid_from: dt.date
    valid_to: dt.date | None
    recorded_at: dt.datetime
    record: ResidentRecord


def _audit_read(session: Session, ctx: RegistryContext, *, target: str, purpose: str, detail: str) -> None:
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.REGISTRY_READ,
        target_kind="person" if target.isdigit() else "register",
        target_id=target,
        purpose=purpose,
        detail=detail,
    )


def get_record(
    session: Session,
    *,
    ctx: RegistryContext,
    person_id: int,
    on: dt.date | None = None,
    known_at: dt.datetime | None = None,
    purpose: str,
) -> RecordView:
    """The record as it stood on ``on`` (default today), as the register knew it at ``known_at``."""
    person = _person_in_scope(session, ctx, person_id)
    day = on or ctx.today
    version = repository.version_on(session, person.id, day, known_at)
    if version is None and on is None and known_at is None:
        # Removed before today or moved in after: show the last version there is.
        current = repository.current_versions(session, person.id)
        version = current[-1] if current else None
    if version is None:
        raise NotFound(f"住民 {person_id} の {day.isoformat()} 時点の記録はありません。", field="on")
    _audit_read(
        session,
        ctx,
        target=str(person_id),
        purpose=purpose,
        detail=f"on={day.isoformat()} known_at={known_at}",
    )
    return RecordView(
        person.id,
        person.lg_code,
        person.version,
        version.valid_from,
        version.valid_to,
        version.recorded_at,
        _record_of(version),
    )


def history(session: Session, *, ctx: RegistryContext, person_id: int, purpose: str) -> list[PersonVersion]:
    """Every version ever recorded, superseded ones included (bitemporal history)."""
    person = _person_in_scope(session, ctx, person_id)
    _audit_read(session, ctx, target=str(person_id), purpose=purpose, detail="history")
    return list(repository.all_versions(session, person.id))


def version_summary(version: PersonVersion) -> ResidentRecord:
    return _record_of(version)


def events_of(session: Session, *, ctx: RegistryContext, person_id: int, purpose: str) -> list[RegistryEvent]:
    person = _person_in_scope(session, ctx, person_id)
    _audit_read(session, ctx, target=str(person_id), purpose=purpose, detail="events")
    return list(repository.events_of_person(session, person.id))


@dataclass(frozen=True, slots=True)
class HouseholdView:
    household_id: int
    household_no: str
    version: int
    on: dt.date
    members: list[RecordView]

    @property
    def head_person_id(self) -> int | None:
        return next(
            (m.person_id for m in self.members if m.record.is_head and m.record.status is RecordStatus.LIVE),
            None,
        )


def get_household(
    session: Session,
    *,
    ctx: RegistryContext,
    household_id: int,
    on: dt.date | None = None,
    known_at: dt.datetime | None = None,
    purpose: str,
) -> HouseholdView:
    household = _household_in_scope(session, ctx, household_id)
    day = on or ctx.today
    members = []
    for v in repository.household_versions_on(session, household.id, day, known_at):
        person = _person_in_scope(session, ctx, v.person_id)
        if v.status != RecordStatus.LIVE.value:
            continue
        members.append(
            RecordView(
                person.id,
                person.lg_code,
                person.version,
                v.valid_from,
                v.valid_to,
                v.recorded_at,
                _record_of(v),
            )
        )
    members.sort(key=lambda m: (not m.record.is_head, m.record.birth_date))
    _audit_read(
        session,
        ctx,
        target=f"household:{household_id}",
        purpose=purpose,
        detail=f"on={day.isoformat()} members={len(members)}",
    )
    return HouseholdView(household.id, household.household_no, household.version, day, members)


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    results: list[RecordView]


def search(
    session: Session,
    *,
    ctx: RegistryContext,
    resident_code: str | None = None,
    kana: str | None = None,
    birth_date: dt.date | None = None,
    address: str | None = None,
    include_removed: bool = False,
    limit: int = 50,
    offset: int = 0,
    purpose: str,
) -> SearchResult:
    if not any([resident_code, kana, birth_date, address]):
        raise InvalidValue("検索条件を1つ以上指定してください。", field="kana")
    total, rows = repository.search(
        session,
        lg_code=ctx.lg_code,
        on=ctx.today,
        resident_code=resident_code,
        kana_prefix=normalize_kana(kana) if kana else None,
        birth_date=birth_date,
        address_prefix=address,
        include_removed=include_removed,
        limit=limit,
        offset=offset,
    )
    results = []
    # A removed record's last version is open-ended, so 除票 are found by today's query.
    for v, person in rows:
        results.append(
            RecordView(
                person.id,
                person.lg_code,
                person.version,
                v.valid_from,
                v.valid_to,
                v.recorded_at,
                _record_of(v),
            )
        )
    _audit_read(
        session, ctx, target="search", purpose=purpose, detail=f"results={len(results)} total={total}"
    )
    return SearchResult(total, results)


def outbox(
    session: Session,
    *,
    lg_code: str | None,
    viewer: Actor | None = None,
    undelivered_only: bool = False,
    after_id: int = 0,
    limit: int = 100,
) -> list[tuple[OutboxMessage, dict[str, Any]]]:
    """Outbox messages in order, payload unsealed; reading them is audited like any record.

    Without a viewer the reader is the system itself (the relay taking a batch to send).
    """
    rows = repository.outbox(
        session, lg_code=lg_code, undelivered_only=undelivered_only, after_id=after_id, limit=limit
    )
    audit.record(
        session,
        actor=viewer or Actor.system(lg_code or "system"),
        action=AuditAction.REGISTRY_READ,
        target_kind="outbox",
        target_id=lg_code or "*",
        purpose="住基ネット送信の確認",
        detail=f"messages={len(rows)} after_id={after_id}",
    )
    return [(m, dict(_unseal(json.loads(m.payload)))) for m in rows]


def replay_matches(session: Session, person_id: int) -> bool:
    """Folding the standing changes again gives exactly the stored current versions."""
    person = repository.person(session, person_id)
    assert person is not None
    timed = [
        TimedChange(c.effective_on, e.id, _load_change(c.change_json))
        for c, e in repository.changes_of(session, person_id)
    ]
    return _fingerprint_versions(fold(timed, lg_code=person.lg_code)) == _fingerprint_versions(
        _versions_of(session, person_id)
    )


# ---------------------------------------------------------------------------
# The command table: one entry per event kind, shared by the API and the CLI so that
# both offer every event with the same request shape and the same use case.


@dataclass(frozen=True, slots=True)
class EventCommand:
    slug: str
    kind: EventKind
    request_type: type[Any]
    run: Any  # Callable[[Session, RegistryContext, request], EventOutcome]
    supervisor_only: bool = False

    @property
    def label(self) -> str:
        return EVENT_LABELS[self.kind]


def _bind(function: Any, **fixed: Any) -> Any:
    def run(session: Session, ctx: RegistryContext, request: Any) -> EventOutcome:
        result: EventOutcome = function(session, ctx=ctx, request=request, **fixed)
        return result

    return run


EVENT_COMMANDS: tuple[EventCommand, ...] = (
    EventCommand("move-in", EventKind.MOVE_IN, MoveInRequest, _bind(move_in, kind=EventKind.MOVE_IN)),
    EventCommand(
        "move-in-card-holder",
        EventKind.MOVE_IN_CARD_HOLDER,
        MoveInRequest,
        _bind(move_in, kind=EventKind.MOVE_IN_CARD_HOLDER),
    ),
    EventCommand(
        "move-in-from-abroad",
        EventKind.MOVE_IN_FROM_ABROAD,
        MoveInRequest,
        _bind(move_in, kind=EventKind.MOVE_IN_FROM_ABROAD),
    ),
    EventCommand("birth", EventKind.BIRTH, BirthRequest, _bind(birth)),
    EventCommand("move-within", EventKind.MOVE_WITHIN, MoveWithinRequest, _bind(move_within)),
    EventCommand("move-out", EventKind.MOVE_OUT, MoveOutRequest, _bind(move_out)),
    EventCommand(
        "move-out-confirmed", EventKind.MOVE_OUT_CONFIRMED, MoveOutConfirmedRequest, _bind(move_out_confirmed)
    ),
    EventCommand("death", EventKind.DEATH, RemovalRequest, _bind(removal, kind=EventKind.DEATH)),
    EventCommand(
        "declared-missing",
        EventKind.DECLARED_MISSING,
        RemovalRequest,
        _bind(removal, kind=EventKind.DECLARED_MISSING),
    ),
    EventCommand("household-split", EventKind.HOUSEHOLD_SPLIT, HouseholdSplitRequest, _bind(household_split)),
    EventCommand("household-merge", EventKind.HOUSEHOLD_MERGE, HouseholdMergeRequest, _bind(household_merge)),
    EventCommand(
        "household-change", EventKind.HOUSEHOLD_CHANGE, HouseholdChangeRequest, _bind(household_change)
    ),
    EventCommand("head-change", EventKind.HEAD_CHANGE, HeadChangeRequest, _bind(head_change)),
    EventCommand("name-change", EventKind.NAME_CHANGE, NameChangeRequest, _bind(name_change)),
    EventCommand(
        "old-surname-entry", EventKind.OLD_SURNAME_ENTRY, OldSurnameRequest, _bind(old_surname_entry)
    ),
    EventCommand(
        "old-surname-deletion", EventKind.OLD_SURNAME_DELETION, PersonOnlyRequest, _bind(old_surname_deletion)
    ),
    EventCommand("furigana", EventKind.FURIGANA, FuriganaRequest, _bind(furigana)),
    EventCommand(
        "ex-officio-entry",
        EventKind.EX_OFFICIO_ENTRY,
        MoveInRequest,
        _bind(move_in, kind=EventKind.EX_OFFICIO_ENTRY),
        supervisor_only=True,
    ),
    EventCommand(
        "ex-officio-correction",
        EventKind.EX_OFFICIO_CORRECTION,
        CorrectionRequest,
        _bind(correction, kind=EventKind.EX_OFFICIO_CORRECTION),
        supervisor_only=True,
    ),
    EventCommand(
        "clerical-correction",
        EventKind.CLERICAL_CORRECTION,
        CorrectionRequest,
        _bind(correction, kind=EventKind.CLERICAL_CORRECTION),
        supervisor_only=True,
    ),
    EventCommand(
        "ex-officio-removal",
        EventKind.EX_OFFICIO_REMOVAL,
        RemovalRequest,
        _bind(removal, kind=EventKind.EX_OFFICIO_REMOVAL),
        supervisor_only=True,
    ),
    EventCommand(
        "cancellation", EventKind.CANCELLATION, CancellationRequest, _bind(cancel), supervisor_only=True
    ),
    EventCommand(
        "resident-code-change", EventKind.RESIDENT_CODE_CHANGE, PersonOnlyRequest, _bind(resident_code_change)
    ),
    EventCommand(
        "individual-number-change",
        EventKind.INDIVIDUAL_NUMBER_CHANGE,
        PersonOnlyRequest,
        _bind(individual_number_change),
    ),
    EventCommand(
        "immigration-notice",
        EventKind.IMMIGRATION_NOTICE,
        ImmigrationNoticeRequest,
        _bind(immigration_notice),
    ),
    EventCommand("alias-entry", EventKind.ALIAS_ENTRY, AliasEntryRequest, _bind(alias_entry)),
    EventCommand("alias-deletion", EventKind.ALIAS_DELETION, PersonOnlyRequest, _bind(alias_deletion)),
    EventCommand(
        "naturalisation",
        EventKind.NATURALISATION,
        BecomeJapaneseRequest,
        _bind(become_japanese, kind=EventKind.NATURALISATION),
    ),
    EventCommand(
        "nationality-acquired",
        EventKind.NATIONALITY_ACQUIRED,
        BecomeJapaneseRequest,
        _bind(become_japanese, kind=EventKind.NATIONALITY_ACQUIRED),
    ),
    EventCommand(
        "nationality-lost", EventKind.NATIONALITY_LOST, NationalityLostRequest, _bind(nationality_lost)
    ),
)

COMMANDS_BY_SLUG: Mapping[str, EventCommand] = {c.slug: c for c in EVENT_COMMANDS}


def run_command(session: Session, *, ctx: RegistryContext, slug: str, request: Any) -> EventOutcome:
    command = COMMANDS_BY_SLUG[slug]
    if not isinstance(request, command.request_type):
        raise TypeError(f"{slug} takes {command.request_type.__name__}")
    outcome: EventOutcome = command.run(session, ctx, request)
    return outcome


# ---------------------------------------------------------------------------
# The resident's own door (the portal): the card proves the 住民票コード; these find the
# records it belongs to and file an online 転出届 with a 転入予約, the resident acting.

# DOMAIN.md "Moves and deadlines": the card holder files the 転出届 online (引越しワンストップ,
# since 2023-02-06) from 30 days before the planned move to 10 days after it (unconfirmed
# against the ordinance itself; corrected here, in one place, if it differs).
ONLINE_MOVE_OUT_DAYS_BEFORE = 30
ONLINE_MOVE_OUT_DAYS_AFTER = 10
ONLINE_MOVE_OUT_REASON = "オンライン転出届 (転入予約)"


def resident_actor(lg_code: str, person_id: int) -> Actor:
    """A resident acting on their own record: the same form as the kiosk's (certificates)."""
    return Actor(kind=ActorKind.RESIDENT, actor_id=f"person:{person_id}", organisation_code=lg_code)


@dataclass(frozen=True, slots=True)
class ResidentRecords:
    """Where the holder of one 住民票コード is recorded in this register.

    ``current`` is the live record, else one whose 転出 awaits the destination's 転入;
    ``all`` lists every record with the code, 除票 included, oldest first, and
    ``households`` every household those records ever belonged to. Ids only: no personal
    data, so finding them is not a read to audit (reading the records is).
    """

    resident_code: str
    current: tuple[str, int] | None
    all: tuple[tuple[str, int], ...]
    households: tuple[int, ...]


def records_of_resident(session: Session, *, resident_code: str) -> ResidentRecords:
    persons = list(repository.persons_by_resident_code(session, resident_code))
    live = [p for p in persons if p.lifecycle == "live"]
    moving = [p for p in persons if p.lifecycle == "moving_out"]
    chosen = (live or moving)[-1] if (live or moving) else None
    return ResidentRecords(
        resident_code=resident_code,
        current=(chosen.lg_code, chosen.id) if chosen is not None else None,
        all=tuple((p.lg_code, p.id) for p in persons),
        households=tuple(
            sorted({v.record.household_id for p in persons for v in _versions_of(session, p.id)})
        ),
    )


def resident_context(
    session: Session, *, resident_code: str, network: NetworkClient, now: dt.datetime | None = None
) -> tuple[RegistryContext, int]:
    """The context in which the holder of ``resident_code`` acts on their own record, and its id."""
    found = records_of_resident(session, resident_code=resident_code)
    if found.current is None:
        raise NotFound(
            "この住民票コードの住民票 (住民として記載されているもの) は、この住民基本台帳にありません。",
            field="resident_code",
        )
    lg_code, person_id = found.current
    ctx = RegistryContext(
        actor=resident_actor(lg_code, person_id), lg_code=lg_code, network=network, now=now or utcnow()
    )
    return ctx, person_id


def online_move_out_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """The planned move dates an online 転出届 filed ``today`` may name (both ends included)."""
    return (
        today - dt.timedelta(days=ONLINE_MOVE_OUT_DAYS_AFTER),
        today + dt.timedelta(days=ONLINE_MOVE_OUT_DAYS_BEFORE),
    )


def move_out_online(
    session: Session, *, ctx: RegistryContext, filer_person_id: int, request: MoveOutRequest
) -> EventOutcome:
    """オンライン転出届 with a 転入予約: the card holder files it for themselves and members
    of their household, to a municipality in Japan, within the online window.

    It is then an ordinary 転出 (``move_out``): 転出予定 from today, removal on the planned
    date, and the 転出証明書情報 sent ahead to the destination, which sees an expected
    arrival and takes the 転入 (特例転入) at its window.
    """
    earliest, latest = online_move_out_window(ctx.today)
    if request.effective_on < earliest:
        raise InvalidValue(
            f"転出した日から{ONLINE_MOVE_OUT_DAYS_AFTER}日を過ぎているため、オンラインでは届け出られません。"
            "市区町村の窓口で届け出てください。",
            field="effective_on",
        )
    if request.effective_on > latest:
        raise InvalidValue(
            f"オンラインの転出届は、転出予定日の{ONLINE_MOVE_OUT_DAYS_BEFORE}日前から届け出られます。",
            field="effective_on",
        )
    if request.abroad or request.destination_lg_code is None:
        raise InvalidValue(
            "オンラインの転出届 (転入予約) は、国内の市区町村への転出に限ります。"
            "転出先の市区町村を選んでください。",
            field="destination_lg_code",
        )
    destination = load_master().find(request.destination_lg_code)
    if destination is None or not destination.is_municipality:
        raise InvalidValue(
            "転出先には市区町村を選んでください (政令指定都市は区ではなく市を選びます)。",
            field="destination_lg_code",
        )
    movers = [r.person_id for r in request.persons]
    if filer_person_id not in movers:
        raise InvalidValue(
            "オンラインの転出届は、カードで届け出る本人が転出する場合に限ります。本人を含めてください。",
            field="persons",
        )
    filer = record_on(_versions_of(session, _person_in_scope(session, ctx, filer_person_id).id), ctx.today)
    for person_id in movers:
        record = record_on(_versions_of(session, _person_in_scope(session, ctx, person_id).id), ctx.today)
        if record is None or filer is None or record.status is not RecordStatus.LIVE:
            raise RuleViolation("住民票が消除されている人は転出の届出ができません。", field="persons")
        if record.household_id != filer.household_id:
            raise RuleViolation(
                "オンラインで一緒に届け出られるのは、本人と同じ世帯の人だけです。", field="persons"
            )
        if record.planned_move_out is not None:
            raise RuleViolation(
                f"{record.name} さんは転出の届出が済んでいます。"
                "取り消す場合は市区町村の窓口に連絡してください。",
                field="persons",
            )
    master = load_master()
    prefecture = master.get(destination.prefecture_code).name
    reason = f"{ONLINE_MOVE_OUT_REASON} 転出先: {prefecture}{destination.name}"
    if request.reason:
        reason += f" {request.reason}"
    return move_out(
        session,
        ctx=ctx,
        request=request.model_copy(update={"notified_on": ctx.today, "reason": reason[:500]}),
    )
