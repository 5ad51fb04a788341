"""書かないワンストップ窓口: expected arrivals, the 転入 completed from them, the card's continued use.

The 転出証明書情報 the origin sent ahead holds everything the register needs about the
person; the clerk confirms the new address, the move date and the household, and presses
「転入を記録する」. The register's relay use cases decide what is recorded
(``relay.move_in_from_arrivals``); the card service decides the continued use
(``card.service.continue_use``), once the move has reached the national identity store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from jumin.accounts.domain import Principal
from jumin.accounts.service import actor_of
from jumin.api_support import NationalSessionDep, SessionDep
from jumin.card import service as cards
from jumin.card.schemas import WindowCheckIn
from jumin.core.errors import DomainError
from jumin.registry import relay
from jumin.registry import service as registry
from jumin.registry.schemas import ArrivalMoveInRequest
from jumin.web import views
from jumin.web.forms import DATE_HINT, FormInvalid, form_values, parse_request, validation_errors
from jumin.web.page_errors import PageError, is_htmx, see_other
from jumin.web.pages import (
    PURPOSE,
    STAFF_PREFIX,
    attempt,
    context_of,
    error_summary,
    refused_fields,
    render,
)
from jumin.web.security import Clerk, PostedForm

router = APIRouter(prefix=STAFF_PREFIX, include_in_schema=False)

LABELS = {
    "effective_on": "異動年月日 (転入した日)",
    "notified_on": "届出年月日",
    "address.line": "町名・番地",
    "address.katagaki": "方書",
    "card_holder": "特例転入",
    "members": "転入する人",
    "relationship": "続柄",
    "include": "転入する人",
    "arrival_id": "転入する人",
    "reason": "事由・備考",
    "identity_documents": "本人確認書類",
    "card_number": "カード番号",
}
DOCUMENT_OPTIONS = list(views.IDENTITY_DOCUMENT_LABELS.items())


def _arrival_url(arrival_id: int) -> str:
    return f"{STAFF_PREFIX}/arrivals/{arrival_id}"


# ---------------------------------------------------------------------------
# The list


@router.get("/arrivals")
def arrivals(
    request: Request,
    principal: Clerk,
    session: SessionDep,
    include_arrived: Annotated[str, Query(max_length=10)] = "",
) -> HTMLResponse:
    found = relay.list_arrivals(
        session,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        include_arrived=bool(include_arrived),
        purpose=PURPOSE,
    )
    rows = [
        {
            "id": a.id,
            "name": a.name,
            "kana": a.name_kana or "",
            "birth": views.jp_date(a.birth_date),
            "sex": views.sex_label(a.sex),
            "origin": views.place_name(a.origin_lg_code),
            "origin_address": a.origin_address,
            "planned_on": views.jp_date(a.planned_on),
            "received_at": views.jp_datetime(a.received_at),
            "arrived": a.arrived,
        }
        for a in found
    ]
    return render(
        request,
        "arrivals.html",
        {"title": "転入予定者", "rows": rows, "include_arrived": bool(include_arrived)},
        session=session,
        principal=principal,
    )


# ---------------------------------------------------------------------------
# Completing the 転入


def _persons(detail: relay.ArrivalDetail) -> list[relay.ArrivingPerson]:
    return [p for p in detail.persons if not p.arrived]


def _form_values(detail: relay.ArrivalDetail) -> dict[str, str]:
    """The form as it opens: everything the 転出証明書情報 already says, filled in."""
    # The planned move date, unless it is still ahead: a move date cannot be in the future.
    today = dt.datetime.now(views.JST).date()
    values = {
        "effective_on": views.jp_date(min(detail.arrival.planned_on, today)),
        "notified_on": "",
        "address.line": detail.address_line,
        "address.katagaki": "",
        "reason": "",
        "card_holder": "true" if all(p.has_individual_number for p in _persons(detail)) else "false",
    }
    for i, person in enumerate(_persons(detail)):
        values[f"members.{i}.include"] = "true"
        values[f"members.{i}.relationship"] = person.relationship
    return values


def _remap(errors: Mapping[str, str], ticked: Sequence[int]) -> dict[str, str]:
    """Errors on members.k (the k-th ticked person) back onto the form row they came from."""
    placed: dict[str, str] = {}
    for name, message in errors.items():
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "members" and parts[1].isdigit() and int(parts[1]) < len(ticked):
            row = ticked[int(parts[1])]
            rest = parts[2:] or ["include"]
            if rest[0] == "arrival_id":
                rest = ["include"]
            name = ".".join(["members", str(row), *rest])
        placed.setdefault(name, message)
    return placed


def _render_arrival(
    request: Request,
    session: Session,
    principal: Principal,
    detail: relay.ArrivalDetail,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    status: int = 200,
) -> HTMLResponse:
    persons = _persons(detail)
    rows = [
        {
            "index": i,
            "arrival_id": p.arrival_id,
            "name": p.name,
            "kana": p.name_kana or "",
            "birth": views.jp_date(p.birth_date),
            "sex": views.sex_label(p.sex),
            "origin_relationship": p.origin_relationship,
            "resident_code": p.resident_code,
            "has_number": p.has_individual_number,
            "include": values.get(f"members.{i}.include") == "true",
            "relationship": values.get(f"members.{i}.relationship", ""),
        }
        for i, p in enumerate(persons)
    ]
    arrival = detail.arrival
    return render(
        request,
        "arrival.html",
        {
            "title": f"転入の記録 {arrival.name}",
            "arrival": arrival,
            "origin": views.place_name(arrival.origin_lg_code),
            "planned_on": views.jp_date(arrival.planned_on),
            "received_at": views.jp_datetime(arrival.received_at),
            "destination": detail.destination,
            "place": views.place_name(principal.organisation_code),
            "card_holder_until": views.jp_date(detail.card_holder_until),
            "head_comes_along": detail.head_comes_along,
            "rows": rows,
            "done": [p for p in detail.persons if p.arrived],
            "values": values,
            "errors": errors,
            # With nobody left to record there is no form, so no input to point at.
            "summary": [(a if rows else "", label, m) for a, label, m in error_summary(errors, LABELS)],
            "date_hint": DATE_HINT,
            "action": _arrival_url(arrival.id),
            "card_url": _arrival_url(arrival.id) + "/card",
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/arrivals/{arrival_id}")
def arrival_page(request: Request, arrival_id: int, principal: Clerk, session: SessionDep) -> HTMLResponse:
    detail = relay.arrival(
        session,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        arrival_id=arrival_id,
        purpose=PURPOSE,
    )
    return _render_arrival(request, session, principal, detail, _form_values(detail), {})


@router.post("/arrivals/{arrival_id}")
def complete_arrival(
    request: Request, arrival_id: int, principal: Clerk, session: SessionDep, form: PostedForm
) -> Response:
    values = form_values(form)
    rows = 1 + max(
        (int(k.split(".")[1]) for k in values if k.startswith("members.") and k.split(".")[1].isdigit()),
        default=-1,
    )
    ticked = [i for i in range(rows) if values.get(f"members.{i}.include") == "true"]

    def again(errors: Mapping[str, str], status: int) -> HTMLResponse:
        detail = relay.arrival(
            session,
            actor=actor_of(principal),
            lg_code=principal.organisation_code,
            arrival_id=arrival_id,
            purpose=PURPOSE,
        )
        return _render_arrival(request, session, principal, detail, values, errors, status=status)

    try:
        body = parse_request(ArrivalMoveInRequest, values)
    except FormInvalid as exc:
        # An address left empty is missing as a whole: its error goes beside the line.
        errors = {("address.line" if k == "address" else k): v for k, v in exc.errors.items()}
        return again(_remap(errors, ticked), 400)
    assert isinstance(body, ArrivalMoveInRequest)
    names = [*LABELS, "address.line", "address.katagaki"]
    names += [f"members.{k}.{part}" for k in range(len(ticked)) for part in ("relationship", "arrival_id")]
    try:
        # A savepoint: a refused 転入 leaves nothing, and the page still reads the arrival.
        with attempt(session):
            outcome = relay.move_in_from_arrivals(session, ctx=context_of(request, principal), request=body)
    except DomainError as exc:
        return again(_remap(refused_fields(exc, names), ticked), exc.status)
    return see_other(f"{_arrival_url(arrival_id)}/card?recorded={outcome.event_id}")


# ---------------------------------------------------------------------------
# The card's continued use (継続利用)


def _records(session: Session, request: Request, principal: Principal, code: str) -> int | None:
    found = registry.search(
        session, ctx=context_of(request, principal), resident_code=code, limit=5, purpose=PURPOSE
    )
    live = [v for v in found.results if v.record.status.value == "live"]
    return live[-1].person_id if live else None


def _panel(
    national: Session,
    principal: Principal,
    arrival_id: int,
    person: relay.ArrivingPerson,
    *,
    errors: Mapping[str, str] | None = None,
    documents: Sequence[str] = (),
) -> dict[str, Any]:
    """What the window shows for one moved-in person's card (a template context)."""
    transfer = cards.card_after_move_in(
        national,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        resident_code=person.resident_code,
    )
    face = transfer.card
    card = face.card if face else None
    url = f"{_arrival_url(arrival_id)}/card/{person.arrival_id}"
    errors = errors or {}
    return {
        "arrival_id": person.arrival_id,
        "name": person.name,
        "registered": transfer.registered_here,
        "has_card": card is not None,
        "continued": transfer.continued,
        "card_number": card.card_number if card else "",
        "card_status": views.CARD_STATUS_LABELS.get(card.status.value, card.status.value) if card else "",
        "printed_address": face.address if face else "",
        "new_address": transfer.new_address or "",
        "deadline": views.jp_date(transfer.deadline) if transfer.deadline else "",
        "signing_revoked": card is not None
        and not any(c.kind.value == "signing" and c.status.value == "good" for c in card.certificates),
        "status_url": url,
        "action": url,
        "errors": errors,
        "summary": error_summary(errors, LABELS),
        "documents": list(documents),
        "document_options": DOCUMENT_OPTIONS,
        "field_prefix": f"p{person.arrival_id}",
    }


def _render_card_page(
    request: Request,
    session: Session,
    national: Session,
    principal: Principal,
    arrival_id: int,
    *,
    recorded: int | None = None,
    continued: int | None = None,
    failed: tuple[int, Mapping[str, str], Sequence[str]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    detail = relay.arrival(
        session,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        arrival_id=arrival_id,
        purpose=PURPOSE,
    )
    moved = [p for p in detail.persons if p.arrived]
    panels = []
    for person in moved:
        errors: Mapping[str, str] = {}
        documents: Sequence[str] = ()
        if failed is not None and failed[0] == person.arrival_id:
            errors, documents = failed[1], failed[2]
        panel = _panel(national, principal, arrival_id, person, errors=errors, documents=documents)
        panel["person_id"] = _records(session, request, principal, person.resident_code)
        panels.append(panel)
    continued_name = next((p.name for p in moved if p.arrival_id == continued), None)
    return render(
        request,
        "arrival_card.html",
        {
            "title": "マイナンバーカードの継続利用",
            "arrival": detail.arrival,
            "recorded": recorded,
            "continued_name": continued_name,
            "panels": panels,
            "waiting": [p for p in detail.persons if not p.arrived],
            "arrival_url": _arrival_url(arrival_id),
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/arrivals/{arrival_id}/card")
def card_page(
    request: Request,
    arrival_id: int,
    principal: Clerk,
    session: SessionDep,
    national: NationalSessionDep,
    recorded: Annotated[int | None, Query(ge=1)] = None,
    continued: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    return _render_card_page(
        request, session, national, principal, arrival_id, recorded=recorded, continued=continued
    )


def _person(detail: relay.ArrivalDetail, person_arrival_id: int) -> relay.ArrivingPerson:
    person = next((p for p in detail.persons if p.arrival_id == person_arrival_id and p.arrived), None)
    if person is None:
        raise PageError(404, "対象が見つかりません", "この転入予定者の転入はまだ記録されていません。")
    return person


@router.get("/arrivals/{arrival_id}/card/{person_arrival_id}")
def card_panel(
    request: Request,
    arrival_id: int,
    person_arrival_id: int,
    principal: Clerk,
    session: SessionDep,
    national: NationalSessionDep,
) -> HTMLResponse:
    """One person's card panel: polled by the page while the move travels to the national side."""
    if not is_htmx(request):
        return _render_card_page(request, session, national, principal, arrival_id)
    detail = relay.arrival(
        session,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        arrival_id=arrival_id,
        purpose=PURPOSE,
    )
    panel = _panel(national, principal, arrival_id, _person(detail, person_arrival_id))
    return render(request, "partials/card_transfer.html", {"p": panel}, session=session, principal=principal)


@router.post("/arrivals/{arrival_id}/card/{person_arrival_id}")
def continue_card(
    request: Request,
    arrival_id: int,
    person_arrival_id: int,
    principal: Clerk,
    session: SessionDep,
    national: NationalSessionDep,
    form: PostedForm,
) -> Response:
    detail = relay.arrival(
        session,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        arrival_id=arrival_id,
        purpose=PURPOSE,
    )
    person = _person(detail, person_arrival_id)
    documents = [str(d) for d in form.getlist("identity_documents")]
    card_number = str(form.get("card_number") or "")
    try:
        checked = WindowCheckIn.model_validate({"identity_documents": documents})
    except ValidationError as exc:
        errors = {"identity_documents": next(iter(validation_errors(exc).values()))}
        failed = (person.arrival_id, errors, documents)
        return _render_card_page(request, session, national, principal, arrival_id, failed=failed, status=400)
    try:
        with attempt(national):
            cards.continue_use(
                national,
                actor=actor_of(principal),
                lg_code=principal.organisation_code,
                card_number=card_number,
                identity_documents=checked.identity_documents,
            )
    except DomainError as exc:
        failed = (person.arrival_id, refused_fields(exc, ["identity_documents", "card_number"]), documents)
        return _render_card_page(
            request, session, national, principal, arrival_id, failed=failed, status=exc.status
        )
    return see_other(f"{_arrival_url(arrival_id)}/card?continued={person.arrival_id}")
