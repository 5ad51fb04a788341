"""Errors shown to a person as pages, for both HTML front ends: the staff window and the resident portal.

The API answers every error as problem+json. Under a front end's prefix the same errors
become pages in that front end's own look, and a missing or expired session sends the
browser back to that front end's login. Each front end has its own pair of exception
classes (subclasses of the two here), so that each pair reaches its own handlers.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jumin.core.errors import DomainError

__all__ = [
    "ErrorPages",
    "LoginRequired",
    "PageError",
    "install_error_pages",
    "is_htmx",
    "safe_next",
    "see_other",
]

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


class PageError(Exception):
    """An error shown to a person as a page (the API renders DomainError as problem+json)."""

    def __init__(self, status: int, title: str, detail: str, *, commits_recorded_work: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        # Read by jumin.db.finish_failed: a refusal keeps the audit entry it wrote.
        self.commits_recorded_work = commits_recorded_work


class LoginRequired(Exception):
    """No session, or one that expired or was revoked: back to the login page."""

    def __init__(self, reason: StrEnum) -> None:
        super().__init__(reason.value)
        self.reason = reason


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None, prefix: str) -> str:
    """Only a path under the front end's prefix: an open redirect would make the login page a phishing aid."""
    if target and target.startswith(prefix + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return prefix + "/"


@dataclass(frozen=True)
class ErrorPages:
    """What differs between the two front ends' error pages."""

    prefix: str
    render_error: Callable[[Request, int, str, str], HTMLResponse]
    session_cookie: str
    clear_cookie: Callable[[Response, Request, str], None]
    # Where to look instead, on the 404 page ("メニュー", "マイページ").
    not_found_detail: str
    page_error: type[PageError]
    login_required: type[LoginRequired]
    # The portal's forms are plain HTML: a malformed post is shown as a page too.
    malformed_detail: str | None = None

    def covers(self, request: Request) -> bool:
        path = request.url.path
        return path == self.prefix or path.startswith(self.prefix + "/")


def install_error_pages(app: FastAPI, pages: ErrorPages) -> None:
    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return pages.render_error(request, exc.status, exc.title, exc.detail)

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        target = f"{pages.prefix}/login?reason={exc.reason.value}"
        if request.method == "GET" and exc.reason.value == "required":
            target += "&next=" + request.url.path
        if is_htmx(request):
            # A fragment request cannot follow a redirect into a full page; htmx can.
            return Response(status_code=200, headers={"HX-Redirect": target})
        response = see_other(target)
        if request.cookies.get(pages.session_cookie):
            pages.clear_cookie(response, request, pages.session_cookie)
        return response

    def domain_error_page(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, DomainError)
        return pages.render_error(request, exc.status, exc.title, exc.detail)

    def http_error_page(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return pages.render_error(request, 404, "ページが見つかりません", pages.not_found_detail)
        return pages.render_error(
            request, exc.status_code, "リクエストを処理できません", "もう一度お試しください。"
        )

    def malformed_page(request: Request, exc: Exception) -> HTMLResponse:
        assert pages.malformed_detail is not None
        return pages.render_error(request, 400, "リクエストを処理できません", pages.malformed_detail)

    def pages_first(previous: Handler, page: Callable[[Request, Exception], HTMLResponse]) -> Handler:
        """Under the prefix an error is a page; elsewhere the handler installed before answers."""

        async def handler(request: Request, exc: Exception) -> Response:
            if pages.covers(request):
                return page(request, exc)
            result = previous(request, exc)
            return await result if inspect.isawaitable(result) else result

        return handler

    app.add_exception_handler(pages.page_error, page_error)
    app.add_exception_handler(pages.login_required, login_required)
    kinds: list[tuple[type[Exception], Callable[[Request, Exception], HTMLResponse]]] = [
        (DomainError, domain_error_page),
        (StarletteHTTPException, http_error_page),
    ]
    if pages.malformed_detail is not None:
        kinds.append((RequestValidationError, malformed_page))
    for kind, page in kinds:
        previous = app.exception_handlers[kind]
        app.add_exception_handler(kind, pages_first(previous, page))
