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
    # --- approval of supervisor-only events drafted by a clerk (registry/approvals) ---
    APPROVAL_REQUESTED = "registry.approval_requested"
    APPROVAL_RESUBMITTED = "registry.approval_resubmitted"
    APPROVAL_WITHDRAWN = "registry.approval_withdrawn"
    APPROVAL_APPROVED = "registry.approval_approved"
    APPROVAL_REFUSED = "registry.approval_refused"
    APPROVAL_FAILED = "registry.approval_failed"  # the record changed, or a rule now forbids it
    APPROVAL_VIEWED = "registry.approval_viewed"
    # --- end approvals ---
    RESIDENT_CODES_ALLOCATED = "network.resident_codes_allocated"
    INDIVIDUAL_NUMBER_ISSUED = "network.individual_number_issued"
    INDIVIDUAL_NUMBER_PROVIDED = "network.individual_number_provided"
    INDIVIDUAL_NUMBER_CHANGED = "network.individual_number_changed"
    # --- certificates (issue 5) ---
    CERTIFICATE_ISSUED = "certificate.issued"
    CERTIFICATE_REFUSED = "certificate.refused"
    CERTIFICATE_PREVIEWED = "certificate.previewed"
    CERTIFICATE_RECORD_PROVIDED = "certificate.record_provided"  # the home end of 広域交付・公用請求
    # 広域交付 through the network: the issuer's request, the home's record of the copy issued.
    CERTIFICATE_WIDE_AREA_REQUESTED = "certificate.wide_area_requested"
    CERTIFICATE_WIDE_AREA_ISSUED = "certificate.wide_area_issued"
    CERTIFICATE_VERIFIED = "certificate.verified"
    CERTIFICATE_SIGNER_CREATED = "certificate.signer_created"
    CERTIFICATE_ISSUANCES_VIEWED = "certificate.issuances_viewed"
    # The window's signed PDF kept for hand-over (certificates/handover): shown again, erased.
    CERTIFICATE_HANDOVER_SHOWN = "certificate.handover_shown"
    CERTIFICATE_HANDOVER_ERASED = "certificate.handover_erased"
    PROTECTION_ORDER_REGISTERED = "protection_order.registered"
    PROTECTION_ORDER_ENDED = "protection_order.ended"
    PROTECTION_ORDER_VIEWED = "protection_order.viewed"
    RESIDENT_PIN_SET = "resident_pin.set"
    RESIDENT_LOGIN_SUCCEEDED = "resident.login_succeeded"
    RESIDENT_LOGIN_FAILED = "resident.login_failed"
    RESIDENT_LOCKED_OUT = "resident.locked_out"
    # --- end certificates ---
    MUNICIPALITY_KEY_REGISTERED = "network.municipality_key_registered"
    REPLICATION_REFUSED = "network.replication_refused"
    REPLICATION_BATCH_RECEIVED = "network.replication_batch_received"
    IDENTITY_CHANGE_APPLIED = "network.identity_change_applied"
    MOVE_OUT_NOTICE_FORWARDED = "network.move_out_notice_forwarded"
    MOVE_OUT_NOTICES_COLLECTED = "network.move_out_notices_collected"
    MUNICIPALITY_ENDPOINT_REGISTERED = "network.municipality_endpoint_registered"
    WIDE_AREA_REQUEST_FORWARDED = "network.wide_area_request_forwarded"
    WIDE_AREA_ANSWER_RETURNED = "network.wide_area_answer_returned"
    WIDE_AREA_ISSUED_FORWARDED = "network.wide_area_issued_forwarded"
    NATIONAL_RECONCILE_DIGEST = "network.reconcile_digest"
    REPLICATION_BATCH_SENT = "registry.replication_batch_sent"
    EXPECTED_ARRIVALS_RECEIVED = "registry.expected_arrivals_received"
    REGISTRY_RECONCILE_DIGEST = "registry.reconcile_digest"
    # --- bulk interchange (interchange/) ---
    REGISTER_IMPORTED = "interchange.imported"
    REGISTER_EXPORTED = "interchange.exported"
    NATIONAL_SEEDED = "interchange.national_seeded"
    # --- end interchange ---
    # The agency side of the national network (network/agencies).
    AGENCY_CLIENT_REGISTERED = "network.agency_client_registered"
    AGENCY_TASK_GRANTED = "network.agency_task_granted"
    AGENCY_TASK_REVOKED = "network.agency_task_revoked"
    IDENTITY_LOOKUP = "network.identity_lookup"
    AGENCY_CODE_TRANSLATED = "network.agency_code_translated"
    BATCH_SUBMITTED = "network.batch_submitted"
    BATCH_VERIFIED = "network.batch_verified"
    BATCH_FINISHED = "network.batch_finished"
    BATCH_RESULT_DOWNLOADED = "network.batch_result_downloaded"
    FEED_SUBSCRIBED = "network.feed_subscribed"
    FEED_UNSUBSCRIBED = "network.feed_unsubscribed"
    FEED_READ = "network.feed_read"
    EXTRACTION_REQUESTED = "network.extraction_requested"
    EXTRACTION_APPROVED = "network.extraction_approved"
    EXTRACTION_REJECTED = "network.extraction_rejected"
    EXTRACTION_PRODUCED = "network.extraction_produced"
    EXTRACTION_DOWNLOADED = "network.extraction_downloaded"
    ACCESS_LOG_VIEWED = "network.access_log_viewed"
    # --- My Number Card and JPKI (card/) ---
    CARD_APPLIED = "card.applied"
    CARD_APPLICATION_FORM_ISSUED = "card.application_form_issued"
    CARD_BATCH_PRODUCED = "card.batch_produced"
    CARD_SETUP_BATCH = "card.setup_batch"
    CARD_WORK_LIST_VIEWED = "card.work_list_viewed"
    CARD_WORK_ITEM_RESOLVED = "card.work_item_resolved"
    CARD_HANDED_OVER = "card.handed_over"
    CARD_VIEWED = "card.viewed"
    CARD_SUSPENDED = "card.suspended"
    CARD_SUSPENSION_REFUSED = "card.suspension_refused"
    CARD_SUSPENSION_LIFTED = "card.suspension_lifted"
    CARD_REVOKED = "card.revoked"
    CARD_PIN_RESET = "card.pin_reset"
    CARD_PIN_FAILED = "card.pin_failed"
    CARD_CONTINUED_USE = "card.continued_use"  # 転入後の継続利用 (券面の住所の追記)
    CARD_RENEWAL_NOTICES = "card.renewal_notices"
    CARD_EXPIRY_RUN = "card.expiry_run"
    CARD_IDENTITY_SWEEP = "card.identity_sweep"
    CARD_LOGIN_SUCCEEDED = "card.login_succeeded"
    CARD_LOGIN_FAILED = "card.login_failed"
    CARD_REPORT_VIEWED = "card.report_viewed"
    JPKI_CA_CREATED = "jpki.ca_created"
    JPKI_CERTIFICATE_ISSUED = "jpki.certificate_issued"
    JPKI_CERTIFICATE_REVOKED = "jpki.certificate_revoked"
    FOUR_FACTS_BUSINESS_REGISTERED = "four_facts.business_registered"
    FOUR_FACTS_CONSENTED = "four_facts.consented"
    FOUR_FACTS_CONSENT_WITHDRAWN = "four_facts.consent_withdrawn"
    FOUR_FACTS_QUEUED = "four_facts.queued"
    FOUR_FACTS_PROVIDED = "four_facts.provided"
    FOUR_FACTS_DELIVERY_FAILED = "four_facts.delivery_failed"


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

    def canonical_body(self) -> bytes:
        """The canonical form without its first two items and its last one (chain, seq, prev_hash).

        A JSON array is its items joined by commas, so ``canonical()`` is
        ``["<chain>",<seq>,`` + this + ``,"<prev_hash>"]`` whenever the chain name needs
        no escaping (:func:`plain_json_string`): the database can then hash an entry whose
        place in the chain it chooses itself (audit.repository.append_to_free_lane).
        """
        full = self.canonical()
        head = json.dumps([self.chain, self.seq], ensure_ascii=False, separators=(",", ":")).encode()
        tail = json.dumps(self.prev_hash).encode()
        return full[len(head) : -(len(tail) + 2)]

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def plain_json_string(value: str) -> bool:
    """True when JSON writes ``value`` as ASCII between two quotes, byte for byte."""
    return value.isascii() and json.dumps(value) == f'"{value}"'


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
