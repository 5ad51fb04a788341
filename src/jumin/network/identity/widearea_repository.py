"""Queries of the municipalities' endpoints (widearea_models)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from jumin.network.identity.widearea_models import MunicipalityEndpoint


def endpoint(session: Session, lg_code: str) -> MunicipalityEndpoint | None:
    return session.get(MunicipalityEndpoint, lg_code)


def endpoints(session: Session) -> Sequence[MunicipalityEndpoint]:
    return session.scalars(select(MunicipalityEndpoint).order_by(MunicipalityEndpoint.lg_code)).all()
