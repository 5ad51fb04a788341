from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class AuditEntryResponse(BaseModel):
    id: int
    chain: str
    seq: int
    occurred_at: dt.datetime
    request_id: str
    actor_kind: str
    actor_id: str
    organisation_code: str
    action: str
    target_kind: str
    target_id: str
    purpose: str
    outcome: str
    detail: str
    entry_hash: str


class ChainProblemResponse(BaseModel):
    chain: str
    seq: int
    entry_id: int | None
    reason: str


class VerificationResponse(BaseModel):
    intact: bool
    chains: int
    entries: int
    checkpoints: int
    problems: list[ChainProblemResponse]
