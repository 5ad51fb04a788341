"""Issuing at the window exactly once, and handing the signed PDF over for a few minutes.

The window's issue form carries a one-time token (:func:`new_token`, put in the form by
the preview). :func:`issue_at_window_once` issues through ``service.issue_at_window``
unless that token already issued: then it answers with the first issuance, so a form
posted twice (a double click, a resent request) gives one certificate. The token's row
is inserted before anything is issued, under a unique key: of two posts at once the
second waits for the first and then finds its issuance.

The ledger keeps only the PDF's hash, so the PDF is kept here, sealed with the municipal
data key, for :data:`HANDOVER_TIME` after issuance: the result page (reached by a
redirect, so that a reload only reads) offers it to the clerk who issued it, to print or
download. It is erased when the clerk finishes the hand-over (:func:`finish`) or when
the time is up (every issuance and every read erases what has expired).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import AuditAction
from jumin.certificates import handover_repository as repository
from jumin.certificates.handover_models import CertificateHandover
from jumin.certificates.schemas import WindowIssueRequest
from jumin.certificates.service import PURPOSE, IssuanceView, get_issuance, issue_at_window
from jumin.core.errors import Conflict, InvalidValue
from jumin.keys import data_keyring, lookup_hash
from jumin.registry import service as registry

HANDOVER_TIME = dt.timedelta(minutes=15)
_TOKEN_PURPOSE = "certificate-issue-token"  # noqa: S105 (a hash purpose, no secret)
_PDF_AAD = "certificate-handover-pdf"
_TOKEN_LENGTHS = range(16, 129)


def new_token() -> str:
    """A one-time token for one issue form."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Handover:
    """An issuance as its result page shows it; ``pdf`` only for its clerk, until it is erased."""

    issuance: IssuanceView
    pdf: bytes | None
    expires_at: dt.datetime | None
    erased_at: dt.datetime | None
    mine: bool  # issued by the clerk reading it

    @property
    def issue_number(self) -> str:
        return self.issuance.issue_number

    @property
    def file_name(self) -> str:
        return f"{self.issuance.issue_number}.pdf"


def _fingerprint(request: WindowIssueRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def _first(row: CertificateHandover, ctx: registry.RegistryContext, fingerprint: str) -> str:
    """The issuance a token already made, for the same clerk and the same choices only."""
    if row.lg_code != ctx.lg_code or row.actor_id != ctx.actor.actor_id or row.request_sha256 != fingerprint:
        raise Conflict(
            "この交付の画面は既に別の内容で使われています。証明書の交付の画面から選び直してください。",
            field="issue_token",
        )
    assert row.issue_number is not None  # a claimed token without an issuance is never committed
    return row.issue_number


def issue_at_window_once(
    session: Session, *, ctx: registry.RegistryContext, request: WindowIssueRequest, token: str
) -> str:
    """Issue (``service.issue_at_window``) unless ``token`` already did; the issue number either way.

    Refusals are the issuance's own (nothing issued, no number used, the token free
    again); a protection-order refusal keeps its audit entry as it does there.
    """
    if len(token) not in _TOKEN_LENGTHS or not token.isascii():
        raise InvalidValue(
            "交付の画面の確認に失敗しました。プレビューから操作し直してください。", field="issue_token"
        )
    token_hash = lookup_hash(token, _TOKEN_PURPOSE)
    fingerprint = _fingerprint(request)
    existing = repository.by_token(session, token_hash)
    if existing is not None:
        return _first(existing, ctx, fingerprint)
    claim = CertificateHandover(
        token_hash=token_hash,
        lg_code=ctx.lg_code,
        actor_id=ctx.actor.actor_id,
        request_sha256=fingerprint,
        created_at=ctx.now,
        expires_at=ctx.now + HANDOVER_TIME,
    )
    savepoint = session.begin_nested()
    try:
        session.add(claim)
        session.flush()
    except IntegrityError:
        # The same token, posted at the same moment: the other post issued; answer with it.
        savepoint.rollback()
        first = repository.by_token(session, token_hash)
        assert first is not None
        return _first(first, ctx, fingerprint)
    savepoint.commit()
    try:
        issued = issue_at_window(session, ctx=ctx, request=request)
    except BaseException:
        session.delete(claim)
        session.flush()
        raise
    claim.issue_number = issued.issue_number
    claim.pdf_sealed = data_keyring().encrypt(base64.b64encode(issued.pdf).decode(), _PDF_AAD)
    session.flush()
    repository.erase_expired(session, ctx.now)
    return issued.issue_number


def handover(session: Session, *, ctx: registry.RegistryContext, issue_number: str) -> Handover:
    """The issuance from the ledger (a read, audited) and, for its own clerk, the PDF while kept."""
    repository.erase_expired(session, ctx.now)
    issuance = get_issuance(session, actor=ctx.actor, lg_code=ctx.lg_code, number=issue_number)
    row = repository.by_issue_number(session, issue_number)
    mine = row is not None and row.lg_code == ctx.lg_code and row.actor_id == ctx.actor.actor_id
    pdf = None
    if row is not None and mine and row.pdf_sealed is not None:
        pdf = base64.b64decode(data_keyring().decrypt(row.pdf_sealed, _PDF_AAD))
        audit.record(
            session,
            actor=ctx.actor,
            action=AuditAction.CERTIFICATE_HANDOVER_SHOWN,
            target_kind="certificate",
            target_id=issue_number,
            purpose=PURPOSE,
            detail=f"expires_at={row.expires_at.isoformat()}",
        )
    return Handover(
        issuance=issuance,
        pdf=pdf,
        expires_at=row.expires_at if row is not None else None,
        erased_at=row.erased_at if row is not None else None,
        mine=mine,
    )


def finish(session: Session, *, ctx: registry.RegistryContext, issue_number: str) -> bool:
    """The clerk has printed or saved the PDF: erase it now. False when there was none to erase."""
    row = repository.by_issue_number(session, issue_number)
    if (
        row is None
        or row.lg_code != ctx.lg_code
        or row.actor_id != ctx.actor.actor_id
        or row.pdf_sealed is None
    ):
        return False
    row.pdf_sealed = None
    row.erased_at = ctx.now
    session.flush()
    audit.record(
        session,
        actor=ctx.actor,
        action=AuditAction.CERTIFICATE_HANDOVER_ERASED,
        target_kind="certificate",
        target_id=issue_number,
        purpose=PURPOSE,
    )
    return True
