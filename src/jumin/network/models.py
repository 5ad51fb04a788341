"""National-side tables for 住民票コード and 個人番号.

Every table carries ``prefecture_code``, the column the national store is distributed
by (DESIGN.md "Scale"): a person's code and number rows share it, so they live together.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class NationalResidentCode(Base):
    """A 住民票コード handed to a municipality's pool; it stays allocated forever."""

    __tablename__ = "national_resident_codes"

    code: Mapped[str] = mapped_column(String(11), primary_key=True)
    allocated_to_lg_code: Mapped[str] = mapped_column(String(6), nullable=False, index=True)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    allocated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    # One allocation request; lets an operator trace or report a pool handed out at once.
    block_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)


_CURRENT = "superseded_at IS NULL"


class NationalIndividualNumber(Base):
    """Every 個人番号 ever issued; a changed one is superseded but kept, so never reissued."""

    __tablename__ = "national_individual_numbers"
    __table_args__ = (
        # At most one current number per person, enforced by the database so that two
        # concurrent first requests cannot both issue.
        Index(
            "uq_national_individual_numbers_current",
            "resident_code",
            unique=True,
            sqlite_where=text(_CURRENT),
            postgresql_where=text(_CURRENT),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    # Keyed hash (keys.lookup_hash): finds a number without decrypting every row.
    number_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # AES-GCM bound to the resident code, so a ciphertext copied to another row won't open.
    number_encrypted: Mapped[str] = mapped_column(String(200), nullable=False)
    derivation_counter: Mapped[int] = mapped_column(Integer, nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
