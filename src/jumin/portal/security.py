"""The resident portal's session cookie, CSRF tokens and the access rule every page declares.

The cookie holds the token ``card.service.login`` issues after a card login: the
resident session row on the national side is the session, so its 30-minute expiry,
logout, and the revocation a card suspension makes work exactly as for the card API.
It is a cookie of its own (``jumin_resident``, path ``/portal``): a staff session never
opens a resident page and a resident session never reaches the staff window, whose
cookie lives under ``/staff``. CSRF tokens are an HMAC of the cookie value under a key
of the portal's own, as in the staff window (web/security.py).
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from jumin.accounts.domain import Principal
from jumin.api_support import AccessRule, NationalSessionDep
from jumin.card import service as cards
from jumin.card.domain import ResidentPrincipal
from jumin.core.errors import Unauthenticated
from jumin.keys import load_or_create_secret
from jumin.web import security as web_security
from jumin.web.page_errors import LoginRequired, PageError
from jumin.web.security import new_login_nonce

SESSION_COOKIE = "jumin_resident"
LOGIN_COOKIE = "jumin_resident_login"
COOKIE_PATH = "/portal"
CSRF_FIELD = "csrf_token"
# Forms posted without a resident session: their CSRF token is bound to the pre-login cookie.
PUBLIC_FORMS = frozenset({"/portal/login", "/portal/suspend"})

__all__ = [
    "COOKIE_PATH",
    "CSRF_FIELD",
    "LOGIN_COOKIE",
    "PORTAL_PUBLIC",
    "RESIDENT_PAGE",
    "SESSION_COOKIE",
    "LoginReason",
    "PortalLoginRequired",
    "PortalPageError",
    "PostedForm",
    "Resident",
    "new_login_nonce",
]


class LoginReason(StrEnum):
    """Why the login page is shown; a code in the URL, never free text a link could forge."""

    EXPIRED = "expired"
    LOGGED_OUT = "logged_out"
    REQUIRED = "required"
    SUSPENDED = "suspended"


LOGIN_MESSAGES = {
    LoginReason.EXPIRED: (
        "ログインの有効期限 (30分) が切れたか、無効になりました。もう一度カードでログインしてください。"
    ),
    LoginReason.LOGGED_OUT: "ログアウトしました。",
    LoginReason.REQUIRED: "この画面を使うには、マイナンバーカードでログインしてください。",
    LoginReason.SUSPENDED: (
        "カードの一時停止を受け付けました。このカードではログインできなくなりました。"
        "停止の解除は、本人確認書類を持って市区町村の窓口でお手続きください。"
    ),
}


class PortalPageError(PageError):
    """An error shown to the resident as a page (the portal's own handler renders it)."""


class PortalLoginRequired(LoginRequired):
    """No resident session, or one that expired or was revoked: back to the card login."""


def _key() -> bytes:
    return load_or_create_secret("portal-csrf")


def csrf_token_for(cookie_value: str) -> str:
    return hmac.new(_key(), b"portal-csrf\x00" + cookie_value.encode(), hashlib.sha256).hexdigest()


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    web_security.set_cookie(response, request, name, value, path=COOKIE_PATH)


def clear_cookie(response: Response, request: Request, name: str) -> None:
    web_security.clear_cookie(response, request, name, path=COOKIE_PATH)


def csrf_for_request(request: Request) -> str:
    """The token this page's forms carry: bound to the session, else to the login nonce."""
    value = request.cookies.get(SESSION_COOKIE) or getattr(request.state, "login_nonce", None)
    return csrf_token_for(value) if value else ""


async def posted_form(request: Request) -> FormData:
    """The submitted form, refused unless it carries this session's CSRF token.

    The forms used without a session (the login, and the suspension of a lost card by
    its number and secret) are bound to a random pre-login cookie instead, which blocks
    login CSRF (signing a victim in with the attacker's card).
    """
    form = await request.form()
    public = request.url.path in PUBLIC_FORMS
    bound_to = request.cookies.get(LOGIN_COOKIE if public else SESSION_COOKIE)
    submitted = form.get(CSRF_FIELD)
    if (
        not bound_to
        or not isinstance(submitted, str)
        or not hmac.compare_digest(submitted, csrf_token_for(bound_to))
    ):
        raise PortalPageError(
            403,
            "フォームの確認に失敗しました",
            "画面を開き直してから、もう一度送信してください。"
            "長時間開いたままの画面や、別の画面から送られたフォームは受け付けません。",
        )
    return form


PostedForm = Annotated[FormData, Depends(posted_form)]


class ResidentPage(AccessRule):
    """A resident's page: the card-login session in the portal cookie (or none, if public).

    The counterpart of ``card.access.RESIDENT`` for pages: the same session check against
    the national database, the cookie instead of the bearer header, and a trip to the
    login page instead of a 401.
    """

    def describe(self) -> str:
        return "public" if self.public else "resident (card login session, portal cookie)"

    def __call__(  # type: ignore[override]  # the cookie replaces the bearer header
        self, request: Request, session: NationalSessionDep
    ) -> Principal | None:
        if self.public:
            return None
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise PortalLoginRequired(LoginReason.REQUIRED)
        try:
            request.state.resident = cards.authenticate_resident(session, token)
        except Unauthenticated as exc:
            raise PortalLoginRequired(LoginReason.EXPIRED) from exc
        return None


PORTAL_PUBLIC = ResidentPage(public=True)
RESIDENT_PAGE = ResidentPage()


def current_resident(request: Request, _rule: Annotated[None, Depends(RESIDENT_PAGE)]) -> ResidentPrincipal:
    resident: ResidentPrincipal = request.state.resident
    return resident


Resident = Annotated[ResidentPrincipal, Depends(current_resident)]


def form_value(form: FormData, name: str) -> str:
    value: Any = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def form_values(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.getlist(name) if isinstance(v, str)]
