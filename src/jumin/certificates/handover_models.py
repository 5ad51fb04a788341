"""The signed PDF of a window issuance, kept for the few minutes the clerk needs to hand it over.

The ledger (``certificate_issuances``) keeps only the PDF's hash. The window's result page
must show the same PDF again on a reload without issuing twice, so the file is kept here,
sealed with the municipal data key, until the clerk finishes the hand-over or it expires;
then ``pdf_sealed`` is emptied. The row itself stays: it maps the issue form's one-time
token to the issue number, so a form posted twice still yields the first issuance.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class CertificateHandover(Base):
    __tablename__ = "certificate_handovers"
    __table_args__ = (Index("ix_certificate_handovers_lg_expires", "lg_code", "expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The issue form's one-time token (a keyed hash of it): unique, so a second post waits
    # for the first and then finds it.
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    lg_code: Mapped[str] = mapped_column(String(6), nullable=False)
    actor_id: Mapped[str] = mapped_column(String(128), nullable=False)
    # The choices posted with the token: the same token with other choices is refused.
    request_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    issue_number: Mapped[str | None] = mapped_column(String(32), index=True)
    pdf_sealed: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
