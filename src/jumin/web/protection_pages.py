"""支援措置 (DV・ストーカー行為等の被害者の保護): the list, registering and ending an order.

Supervisors only, as in the API. The orders are kept by the certificates feature, which
refuses every issuance to a named party (``certificates.service``); this window lists,
registers and ends them through the same use cases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from jumin.accounts.domain import Principal
from jumin.api_support import SessionDep
from jumin.certificates import service as certificates
from jumin.certificates.domain import ProtectionOrderView
from jumin.certificates.schemas import ProtectionOrderRequest
from jumin.core.errors import DomainError
from jumin.registry import service as registry
from jumin.web import views
from jumin.web.forms import DATE_HINT, FormInvalid, form_values, parse_request
from jumin.web.page_errors import PageError, see_other
from jumin.web.pages import (
    STAFF_PREFIX,
    attempt,
    context_of,
    error_summary,
    refused_fields,
    render,
)
from jumin.web.security import PostedForm, Supervisor

router = APIRouter(prefix=STAFF_PREFIX, include_in_schema=False)

PARTY_ROWS = 3
DEFAULT_REASON = "支援措置 (DV・ストーカー行為等)"
LABELS = {
    "person_id": "支援措置を受ける住民 (住民ID)",
    "reason": "事由",
    "valid_until": "期間の終期",
    "parties": "制限する相手方",
    "name": "相手方の氏名",
    "resident_code": "相手方の住民票コード",
    "organisation_code": "相手方の団体・機関のコード",
    "order_id": "支援措置",
}
BASE = f"{STAFF_PREFIX}/protection-orders"


def _names(request: Request, session: Session, principal: Principal, person_ids: set[int]) -> dict[int, str]:
    ctx = context_of(request, principal)
    return {
        pid: registry.get_record(session, ctx=ctx, person_id=pid, purpose="支援措置の確認").record.name
        for pid in sorted(person_ids)
    }


def _order_row(order: ProtectionOrderView, names: Mapping[int, str], today: dt.date) -> dict[str, Any]:
    return {
        "id": order.order_id,
        "person_id": order.person_id,
        "name": names.get(order.person_id, str(order.person_id)),
        "reason": order.reason,
        "valid_until": views.jp_date(order.valid_until) if order.valid_until else "終了の登録まで",
        "registered_at": views.jp_datetime(order.registered_at),
        "registered_by": order.registered_by,
        "ended_at": views.jp_datetime(order.ended_at) if order.ended_at else "",
        "active": order.active_on(today),
        "parties": [p.name for p in order.parties],
    }


@router.get("/protection-orders")
def orders_page(
    request: Request,
    principal: Supervisor,
    session: SessionDep,
    registered: Annotated[int | None, Query(ge=1)] = None,
    ended: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    ctx = context_of(request, principal)
    orders = certificates.protection_orders(session, ctx=ctx, person_id=None)
    names = _names(request, session, principal, {o.person_id for o in orders})
    rows = [_order_row(o, names, ctx.today) for o in orders]
    rows.sort(key=lambda r: (not r["active"], -r["id"]))
    return render(
        request,
        "protection_orders.html",
        {"title": "支援措置", "rows": rows, "registered": registered, "ended": ended},
        session=session,
        principal=principal,
    )


def _render_form(
    request: Request,
    session: Session,
    principal: Principal,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    status: int = 200,
) -> HTMLResponse:
    person = None
    raw = values.get("person_id", "")
    if raw.isdigit() and "person_id" not in errors:
        try:
            person = registry.get_record(
                session, ctx=context_of(request, principal), person_id=int(raw), purpose="支援措置の登録"
            )
        except DomainError as exc:
            errors = {**errors, "person_id": exc.detail}
    return render(
        request,
        "protection_order_form.html",
        {
            "title": "支援措置の登録",
            "person": person,
            "values": values,
            "errors": errors,
            "summary": error_summary(errors, LABELS),
            "rows": range(PARTY_ROWS),
            "date_hint": DATE_HINT,
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/protection-orders/new")
def new_order(
    request: Request,
    principal: Supervisor,
    session: SessionDep,
    person: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    values = {"person_id": str(person) if person else "", "reason": DEFAULT_REASON}
    return _render_form(request, session, principal, values, {})


@router.post("/protection-orders/new")
def register_order(
    request: Request, principal: Supervisor, session: SessionDep, form: PostedForm
) -> Response:
    values = form_values(form)
    try:
        body = parse_request(ProtectionOrderRequest, values)
    except FormInvalid as exc:
        return _render_form(request, session, principal, values, exc.errors, status=400)
    assert isinstance(body, ProtectionOrderRequest)
    names = [*LABELS, *(f"parties.{i}.{f}" for i in range(PARTY_ROWS) for f in ("name", "resident_code"))]
    try:
        with attempt(session):
            order = certificates.register_protection_order(
                session, ctx=context_of(request, principal), request=body
            )
    except DomainError as exc:
        return _render_form(
            request, session, principal, values, refused_fields(exc, names), status=exc.status
        )
    return see_other(f"{BASE}?registered={order.order_id}")


def _order(request: Request, session: Session, principal: Principal, order_id: int) -> ProtectionOrderView:
    ctx = context_of(request, principal)
    order = next(
        (
            o
            for o in certificates.protection_orders(session, ctx=ctx, person_id=None)
            if o.order_id == order_id
        ),
        None,
    )
    if order is None:
        raise PageError(
            404, "支援措置が見つかりません", f"支援措置 {order_id} はこの団体に登録されていません。"
        )
    return order


@router.get("/protection-orders/{order_id}/end")
def end_page(request: Request, order_id: int, principal: Supervisor, session: SessionDep) -> HTMLResponse:
    order = _order(request, session, principal, order_id)
    ctx = context_of(request, principal)
    names = _names(request, session, principal, {order.person_id})
    return render(
        request,
        "protection_order_end.html",
        {"title": "支援措置の終了", "order": _order_row(order, names, ctx.today), "error": ""},
        session=session,
        principal=principal,
    )


@router.post("/protection-orders/{order_id}/end")
def end_order(
    request: Request, order_id: int, principal: Supervisor, session: SessionDep, form: PostedForm
) -> Response:
    ctx = context_of(request, principal)
    try:
        with attempt(session):
            certificates.end_protection_order(session, ctx=ctx, order_id=order_id)
    except DomainError as exc:
        order = _order(request, session, principal, order_id)
        names = _names(request, session, principal, {order.person_id})
        return render(
            request,
            "protection_order_end.html",
            {"title": "支援措置の終了", "order": _order_row(order, names, ctx.today), "error": exc.detail},
            session=session,
            principal=principal,
            status=exc.status,
        )
    return see_other(f"{BASE}?ended={order_id}")
