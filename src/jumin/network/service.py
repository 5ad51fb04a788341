"""National code issuance: 住民票コード pools and 個人番号. Services flush; the entry point commits.

The derivation key and the lookup key live in files outside the database (jumin.keys),
so a dump of these tables yields neither the numbers nor a way to compute them.
"""

from __future__ import annotations

import random
import secrets
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, AuditAction
from jumin.core.errors import InvalidValue
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.core.municipalities import MunicipalityKind, load_master
from jumin.db import utcnow
from jumin.keys import data_keyring, load_or_create_secret, lookup_hash
from jumin.network import repository
from jumin.network.domain import (
    IndividualNumberNotIssued,
    IssuanceExhausted,
    IssuanceRace,
    ResidentCodeNotAllocated,
    check_allocation_count,
    draw_resident_codes,
    first_free_individual_number,
)
from jumin.network.models import NationalIndividualNumber, NationalResidentCode

NATIONAL_ORGANISATION = "national"
DERIVATION_KEY_NAME = "individual-number-derivation"
NUMBER_HASH_PURPOSE = "individual_number"
# Rounds of "draw, drop the already allocated, draw again"; each round is one query.
_MAX_ALLOCATION_ROUNDS = 50


def _actor() -> Actor:
    return Actor.system(NATIONAL_ORGANISATION)


def derivation_key() -> bytes:
    return load_or_create_secret(DERIVATION_KEY_NAME)


def number_hash(number: IndividualNumber) -> str:
    return lookup_hash(number.value, NUMBER_HASH_PURPOSE)


def _require_municipality(lg_code: LgCode) -> None:
    """Only a body that keeps a register may ask: a municipality or a designated-city ward.

    Wards of designated cities keep their own registers (住民基本台帳法 第38条, the
    指定都市 rule; article number unconfirmed), so they are accepted; prefectures are not.
    """
    entry = load_master().get(lg_code)  # NotFound for a code no body has
    if entry.kind is MunicipalityKind.PREFECTURE:
        raise InvalidValue(
            f"{entry.name}（{lg_code.value}）は都道府県のため、住民票コード・個人番号を扱えません。",
            field="lg_code",
        )


def allocate_resident_codes(
    session: Session, *, lg_code: LgCode, count: int, rng: random.Random | None = None
) -> list[ResidentCode]:
    """Hand ``count`` new, never-allocated 住民票コード to a municipality's pool."""
    check_allocation_count(count)
    _require_municipality(lg_code)
    source = rng if rng is not None else secrets.SystemRandom()
    drawn: set[str] = set()
    chosen: list[ResidentCode] = []
    for _ in range(_MAX_ALLOCATION_ROUNDS):
        if len(chosen) == count:
            break
        candidates = draw_resident_codes(source, count - len(chosen), exclude=drawn)
        taken = repository.allocated_among(session, (c.value for c in candidates))
        chosen.extend(c for c in candidates if c.value not in taken)
    if len(chosen) != count:
        raise IssuanceExhausted("resident codes kept colliding with allocated ones")
    now = utcnow()
    block_id = uuid.uuid4().hex
    try:
        repository.add_resident_codes(
            session,
            (
                NationalResidentCode(
                    code=c.value,
                    allocated_to_lg_code=lg_code.value,
                    prefecture_code=lg_code.prefecture_code,
                    allocated_at=now,
                    block_id=block_id,
                )
                for c in chosen
            ),
        )
    except IntegrityError as exc:  # a concurrent allocation drew the same code
        raise IssuanceRace("住民票コードの払い出しが他の処理と競合しました。再度お試しください。") from exc
    audit.record(
        session,
        actor=_actor(),
        action=AuditAction.RESIDENT_CODES_ALLOCATED,
        target_kind="resident_code_block",
        target_id=block_id,
        detail=f"lg_code={lg_code.value} count={count}",
        now=now,
    )
    return chosen


def _allocated(session: Session, resident_code: ResidentCode) -> NationalResidentCode:
    row = repository.resident_code(session, resident_code.value, for_update=True)
    if row is None:
        raise ResidentCodeNotAllocated(
            f"住民票コード {resident_code.value} は払い出されていません。", field="resident_code"
        )
    return row


def _issue(
    session: Session, *, code_row: NationalResidentCode, resident_code: ResidentCode, start: int
) -> tuple[IndividualNumber, int]:
    number, counter = first_free_individual_number(
        derivation_key(),
        resident_code,
        start=start,
        is_taken=lambda n: repository.hash_exists(session, number_hash(n)),
    )
    try:
        repository.add_number(
            session,
            NationalIndividualNumber(
                resident_code=resident_code.value,
                number_hash=number_hash(number),
                # Bound to the resident code: a ciphertext moved to another row won't open.
                number_encrypted=data_keyring().encrypt(number.value, associated=resident_code.value),
                derivation_counter=counter,
                issued_at=utcnow(),
                superseded_at=None,
                # The code's prefecture, not the asker's: a person's rows stay in one
                # partition when they move.
                prefecture_code=code_row.prefecture_code,
            ),
        )
    except IntegrityError as exc:  # a concurrent request issued for this person or number
        raise IssuanceRace("個人番号の指定が他の処理と競合しました。再度お試しください。") from exc
    return number, counter


def individual_number_for(
    session: Session, *, resident_code: ResidentCode, lg_code: LgCode
) -> IndividualNumber:
    """The person's current 個人番号, issued on first request (番号法 第7条 第1項 指定)."""
    _require_municipality(lg_code)
    code_row = _allocated(session, resident_code)
    current = repository.current_number(session, resident_code.value)
    if current is not None:
        audit.record(
            session,
            actor=_actor(),
            action=AuditAction.INDIVIDUAL_NUMBER_PROVIDED,
            target_kind="resident_code",
            target_id=resident_code.value,
            detail=f"lg_code={lg_code.value}",
        )
        return IndividualNumber(data_keyring().decrypt(current.number_encrypted, resident_code.value))
    previous = repository.highest_counter(session, resident_code.value)
    number, counter = _issue(
        session,
        code_row=code_row,
        resident_code=resident_code,
        start=0 if previous is None else previous + 1,
    )
    audit.record(
        session,
        actor=_actor(),
        action=AuditAction.INDIVIDUAL_NUMBER_ISSUED,
        target_kind="resident_code",
        target_id=resident_code.value,
        detail=f"lg_code={lg_code.value} counter={counter}",
    )
    return number


def change_individual_number(
    session: Session,
    *,
    resident_code: ResidentCode,
    lg_code: LgCode,
    current_number: IndividualNumber | None = None,
) -> IndividualNumber:
    """番号変更 (番号法 第7条 第2項): a new number; the old one stays taken forever.

    ``current_number`` finds the number by its hash rather than by the resident code it
    was issued under: a person whose 住民票コード changed since keeps their number, and the
    new one is issued under the code they hold now.
    """
    _require_municipality(lg_code)
    code_row = _allocated(session, resident_code)
    if current_number is not None:
        current = repository.number_by_hash(session, number_hash(current_number))
        if current is not None and current.superseded_at is not None:
            current = None
    else:
        current = repository.current_number(session, resident_code.value)
    if current is None:
        raise IndividualNumberNotIssued(
            f"住民票コード {resident_code.value} の者には個人番号が指定されていないため、変更できません。",
            field="resident_code",
        )
    previous = repository.highest_counter(session, resident_code.value)
    repository.supersede(session, current, utcnow())
    number, counter = _issue(
        session, code_row=code_row, resident_code=resident_code, start=0 if previous is None else previous + 1
    )
    audit.record(
        session,
        actor=_actor(),
        action=AuditAction.INDIVIDUAL_NUMBER_CHANGED,
        target_kind="resident_code",
        target_id=resident_code.value,
        detail=f"lg_code={lg_code.value} counter={counter}",
    )
    return number


def find_by_individual_number(session: Session, *, number: IndividualNumber) -> ResidentCode | None:
    """Whose number this is or was; superseded numbers still name their holder."""
    row = repository.number_by_hash(session, number_hash(number))
    return None if row is None else ResidentCode(row.resident_code)
