"""Where each municipality's system answers the national network (広域交付).

The national server calls the home municipality's endpoint for a record copy; the URL is
registered by the national operator beside the municipality's key (`jumin network
register-endpoint`), or automatically by `jumin serve` for the municipalities it hosts.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from jumin.db import Base, UTCDateTime


class MunicipalityEndpoint(Base):
    __tablename__ = "national_municipality_endpoints"

    lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    # Every national table carries its distribution column (DESIGN.md, "Scale").
    prefecture_code: Mapped[str] = mapped_column(String(2), nullable=False)
    url: Mapped[str] = mapped_column(String(300), nullable=False)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
