"""Audit entries, their canonical form and the hash chain rule.

Each entry's hash covers its content and the previous entry's hash, so changing,
removing or inserting an entry breaks every hash after it. An attacker who rewrites the
whole tail is caught by checkpoints signed with a key that is not in the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

GENESIS_HASH = "0" * 64


class ActorKind(StrEnum):
    STAFF = "staff"
    AGENCY_CLIENT = "agency_client"
    RESIDENT = "resident"
    SYSTEM = "system"


class AuditAction(StrEnum):
    """What happened. One name per kind of action, so that reports can count them."""

    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED_OUT = "login.locked_out"
    LOGOUT = "logout"
    CLIENT_TOKEN_ISSUED = "client.token_issued"  # noqa: S105 (an action name)
    CLIENT_TOKEN_REFUSED = "client.token_refused"  # noqa: S105
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_UNLOCKED = "account.unlocked"
    ACCOUNT_MFA_RESET = "account.mfa_reset"
    ACCOUNT_DEACTIVATED = "account.deactivated"
    ORGANISATION_CREATED = "organisation.created"
    AGENCY_CLIENT_CREATED = "agency_client.created"
    AUDIT_VIEWED = "audit.viewed"
    AUDIT_VERIFIED = "audit.verified"
    ACCESS_DENIED = "access.denied"
    REGISTRY_EVENT_RECORDED = "registry.event_recorded"
    REGISTRY_READ = "registry.read"
    REGISTRY_INDIVIDUAL_NUMBER_SHOWN = "registry.individual_number_shown"
    RESIDENT_CODES_ALLOCATED = "network.resident_codes_allocated"
    INDIVIDUAL_NUMBER_ISSUED = "network.individual_number_issued"
    INDIVIDUAL_NUMBER_PROVIDED = "network.individual_number_provided"
    INDIVIDUAL_NUMBER_CHANGED = "network.individual_number_changed"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a staff account, an agency client, a resident, or the system itself."""

    kind: ActorKind
    actor_id: str
    organisation_code: str

    @staticmethod
    def system(organisation_code: str = "system") -> Actor:
        return Actor(kind=ActorKind.SYSTEM, actor_id="system", organisation_code=organisation_code)


@dataclass(frozen=True, slots=True)
class EntryContent:
    """Everything an entry's hash covers, in one place so that writer and verifier agree."""

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
    prev_hash: str

    def canonical(self) -> bytes:
        occurred = self.occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        fields = [
            self.chain,
            self.seq,
            occurred,
            self.request_id,
            self.actor_kind,
            self.actor_id,
            self.organisation_code,
            self.action,
            self.target_kind,
            self.target_id,
            self.purpose,
            self.outcome,
            self.detail,
            self.prev_hash,
        ]
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def checkpoint_message(chain: str, seq: int, entry_hash: str) -> bytes:
    return f"jumin-audit-checkpoint\n{chain}\n{seq}\n{entry_hash}".encode()


@dataclass(frozen=True, slots=True)
class ChainProblem:
    chain: str
    seq: int
    entry_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    chains: int
    entries: int
    checkpoints: int
    problems: tuple[ChainProblem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None
