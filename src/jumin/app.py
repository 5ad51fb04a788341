"""The FastAPI app factory: routes, problem+json errors, request ids, access logs."""

from __future__ import annotations

import logging
import re
import time

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from jumin import __version__
from jumin.accounts.api import router as accounts_router
from jumin.api_support import PROBLEM_JSON, PUBLIC, problem_body, problem_response
from jumin.audit.api import router as audit_router
from jumin.card.api import router as card_router
from jumin.certificates.api import router as certificates_router
from jumin.certificates.widearea_api import router as wide_area_home_router
from jumin.certificates.widearea_api import staff_router as wide_area_staff_router
from jumin.core.errors import DomainError, InvalidValue, problem_type
from jumin.db import default_engine
from jumin.db import national_engine as default_national_engine
from jumin.http_guards import ASGIApp, Message, Receive, RejectNulCharacters, Scope, Send
from jumin.loopback import loopback_card_worker, loopback_relay, together
from jumin.network.agencies.api import router as agencies_router
from jumin.network.identity.api import router as replication_router
from jumin.network_client import NetworkClient, default_network_client
from jumin.portal.pages import install as install_resident_portal
from jumin.registry.api import router as registry_router
from jumin.registry.arrivals_api import router as arrivals_router
from jumin.request_context import new_request_id, set_request_id
from jumin.web.pages import install as install_staff_window

log = logging.getLogger("jumin.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_HTTP_TITLES = {
    404: ("not-found", "対象が見つかりません", "指定されたURLは存在しません。"),
    405: (
        "method-not-allowed",
        "許可されていないメソッドです",
        "このURLはそのメソッドを受け付けません。",
    ),
}


def _field_of(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


class RequestIdAndAccessLog:
    """Gives each request its id (X-Request-ID, echoed or new) and writes its access-log line.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware
    runs every request through an extra task and memory streams, a cost paid by every
    call of every API.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        set_request_id(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            # The route template, never the concrete path: paths and queries can hold
            # identifiers and names.
            log.info(
                "request",
                extra={
                    "method": scope.get("method", ""),
                    "route": getattr(route, "path", "unmatched"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )


def create_app(
    engine: Engine | None = None,
    network_client: NetworkClient | None = None,
    *,
    national_engine: Engine | None = None,
    relay_url: str | None = None,
) -> FastAPI:
    """The app; ``relay_url`` (``jumin serve``) also runs the relay against this server's own port,
    and the card worker on the national database."""
    app = FastAPI(
        lifespan=together(loopback_relay(relay_url), loopback_card_worker()) if relay_url else None,
        title="Jumin 住民基本台帳システム API",
        version=__version__,
        description=(
            "住民記録・住基ネット・証明書・マイナンバーカードのAPI。"
            "エラーは application/problem+json (RFC 9457) で返します。"
        ),
    )
    app.state.engine = engine or default_engine()
    app.state.network_client = network_client or default_network_client()
    app.state.national_engine = national_engine or default_national_engine()

    app.add_middleware(RejectNulCharacters)

    app.add_middleware(RequestIdAndAccessLog)

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def malformed(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_of(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = errors[0]["field"] if errors else None
        return JSONResponse(
            problem_body(
                type_uri=problem_type("malformed-request"),
                title="入力形式が正しくありません",
                status=422,
                detail=f"{len(errors)}件の項目が形式に合いません。"
                + (f" 最初の項目: {first}" if first else ""),
                field=first,
                errors=errors,
            ),
            status_code=422,
            media_type=PROBLEM_JSON,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug, title, detail = _HTTP_TITLES.get(
            exc.status_code, ("http-error", "リクエストを処理できません", str(exc.detail))
        )
        return JSONResponse(
            problem_body(
                type_uri=problem_type(slug),
                title=title,
                status=exc.status_code,
                detail=detail,
                field=None,
            ),
            status_code=exc.status_code,
            media_type=PROBLEM_JSON,
            headers=exc.headers,
        )

    async def out_of_range(_request: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot hold (a number beyond BIGINT, say): the caller's
        # input, refused like any other bad value; the transaction was already rolled back.
        return problem_response(InvalidValue("入力値がデータベースで扱える範囲を超えています。"))

    app.add_exception_handler(DataError, out_of_range)
    app.add_exception_handler(OverflowError, out_of_range)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse(
            problem_body(
                type_uri=problem_type("internal-error"),
                title="内部エラーが発生しました",
                status=500,
                detail="処理は行われていません。リクエストIDを添えて管理者に連絡してください。",
                field=None,
            ),
            status_code=500,
            media_type=PROBLEM_JSON,
        )

    @app.get("/healthz", dependencies=[Depends(PUBLIC)], tags=["運用"], summary="死活監視")
    def healthz() -> dict[str, str]:
        # A raw DBAPI query, outside any transaction: a liveness probe must not queue for
        # SQLite's write lock behind real work.
        raw = app.state.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            raw.close()
        return {"status": "ok", "version": __version__}

    app.include_router(accounts_router)
    app.include_router(audit_router)
    app.include_router(registry_router)
    app.include_router(arrivals_router)
    app.include_router(replication_router)
    app.include_router(agencies_router)
    app.include_router(card_router)
    app.include_router(certificates_router)
    # The home municipality's door for 広域交付 (the national network asks, signed).
    app.include_router(wide_area_home_router)
    app.include_router(wide_area_staff_router)
    # The staff window (web/): its pages, static files and HTML error pages.
    install_staff_window(app)
    # The resident portal (portal/): its pages under /portal, its own session cookie and error pages.
    install_resident_portal(app)
    return app
