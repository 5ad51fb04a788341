"""What every HTTP route shares: the unit of work, access rules and problem responses.

Every route declares exactly one :class:`AccessRule` (``require``, ``public`` or
``agency_client``); a test walks the app and fails on a route without one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Principal, PrincipalKind, Role
from jumin.core.errors import DomainError, Unauthenticated
from jumin.db import finish_failed, unit_of_work
from jumin.request_context import current_request_id

PROBLEM_JSON = "application/problem+json"


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route of an app, through included routers (FastAPI ≥0.16x nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from api_routes(original.routes)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed before the response is sent, or rolled back."""
    session = Session(bind=get_engine(request), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException as exc:
        finish_failed(session, exc)
        raise
    finally:
        session.close()


# scope="function": the commit happens before the response leaves, so a failed commit
# is a 500 to the caller instead of a 200 for work that was lost.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_national_session(request: Request) -> Iterator[Session]:
    """The national network's unit of work, on its own database (national routes only)."""
    session = Session(bind=request.app.state.national_engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException as exc:
        finish_failed(session, exc)
        raise
    finally:
        session.close()


NationalSessionDep = Annotated[Session, Depends(get_national_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="POST /auth/login で得たアクセストークン")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class AccessRule:
    """Who may call a route: anyone, staff with some role, or an agency client."""

    def __init__(
        self,
        *,
        public: bool = False,
        roles: frozenset[Role] = frozenset(),
        organisation_kinds: frozenset[OrganisationKind] = frozenset(),
        agency_clients: bool = False,
    ) -> None:
        self.public = public
        self.roles = roles
        self.organisation_kinds = organisation_kinds
        self.agency_clients = agency_clients

    def describe(self) -> str:
        if self.public:
            return "public"
        parts = []
        if self.roles:
            parts.append("roles=" + ",".join(sorted(self.roles)))
        if self.organisation_kinds:
            parts.append("organisations=" + ",".join(sorted(self.organisation_kinds)))
        if self.agency_clients:
            parts.append("agency clients")
        return "; ".join(parts) or "any authenticated caller"

    def __call__(self, request: Request, session: SessionDep, credentials: BearerDep) -> Principal | None:
        if self.public:
            return None
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated("アクセストークンが必要です。POST /auth/login でログインしてください。")
        principal = accounts.authenticate(session, credentials.credentials)
        request.state.principal = principal
        route = request.scope.get("route")
        target = f"{request.method} {getattr(route, 'path', '?')}"
        staff_only = bool(self.roles or self.organisation_kinds)
        if principal.kind is PrincipalKind.AGENCY_CLIENT:
            if staff_only and not self.agency_clients:
                raise accounts.deny(
                    session,
                    principal=principal,
                    target=target,
                    reason="agency client on staff route",
                )
            return principal
        if self.agency_clients and not self.roles:
            raise accounts.deny(session, principal=principal, target=target, reason="staff on agency route")
        if self.roles and not principal.has_any(self.roles):
            raise accounts.deny(session, principal=principal, target=target, reason="missing role")
        if self.organisation_kinds and principal.organisation_kind not in self.organisation_kinds:
            raise accounts.deny(session, principal=principal, target=target, reason="organisation kind")
        return principal


PUBLIC = AccessRule(public=True)
AUTHENTICATED = AccessRule()


def require(*roles: Role, organisation_kinds: frozenset[OrganisationKind] = frozenset()) -> AccessRule:
    return AccessRule(roles=frozenset(roles), organisation_kinds=organisation_kinds)


AGENCY_CLIENT = AccessRule(agency_clients=True)


# --- the national side's routes (network/agencies) -------------------------------------------------
# Agency, prefecture and operator routes of the national network authenticate against the
# national database's accounts tables (``get_national_session``): agency clients and
# national/prefecture staff are registered there and get their tokens from
# POST /network/v1/auth/token and POST /network/v1/auth/login.

NationalUnits = Callable[[], AbstractContextManager[Session]]


def national_units(app: FastAPI) -> NationalUnits:
    """Units of work on the national database for a request's background work (batches...).

    A test that joins ``get_national_session`` to its own transaction (a dependency
    override yielding its session) gets the background work joined to it as well.
    """
    override = app.dependency_overrides.get(get_national_session)
    if override is not None:
        return contextmanager(override)
    engine: Engine = app.state.national_engine
    return lambda: unit_of_work(engine)


class NationalAccessRule(AccessRule):
    """An access rule whose principal is looked up in the national database."""

    def __call__(  # the same rule; only the session it authenticates against differs
        self, request: Request, session: NationalSessionDep, credentials: BearerDep
    ) -> Principal | None:
        return super().__call__(request, session, credentials)


NATIONAL_PUBLIC = NationalAccessRule(public=True)
NATIONAL_AUTHENTICATED = NationalAccessRule()
NATIONAL_AGENCY_CLIENT = NationalAccessRule(agency_clients=True)


def national_require(
    *roles: Role, organisation_kinds: frozenset[OrganisationKind] = frozenset()
) -> NationalAccessRule:
    return NationalAccessRule(roles=frozenset(roles), organisation_kinds=organisation_kinds)


# --- end of the national side's routes -------------------------------------------------------------


def problem_body(
    *, type_uri: str, title: str, status: int, detail: str, field: str | None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type_uri,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": current_request_id(),
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    return body


def problem_response(error: DomainError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(
        problem_body(
            type_uri=error.type_uri,
            title=error.title,
            status=error.status,
            detail=error.detail,
            field=error.field,
        ),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": desc,
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "field": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                    "required": ["type", "title", "status", "detail"],
                }
            }
        },
    }
    for code, desc in {
        400: "入力値が不正です",
        401: "認証が必要です",
        403: "権限がありません",
        404: "対象が見つかりません",
        409: "競合または業務規則違反",
        422: "入力形式が正しくありません",
        423: "アカウントがロックされています",
    }.items()
}
