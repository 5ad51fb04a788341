"""承認: the national operator decides on prefectures' extraction requests (基準日抽出).

The decision is ``network.agencies.service.decide_extraction``, once per request, on the
national database; an approval starts the production in the background exactly as the
agency API does, and the page follows it with a progress bar until the file is ready.

Corrections (職権修正) need no approval step in the register: they are supervisor-only
events that a supervisor records directly (a clerk's attempt is refused and audited).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import HTMLResponse

from jumin.api_support import NationalSessionDep, SessionDep, national_units
from jumin.core.errors import DomainError
from jumin.network.agencies import jobs
from jumin.network.agencies import service as agencies
from jumin.web import views
from jumin.web.pages import STAFF_PREFIX, _is_htmx, _redirect, attempt, render
from jumin.web.security import Operator, PostedForm, form_value

router = APIRouter(prefix=STAFF_PREFIX, include_in_schema=False)

BASE = f"{STAFF_PREFIX}/approvals"
RUNNING = ("approved", "producing")


def _row(e: agencies.ExtractionView) -> dict[str, Any]:
    ages = ""
    if e.min_age is not None or e.max_age is not None:
        ages = (
            f"{e.min_age if e.min_age is not None else ''}歳〜{e.max_age if e.max_age is not None else ''}歳"
        )
    return {
        "id": e.id,
        "short_id": e.id[:8],
        "prefecture": views.place_name(e.organisation_code),
        "requested_by": e.requested_by,
        "requested_at": views.jp_datetime(e.requested_at),
        "reference_date": views.jp_date(e.reference_date),
        "municipalities": "、".join(views.place_name(c) for c in e.lg_codes) or "都道府県全体",
        "ages": ages or "指定なし",
        "purpose": e.purpose,
        "status": e.status,
        "status_label": views.EXTRACTION_STATUS_LABELS.get(e.status, e.status),
        "decided_by": e.decided_by or "",
        "decided_at": views.jp_datetime(e.decided_at) if e.decided_at else "",
        "note": e.decision_note or "",
        "row_count": e.row_count,
        "csv_sha256": e.csv_sha256 or "",
        "running": e.status in RUNNING,
        "status_url": f"{BASE}/extractions/{e.id}",
    }


@router.get("/approvals")
def approvals(
    request: Request,
    principal: Operator,
    session: SessionDep,
    national: NationalSessionDep,
    decided: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    rows = [_row(e) for e in agencies.list_extractions(national, principal=principal)]
    pending = [r for r in rows if r["status"] == "requested"]
    others = [r for r in rows if r["status"] != "requested"]
    decided_row = next((r for r in rows if r["id"] == decided), None)
    return render(
        request,
        "approvals.html",
        {"title": "抽出依頼の承認", "pending": pending, "others": others, "decided": decided_row},
        session=session,
        principal=principal,
    )


@router.get("/approvals/extractions/{extraction_id}")
def extraction_status(
    request: Request,
    extraction_id: str,
    principal: Operator,
    session: SessionDep,
    national: NationalSessionDep,
) -> Response:
    """An extraction's state: the progress fragment the approvals page polls while it is produced."""
    if not _is_htmx(request):
        return _redirect(BASE)
    view = agencies.extraction(
        national, principal=principal, extraction_id=extraction_id, target=f"GET {request.url.path}"
    )
    return render(
        request, "partials/extraction_status.html", {"r": _row(view)}, session=session, principal=principal
    )


@router.post("/approvals/extractions/{extraction_id}")
def decide(
    request: Request,
    extraction_id: str,
    principal: Operator,
    session: SessionDep,
    national: NationalSessionDep,
    form: PostedForm,
    background: BackgroundTasks,
) -> Response:
    decision = form_value(form, "decision")
    if decision not in ("approve", "reject"):
        return _redirect(BASE)
    try:
        with attempt(national):
            view = agencies.decide_extraction(
                national,
                principal=principal,
                extraction_id=extraction_id,
                approve=decision == "approve",
                note=form_value(form, "note"),
                target=f"POST {request.url.path}",
            )
    except DomainError as exc:
        rows = [_row(e) for e in agencies.list_extractions(national, principal=principal)]
        return render(
            request,
            "approvals.html",
            {
                "title": "抽出依頼の承認",
                "pending": [r for r in rows if r["status"] == "requested"],
                "others": [r for r in rows if r["status"] != "requested"],
                "decided": None,
                "error": exc.detail,
            },
            session=session,
            principal=principal,
            status=exc.status,
        )
    if decision == "approve":
        # As the agency API does: the file is produced after the decision is committed.
        background.add_task(jobs.produce_extraction, national_units(request.app), view.id)
    return _redirect(f"{BASE}?decided={view.id}")
