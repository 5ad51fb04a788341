"""Read-only queries on the identity store for other national features (the card service).

The replication that fills ``national_identities`` and ``national_identity_history``
owns their writes; everything another feature needs to read from them is here, so that
a change to those tables has one place to look. Set-based callers (pre-issuance setup,
renewal notices, reports) join ``current_identities()`` into their own statements
instead of reading person by person.

The store keeps an address as its municipality (``address_lg_code``) and the line within
it (``address``), as the register sends it. Whatever is written for a person — the
card's face, the signing certificate, the four facts a business receives, a mailing
label — is the full address (``full_address``: prefecture, municipality, line), so that
a move between municipalities is a change even when the two lines read the same
(本町一丁目1番1号 is in many towns).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Subquery, func, select
from sqlalchemy.orm import Session

from jumin.core.municipalities import MunicipalityKind, load_master
from jumin.network.identity.models import IdentityHistory, IdentityRecord

__all__ = [
    "CurrentIdentity",
    "HistoryMark",
    "current_identities",
    "current_identities_by_id",
    "current_identities_for",
    "current_identity",
    "current_identity_by_id",
    "full_address",
    "history_after",
    "latest_history_id",
    "live_population_by_lg",
]

STATUS_LIVE = "live"


def full_address(address_lg_code: str, line: str) -> str:
    """The address as written on the card: prefecture, municipality (a ward with its
    city), then the line; the line alone for a code the master does not know."""
    master = load_master()
    entry = master.find(address_lg_code)
    if entry is None:
        return line
    prefecture = master.find(entry.prefecture_code)
    municipality = "" if entry.kind is MunicipalityKind.PREFECTURE else entry.name
    return f"{prefecture.name if prefecture else ''}{municipality}{line}"


@dataclass(frozen=True, slots=True)
class CurrentIdentity:
    """A person's current 本人確認情報; ``address`` is the full address (``full_address``)."""

    resident_code: str
    prefecture_code: str
    lg_code: str
    status: str
    removal_reason: str | None
    resident_kind: str
    name: str
    name_kana: str | None
    birth_date: dt.date
    sex: str
    address: str
    address_lg_code: str
    address_line: str
    changed_on: dt.date
    # The identity's own id: stable for life, while the 住民票コード may be changed
    # (住民票コードの変更, 住民基本台帳法 第30条の4). Other features link to the person by it.
    identity_id: int


@dataclass(frozen=True, slots=True)
class HistoryMark:
    """A new history row: which person changed, how, and from when."""

    history_id: int
    resident_code: str
    change_kind: str
    valid_from: dt.date
    identity_id: int


def _view(row: IdentityRecord) -> CurrentIdentity:
    return CurrentIdentity(
        resident_code=row.resident_code,
        prefecture_code=row.prefecture_code,
        lg_code=row.lg_code,
        status=row.status,
        removal_reason=row.removal_reason,
        resident_kind=row.resident_kind,
        name=row.name,
        name_kana=row.name_kana,
        birth_date=row.birth_date,
        sex=row.sex,
        address=full_address(row.address_lg_code, row.address),
        address_lg_code=row.address_lg_code,
        address_line=row.address,
        changed_on=row.changed_on,
        identity_id=row.id,
    )


def current_identity(session: Session, resident_code: str) -> CurrentIdentity | None:
    row = session.scalars(select(IdentityRecord).where(IdentityRecord.resident_code == resident_code)).first()
    return None if row is None else _view(row)


def current_identity_by_id(session: Session, identity_id: int) -> CurrentIdentity | None:
    """The person behind a stable identity id, under whatever 住民票コード they hold now."""
    row = session.get(IdentityRecord, identity_id)
    return None if row is None else _view(row)


def current_identities_by_id(session: Session, identity_ids: Iterable[int]) -> dict[int, CurrentIdentity]:
    ids = sorted(set(identity_ids))
    found: dict[int, CurrentIdentity] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for row in session.scalars(select(IdentityRecord).where(IdentityRecord.id.in_(chunk))):
            found[row.id] = _view(row)
    return found


def current_identities_for(session: Session, resident_codes: Iterable[str]) -> dict[str, CurrentIdentity]:
    codes = sorted(set(resident_codes))
    found: dict[str, CurrentIdentity] = {}
    # Bounded IN lists: PostgreSQL and SQLite both take thousands, not millions.
    for start in range(0, len(codes), 1000):
        chunk = codes[start : start + 1000]
        for row in session.scalars(select(IdentityRecord).where(IdentityRecord.resident_code.in_(chunk))):
            found[row.resident_code] = _view(row)
    return found


def current_identities() -> Subquery:
    """The current 本人確認情報 as a subquery, for joins in set-based statements.

    Columns: resident_code, prefecture_code, lg_code, status, removal_reason, name,
    birth_date, sex, address (the line within the municipality) and address_lg_code;
    a caller that writes or compares an address composes ``full_address`` from the two.
    ``identity_id`` is the identity's stable id, what a join from another feature's
    rows should use: the 住民票コード can change.
    """
    r = IdentityRecord
    return select(
        r.id.label("identity_id"),
        r.resident_code,
        r.prefecture_code,
        r.lg_code,
        r.status,
        r.removal_reason,
        r.name,
        r.birth_date,
        r.sex,
        r.address,
        r.address_lg_code,
    ).subquery("current_identity")


def history_after(session: Session, after_id: int, limit: int) -> Sequence[HistoryMark]:
    """History rows recorded after ``after_id``, oldest first (the sweeper's feed).

    Each names the identity it belongs to: a 住民票コードの変更 writes a row under the new
    code with the same ``identity_id``, so a consumer keyed by identity follows the person.
    """
    h = IdentityHistory
    rows = session.execute(
        select(h.id, h.resident_code, h.change_kind, h.valid_from, h.identity_id)
        .where(h.id > after_id)
        .order_by(h.id)
        .limit(limit)
    )
    return [
        HistoryMark(
            history_id=r[0], resident_code=r[1], change_kind=r[2], valid_from=r[3], identity_id=int(r[4])
        )
        for r in rows
    ]


def latest_history_id(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(IdentityHistory.id), 0))) or 0)


def live_population_by_lg(session: Session) -> dict[str, int]:
    """Residents with a live record, per municipality (ward for designated cities)."""
    r = IdentityRecord
    rows = session.execute(select(r.lg_code, func.count()).where(r.status == STATUS_LIVE).group_by(r.lg_code))
    return {lg: int(n) for lg, n in rows}
