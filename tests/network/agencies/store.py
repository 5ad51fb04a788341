"""The national identity store filled directly, as the replication would leave it.

Tests of the agency side must not wait on the inbox: this helper writes
``national_identities`` and ``national_identity_history`` rows the way the replication
engine does (current row + effective-dated versions, the 個人番号 sealed to the 住民票コード).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from jumin.core.ids import IndividualNumber, ResidentCode
from jumin.core.names import normalize_kana
from jumin.db import utcnow
from jumin.keys import data_keyring, lookup_hash
from jumin.network.identity.models import IdentityHistory, IdentityRecord

_rng = random.Random(20261123)
_inbox = itertools.count(1)
_source = itertools.count(1)
SETTLED = dt.timedelta(minutes=1)  # older than the feed's settle margin


def new_resident_code() -> str:
    return ResidentCode.random(_rng).value


def new_individual_number() -> str:
    return IndividualNumber.random(_rng).value


@dataclass
class Person:
    identity_id: int
    resident_code: str
    individual_number: str | None
    history_ids: list[int] = field(default_factory=list)


class Store:
    def __init__(self, db: Session) -> None:
        self.db = db

    def person(
        self,
        *,
        name: str = "山田 太郎",
        kana: str | None = "ヤマダ タロウ",
        birth: dt.date = dt.date(1980, 4, 1),
        sex: str = "male",
        lg_code: str = "131016",
        address: str = "千代田1番1号",
        number: bool = True,
        since: dt.date = dt.date(2000, 1, 1),
        change_kind: str = "move_in",
        status: str = "live",
        resident_code: str | None = None,
        recorded_at: dt.datetime | None = None,
    ) -> Person:
        code = resident_code or new_resident_code()
        individual_number = new_individual_number() if number else None
        now = recorded_at or (utcnow() - SETTLED)
        record = IdentityRecord(
            resident_code=code,
            prefecture_code=lg_code[:2],
            lg_code=lg_code,
            status=status,
            removal_reason=None,
            resident_kind="japanese",
            name=name,
            name_kana=kana,
            search_kana=normalize_kana(kana or ""),
            birth_date=birth,
            sex=sex,
            address_lg_code=lg_code,
            address=address,
            individual_number_hash=lookup_hash(individual_number, "individual_number")
            if individual_number
            else None,
            individual_number_encrypted=(
                data_keyring().encrypt(individual_number, associated=code) if individual_number else None
            ),
            change_kind=change_kind,
            changed_on=since,
            updated_at=now,
            source_lg_code=lg_code,
            source_person_id=next(_source),
        )
        self.db.add(record)
        self.db.flush()
        person = Person(record.id, code, individual_number)
        person.history_ids.append(self._version(record, since, change_kind, now))
        return person

    def _version(
        self, record: IdentityRecord, valid_from: dt.date, change_kind: str, recorded_at: dt.datetime
    ) -> int:
        row = IdentityHistory(
            identity_id=record.id,
            resident_code=record.resident_code,
            prefecture_code=record.prefecture_code,
            lg_code=record.lg_code,
            valid_from=valid_from,
            valid_to=None,
            recorded_at=recorded_at,
            status=record.status,
            removal_reason=record.removal_reason,
            resident_kind=record.resident_kind,
            name=record.name,
            name_kana=record.name_kana,
            search_kana=record.search_kana,
            birth_date=record.birth_date,
            sex=record.sex,
            address_lg_code=record.address_lg_code,
            address=record.address,
            individual_number_hash=record.individual_number_hash,
            change_kind=change_kind,
            inbox_id=next(_inbox),
        )
        self.db.add(row)
        self.db.flush()
        return row.id

    def change(
        self,
        person: Person,
        *,
        on: dt.date,
        change_kind: str,
        lg_code: str | None = None,
        address: str | None = None,
        name: str | None = None,
        kana: str | None = None,
        status: str | None = None,
        removal_reason: str | None = None,
        resident_code: str | None = None,
        recorded_at: dt.datetime | None = None,
    ) -> int:
        """A new version from ``on``; the previous one ends there (valid_to is exclusive)."""
        record = self.db.get_one(IdentityRecord, person.identity_id)
        last = self.db.get_one(IdentityHistory, person.history_ids[-1])
        last.valid_to = on
        if lg_code is not None:
            record.lg_code = record.address_lg_code = lg_code
            record.prefecture_code = lg_code[:2]
        if address is not None:
            record.address = address
        if name is not None:
            record.name = name
        if kana is not None:
            record.name_kana = kana
            record.search_kana = normalize_kana(kana)
        if status is not None:
            record.status = status
            record.removal_reason = removal_reason
        if resident_code is not None:
            number = (
                data_keyring().decrypt(record.individual_number_encrypted, associated=record.resident_code)
                if record.individual_number_encrypted
                else None
            )
            record.resident_code = resident_code
            person.resident_code = resident_code
            if number:
                record.individual_number_encrypted = data_keyring().encrypt(number, associated=resident_code)
        record.change_kind = change_kind
        record.changed_on = on
        self.db.flush()
        history_id = self._version(record, on, change_kind, recorded_at or (utcnow() - SETTLED))
        person.history_ids.append(history_id)
        return history_id
