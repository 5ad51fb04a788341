"""How the register's rows are shown, the same at both doors (the API and the CLI).

Rows come from the service as it returns them; only these functions decide which of their
fields a reader sees, so that a field masked or left out here is masked or left out everywhere.
"""

from __future__ import annotations

from typing import Any

from jumin.core.errors import InvalidValue
from jumin.core.names import romaji_hepburn
from jumin.core.wareki import format_wareki
from jumin.registry import service
from jumin.registry.domain import EVENT_LABELS, REMOVAL_LABELS, EventKind, ResidentKind
from jumin.registry.schemas import (
    AliasHistoryResponse,
    EventListItem,
    ForeignResponse,
    OutboxResponse,
    RecordResponse,
    VersionHistoryItem,
)


def _romaji(kana: str | None) -> str | None:
    if not kana:
        return None
    try:
        return romaji_hepburn(kana)
    except InvalidValue:
        return None


def record_response(view: service.RecordView, *, show_individual_number: bool) -> RecordResponse:
    r = view.record
    f = r.foreign
    number = r.individual_number
    shown = number if (number and show_individual_number) else (f"********{number[-4:]}" if number else None)
    return RecordResponse(
        person_id=view.person_id,
        lg_code=view.lg_code,
        version=view.version,
        valid_from=view.valid_from,
        valid_to=view.valid_to,
        recorded_at=view.recorded_at,
        status=r.status.value,
        resident_kind=r.resident_kind,
        name=r.name,
        family_name=r.family_name,
        given_name=r.given_name,
        name_kana=r.name_kana,
        family_name_kana=r.family_name_kana,
        given_name_kana=r.given_name_kana,
        romaji=_romaji(r.name_kana)
        if r.resident_kind is ResidentKind.JAPANESE
        else (f.name_alphabet if f else None),
        birth_date=r.birth_date,
        # Japanese residents' birth dates are shown in 和暦, foreign residents' in 西暦.
        birth_date_wareki=format_wareki(r.birth_date) if r.resident_kind is ResidentKind.JAPANESE else None,
        sex=r.sex,
        household_id=r.household_id,
        relationship=r.relationship,
        address_lg_code=r.address.lg_code,
        address_line=r.address.line,
        address_katagaki=r.address.katagaki,
        address_text=r.address.text(),
        became_resident_on=r.became_resident_on,
        address_set_on=r.address_set_on,
        notified_on=r.notified_on,
        previous_address=r.previous_address,
        honseki=r.honseki,
        hittousha=r.hittousha,
        old_surname=r.old_surname,
        old_surname_kana=r.old_surname_kana,
        resident_code=r.resident_code,
        individual_number=shown,
        planned_move_out_on=r.planned_move_out.planned_on if r.planned_move_out else None,
        planned_move_out_destination=r.planned_move_out.destination if r.planned_move_out else None,
        removal_reason=REMOVAL_LABELS[r.removal_reason] if r.removal_reason else None,
        removed_on=r.removed_on,
        foreign=None
        if f is None
        else ForeignResponse(
            nationality=f.nationality,
            category=f.category,
            name_alphabet=f.name_alphabet,
            status_of_residence=f.status_of_residence,
            period_of_stay=f.period_of_stay,
            stay_expires_on=f.stay_expires_on,
            residence_card_number=f.residence_card_number,
            became_foreign_resident_on=f.became_foreign_resident_on,
            alias=f.alias,
            alias_kana=f.alias_kana,
            alias_history=[
                AliasHistoryResponse(
                    alias=a.alias,
                    alias_kana=a.alias_kana,
                    recorded_on=a.recorded_on,
                    recorded_lg_code=a.recorded_lg_code,
                    deleted_on=a.deleted_on,
                    deleted_lg_code=a.deleted_lg_code,
                )
                for a in f.alias_history
            ],
        ),
    )


def history_item(version: Any) -> VersionHistoryItem:
    """One stored version of a record (a row of ``service.history``)."""
    record = service.version_summary(version)
    return VersionHistoryItem(
        valid_from=version.valid_from,
        valid_to=version.valid_to,
        recorded_at=version.recorded_at,
        superseded_at=version.superseded_at,
        event_id=version.event_id,
        status=version.status,
        name=record.name,
        address_line=record.address.line,
        household_id=record.household_id,
    )


def event_item(event: Any) -> EventListItem:
    """One recorded 異動 (a row of ``service.events_of``)."""
    return EventListItem(
        event_id=event.id,
        kind=event.kind,
        label=EVENT_LABELS[EventKind(event.kind)],
        effective_on=event.effective_on,
        notified_on=event.notified_on,
        recorded_at=event.recorded_at,
        recorded_by=event.recorded_by,
        reason=event.reason,
        late=event.late,
        cancelled_by_event_id=event.cancelled_by_event_id,
        cancels_event_id=event.cancels_event_id,
    )


def outbox_response(message: Any, payload: dict[str, Any]) -> OutboxResponse:
    """One outbox message as an operator sees it, 個人番号 masked."""
    return OutboxResponse(
        id=message.id,
        lg_code=message.lg_code,
        person_id=message.person_id,
        resident_code=message.resident_code,
        seq=message.seq,
        kind=message.kind,
        destination_lg_code=message.destination_lg_code,
        idempotency_key=message.idempotency_key,
        event_id=message.event_id,
        created_at=message.created_at,
        delivered_at=message.delivered_at,
        payload=masked_payload(payload),
    )


def masked_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with 個人番号 masked wherever it appears."""

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (f"********{v[-4:]}" if k == "individual_number" and isinstance(v, str) else mask(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [mask(v) for v in value]
        return value

    result: dict[str, Any] = mask(payload)
    return result
