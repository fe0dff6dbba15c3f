"""The suppressions page: the tenant's list, adding an address, removing one."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from starlette.responses import RedirectResponse, Response

from app.clock import utcnow
from app.db import session_scope
from app.errors import InvalidFields, NotFound
from app.suppressions import service
from app.suppressions.metrics import count_created
from app.suppressions.models import SuppressionReason
from app.suppressions.schemas import PutSuppression, SuppressionOut, SuppressionQuery
from app.ui.forms import field_errors, read_query
from app.ui.render import render
from app.ui.viewer import Viewer, ViewerDep

router = APIRouter(prefix="/suppressions")

NOTICES = {
    "added": "The address is suppressed: nothing will be sent to it.",
    "already": "That address was already suppressed; its entry is unchanged.",
    "removed": "The address is off the list: it may be sent to again.",
    "not-there": "That address was not suppressed.",
}


def _page(
    viewer: Viewer,
    *,
    filters: dict[str, str],
    cursor: str = "",
    notice: str | None = None,
    errors: list[str] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    query, refused = read_query(SuppressionQuery, filters, cursor)
    errors = [*(errors or []), *refused]
    entries: list[SuppressionOut] = []
    next_url = None
    if query is not None:
        with session_scope() as db:
            try:
                page = service.list_suppressions(
                    db, caller=viewer.caller, query=query, now=utcnow()
                )
            except InvalidFields as error:
                errors = field_errors(error)
            else:
                entries = page.data
                if page.next_cursor:
                    kept = {k: v for k, v in filters.items() if v}
                    next_url = "/ui/suppressions?" + urlencode({**kept, "cursor": page.next_cursor})
    return render(
        "suppressions.html",
        status_code=422 if errors else 200,
        viewer=viewer,
        entries=entries,
        filters=filters,
        reasons=[r.value for r in SuppressionReason],
        errors=errors,
        notice=notice,
        form=form or {"email": "", "reason": "manual", "note": ""},
        next_url=next_url,
        paged=bool(cursor),
        now=utcnow(),
    )


@router.get("")
def suppressions_page(
    viewer: ViewerDep,
    reason: str = "",
    created_after: str = "",
    cursor: str = "",
    notice: str = "",
) -> Response:
    """The tenant's suppressed addresses, newest first, filtered as GET /v1/suppressions is."""
    filters = {"reason": reason.strip(), "created_after": created_after.strip()}
    return _page(viewer, filters=filters, cursor=cursor, notice=NOTICES.get(notice))


@router.post("")
def add(
    viewer: ViewerDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    reason: Annotated[Literal["manual", "unsubscribe"], Form()] = "manual",
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Suppress an address by hand, as PUT /v1/suppressions/{email} does."""
    viewer.authorize_change(csrf)
    body = PutSuppression(reason=reason, note=note.strip() or None)
    try:
        with session_scope() as db:
            entry, created = service.put_suppression(
                db, caller=viewer.caller, email=email.strip(), body=body, now=utcnow()
            )
    except InvalidFields as error:
        form = {"email": email, "reason": reason, "note": note}
        return _page(viewer, filters={}, errors=field_errors(error), form=form)
    if created:
        count_created([entry.reason])
        viewer.audit("address suppressed", email=entry.email, reason=entry.reason.value)
    notice = "added" if created else "already"
    return RedirectResponse(f"/ui/suppressions?notice={notice}", status_code=303)


@router.post("/remove")
def remove(
    viewer: ViewerDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """Take an address off the list, as DELETE /v1/suppressions/{email} does."""
    viewer.authorize_change(csrf)
    notice = "removed"
    try:
        with session_scope() as db:
            service.delete_suppression(db, caller=viewer.caller, email=email, now=utcnow())
        viewer.audit("suppression removed", email=email)
    except NotFound:
        notice = "not-there"
    except InvalidFields as error:
        return _page(viewer, filters={}, errors=field_errors(error))
    return RedirectResponse(f"/ui/suppressions?notice={notice}", status_code=303)
