"""Every query of the window's hand-over of signed PDFs (certificates/handover)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jumin.certificates.handover_models import CertificateHandover


def by_token(session: Session, token_hash: str) -> CertificateHandover | None:
    return session.execute(
        select(CertificateHandover)
        .where(CertificateHandover.token_hash == token_hash)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def by_issue_number(session: Session, issue_number: str) -> CertificateHandover | None:
    return session.execute(
        select(CertificateHandover)
        .where(CertificateHandover.issue_number == issue_number)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def erase_expired(session: Session, now: dt.datetime) -> int:
    """Empty every PDF past its time: one statement, whoever's it was."""
    result = session.execute(
        update(CertificateHandover)
        .where(CertificateHandover.expires_at <= now, CertificateHandover.pdf_sealed.is_not(None))
        .values(pdf_sealed=None, erased_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
