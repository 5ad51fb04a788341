"""Rules of the national inbox: who may send, what a message says, and how history is laid out.

Plain Python: the envelope's checks and the timeline rule are tested without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jumin.core.errors import AccessDenied, Conflict, Unauthenticated
from jumin.core.replication import MessageKind, record_rank

__all__ = [
    "ApplyConflict",
    "IdentityChange",
    "IdentityFacts",
    "IncomingMessage",
    "Layout",
    "MoveOutCertificate",
    "RefusalReason",
    "ReplicationRefused",
    "SourceKey",
    "TimelineEntry",
    "UnknownMunicipality",
    "lay_out",
]

STATUS_LIVE = "live"
STATUS_REMOVED = "removed"
# Every municipal record that fed the identity was voided (the events that created them
# were cancelled): the row stays, as nothing national is deleted, but it names nobody.
STATUS_VOID = "void"


class RefusalReason(StrEnum):
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_MUNICIPALITY = "unknown_municipality"
    SENDER_MISMATCH = "sender_mismatch"
    WRONG_PURPOSE = "wrong_purpose"
    STALE = "stale"
    REPLAYED = "replayed"


class ReplicationRefused(Unauthenticated):
    """A request the inbox cannot attribute to a municipality; the refusal stays audited."""

    type_slug = "replication-refused"
    title = "署名を確認できないため受け付けません"
    commits_recorded_work = True


class UnknownMunicipality(AccessDenied):
    type_slug = "unknown-municipality"
    title = "登録されていない団体からの送信です"


class ApplyConflict(Conflict):
    """Two messages claim the same place (same record and sequence number, different content)."""

    type_slug = "replication-conflict"
    title = "既に受信したメッセージと矛盾します"


SourceKey = tuple[str, int]  # (source_lg_code, source_person_id)


@dataclass(frozen=True, slots=True)
class IdentityFacts:
    """本人確認情報 as a municipality states it."""

    resident_code: str
    individual_number: str | None
    name: str
    name_kana: str | None
    birth_date: dt.date
    sex: str
    address_lg_code: str
    address: str
    status: str
    removal_reason: str | None
    resident_kind: str


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """From ``effective_on`` on, the record's identity information is ``facts`` (or it never was)."""

    effective_on: dt.date | None
    change_kind: str
    became_resident_on: dt.date | None
    facts: IdentityFacts | None  # None: voided
    alias_kana: str | None = None

    @property
    def voided(self) -> bool:
        return self.facts is None


@dataclass(frozen=True, slots=True)
class MoveOutCertificate:
    """転出証明書情報 for the destination: the identity plus the whole record, as sent."""

    effective_on: dt.date
    facts: IdentityFacts
    document: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    idempotency_key: str
    source_person_id: int
    seq: int
    kind: MessageKind
    resident_code: str
    destination_lg_code: str | None
    body: IdentityChange | MoveOutCertificate


# ---------------------------------------------------------------------------
# The timeline of one identity across the records that fed it


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One applied identity message: a history row, from its record's sequence ``seq``."""

    history_id: int
    source: SourceKey
    seq: int
    valid_from: dt.date
    live: bool = True


@dataclass(frozen=True, slots=True)
class Layout:
    valid_to: Mapping[int, dt.date | None]  # history id → end of validity (== valid_from: never valid)
    current: TimelineEntry | None  # the message the current row must show; None: all voided
    holder: SourceKey | None


def lay_out(
    entries: Iterable[TimelineEntry], started_on: Mapping[SourceKey, dt.date], void: set[SourceKey]
) -> Layout:
    """Where each history row ends, and which one is current.

    Within one record, its messages are read in sequence order; a message valid from
    date D restates everything from D on, so earlier messages valid from D or later never
    held (their row ends where it begins). Across records, the one that began last
    (``record_rank``) covers everything from its beginning: the origin's rows end where
    the destination's record begins, whichever arrived first. A voided record's rows
    never held.
    """
    by_source: dict[SourceKey, list[TimelineEntry]] = {}
    for entry in entries:
        by_source.setdefault(entry.source, []).append(entry)
    valid_to: dict[int, dt.date | None] = {}
    standing: list[SourceKey] = []
    for source, rows in by_source.items():
        if source in void or source not in started_on:
            valid_to.update({e.history_id: e.valid_from for e in rows})
        else:
            standing.append(source)

    def rank(source: SourceKey) -> tuple[dt.date, bool, int]:
        rows = by_source[source]
        latest = max(rows, key=lambda e: e.seq)
        return record_rank(started_on[source], latest.live, max(e.history_id for e in rows))

    standing.sort(key=rank)

    current: TimelineEntry | None = None
    for index, source in enumerate(standing):
        stack: list[TimelineEntry] = []
        for entry in sorted(by_source[source], key=lambda e: e.seq):
            while stack and stack[-1].valid_from >= entry.valid_from:
                dropped = stack.pop()
                valid_to[dropped.history_id] = dropped.valid_from
            if stack:
                valid_to[stack[-1].history_id] = entry.valid_from
            stack.append(entry)
        valid_to[stack[-1].history_id] = None
        end = started_on[standing[index + 1]] if index + 1 < len(standing) else None
        if end is not None:
            for entry in stack:
                ends = valid_to[entry.history_id]
                if entry.valid_from >= end:
                    valid_to[entry.history_id] = entry.valid_from
                elif ends is None or ends > end:
                    valid_to[entry.history_id] = end
        current = stack[-1]
    return Layout(valid_to=valid_to, current=current, holder=standing[-1] if standing else None)


def changed_rows(layout: Layout, existing: Sequence[tuple[int, dt.date | None]]) -> dict[int, dt.date | None]:
    """The history rows whose end moves, given their ends now."""
    return {
        hid: layout.valid_to[hid]
        for hid, ends in existing
        if hid in layout.valid_to and layout.valid_to[hid] != ends
    }
