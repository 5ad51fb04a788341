"""マイナンバーカード at the window: cards waiting for hand-over, the hand-over (交付), PIN reset.

The card's work is on the national side (``card.service`` over the national database);
the window only parses what the clerk entered and shows what the service answers. A PIN
is typed by the resident on the window's keypad: it is sent once and never shown again,
not even when the form comes back with an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from jumin.accounts.domain import Principal
from jumin.accounts.service import actor_of
from jumin.api_support import NationalSessionDep, SessionDep
from jumin.card import service as cards
from jumin.card.schemas import HandOverIn, PinResetIn
from jumin.core.errors import DomainError
from jumin.web import views
from jumin.web.forms import validation_errors
from jumin.web.page_errors import PageError, see_other
from jumin.web.pages import STAFF_PREFIX, attempt, error_summary, refused_fields, render
from jumin.web.security import Clerk, PostedForm

router = APIRouter(prefix=STAFF_PREFIX, include_in_schema=False)

LABELS = {
    "card_number": "カード番号",
    "identity_documents": "本人確認書類",
    "auth_pin": "利用者証明用電子証明書の暗証番号",
    "signing_pin": "署名用電子証明書の暗証番号",
    "under_guardianship": "成年被後見人",
    "kind": "再設定する暗証番号",
    "new_pin": "新しい暗証番号",
}
# The card number is the page's, not an input: a refusal naming it is about the whole form.
INPUTS = [name for name in LABELS if name != "card_number"]
DOCUMENT_OPTIONS = list(views.IDENTITY_DOCUMENT_LABELS.items())
PIN_KINDS = [
    ("auth", "利用者証明用電子証明書の暗証番号 (数字4桁)"),
    ("signing", "署名用電子証明書の暗証番号 (英大文字と数字 6〜16文字)"),
]
DONE_MESSAGES = {
    "pin-reset": "暗証番号を再設定しました。ロックも解除されています。",
}


def _card_url(card_number: str) -> str:
    return f"{STAFF_PREFIX}/cards/{card_number}"


def _checked_number(card_number: str) -> str:
    if not (len(card_number) == 12 and card_number.isascii() and card_number.isdigit()):
        raise PageError(404, "カードが見つかりません", "カード番号は12桁の数字です。")
    return card_number


def _face(national: Session, principal: Principal, card_number: str) -> cards.CardFace:
    return cards.card_face(
        national,
        actor=actor_of(principal),
        lg_code=principal.organisation_code,
        card_number=_checked_number(card_number),
    )


def _face_view(face: cards.CardFace) -> dict[str, Any]:
    card = face.card
    return {
        "card_number": card.card_number,
        "status": card.status.value,
        "status_label": views.CARD_STATUS_LABELS.get(card.status.value, card.status.value),
        "name": face.name,
        "kana": face.name_kana or "",
        "birth": views.jp_date(face.birth_date),
        "sex": views.sex_label(face.sex),
        "address": face.address,
        "issued_on": views.jp_date(card.issued_on),
        "valid_until": views.jp_date(card.valid_until),
        "signing_tries": card.signing_tries_left,
        "auth_tries": card.auth_tries_left,
        "certificates": [
            {
                "kind": views.CERTIFICATE_KIND_LABELS.get(c.kind.value, c.kind.value),
                "status": views.CERTIFICATE_STATUS_LABELS.get(c.status.value, c.status.value),
                "valid_until": views.jp_date(c.valid_until),
                "serial": c.serial,
            }
            for c in card.certificates
        ],
        "may_hand_over": card.status.value == "ready",
        "may_reset_pin": card.status.value in ("active", "suspended"),
    }


# ---------------------------------------------------------------------------
# The counter's list and finding a card


@router.get("/cards")
def cards_page(
    request: Request,
    principal: Clerk,
    session: SessionDep,
    national: NationalSessionDep,
    card_number: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    errors: dict[str, str] = {}
    wanted = card_number.strip().replace(" ", "").replace("-", "")
    if wanted:
        if len(wanted) == 12 and wanted.isascii() and wanted.isdigit():
            return see_other(_card_url(wanted))
        errors["card_number"] = "カード番号は12桁の数字で入力してください。"
    waiting = cards.cards_awaiting_hand_over(
        national, actor=actor_of(principal), lg_code=principal.organisation_code
    )
    return render(
        request,
        "cards.html",
        {
            "title": "マイナンバーカード",
            "card_number": card_number,
            "errors": errors,
            "waiting": [
                {
                    "card_number": w.card_number,
                    "application_no": w.application_no,
                    "express": w.express,
                    "due_on": views.jp_date(w.due_on),
                    "setup_at": views.jp_datetime(w.setup_at),
                }
                for w in waiting
            ],
        },
        session=session,
        principal=principal,
        status=400 if errors else 200,
    )


@router.get("/cards/{card_number}")
def card_page(
    request: Request,
    card_number: str,
    principal: Clerk,
    session: SessionDep,
    national: NationalSessionDep,
    done: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    face = _face(national, principal, card_number)
    return render(
        request,
        "card.html",
        {
            "title": f"カード {face.card.card_number}",
            "card": _face_view(face),
            "done": DONE_MESSAGES.get(done, ""),
        },
        session=session,
        principal=principal,
    )


# ---------------------------------------------------------------------------
# 交付


def _documents(form: FormData) -> list[str]:
    return [str(d) for d in form.getlist("identity_documents")]


def _first_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, message in validation_errors(exc).items():
        errors.setdefault(name.split(".")[0], message)
    return errors


def _render_hand_over(
    request: Request,
    session: Session,
    principal: Principal,
    face: cards.CardFace,
    *,
    documents: Sequence[str] = (),
    wants_signing: bool = True,
    under_guardianship: bool = False,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    errors = errors or {}
    return render(
        request,
        "card_hand_over.html",
        {
            "title": f"カードの交付 {face.card.card_number}",
            "card": _face_view(face),
            "documents": list(documents),
            "document_options": DOCUMENT_OPTIONS,
            "wants_signing": wants_signing,
            "under_guardianship": under_guardianship,
            "errors": errors,
            "summary": error_summary(errors, LABELS),
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/cards/{card_number}/hand-over")
def hand_over_page(
    request: Request, card_number: str, principal: Clerk, session: SessionDep, national: NationalSessionDep
) -> HTMLResponse:
    return _render_hand_over(request, session, principal, _face(national, principal, card_number))


@router.post("/cards/{card_number}/hand-over")
def hand_over(
    request: Request,
    card_number: str,
    principal: Clerk,
    session: SessionDep,
    national: NationalSessionDep,
    form: PostedForm,
) -> HTMLResponse:
    face = _face(national, principal, card_number)
    documents = _documents(form)
    wants_signing = form.get("signing_wanted") == "true"
    guardianship = form.get("under_guardianship") == "true"

    def again(errors: Mapping[str, str], status: int) -> HTMLResponse:
        return _render_hand_over(
            request,
            session,
            principal,
            face,
            documents=documents,
            wants_signing=wants_signing,
            under_guardianship=guardianship,
            errors=errors,
            status=status,
        )

    try:
        body = HandOverIn.model_validate(
            {
                "identity_documents": documents,
                "auth_pin": str(form.get("auth_pin") or ""),
                "signing_pin": str(form.get("signing_pin") or "") if wants_signing else None,
                "under_guardianship": guardianship,
            }
        )
    except ValidationError as exc:
        return again(_first_errors(exc), 400)
    try:
        with attempt(national):
            result = cards.hand_over(
                national,
                actor=actor_of(principal),
                lg_code=principal.organisation_code,
                card_number=face.card.card_number,
                identity_documents=body.identity_documents,
                auth_pin=body.auth_pin,
                signing_pin=body.signing_pin,
                under_guardianship=body.under_guardianship,
            )
    except DomainError as exc:
        return again(refused_fields(exc, INPUTS), exc.status)
    handed = cards.CardFace(
        card=result.card,
        resident_code=face.resident_code,
        name=face.name,
        name_kana=face.name_kana,
        birth_date=face.birth_date,
        sex=face.sex,
        address=face.address,
    )
    return render(
        request,
        "card_handed_over.html",
        {
            "title": f"カードを交付しました {face.card.card_number}",
            "card": _face_view(handed),
            "secret": result.suspension_secret,
        },
        session=session,
        principal=principal,
    )


# ---------------------------------------------------------------------------
# 暗証番号の再設定


def _render_pin_reset(
    request: Request,
    session: Session,
    principal: Principal,
    face: cards.CardFace,
    *,
    kind: str = "auth",
    documents: Sequence[str] = (),
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    errors = errors or {}
    return render(
        request,
        "card_pin_reset.html",
        {
            "title": f"暗証番号の再設定 {face.card.card_number}",
            "card": _face_view(face),
            "kind": kind,
            "pin_kinds": PIN_KINDS,
            "documents": list(documents),
            "document_options": DOCUMENT_OPTIONS,
            "errors": errors,
            "summary": error_summary(errors, LABELS),
        },
        session=session,
        principal=principal,
        status=status,
    )


@router.get("/cards/{card_number}/pin-reset")
def pin_reset_page(
    request: Request, card_number: str, principal: Clerk, session: SessionDep, national: NationalSessionDep
) -> HTMLResponse:
    return _render_pin_reset(request, session, principal, _face(national, principal, card_number))


@router.post("/cards/{card_number}/pin-reset")
def pin_reset(
    request: Request,
    card_number: str,
    principal: Clerk,
    session: SessionDep,
    national: NationalSessionDep,
    form: PostedForm,
) -> Response:
    face = _face(national, principal, card_number)
    documents = _documents(form)
    kind = str(form.get("kind") or "")
    try:
        body = PinResetIn.model_validate(
            {"kind": kind or None, "new_pin": str(form.get("new_pin") or ""), "identity_documents": documents}
        )
    except ValidationError as exc:
        return _render_pin_reset(
            request,
            session,
            principal,
            face,
            kind=kind,
            documents=documents,
            errors=_first_errors(exc),
            status=400,
        )
    try:
        with attempt(national):
            cards.reset_pin(
                national,
                actor=actor_of(principal),
                lg_code=principal.organisation_code,
                card_number=face.card.card_number,
                kind=body.kind,
                new_pin=body.new_pin,
                identity_documents=body.identity_documents,
            )
    except DomainError as exc:
        # The check names the PIN field of its kind (auth_pin / signing_pin): it is this form's new_pin.
        errors = refused_fields(exc, INPUTS)
        errors = {("new_pin" if k in ("auth_pin", "signing_pin") else k): v for k, v in errors.items()}
        return _render_pin_reset(
            request,
            session,
            principal,
            face,
            kind=kind,
            documents=documents,
            errors=errors,
            status=exc.status,
        )
    return see_other(f"{_card_url(face.card.card_number)}?done=pin-reset")
