"""Signed batches and change messages in one line each, for the inbox tests."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from secrets import token_hex
from typing import Any

from sqlalchemy.orm import Session

from jumin.core.ids import IndividualNumber, ResidentCode
from jumin.core.replication import (
    CHANGES_PATH,
    SENDER_HEADER,
    SIGNATURE_HEADER,
    canonical_bytes,
    changes_envelope,
    municipality_key_name,
    sign,
)
from jumin.keys import load_or_create_ed25519
from jumin.network.identity import service

CHIYODA = "131016"
SAPPORO = "011002"
OSAKA = "271004"

_rng = random.Random(20261123)
_keys = itertools.count(1)


def resident_code() -> str:
    return ResidentCode.random(_rng).value


def individual_number() -> str:
    return IndividualNumber.random(_rng).value


def register(national_db: Session, *lg_codes: str) -> None:
    for lg in lg_codes:
        key = load_or_create_ed25519(municipality_key_name(lg))
        service.register_key(national_db, lg_code=lg, public_key_pem=key.public_pem())


def facts(
    code: str,
    *,
    number: str | None = None,
    name: str = "山田　太郎",
    lg: str = CHIYODA,
    address: str = "千代田一丁目1番1号",
    status: str = "live",
    removal_reason: str | None = None,
    birth: str = "1980-04-01",
) -> dict[str, Any]:
    return {
        "resident_code": code,
        "individual_number": number,
        "name": name,
        "name_kana": "ヤマダ　タロウ",
        "birth_date": birth,
        "sex": "male",
        "address_lg_code": lg,
        "address": address,
        "status": status,
        "removal_reason": removal_reason,
        "resident_kind": "japanese",
    }


def identity_message(
    person_id: int,
    seq: int,
    identity: dict[str, Any],
    *,
    effective_on: str,
    began: str,
    change_kind: str = "birth",
    key: str | None = None,
) -> dict[str, Any]:
    return {
        "idempotency_key": key or f"test-key-{next(_keys):08d}-{token_hex(4)}",
        "source_person_id": person_id,
        "seq": seq,
        "kind": "identity_changed",
        "resident_code": identity["resident_code"],
        "destination_lg_code": None,
        "payload": {
            "effective_on": effective_on,
            "change_kind": change_kind,
            "became_resident_on": began,
            "identity": identity,
            "alias_kana": None,
        },
    }


def voided_message(person_id: int, seq: int, code: str) -> dict[str, Any]:
    return {
        "idempotency_key": f"test-void-{next(_keys):08d}-{token_hex(4)}",
        "source_person_id": person_id,
        "seq": seq,
        "kind": "identity_changed",
        "resident_code": code,
        "destination_lg_code": None,
        "payload": {"voided": True, "change_kind": "cancellation"},
    }


def certificate_message(
    person_id: int, seq: int, identity: dict[str, Any], *, destination: str, effective_on: str
) -> dict[str, Any]:
    return {
        "idempotency_key": f"test-cert-{next(_keys):08d}-{token_hex(4)}",
        "source_person_id": person_id,
        "seq": seq,
        "kind": "move_out_certificate",
        "resident_code": identity["resident_code"],
        "destination_lg_code": destination,
        "payload": {
            "effective_on": effective_on,
            "identity": identity,
            "honseki": "東京都千代田区千代田1番",
            "individual_number": identity["individual_number"],
            "recorded_at": "2026-01-01T00:00:00.000000Z",
        },
    }


def signed(
    sender: str,
    messages: list[dict[str, Any]],
    *,
    signer: str | None = None,
    sent_at: dt.datetime | None = None,
    body_sender: str | None = None,
    kind: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    envelope = changes_envelope(
        sender=body_sender or sender,
        sent_at=sent_at or dt.datetime.now(dt.UTC),
        nonce=token_hex(16),
        messages=messages,
    )
    if kind is not None:
        envelope["kind"] = kind
    body = canonical_bytes(envelope)
    key = load_or_create_ed25519(municipality_key_name(signer or sender))
    return body, {
        "Content-Type": "application/json",
        SENDER_HEADER: sender,
        SIGNATURE_HEADER: sign(key.private_key, body),
    }


__all__ = ["CHANGES_PATH"]
