"""The resident portal (住民ポータル): server-rendered pages over the same services as the API.

Each route parses what the page sent, authorizes through its access rule (the card
login session in the portal's own cookie), calls the card's, the register's, the
certificates' or the portal's service, and renders a template. No rule lives here:
who may move out and when, what a kiosk may issue, how many PIN tries remain — the
services decide and their errors come back onto the form beside the field they name.

The resident's data sits on two sides: the register (municipal database, ``session``)
and the card, its certificates and the network's access log (national database,
``national``). A page that changes one side runs its use case in a savepoint, so a
refusal leaves nothing behind unless it is itself evidence (a wrong PIN, a kiosk refusal).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from jumin.api_support import NationalSessionDep, SessionDep
from jumin.card import fourfacts
from jumin.card import service as cards
from jumin.card.domain import CardStatus, ResidentPrincipal
from jumin.certificates.domain import ITEM_LABELS, Channel, Item, optional_items
from jumin.certificates.settings import load_settings
from jumin.core.errors import DomainError, InvalidValue
from jumin.core.wareki import parse_date
from jumin.network_client import NetworkClient
from jumin.portal import service as portal
from jumin.portal import views
from jumin.portal.security import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_MESSAGES,
    PORTAL_PUBLIC,
    SESSION_COOKIE,
    LoginReason,
    PortalLoginRequired,
    PortalPageError,
    PostedForm,
    Resident,
    clear_cookie,
    csrf_for_request,
    csrf_token_for,
    form_value,
    form_values,
    new_login_nonce,
    set_cookie,
)
from jumin.registry import service as registry
from jumin.registry.domain import StaleVersion
from jumin.registry.schemas import PersonRef
from jumin.web.page_errors import ErrorPages, install_error_pages, safe_next, see_other
from jumin.web.views import birth_date_text, record_rows, status_text

PORTAL_DIR = Path(__file__).parent
PORTAL_PREFIX = "/portal"
templates = Jinja2Templates(directory=PORTAL_DIR / "templates")
templates.env.filters["jp_date"] = views.jp_date
templates.env.filters["jp_datetime"] = views.jp_datetime

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

router = APIRouter(prefix=PORTAL_PREFIX, include_in_schema=False)


MENU = (
    ("/portal/record", "住民票と世帯", "いまの住民票の記載事項と、同じ世帯の方を確認します。"),
    ("/portal/certificates", "住民票の写しの交付", "住民票の写しをPDF (電子署名付き) で受け取ります。"),
    (
        "/portal/move-out",
        "転出の届出 (引越し)",
        "他の市区町村への引越しを届け出て、転入先に来庁を予約します。",
    ),
    (
        "/portal/consents",
        "最新4情報の提供への同意",
        "氏名・住所などが変わったとき、同意した事業者に知らせます。",
    ),
    ("/portal/card", "カードの状態と一時停止", "カードをなくしたときは、ここからすぐに一時停止できます。"),
    (
        "/portal/access-log",
        "自分の情報の閲覧記録",
        "行政機関や市区町村の職員が、いつ・どの事務であなたの情報を見たか。",
    ),
)


# ---------------------------------------------------------------------------
# Rendering and helpers


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    resident: ResidentPrincipal | None = None,
    status: int = 200,
) -> HTMLResponse:
    resident = resident or getattr(request.state, "resident", None)
    base: dict[str, Any] = {
        "resident": resident,
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_for_request(request),
        "menu": MENU if resident else (),
        "path": request.url.path,
        "errors": {},
    }
    response = templates.TemplateResponse(request, name, base | dict(context), status_code=status)
    response.headers.update(_HEADERS)
    return response


def _network(request: Request) -> NetworkClient:
    network: NetworkClient = request.app.state.network_client
    return network


@contextmanager
def _attempt(*sessions: Session) -> Iterator[None]:
    """A use case in savepoints: undone on a refusal, unless the refusal is itself evidence."""
    savepoints = [s.begin_nested() for s in sessions]
    try:
        yield
    except DomainError as exc:
        for sp in savepoints:
            sp.commit() if exc.commits_recorded_work else sp.rollback()
        raise
    except BaseException:
        for sp in savepoints:
            sp.rollback()
        raise
    for sp in savepoints:
        sp.commit()


def _field_errors(exc: DomainError, known: set[str], default: str) -> dict[str, str]:
    field = exc.field if exc.field in known else default
    return {field: exc.detail}


def _my_context(
    request: Request, session: Session, resident: ResidentPrincipal
) -> tuple[registry.RegistryContext, int]:
    try:
        return registry.resident_context(
            session, resident_code=resident.resident_code, network=_network(request)
        )
    except DomainError as exc:
        raise PortalPageError(
            404,
            "住民票が見つかりません",
            "このカードの方の住民票は、この住民基本台帳システムにはありません。"
            "転出・転入の手続き中の場合は、市区町村の窓口にお問い合わせください。",
        ) from exc


# ---------------------------------------------------------------------------
# Login, logout and the menu


@router.get("", dependencies=[Depends(PORTAL_PUBLIC)])
def portal_root() -> RedirectResponse:
    return see_other(PORTAL_PREFIX + "/")


@router.get("/login", dependencies=[Depends(PORTAL_PUBLIC)])
def login_page(request: Request, reason: str | None = None, next: str | None = None) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or new_login_nonce()
    request.state.login_nonce = nonce
    message = LOGIN_MESSAGES.get(LoginReason(reason)) if reason in set(LoginReason) else None
    response = render(
        request,
        "login.html",
        {
            "title": "マイナンバーカードでログイン",
            "message": message,
            "next": safe_next(next, PORTAL_PREFIX),
            "card_number": "",
            # Bound to the login nonce even when a session cookie is present (a second login).
            "csrf_token": csrf_token_for(nonce),
        },
    )
    if request.cookies.get(LOGIN_COOKIE) != nonce:
        set_cookie(response, request, LOGIN_COOKIE, nonce)
    return response


@router.post("/login", dependencies=[Depends(PORTAL_PUBLIC)])
def login(request: Request, national: NationalSessionDep, form: PostedForm) -> Response:
    card_number = form_value(form, "card_number")
    try:
        # Not in a savepoint: a wrong PIN's lowered try counter and its audit entry are
        # committed with this response, or the lock-out would never come.
        issued = portal.card_login(national, card_number=card_number, pin=str(form.get("pin") or ""))
    except DomainError as exc:
        request.state.login_nonce = request.cookies.get(LOGIN_COOKIE)
        field = "card_number" if exc.field == "card_number" else "pin"
        return render(
            request,
            "login.html",
            {
                "title": "マイナンバーカードでログイン",
                "message": None,
                "next": safe_next(form_value(form, "next"), PORTAL_PREFIX),
                "card_number": card_number,
                "error": exc.detail,
                "error_title": exc.title,
                "error_field": field,
                "csrf_token": csrf_token_for(request.cookies.get(LOGIN_COOKIE) or ""),
            },
            status=exc.status,
        )
    response = see_other(safe_next(form_value(form, "next"), PORTAL_PREFIX))
    set_cookie(response, request, SESSION_COOKIE, issued.access_token)
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, resident: Resident, national: NationalSessionDep, form: PostedForm) -> Response:
    cards.logout_resident(national, resident=resident)
    response = see_other(f"{PORTAL_PREFIX}/login?reason={LoginReason.LOGGED_OUT.value}")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


@router.get("/")
def home(request: Request, resident: Resident) -> HTMLResponse:
    return render(request, "home.html", {"title": "マイページ"})


# ---------------------------------------------------------------------------
# My record and household


@router.get("/record")
def record_page(request: Request, resident: Resident, session: SessionDep) -> HTMLResponse:
    ctx, person_id = _my_context(request, session, resident)
    mine = registry.get_record(session, ctx=ctx, person_id=person_id, purpose=portal.PURPOSE)
    household = registry.get_household(
        session, ctx=ctx, household_id=mine.record.household_id, purpose=portal.PURPOSE
    )
    planned = mine.record.planned_move_out
    return render(
        request,
        "record.html",
        {
            "title": "住民票と世帯",
            "name": mine.record.name,
            "municipality": views.place_name(ctx.lg_code),
            "status": status_text(mine.record),
            "rows": record_rows(mine.record),
            "valid_from": mine.valid_from,
            "household_no": household.household_no,
            "planned": planned,
            "planned_place": views.place_name(planned.destination_lg_code)
            if planned and planned.destination_lg_code
            else "",
            "members": [
                {
                    "name": m.record.name,
                    "relationship": m.record.relationship,
                    "birth": birth_date_text(m.record),
                    "is_head": m.record.is_head,
                    "is_self": m.person_id == person_id,
                }
                for m in household.members
            ],
        },
    )


# ---------------------------------------------------------------------------
# Certificates (kiosk channel)


def _certificate_form(
    request: Request,
    session: Session,
    resident: ResidentPrincipal,
    *,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    status: int = 200,
) -> HTMLResponse:
    ctx, _ = _my_context(request, session, resident)
    fee = load_settings().municipality(ctx.lg_code).fees.for_channel(Channel.KIOSK)
    return render(
        request,
        "certificates.html",
        {
            "title": "住民票の写しの交付",
            "municipality": views.place_name(ctx.lg_code),
            "fee": fee,
            "items": [(i.value, ITEM_LABELS[i]) for i in Item if i in optional_items()],
            "values": values,
            "errors": errors,
        },
        status=status,
    )


@router.get("/certificates")
def certificate_page(request: Request, resident: Resident, session: SessionDep) -> HTMLResponse:
    return _certificate_form(request, session, resident, values={"scope": "self", "include": []}, errors={})


@router.post("/certificates")
def issue_certificate(
    request: Request, resident: Resident, session: SessionDep, form: PostedForm
) -> Response:
    scope = form_value(form, "scope")
    chosen = form_values(form, "include")
    values = {"scope": scope, "include": chosen}
    errors: dict[str, str] = {}
    if scope not in ("self", "household"):
        errors["scope"] = "本人のみか世帯全員かを選んでください。"
    include = [Item(v) for v in chosen if v in {i.value for i in optional_items()}]
    if len(include) != len(chosen):
        errors["include"] = "記載する項目を一覧から選んでください。"
    if errors:
        return _certificate_form(request, session, resident, values=values, errors=errors, status=400)
    try:
        with _attempt(session):
            issued = portal.issue_record_copy(
                session,
                resident=resident,
                network=_network(request),
                whole_household=scope == "household",
                include=include,
            )
    except DomainError as exc:
        field = "include" if exc.field in ("include", "omit") else "form"
        return _certificate_form(
            request,
            session,
            resident,
            values=values,
            errors={field: exc.detail, "form_title": exc.title},
            status=exc.status,
        )
    return Response(
        content=issued.pdf,
        media_type="application/pdf",
        headers=_HEADERS | {"Content-Disposition": f'attachment; filename="{issued.file_name}"'},
    )


# ---------------------------------------------------------------------------
# The online 転出届 with a 転入予約


def _move_out_form(
    request: Request,
    session: Session,
    resident: ResidentPrincipal,
    *,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    stale: bool = False,
    status: int = 200,
) -> HTMLResponse:
    ctx, person_id = _my_context(request, session, resident)
    mine = registry.get_record(session, ctx=ctx, person_id=person_id, purpose=portal.PURPOSE)
    household = registry.get_household(
        session, ctx=ctx, household_id=mine.record.household_id, purpose=portal.PURPOSE
    )
    earliest, latest = registry.online_move_out_window(ctx.today)
    prefecture = str(values.get("prefecture", ""))
    return render(
        request,
        "move_out.html",
        {
            "title": "転出の届出 (転入予約)",
            "municipality": views.place_name(ctx.lg_code),
            "already": mine.record.planned_move_out,
            "already_place": views.place_name(mine.record.planned_move_out.destination_lg_code or "")
            if mine.record.planned_move_out
            else "",
            "earliest": earliest,
            "latest": latest,
            "members": [
                {
                    "person_id": m.person_id,
                    "version": m.version,
                    "name": m.record.name,
                    "relationship": m.record.relationship,
                    "is_head": m.record.is_head,
                    "is_self": m.person_id == person_id,
                }
                for m in household.members
            ],
            "self_is_head": mine.record.is_head,
            "prefectures": views.prefectures(),
            "municipalities": views.municipalities_of(prefecture),
            "values": values,
            "errors": errors,
            "stale": stale,
        },
        status=status,
    )


@router.get("/move-out")
def move_out_page(
    request: Request,
    resident: Resident,
    session: SessionDep,
    prefecture: Annotated[str, Query(max_length=2)] = "",
) -> HTMLResponse:
    _, person_id = _my_context(request, session, resident)
    values = {"prefecture": prefecture, "persons": [str(person_id)], "destination_lg_code": ""}
    return _move_out_form(request, session, resident, values=values, errors={})


@router.get("/move-out/municipalities")
def municipality_options(
    request: Request, resident: Resident, prefecture: Annotated[str, Query(max_length=2)] = ""
) -> HTMLResponse:
    """The 市区町村 of the chosen prefecture: the fragment htmx puts in the form."""
    return render(
        request,
        "partials/municipality_field.html",
        {"municipalities": views.municipalities_of(prefecture), "values": {"prefecture": prefecture}},
    )


@router.post("/move-out")
def file_move_out(request: Request, resident: Resident, session: SessionDep, form: PostedForm) -> Response:
    values: dict[str, Any] = {
        "planned_on": form_value(form, "planned_on"),
        "persons": form_values(form, "persons"),
        "destination_lg_code": form_value(form, "destination_lg_code"),
        "destination_line": form_value(form, "destination_line"),
        "remaining_head": form_value(form, "remaining_head"),
        "confirmed": form_value(form, "confirmed"),
    }
    # The municipality list shown again is the chosen municipality's prefecture.
    values["prefecture"] = (
        values["destination_lg_code"][:2] if values["destination_lg_code"].isdigit() else ""
    )
    errors: dict[str, str] = {}
    planned_on: dt.date | None = None
    if not values["planned_on"]:
        errors["planned_on"] = "転出予定日を入力してください。"
    else:
        try:
            planned_on = parse_date(values["planned_on"], field="planned_on")
        except InvalidValue as exc:
            errors["planned_on"] = exc.detail
    persons: list[PersonRef] = []
    for raw in values["persons"]:
        version = form_value(form, f"version.{raw}")
        if not (raw.isdigit() and version.isdigit()):
            errors["persons"] = "転出する人を一覧から選んでください。"
            break
        persons.append(PersonRef(person_id=int(raw), version=int(version)))
    if not persons and "persons" not in errors:
        errors["persons"] = "転出する人を選んでください。"
    if not values["destination_lg_code"]:
        errors["destination_lg_code"] = "転出先の市区町村を選んでください。"
    remaining = values["remaining_head"]
    if remaining and not remaining.isdigit():
        errors["remaining_head"] = "新しい世帯主を一覧から選んでください。"
    if values["confirmed"] != "yes":
        errors["confirmed"] = "届出の内容を確認し、チェックを入れてください。"
    if errors or planned_on is None:
        return _move_out_form(request, session, resident, values=values, errors=errors, status=400)
    try:
        with _attempt(session):
            portal.file_move_out(
                session,
                resident=resident,
                network=_network(request),
                persons=persons,
                planned_on=planned_on,
                destination_lg_code=values["destination_lg_code"],
                destination_line=values["destination_line"],
                remaining_head_person_id=int(remaining) if remaining else None,
            )
    except StaleVersion:
        return _move_out_form(request, session, resident, values=values, errors={}, stale=True, status=409)
    except DomainError as exc:
        known = {"planned_on", "persons", "destination_lg_code", "destination_line", "remaining_head"}
        field = {
            "effective_on": "planned_on",
            "remaining_head_person_id": "remaining_head",
            "destination": "destination_line",
        }.get(exc.field or "", exc.field or "")
        return _move_out_form(
            request,
            session,
            resident,
            values=values,
            errors=_field_errors(DomainError(exc.detail, field=field), known, "form"),
            status=exc.status,
        )
    return see_other(f"{PORTAL_PREFIX}/move-out/filed")


@router.get("/move-out/filed")
def move_out_filed(request: Request, resident: Resident, session: SessionDep) -> Response:
    ctx, person_id = _my_context(request, session, resident)
    mine = registry.get_record(session, ctx=ctx, person_id=person_id, purpose=portal.PURPOSE)
    planned = mine.record.planned_move_out
    if planned is None:
        return see_other(PORTAL_PREFIX + "/move-out")
    return render(
        request,
        "move_out_filed.html",
        {
            "title": "転出の届出を受け付けました",
            "name": mine.record.name,
            "origin": views.place_name(ctx.lg_code),
            "planned": planned,
            "destination": views.place_name(planned.destination_lg_code or ""),
        },
    )


# ---------------------------------------------------------------------------
# Consents to the four-facts update service


def _consents_page(
    request: Request,
    national: Session,
    resident: ResidentPrincipal,
    *,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    done: str = "",
    status: int = 200,
) -> HTMLResponse:
    consents = fourfacts.consents_of(national, resident=resident)
    consented = {c.business_code for c in consents}
    return render(
        request,
        "consents.html",
        {
            "title": "最新4情報の提供への同意",
            "consents": [
                {
                    "id": c.id,
                    "business": c.business_name,
                    "code": c.business_code,
                    "scope": "・".join(label for fact, label in views.fact_choices() if fact in c.scope),
                    "since": c.consented_on,
                }
                for c in consents
            ],
            "facts": views.fact_choices(),
            "businesses": [
                (b.code, b.name) for b in fourfacts.verifier_businesses(national) if b.code not in consented
            ],
            "values": values,
            "errors": errors,
            "done": done,
        },
        status=status,
    )


@router.get("/consents")
def consents_page(
    request: Request,
    resident: Resident,
    national: NationalSessionDep,
    done: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    message = {"given": "同意を登録しました。", "withdrawn": "同意を撤回しました。"}.get(done, "")
    values = {"business_code": "", "scope": [f for f, _ in views.fact_choices()]}
    return _consents_page(request, national, resident, values=values, errors={}, done=message)


@router.post("/consents")
def give_consent(
    request: Request, resident: Resident, national: NationalSessionDep, form: PostedForm
) -> Response:
    business_code = form_value(form, "business_code")
    scope = form_values(form, "scope")
    values = {"business_code": business_code, "scope": scope}
    errors: dict[str, str] = {}
    if not business_code:
        errors["business_code"] = "同意する事業者を選んでください。"
    if not scope:
        errors["scope"] = "提供する情報を1つ以上選んでください。"
    if not errors:
        try:
            with _attempt(national):
                fourfacts.consent(national, resident=resident, business_code=business_code, scope=scope)
        except DomainError as exc:
            errors = _field_errors(exc, {"business_code", "scope"}, "business_code")
    if errors:
        return _consents_page(request, national, resident, values=values, errors=errors, status=400)
    return see_other(f"{PORTAL_PREFIX}/consents?done=given")


@router.post("/consents/{consent_id}/withdraw")
def withdraw_consent(
    consent_id: int, resident: Resident, national: NationalSessionDep, form: PostedForm
) -> Response:
    fourfacts.withdraw(national, resident=resident, consent_id=consent_id)
    return see_other(f"{PORTAL_PREFIX}/consents?done=withdrawn")


# ---------------------------------------------------------------------------
# The card: its state and the 一時停止 when it is lost


@router.get("/card")
def card_page(request: Request, resident: Resident, national: NationalSessionDep) -> HTMLResponse:
    return _card_page(request, national, resident, errors={})


def _card_page(
    request: Request,
    national: Session,
    resident: ResidentPrincipal,
    *,
    errors: Mapping[str, str],
    status: int = 200,
) -> HTMLResponse:
    mine = cards.my_card(national, resident=resident)
    card = mine.card
    return render(
        request,
        "card.html",
        {
            "title": "カードの状態と一時停止",
            "card_number": card.card_number,
            "status": views.card_status_text(card.status, card.revocation_reason),
            "active": card.status == CardStatus.ACTIVE,
            "valid_until": card.valid_until,
            "certificates": views.certificate_rows(card.certificates),
            "auth_tries_left": card.auth_tries_left,
            "signing_tries_left": card.signing_tries_left,
            "facts": mine.facts,
            "errors": errors,
        },
        status=status,
    )


@router.post("/card/suspend")
def suspend_card(
    request: Request, resident: Resident, national: NationalSessionDep, form: PostedForm
) -> Response:
    if form_value(form, "confirmed") != "yes":
        return _card_page(
            request,
            national,
            resident,
            errors={"confirmed": "一時停止してよいか確認し、チェックを入れてください。"},
            status=400,
        )
    cards.suspend_as_resident(national, resident=resident)
    # The suspension revoked every session of the card, this one included.
    response = see_other(f"{PORTAL_PREFIX}/login?reason={LoginReason.SUSPENDED.value}")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


def _suspend_form(
    request: Request, *, card_number: str, errors: Mapping[str, str], status: int = 200
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or new_login_nonce()
    request.state.login_nonce = nonce
    response = render(
        request,
        "suspend.html",
        {
            "title": "なくしたカードの一時停止",
            "card_number": card_number,
            "errors": errors,
            "csrf_token": csrf_token_for(nonce),
        },
        status=status,
    )
    if request.cookies.get(LOGIN_COOKIE) != nonce:
        set_cookie(response, request, LOGIN_COOKIE, nonce)
    return response


@router.get("/suspend", dependencies=[Depends(PORTAL_PUBLIC)])
def suspend_page(request: Request) -> HTMLResponse:
    """一時利用停止 without the card: its number and the secret handed over with it, at any hour."""
    return _suspend_form(request, card_number="", errors={})


@router.post("/suspend", dependencies=[Depends(PORTAL_PUBLIC)])
def suspend_lost_card(request: Request, national: NationalSessionDep, form: PostedForm) -> Response:
    card_number = form_value(form, "card_number").replace(" ", "").replace("-", "")
    secret = form_value(form, "secret")
    errors: dict[str, str] = {}
    status = 400
    if not card_number:
        errors["card_number"] = "カード番号を入力してください。"
    if not secret:
        errors["secret"] = "一時停止用の確認コードを入力してください。"  # noqa: S105 (a message)
    if not errors:
        try:
            # Not in a savepoint: a refused attempt is audited and that entry is kept.
            cards.suspend_with_secret(national, card_number=card_number, secret=secret)
        except DomainError as exc:
            errors, status = {"secret": exc.detail, "form_title": exc.title}, exc.status
    if errors:
        return _suspend_form(request, card_number=card_number, errors=errors, status=status)
    response = see_other(f"{PORTAL_PREFIX}/login?reason={LoginReason.SUSPENDED.value}")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


# ---------------------------------------------------------------------------
# Who looked at my data


@router.get("/access-log")
def access_log_page(
    request: Request, resident: Resident, session: SessionDep, national: NationalSessionDep
) -> HTMLResponse:
    entries = portal.who_looked(session, national, resident=resident)
    names = portal.organisation_names(session, national)
    return render(
        request,
        "access_log.html",
        {
            "title": "自分の情報の閲覧記録",
            "rows": views.access_rows(entries, names),
            "limit": portal.ACCESS_LOG_LIMIT,
        },
    )


# ---------------------------------------------------------------------------
# Wiring


def _error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "detail": detail}, status=status)


ERROR_PAGES = ErrorPages(
    prefix=PORTAL_PREFIX,
    render_error=_error_page,
    session_cookie=SESSION_COOKIE,
    clear_cookie=clear_cookie,
    not_found_detail="URLを確かめるか、マイページから選び直してください。",
    page_error=PortalPageError,
    login_required=PortalLoginRequired,
    malformed_detail="画面のリンクやボタンから操作し直してください。",
)


def install(app: FastAPI) -> None:
    """Mount the portal on the app: routes, its static files and its error pages.

    The staff window's static files (/static: the design tokens, htmx, the base styles)
    are shared; /portal/static holds what only the portal needs.
    """
    app.mount(PORTAL_PREFIX + "/static", StaticFiles(directory=PORTAL_DIR / "static"), name="portal-static")
    app.include_router(router)
    install_error_pages(app, ERROR_PAGES)
