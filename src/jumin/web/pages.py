"""The staff window (職員画面): server-rendered pages over the same services as the API.

Each route parses what the page sent, authorizes through its access rule, calls the
register's, the accounts' or the audit log's service, and renders a template. No rule
of the register lives here: what may be recorded is decided by the request models and
the services, whose errors come back onto the form beside the field they name.

Errors a page does not handle itself (a person of another municipality, a refused
role) propagate like in the API, so the unit of work rolls back (or keeps an audited
refusal) exactly as it does there, and are then rendered as a Japanese error page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.accounts.domain import Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import NationalSessionDep, SessionDep
from jumin.audit import service as audit
from jumin.audit.domain import AuditAction
from jumin.core.errors import DomainError, InvalidValue
from jumin.core.wareki import parse_date
from jumin.registry import service as registry
from jumin.registry.domain import StaleVersion
from jumin.web import views
from jumin.web.forms import (
    STALE_MESSAGE,
    FormContext,
    FormInvalid,
    attach_errors,
    build_form,
    domain_error_fields,
    form_values,
    parse_request,
    widget_names,
)
from jumin.web.page_errors import (
    ErrorPages,
    LoginRequired,
    PageError,
    install_error_pages,
    is_htmx,
    safe_next,
    see_other,
)
from jumin.web.security import (
    ANY_STAFF,
    AUDITOR,
    CLERK,
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_MESSAGES,
    PUBLIC_PAGE,
    READER,
    SESSION_COOKIE,
    SUPERVISOR,
    LoginReason,
    PostedForm,
    allows,
    clear_cookie,
    csrf_for_request,
    form_value,
    new_login_nonce,
    set_cookie,
)

WEB_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=WEB_DIR / "templates")
templates.env.filters["jp_date"] = views.jp_date
templates.env.filters["jp_datetime"] = views.jp_datetime
# An input's id from its name (members.0.relationship → q-members-0-relationship).
templates.env.filters["fid"] = lambda name: "q-" + str(name).replace("_", "-").replace(".", "-")

PURPOSE = "住民基本台帳事務"
SEARCH_PAGE_SIZE = 20
AUDIT_PAGE_SIZE = 50
STAFF_PREFIX = "/staff"

# Pages hold personal data: never cached, never framed, scripts and styles only from here.
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

root_router = APIRouter(include_in_schema=False)
router = APIRouter(prefix=STAFF_PREFIX, include_in_schema=False)

Staff = Annotated[Principal, Depends(ANY_STAFF)]
Reader = Annotated[Principal, Depends(READER)]
Clerk = Annotated[Principal, Depends(CLERK)]
Auditor = Annotated[Principal, Depends(AUDITOR)]


# ---------------------------------------------------------------------------
# Rendering


def _organisation_name(session: Session, code: str) -> str:
    return next((o.name for o in accounts.list_organisations(session) if o.code == code), code)


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    session: Session | None = None,
    principal: Principal | None = None,
    status: int = 200,
) -> HTMLResponse:
    principal = principal or getattr(request.state, "principal", None)
    base: dict[str, Any] = {
        "principal": principal,
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_for_request(request),
        "menu": views.menu_for(principal) if principal else [],
        "organisation": (
            _organisation_name(session, principal.organisation_code)
            if principal and session is not None
            else (principal.organisation_code if principal else "")
        ),
        "roles": views.role_names(principal.roles) if principal else "",
        "path": request.url.path,
    }
    response = templates.TemplateResponse(request, name, base | dict(context), status_code=status)
    response.headers.update(_HEADERS)
    return response


def context_of(request: Request, principal: Principal) -> registry.RegistryContext:
    return registry.RegistryContext(
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        network=request.app.state.network_client,
    )


@contextmanager
def attempt(session: Session) -> Iterator[None]:
    """A savepoint around a use case whose refusal the page shows beside the form.

    A refusal leaves nothing behind, except one that is evidence (an audited refusal,
    ``commits_recorded_work``): that keeps what it recorded, as it does in the API.
    """
    nested = session.begin_nested()
    try:
        yield
    except BaseException as exc:
        if getattr(exc, "commits_recorded_work", False):
            nested.commit()
        else:
            nested.rollback()
        raise
    nested.commit()


def field_id(name: str) -> str:
    return "q-" + name.replace("_", "-").replace(".", "-")


def error_summary(errors: Mapping[str, str], labels: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(anchor, label, message) per error, for the list at the top of a hand-written form.

    A name not in ``labels`` is looked up by its last part (members.1.relationship →
    relationship); ``_form`` is an error of the form as a whole, with no input to point at.
    """
    return [
        ("", "", message)
        if name == "_form"
        else (field_id(name), labels.get(name, labels.get(name.rsplit(".", 1)[-1], "")), message)
        for name, message in errors.items()
    ]


def refused_fields(exc: DomainError, names: Iterable[str]) -> dict[str, str]:
    """A service's refusal beside the input its ``field`` names, else on the whole form."""
    return domain_error_fields(exc, list(names))


def _date_or_error(raw: str, field: str, errors: dict[str, str]) -> dt.date | None:
    if not raw:
        return None
    try:
        return parse_date(raw, field=field)
    except InvalidValue as exc:
        errors[field] = exc.detail
        return None


# ---------------------------------------------------------------------------
# Login and the menu


@root_router.get("/", dependencies=[Depends(PUBLIC_PAGE)])
def root() -> RedirectResponse:
    return see_other(STAFF_PREFIX + "/")


@router.get("/login", dependencies=[Depends(PUBLIC_PAGE)])
def login_page(request: Request, reason: str | None = None, next: str | None = None) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or new_login_nonce()
    request.state.login_nonce = nonce
    message = LOGIN_MESSAGES.get(LoginReason(reason)) if reason in set(LoginReason) else None
    response = render(
        request,
        "login.html",
        {
            "title": "ログイン",
            "message": message,
            "next": safe_next(next, STAFF_PREFIX),
            "login": "",
            "error": "",
        },
    )
    if request.cookies.get(LOGIN_COOKIE) != nonce:
        set_cookie(response, request, LOGIN_COOKIE, nonce)
    return response


@router.post("/login", dependencies=[Depends(PUBLIC_PAGE)])
def login(request: Request, session: SessionDep, form: PostedForm) -> Response:
    login_name = form_value(form, "login")
    try:
        issued = accounts.login(
            session,
            login=login_name,
            password=str(form.get("password") or ""),
            totp_code=form_value(form, "totp"),
        )
    except DomainError as exc:
        # The failure count and its audit entry are committed with this response, as
        # the API does: a refused login is evidence, and lock-out depends on it.
        request.state.login_nonce = request.cookies.get(LOGIN_COOKIE)
        return render(
            request,
            "login.html",
            {
                "title": "ログイン",
                "message": None,
                "next": safe_next(form_value(form, "next"), STAFF_PREFIX),
                "login": login_name,
                "error": exc.detail,
                "error_field": "totp" if exc.field == "totp" else "",
            },
            status=exc.status,
        )
    response = see_other(safe_next(form_value(form, "next"), STAFF_PREFIX))
    set_cookie(response, request, SESSION_COOKIE, issued.access_token)
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, principal: Staff, session: SessionDep, form: PostedForm) -> Response:
    accounts.logout(session, principal=principal)
    response = see_other(f"{STAFF_PREFIX}/login?reason={LoginReason.LOGGED_OUT.value}")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


@router.get("/")
def menu(request: Request, principal: Staff, session: SessionDep) -> HTMLResponse:
    return render(request, "menu.html", {"title": "メニュー"}, session=session, principal=principal)


# ---------------------------------------------------------------------------
# Residents


@router.get("/residents")
def search(
    request: Request,
    principal: Reader,
    session: SessionDep,
    kana: Annotated[str, Query(max_length=100)] = "",
    resident_code: Annotated[str, Query(max_length=40)] = "",
    birth_date: Annotated[str, Query(max_length=40)] = "",
    address: Annotated[str, Query(max_length=200)] = "",
    include_removed: Annotated[str, Query(max_length=10)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    errors: dict[str, str] = {}
    criteria = {
        "kana": kana.strip(),
        "resident_code": resident_code.strip(),
        "birth_date": birth_date.strip(),
        "address": address.strip(),
        "include_removed": include_removed,
    }
    born = _date_or_error(criteria["birth_date"], "birth_date", errors)
    code = criteria["resident_code"]
    if code and not (len(code) == 11 and code.isascii() and code.isdigit()):
        errors["resident_code"] = "住民票コードは11桁の半角数字で入力してください。"
    asked = any(criteria[k] for k in ("kana", "resident_code", "birth_date", "address"))
    found: registry.SearchResult | None = None
    if asked and not errors:
        try:
            found = registry.search(
                session,
                ctx=context_of(request, principal),
                kana=criteria["kana"] or None,
                resident_code=code or None,
                birth_date=born,
                address=criteria["address"] or None,
                include_removed=bool(include_removed),
                limit=SEARCH_PAGE_SIZE,
                offset=(page - 1) * SEARCH_PAGE_SIZE,
                purpose=PURPOSE,
            )
        except DomainError as exc:
            errors[exc.field or "kana"] = exc.detail
    rows = [
        {
            "person_id": v.person_id,
            "name": v.record.name,
            "kana": v.record.name_kana or "",
            "birth": views.birth_date_text(v.record),
            "sex": views.sex_text(v.record),
            "address": views.address_text(v.record),
            "removed": v.record.status.value != "live",
            "status": views.status_text(v.record),
        }
        for v in (found.results if found else [])
    ]
    total = found.total if found else 0
    query = {k: v for k, v in criteria.items() if v}
    context = {
        "title": "住民の検索",
        "criteria": criteria,
        "errors": errors,
        "asked": asked,
        "rows": rows,
        "total": total,
        "page": page,
        "first": (page - 1) * SEARCH_PAGE_SIZE + 1,
        "last": (page - 1) * SEARCH_PAGE_SIZE + len(rows),
        "prev_query": query | {"page": page - 1} if page > 1 else None,
        "next_query": query | {"page": page + 1} if page * SEARCH_PAGE_SIZE < total else None,
    }
    if is_htmx(request):
        # htmx swaps 2xx answers only; the fragment carries the errors itself.
        return render(request, "partials/search_area.html", context, session=session, principal=principal)
    return render(
        request, "search.html", context, session=session, principal=principal, status=400 if errors else 200
    )


@router.get("/residents/{person_id}")
def record_page(
    request: Request,
    person_id: int,
    principal: Reader,
    session: SessionDep,
    on: Annotated[str, Query(max_length=40)] = "",
    recorded: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    ctx = context_of(request, principal)
    current = registry.get_record(session, ctx=ctx, person_id=person_id, purpose=PURPOSE)
    errors: dict[str, str] = {}
    as_of_date = _date_or_error(on.strip(), "on", errors)
    as_of: registry.RecordView | None = None
    as_of_missing = ""
    if as_of_date is not None:
        try:
            as_of = registry.get_record(session, ctx=ctx, person_id=person_id, on=as_of_date, purpose=PURPOSE)
        except DomainError:
            # Before the person moved in, or after a removal: say so instead of failing.
            as_of_missing = f"{views.jp_date(as_of_date)}時点の記載はありません。"
    shown = as_of or current
    household = registry.get_household(
        session, ctx=ctx, household_id=shown.record.household_id, on=as_of_date, purpose=PURPOSE
    )
    events = views.timeline(registry.events_of(session, ctx=ctx, person_id=person_id, purpose=PURPOSE))
    history = views.versions(
        (v, registry.version_summary(v))
        for v in registry.history(session, ctx=ctx, person_id=person_id, purpose=PURPOSE)
    )
    common, rest = views.record_actions(principal)
    drafts = views.draft_actions(principal)
    recorded_label = next((e.label for e in events if e.event_id == recorded), None) if recorded else None
    return render(
        request,
        "record.html",
        {
            "title": f"住民票 {current.record.name}",
            "person_id": person_id,
            "current": current,
            "shown": shown,
            "rows": views.record_rows(shown.record),
            "as_of": as_of,
            "as_of_text": views.jp_date(as_of_date) if as_of_date else "",
            "as_of_missing": as_of_missing,
            "on": on,
            "errors": errors,
            "household": household,
            "household_rows": [
                {
                    "person_id": m.person_id,
                    "name": m.record.name,
                    "relationship": m.record.relationship,
                    "birth": views.birth_date_text(m.record),
                    "is_head": m.record.is_head,
                    "is_self": m.person_id == person_id,
                }
                for m in household.members
            ],
            "events": events,
            "history": history,
            "common_actions": common,
            "other_actions": rest,
            "may_cancel": any(c.slug == "cancellation" for c in common + rest),
            "draft_actions": drafts,
            "may_draft_cancel": any(c.slug == "cancellation" for c in drafts),
            "may_issue": allows(CLERK, principal),
            "may_protect": allows(SUPERVISOR, principal),
            "recorded": recorded,
            "recorded_label": recorded_label,
            "removed": current.record.status.value != "live",
        },
        session=session,
        principal=principal,
        status=400 if errors else 200,
    )


# ---------------------------------------------------------------------------
# Event forms


def _command(session: Session, principal: Principal, slug: str, request: Request) -> registry.EventCommand:
    command = registry.COMMANDS_BY_SLUG.get(slug)
    if command is None:
        raise PageError(404, "対象が見つかりません", "この種類の異動はありません。")
    if not views.may_run(command, principal):
        # Refused like the API refuses it, and audited the same way.
        accounts.deny(
            session, principal=principal, target=f"{request.method} {request.url.path}", reason="missing role"
        )
        raise PageError(
            403,
            "この異動を記録する権限がありません",
            f"「{command.label}」は監督職員のみが記録できます。",
            commits_recorded_work=True,
        )
    return command


def _form_context(
    request: Request,
    session: Session,
    principal: Principal,
    command: registry.EventCommand,
    person_id: int | None,
    values: Mapping[str, str],
    *,
    submitted: bool,
    members: int,
) -> FormContext:
    person = household = None
    if person_id is not None:
        ctx = context_of(request, principal)
        person = registry.get_record(session, ctx=ctx, person_id=person_id, purpose=PURPOSE)
        household = registry.get_household(
            session, ctx=ctx, household_id=person.record.household_id, purpose=PURPOSE
        )
    preselect = {
        "move-within": {"persons"},
        "move-out": {"persons"},
        "move-out-confirmed": {"persons"},
        "head-change": {"relationships"},
    }.get(command.slug, set())
    return FormContext(
        person=person,
        household=household,
        values=values,
        submitted=submitted,
        list_counts={"members": members},
        preselect_all=frozenset(preselect),
    )


def _render_form(
    request: Request,
    session: Session,
    principal: Principal,
    command: registry.EventCommand,
    form_ctx: FormContext,
    *,
    errors: Mapping[str, str] | None = None,
    refused: DomainError | None = None,
    stale: bool = False,
    status: int = 200,
) -> HTMLResponse:
    items = build_form(command.request_type, form_ctx)
    if refused is not None:
        errors = domain_error_fields(refused, widget_names(items))
    placed = attach_errors(items, errors or {})
    person = form_ctx.person
    base_url = f"{STAFF_PREFIX}/events/{command.slug}"
    reload_url = base_url + (f"?person={person.person_id}" if person else "")
    members = form_ctx.list_counts.get("members", 1)
    return render(
        request,
        "event_form.html",
        {
            "title": f"{command.label}の記録",
            "command": command,
            "items": items,
            "error_summary": placed,
            "stale": stale,
            "stale_message": STALE_MESSAGE,
            "reload_url": reload_url,
            "action": reload_url,
            "person": person,
            "more_members_url": f"{base_url}?members={members + 1}"
            if "members" in command.request_type.model_fields and person is None
            else None,
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/events/{slug}")
def event_form(
    request: Request,
    slug: str,
    principal: Clerk,
    session: SessionDep,
    person: Annotated[int | None, Query(ge=1)] = None,
    members: Annotated[int, Query(ge=1, le=20)] = 1,
    event_id: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    command = _command(session, principal, slug, request)
    values = {"event_id": str(event_id)} if event_id else {}
    form_ctx = _form_context(
        request, session, principal, command, person, values, submitted=False, members=members
    )
    return _render_form(request, session, principal, command, form_ctx)


@router.post("/events/{slug}")
def record_event(
    request: Request,
    slug: str,
    principal: Clerk,
    session: SessionDep,
    form: PostedForm,
    person: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    command = _command(session, principal, slug, request)
    values = form_values(form)
    members = 1 + max(
        (int(k.split(".")[1]) for k in values if k.startswith("members.") and k.split(".")[1].isdigit()),
        default=0,
    )

    def again(
        errors: Mapping[str, str] | None = None,
        *,
        refused: DomainError | None = None,
        stale: bool = False,
        status: int = 400,
    ) -> HTMLResponse:
        form_ctx = _form_context(
            request, session, principal, command, person, values, submitted=True, members=members
        )
        return _render_form(
            request,
            session,
            principal,
            command,
            form_ctx,
            errors=errors,
            refused=refused,
            stale=stale,
            status=status,
        )

    try:
        body = parse_request(command.request_type, values)
    except FormInvalid as exc:
        return again(exc.errors)
    try:
        # A savepoint, so that a refused event leaves nothing behind while the page
        # still reads the record again to show the form with its errors.
        with session.begin_nested():
            outcome = registry.run_command(
                session, ctx=context_of(request, principal), slug=command.slug, request=body
            )
    except StaleVersion:
        return again(stale=True, status=409)
    except DomainError as exc:
        return again(refused=exc, status=exc.status)
    target = (
        person if person in outcome.person_ids else (outcome.person_ids[0] if outcome.person_ids else person)
    )
    if target is None:
        return see_other(STAFF_PREFIX + "/")
    return see_other(f"{STAFF_PREFIX}/residents/{target}?recorded={outcome.event_id}")


# ---------------------------------------------------------------------------
# Audit log


AUDIT_LOGS = {
    "municipal": "市区町村の記録 (住民記録・証明書・ログイン)",
    "national": "全国センターの記録 (カード・抽出・住基ネット)",
}


def _audit_log(principal: Principal, log: str, session: Session, national: Session) -> tuple[str, Session]:
    """Which log the page reads: the national one is the operator's (card, extraction, network)."""
    if log == "national" and Role.OPERATOR in principal.roles:
        return "national", national
    return "municipal", session


@router.get("/audit")
def audit_page(
    request: Request,
    principal: Auditor,
    session: SessionDep,
    national: NationalSessionDep,
    log: Annotated[str, Query(max_length=16)] = "municipal",
    action: Annotated[str, Query(max_length=64)] = "",
    target_kind: Annotated[str, Query(max_length=64)] = "",
    target_id: Annotated[str, Query(max_length=128)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    errors: dict[str, str] = {}
    since_date = _date_or_error(since.strip(), "since", errors)
    if action and action not in {a.value for a in AuditAction}:
        errors["action"] = "操作の種類を一覧から選んでください。"
    log, log_session = _audit_log(principal, log, session, national)
    entries: list[audit.AuditView] = []
    if not errors:
        entries = list(
            audit.search(
                log_session,
                viewer=actor_of(principal),
                # Auditors read their own body's log; the national operator reads any.
                organisation_code=None if Role.OPERATOR in principal.roles else principal.organisation_code,
                target_kind=target_kind.strip() or None,
                target_id=target_id.strip() or None,
                action=action or None,
                since=dt.datetime.combine(since_date, dt.time(), views.JST) if since_date else None,
                limit=AUDIT_PAGE_SIZE,
                before_id=before_id,
            )
        )
    criteria = {"action": action, "target_kind": target_kind, "target_id": target_id, "since": since}
    query = {k: v for k, v in criteria.items() if v} | ({"log": log} if log != "municipal" else {})
    return render(
        request,
        "audit.html",
        {
            "title": "監査ログ",
            "log": log,
            "logs": list(AUDIT_LOGS.items()) if Role.OPERATOR in principal.roles else [],
            "chain_url": f"{STAFF_PREFIX}/audit/chain" + ("?log=national" if log == "national" else ""),
            "criteria": criteria,
            "errors": errors,
            "actions": [(a.value, views.AUDIT_ACTION_LABELS.get(a.value, a.value)) for a in AuditAction],
            "entries": [
                {
                    "id": e.id,
                    "occurred_at": views.jp_datetime(e.occurred_at),
                    "actor": e.actor_id,
                    "organisation": e.organisation_code,
                    "action": views.AUDIT_ACTION_LABELS.get(e.action, e.action),
                    "target": f"{e.target_kind} {e.target_id}",
                    "purpose": e.purpose,
                    "outcome": views.OUTCOME_LABELS.get(e.outcome, e.outcome),
                    "denied": e.outcome != "success",
                    "detail": e.detail,
                    "seq": e.seq,
                    "chain": e.chain,
                }
                for e in entries
            ],
            "older_query": query | {"before_id": entries[-1].id} if len(entries) == AUDIT_PAGE_SIZE else None,
        },
        session=session,
        principal=principal,
        status=400 if errors else 200,
    )


@router.get("/audit/chain")
def audit_chain(
    request: Request,
    principal: Auditor,
    session: SessionDep,
    national: NationalSessionDep,
    log: Annotated[str, Query(max_length=16)] = "municipal",
) -> HTMLResponse:
    """The chain check, fetched by the audit page after it loads: it reads every entry."""
    log, log_session = _audit_log(principal, log, session, national)
    report = audit.verify(log_session)
    context = {
        "title": "監査ログの検証",
        "log_label": AUDIT_LOGS[log],
        "again_url": f"{STAFF_PREFIX}/audit" + ("?log=national" if log == "national" else ""),
        "report": report,
        "problems": [{"chain": p.chain, "seq": p.seq, "reason": p.reason} for p in report.problems[:20]],
        "checked_at": views.jp_datetime(dt.datetime.now(dt.UTC)),
    }
    name = "partials/chain_status.html" if is_htmx(request) else "chain.html"
    return render(request, name, context, session=session, principal=principal)


# ---------------------------------------------------------------------------
# Wiring


def _error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "detail": detail}, status=status)


ERROR_PAGES = ErrorPages(
    prefix=STAFF_PREFIX,
    render_error=_error_page,
    session_cookie=SESSION_COOKIE,
    clear_cookie=clear_cookie,
    not_found_detail="URLを確かめるか、メニューから選び直してください。",
    page_error=PageError,
    login_required=LoginRequired,
)


def install(app: FastAPI) -> None:
    """Mount the staff window on the app: routes, static files and its error pages."""
    # The window's other screens build on this module's rendering: imported here, once
    # this module is complete, to keep the import graph free of cycles.
    from jumin.web import approval_pages, arrival_pages, card_pages, certificate_pages, protection_pages

    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.include_router(root_router)
    app.include_router(router)
    for screen in (arrival_pages, certificate_pages, card_pages, protection_pages, approval_pages):
        app.include_router(screen.router)
    install_error_pages(app, ERROR_PAGES)
