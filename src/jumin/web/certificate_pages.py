"""証明書の交付 at the window: choose, preview, issue, print or download the signed PDF.

The clerk picks the persons, the kind and the items and says who is asking; the preview
runs every check issuing would (``certificates.service.preview_at_window``) and shows the
page as it will print; 「交付する」 issues it, once per preview (``certificates.handover``:
the form carries a one-time token), and redirects to the result page, so a reload shows
the same result and never issues again. The ledger keeps only the PDF's hash; the result
page offers the signed PDF to its clerk, to download or open for printing, for the few
minutes ``certificates.handover`` keeps it sealed.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from jumin.accounts.domain import Principal
from jumin.api_support import SessionDep
from jumin.certificates import handover
from jumin.certificates import service as certificates
from jumin.certificates.domain import (
    CHANNEL_LABELS,
    FORM_LABELS,
    ITEM_LABELS,
    REQUESTER_LABELS,
    DocumentKind,
    Form,
    Item,
    RequesterKind,
    optional_items,
)
from jumin.certificates.schemas import WindowIssueRequest
from jumin.core.errors import DomainError
from jumin.registry import service as registry
from jumin.web import pdfimages, views
from jumin.web.forms import DATE_HINT, validation_errors
from jumin.web.page_errors import PageError, see_other
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

FOREIGN_ITEMS = (Item.NATIONALITY, Item.FOREIGN_STATUS, Item.RESIDENCE_CARD_NUMBER, Item.ALIAS)
WINDOW_REQUESTERS = (
    RequesterKind.SELF,
    RequesterKind.HOUSEHOLD_MEMBER,
    RequesterKind.AGENT,
    RequesterKind.THIRD_PARTY,
)
LABELS = {
    "person_ids": "記載する人",
    "kind": "証明書の種類",
    "form": "様式",
    "include": "記載する項目",
    "omit": "省略する項目",
    "as_of": "基準日",
    "requester.kind": "請求者",
    "requester.person_id": "請求者 (住民)",
    "requester.name": "請求者の氏名",
    "requester.authority": "代理権を証する書類",
    "requester.reason": "請求の事由",
    "household_id": "記載する人",
}
FIELDS = [*LABELS]


def _selection_values(form: FormData | None, person: registry.RecordView) -> dict[str, Any]:
    """The choices as posted, or the defaults: the person alone, a 住民票の写し, asked by themselves."""
    removed = person.record.status.value != "live"
    if form is None:
        return {
            "person_ids": [str(person.person_id)],
            "kind": (DocumentKind.REMOVED_RECORD_COPY if removed else DocumentKind.RECORD_COPY).value,
            "form": Form.HOUSEHOLD.value,
            "include": [],
            "omit": [],
            "as_of": "",
            "requester.kind": RequesterKind.SELF.value,
            "requester.person_id": str(person.person_id),
            "requester.name": "",
            "requester.authority": "",
            "requester.reason": "",
        }
    return {
        "person_ids": [str(v) for v in form.getlist("person_ids")],
        "kind": str(form.get("kind") or ""),
        "form": str(form.get("form") or ""),
        "include": [str(v) for v in form.getlist("include")],
        "omit": [str(v) for v in form.getlist("omit")],
        "as_of": str(form.get("as_of") or "").strip(),
        "requester.kind": str(form.get("requester.kind") or ""),
        "requester.person_id": str(form.get("requester.person_id") or ""),
        "requester.name": str(form.get("requester.name") or "").strip(),
        "requester.authority": str(form.get("requester.authority") or "").strip(),
        "requester.reason": str(form.get("requester.reason") or "").strip(),
    }


def _request_of(values: Mapping[str, Any]) -> WindowIssueRequest:
    """The request model from the choices; ValidationError names the bad ones."""
    requester_kind = values["requester.kind"]
    by_resident = requester_kind in (RequesterKind.SELF.value, RequesterKind.HOUSEHOLD_MEMBER.value)
    data: dict[str, Any] = {
        "kind": values["kind"] or None,
        "form": values["form"] or Form.HOUSEHOLD.value,
        "include": values["include"],
        "omit": values["omit"],
        "person_ids": [int(v) for v in values["person_ids"] if v.isdigit()] or None,
        "requester": {
            "kind": requester_kind or None,
            "person_id": int(values["requester.person_id"])
            if by_resident and values["requester.person_id"].isdigit()
            else None,
            "name": "" if by_resident else values["requester.name"],
            "authority": values["requester.authority"] or None,
            "reason": values["requester.reason"] or None,
        },
    }
    if values.get("as_of"):
        data["as_of"] = values["as_of"]
    return WindowIssueRequest.model_validate(data)


def _invalid(exc: ValidationError) -> dict[str, str]:
    """Validation errors by input: include.2 is the 'include' group, requester.name its field."""
    errors: dict[str, str] = {}
    for name, message in validation_errors(exc).items():
        if name == "_form":
            # Neither persons nor a household: a model rule with no input of its own.
            name, message = "person_ids", "記載する人を1人以上選んでください。"
        parts = name.split(".")
        errors.setdefault(".".join(parts[:2]) if parts[0] == "requester" else parts[0], message)
    return errors


def _person_of(
    request: Request, session: Session, principal: Principal, person_id: int
) -> registry.RecordView:
    return registry.get_record(
        session, ctx=context_of(request, principal), person_id=person_id, purpose=PURPOSE
    )


def _render_selection(
    request: Request,
    session: Session,
    principal: Principal,
    person: registry.RecordView,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    *,
    status: int = 200,
) -> HTMLResponse:
    ctx = context_of(request, principal)
    removed = person.record.status.value != "live"
    if removed:
        members = [person]
    else:
        members = list(
            registry.get_household(
                session, ctx=ctx, household_id=person.record.household_id, purpose=PURPOSE
            ).members
        )
    kinds = [k for k in DocumentKind if k.for_removed == removed]
    foreign = any(m.record.foreign is not None for m in members)
    return render(
        request,
        "certificates.html",
        {
            "title": f"証明書の交付 {person.record.name}",
            "person": person,
            "removed": removed,
            "members": [
                (
                    str(m.person_id),
                    f"{m.record.name} ({m.record.relationship}、{views.birth_date_text(m.record)})",
                )
                for m in members
            ],
            "kinds": [(k.value, k.label) for k in kinds],
            "forms": [(f.value, FORM_LABELS[f]) for f in Form],
            "optional": [(i.value, ITEM_LABELS[i]) for i in Item if i in optional_items()],
            "foreign_items": [(i.value, ITEM_LABELS[i]) for i in FOREIGN_ITEMS] if foreign else [],
            "requesters": [(r.value, REQUESTER_LABELS[r]) for r in WINDOW_REQUESTERS],
            "values": values,
            "errors": errors,
            "summary": error_summary(errors, LABELS),
            "date_hint": DATE_HINT,
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/certificates")
def certificates_page(
    request: Request,
    principal: Clerk,
    session: SessionDep,
    person: Annotated[int | None, Query(ge=1)] = None,
    resident_code: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    if person is not None:
        found = _person_of(request, session, principal, person)
        return _render_selection(request, session, principal, found, _selection_values(None, found), {})
    errors: dict[str, str] = {}
    code = resident_code.strip()
    if code:
        if not (len(code) == 11 and code.isascii() and code.isdigit()):
            errors["resident_code"] = "住民票コードは11桁の半角数字で入力してください。"
        else:
            hits = registry.search(
                session,
                ctx=context_of(request, principal),
                resident_code=code,
                include_removed=True,
                limit=5,
                purpose=PURPOSE,
            ).results
            if hits:
                return see_other(f"{STAFF_PREFIX}/certificates?person={hits[-1].person_id}")
            errors["resident_code"] = "この住民票コードの住民はこの団体の住民基本台帳にありません。"
    return render(
        request,
        "certificate_start.html",
        {"title": "証明書の交付", "resident_code": code, "errors": errors},
        session=session,
        principal=principal,
        status=400 if errors else 200,
    )


def _posted_person(
    request: Request, session: Session, principal: Principal, form: FormData
) -> registry.RecordView:
    raw = str(form.get("person") or "")
    if not raw.isdigit():
        raise PageError(400, "住民を選び直してください", "証明書を交付する住民が指定されていません。")
    return _person_of(request, session, principal, int(raw))


def _content_view(content: Any) -> dict[str, Any]:
    return {
        "title": content.title,
        "form_label": content.form_label,
        "header": content.header,
        "sections": content.sections,
        "notes": content.notes,
        "certification": content.certification_text,
        "issue_date": content.issue_date_text,
        "mayor": content.mayor_line,
        "issue_number": content.issue_number,
    }


def _hidden_fields(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The choices again, as hidden inputs: what the preview showed is what gets issued."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if isinstance(value, list):
            pairs += [(name, str(v)) for v in value]
        elif value:
            pairs.append((name, str(value)))
    return pairs


@router.post("/certificates/preview")
def preview(request: Request, principal: Clerk, session: SessionDep, form: PostedForm) -> HTMLResponse:
    person = _posted_person(request, session, principal, form)
    values = _selection_values(form, person)
    try:
        body = _request_of(values)
    except ValidationError as exc:
        return _render_selection(request, session, principal, person, values, _invalid(exc), status=400)
    try:
        with attempt(session):
            shown = certificates.preview_at_window(session, ctx=context_of(request, principal), request=body)
    except DomainError as exc:
        return _render_selection(
            request, session, principal, person, values, refused_fields(exc, FIELDS), status=exc.status
        )
    return render(
        request,
        "certificate_preview.html",
        {
            "title": f"証明書のプレビュー {person.record.name}",
            "person": person,
            "content": _content_view(shown.content),
            "fee": shown.fee_yen,
            "pages": pdfimages.page_images(certificates.preview_pdf(shown)),
            "images_available": pdfimages.available(),
            "hidden": [("person", str(person.person_id)), *_hidden_fields(values)],
            # One issuance per preview: a second post of this form answers with the first.
            "issue_token": handover.new_token(),
            "requester": REQUESTER_LABELS[body.requester.kind],
        },
        session=session,
        principal=principal,
    )


@router.post("/certificates/edit")
def edit(request: Request, principal: Clerk, session: SessionDep, form: PostedForm) -> HTMLResponse:
    """Back from the preview to the choices, as they were."""
    person = _posted_person(request, session, principal, form)
    return _render_selection(request, session, principal, person, _selection_values(form, person), {})


@router.post("/certificates/issue")
def issue(request: Request, principal: Clerk, session: SessionDep, form: PostedForm) -> Response:
    """Issue once per preview (its one-time token), then redirect: a reload only reads the result."""
    person = _posted_person(request, session, principal, form)
    values = _selection_values(form, person)
    try:
        body = _request_of(values)
    except ValidationError as exc:
        return _render_selection(request, session, principal, person, values, _invalid(exc), status=400)
    try:
        with attempt(session):
            number = handover.issue_at_window_once(
                session,
                ctx=context_of(request, principal),
                request=body,
                token=str(form.get("issue_token") or ""),
            )
    except DomainError as exc:
        return _render_selection(
            request, session, principal, person, values, refused_fields(exc, FIELDS), status=exc.status
        )
    return see_other(f"{STAFF_PREFIX}/certificates/issued/{number}")


@router.get("/certificates/issued/{issue_number}")
def issued_page(
    request: Request,
    issue_number: Annotated[str, Path(max_length=32, pattern=r"^[0-9A-Za-z-]+$")],
    principal: Clerk,
    session: SessionDep,
    finished: Annotated[str, Query(max_length=8)] = "",
) -> HTMLResponse:
    ctx = context_of(request, principal)
    shown = handover.handover(session, ctx=ctx, issue_number=issue_number)
    issued = shown.issuance
    person = _person_of(request, session, principal, issued.person_ids[0])
    return render(
        request,
        "certificate_issued.html",
        {
            "title": f"証明書を交付しました {issued.issue_number}",
            "person": person,
            "issued": issued,
            "file_name": shown.file_name,
            "kind": issued.kind.label,
            "form_label": FORM_LABELS[issued.form],
            "channel": CHANNEL_LABELS[issued.channel],
            "issue_date": views.jp_date(issued.issue_date),
            "issued_at": views.jp_datetime(issued.issued_at),
            "mine": shown.mine,
            "pdf_href": "data:application/pdf;base64," + base64.b64encode(shown.pdf).decode()
            if shown.pdf
            else "",
            "kept_until": views.jp_datetime(shown.expires_at) if shown.expires_at else "",
            "minutes": int(handover.HANDOVER_TIME.total_seconds() // 60),
            "erased_at": views.jp_datetime(shown.erased_at) if shown.erased_at else "",
            "finished": bool(finished),
            "pages": pdfimages.page_images(shown.pdf) if shown.pdf else [],
            "images_available": pdfimages.available(),
        },
        session=session,
        principal=principal,
    )


@router.post("/certificates/issued/{issue_number}/finish")
def finish_handover(
    request: Request,
    issue_number: Annotated[str, Path(max_length=32, pattern=r"^[0-9A-Za-z-]+$")],
    principal: Clerk,
    session: SessionDep,
    form: PostedForm,
) -> Response:
    """The clerk has printed or saved the PDF: it is erased now rather than at expiry."""
    handover.finish(session, ctx=context_of(request, principal), issue_number=issue_number)
    return see_other(f"{STAFF_PREFIX}/certificates/issued/{issue_number}?finished=1")
