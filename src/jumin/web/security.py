"""The staff window's session cookie, CSRF tokens and the access rule every page declares.

The cookie holds the same opaque token ``accounts.service.login`` issues to API callers:
the token row in the database is the session, so expiry, logout and deactivation work
exactly as for the API and nothing new is stored. A CSRF token is an HMAC of the cookie
value under a key kept outside the database, so it is per session, needs no storage and
dies with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.datastructures import FormData

from jumin.accounts.domain import OrganisationKind, Principal, PrincipalKind, Role
from jumin.api_support import AccessRule, SessionDep
from jumin.core.errors import AccessDenied, Unauthenticated
from jumin.keys import load_or_create_secret
from jumin.web.page_errors import LoginRequired, PageError

SESSION_COOKIE = "jumin_staff"
LOGIN_COOKIE = "jumin_login"
# The cookie never travels to the JSON API (its own bearer tokens) or a future portal.
COOKIE_PATH = "/staff"
CSRF_FIELD = "csrf_token"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class LoginReason(StrEnum):
    """Why the login page is shown; a code in the URL, never free text a link could forge."""

    EXPIRED = "expired"
    LOGGED_OUT = "logged_out"
    REQUIRED = "required"


LOGIN_MESSAGES = {
    LoginReason.EXPIRED: "ログインの有効期限が切れたか、無効になりました。もう一度ログインしてください。",
    LoginReason.LOGGED_OUT: "ログアウトしました。",
    LoginReason.REQUIRED: "この画面を使うにはログインしてください。",
}


def _key() -> bytes:
    return load_or_create_secret("web-csrf")


def csrf_token_for(cookie_value: str) -> str:
    return hmac.new(_key(), b"csrf\x00" + cookie_value.encode(), hashlib.sha256).hexdigest()


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def is_secure_context(request: Request) -> bool:
    """Secure cookies everywhere but on the developer's own machine over plain HTTP."""
    return request.url.scheme == "https" or (request.url.hostname or "") not in _LOCAL_HOSTS


def set_cookie(
    response: Response, request: Request, name: str, value: str, *, path: str = COOKIE_PATH
) -> None:
    """A front end's session or login cookie: HTTP only, same-site strict, secure but on localhost.

    The portal's cookies go through here too, with the portal's path.
    """
    response.set_cookie(
        name,
        value,
        path=path,
        httponly=True,
        samesite="strict",
        secure=is_secure_context(request),
    )


def clear_cookie(response: Response, request: Request, name: str, *, path: str = COOKIE_PATH) -> None:
    response.delete_cookie(
        name, path=path, httponly=True, samesite="strict", secure=is_secure_context(request)
    )


def csrf_for_request(request: Request) -> str:
    """The token the current page's forms carry: bound to the session, else to the login nonce."""
    value = request.cookies.get(SESSION_COOKIE) or getattr(request.state, "login_nonce", None)
    return csrf_token_for(value) if value else ""


async def posted_form(request: Request) -> FormData:
    """The submitted form, refused unless it carries this session's CSRF token.

    Every POST of the staff window depends on this. The login form is bound to a
    random pre-login cookie instead, which blocks login CSRF (signing a victim in as
    the attacker).
    """
    form = await request.form()
    bound_to = request.cookies.get(LOGIN_COOKIE if request.url.path.endswith("/login") else SESSION_COOKIE)
    submitted = form.get(CSRF_FIELD)
    if (
        not bound_to
        or not isinstance(submitted, str)
        or not hmac.compare_digest(submitted, csrf_token_for(bound_to))
    ):
        raise PageError(
            403,
            "フォームの確認に失敗しました",
            "画面を開き直してから、もう一度送信してください。"
            "長時間開いたままの画面や、別の画面から送られたフォームは受け付けません。",
        )
    return form


PostedForm = Annotated[FormData, Depends(posted_form)]


class StaffPage(AccessRule):
    """The page counterpart of ``require``: the same checks, the session cookie as credential.

    It reuses AccessRule's checks (and its audited refusals) by presenting the cookie's
    token as the bearer credential, and turns the API's 401/403 into a trip to the login
    page or a refusal page.
    """

    def __call__(  # type: ignore[override]  # the cookie replaces the bearer header
        self, request: Request, session: SessionDep
    ) -> Principal | None:
        if self.public:
            return None
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise LoginRequired(LoginReason.REQUIRED)
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        try:
            principal = super().__call__(request, session, credentials)
        except Unauthenticated as exc:
            raise LoginRequired(LoginReason.EXPIRED) from exc
        except AccessDenied as exc:
            raise PageError(
                403,
                "この画面を開く権限がありません",
                "担当の業務に必要な権限がこのアカウントにありません。必要な場合は管理者に依頼してください。",
                commits_recorded_work=True,
            ) from exc
        if principal is None or principal.kind is not PrincipalKind.STAFF:
            # An agency client's token is no staff session, whatever cookie carries it.
            raise LoginRequired(LoginReason.REQUIRED)
        return principal


def page_rule(*roles: Role, organisation_kinds: frozenset[OrganisationKind] = frozenset()) -> StaffPage:
    return StaffPage(roles=frozenset(roles), organisation_kinds=organisation_kinds)


def allows(rule: AccessRule, principal: Principal) -> bool:
    """Whether ``rule`` would let ``principal`` in: the menu shows only what opens."""
    if rule.roles and not principal.has_any(rule.roles):
        return False
    return not (rule.organisation_kinds and principal.organisation_kind not in rule.organisation_kinds)


MUNICIPAL = frozenset({OrganisationKind.MUNICIPALITY})
PUBLIC_PAGE = StaffPage(public=True)
ANY_STAFF = StaffPage()
READER = page_rule(Role.CLERK, Role.SUPERVISOR, Role.AUDITOR, organisation_kinds=MUNICIPAL)
CLERK = page_rule(Role.CLERK, Role.SUPERVISOR, organisation_kinds=MUNICIPAL)
SUPERVISOR = page_rule(Role.SUPERVISOR, organisation_kinds=MUNICIPAL)
AUDITOR = page_rule(Role.AUDITOR, Role.SUPERVISOR, Role.OPERATOR)
# The national operator decides on prefectures' extraction requests (network/agencies).
OPERATOR = page_rule(Role.OPERATOR, organisation_kinds=frozenset({OrganisationKind.NATIONAL}))
# The approvals page: the operator's extraction requests, a municipality's drafted events.
APPROVALS = page_rule(
    Role.OPERATOR,
    Role.SUPERVISOR,
    Role.CLERK,
    organisation_kinds=frozenset({OrganisationKind.NATIONAL, OrganisationKind.MUNICIPALITY}),
)

Staff = Annotated[Principal, Depends(ANY_STAFF)]
Reader = Annotated[Principal, Depends(READER)]
Clerk = Annotated[Principal, Depends(CLERK)]
Auditor = Annotated[Principal, Depends(AUDITOR)]
Supervisor = Annotated[Principal, Depends(SUPERVISOR)]
Operator = Annotated[Principal, Depends(OPERATOR)]
Approver = Annotated[Principal, Depends(APPROVALS)]


def form_value(form: FormData, name: str) -> str:
    value: Any = form.get(name)
    return value.strip() if isinstance(value, str) else ""
