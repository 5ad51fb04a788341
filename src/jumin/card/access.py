"""Who may call card routes besides staff: residents logged in with their card, and
businesses of the four-facts update service.

``RESIDENT`` is the AccessRule for resident self-service routes (portal, kiosk):
declare it with ``Depends(RESIDENT)`` or take ``ResidentDep`` in the handler, which
depends on it and hands over the :class:`ResidentPrincipal`. Like every AccessRule it
is the route's one rule; staff tokens are not resident sessions and get a 401.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jumin.accounts.domain import Principal
from jumin.api_support import AccessRule, BearerDep, NationalSessionDep
from jumin.card import fourfacts, service
from jumin.card.domain import ResidentPrincipal
from jumin.card.fourfacts import BusinessPrincipal
from jumin.core.errors import Unauthenticated

__all__ = ["BUSINESS", "RESIDENT", "BusinessDep", "ResidentDep"]


def _bearer_token(credentials: BearerDep, message: str) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated(message)
    return credentials.credentials


class ResidentRule(AccessRule):
    """A resident's session from ``POST /card/v1/login`` (card authentication certificate)."""

    def describe(self) -> str:
        return "resident (card login session)"

    def __call__(
        self, request: Request, session: NationalSessionDep, credentials: BearerDep
    ) -> Principal | None:
        token = _bearer_token(
            credentials, "カードでのログインが必要です。POST /card/v1/login でログインしてください。"
        )
        request.state.resident = service.authenticate_resident(session, token)
        return None


class BusinessRule(AccessRule):
    """A business of the four-facts update service, by its API key."""

    def describe(self) -> str:
        return "four-facts business (API key)"

    def __call__(
        self, request: Request, session: NationalSessionDep, credentials: BearerDep
    ) -> Principal | None:
        token = _bearer_token(credentials, "事業者のAPIキーが必要です。")
        request.state.business = fourfacts.authenticate_business(session, token)
        return None


RESIDENT = ResidentRule()
BUSINESS = BusinessRule()


def current_resident(request: Request, _rule: Annotated[None, Depends(RESIDENT)]) -> ResidentPrincipal:
    resident: ResidentPrincipal = request.state.resident
    return resident


def current_business(request: Request, _rule: Annotated[None, Depends(BUSINESS)]) -> BusinessPrincipal:
    business: BusinessPrincipal = request.state.business
    return business


ResidentDep = Annotated[ResidentPrincipal, Depends(current_resident)]
BusinessDep = Annotated[BusinessPrincipal, Depends(current_business)]
