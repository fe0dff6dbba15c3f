"""The messages pages: the list (and its refresh), one message, its raw source, cancel."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.clock import utcnow
from app.db import session_scope
from app.errors import Conflict, InvalidFields, NotFound
from app.messages import listing, service
from app.messages.schemas import ListQuery
from app.messages.states import CANCELABLE, FINAL, MessageStatus
from app.ui import event_pages
from app.ui.forms import checked_id, field_errors, read_query
from app.ui.render import iso, render
from app.ui.transcript import transcript_lines
from app.ui.viewer import ViewerDep

router = APIRouter(prefix="/messages")

# What the raw view shows in the page; the download has it all.
RAW_VIEW_BYTES = 256 * 1024
# A status refresh names at most a page of messages.
MAX_REFRESH = 100
NOTICES = {
    "canceled": "The message is canceled: it will not be sent.",
    "not-cancelable": "That message is already sending or finished; it cannot be canceled.",
}


def message_id_param(message_id: Annotated[str, Path()]) -> str:
    return checked_id(message_id, "message")


MessageId = Annotated[str, Depends(message_id_param)]


@router.get("")
def messages_page(
    viewer: ViewerDep,
    status: str = "",
    tag: str = "",
    recipient: str = "",
    created_after: str = "",
    created_before: str = "",
    cursor: str = "",
) -> Response:
    """The tenant's messages, newest first, filtered as GET /v1/messages is."""
    filters = {
        "status": status.strip(),
        "tag": tag.strip(),
        "recipient": recipient.strip(),
        "created_after": created_after.strip(),
        "created_before": created_before.strip(),
    }
    query, errors = read_query(ListQuery, filters, cursor)
    messages: list[Any] = []
    next_url = None
    if query is not None:
        with session_scope() as db:
            try:
                page = listing.list_messages(db, caller=viewer.caller, query=query)
            except InvalidFields as error:
                errors = field_errors(error)
            else:
                messages = page.messages
                if page.next_cursor:
                    kept = {k: v for k, v in filters.items() if v}
                    next_url = "/ui/messages?" + urlencode({**kept, "cursor": page.next_cursor})
    return render(
        "messages.html",
        status_code=422 if errors else 200,
        viewer=viewer,
        messages=messages,
        filters=filters,
        statuses=[s.value for s in MessageStatus],
        errors=errors,
        next_url=next_url,
        paged=bool(cursor),
        now=utcnow(),
    )


@router.get("/status")
def statuses(viewer: ViewerDep, id: Annotated[list[str], Query()]) -> Response:
    """The status of each named message, for the list's refresh of rows still in flight."""
    found = []
    with session_scope() as db:
        for message_id in id[:MAX_REFRESH]:
            try:
                message = service.get_message(db, caller=viewer.caller, message_id=message_id)
            except NotFound:
                continue
            found.append(
                {
                    "id": message.id,
                    "status": message.status.value,
                    "final": message.status in FINAL,
                    "attempt_count": message.attempt_count,
                    "updated_at": iso(message.updated_at),
                }
            )
    return JSONResponse({"data": found})


@router.get("/{message_id}")
def message_page(message_id: MessageId, viewer: ViewerDep, notice: str = "") -> Response:
    """One message: headers, recipients with the relay's replies, every attempt's dialogue."""
    with session_scope() as db:
        message = service.get_message(db, caller=viewer.caller, message_id=message_id)
        # The transcript column is loaded here, attempt by attempt, while the session is open.
        attempts = [(attempt, transcript_lines(attempt.transcript)) for attempt in message.attempts]
        events = event_pages.message_events(db, caller=viewer.caller, message_id=message.id)
        return render(
            "message.html",
            viewer=viewer,
            message=message,
            attempts=attempts,
            events=events,
            cancelable=message.status in CANCELABLE,
            notice=NOTICES.get(notice),
            now=utcnow(),
        )


@router.get("/{message_id}/raw")
def raw_page(message_id: MessageId, viewer: ViewerDep) -> Response:
    """The RFC 5322 source as text in the page (the first 256 KiB), with a download link."""
    with session_scope() as db:
        raw = service.get_raw(db, caller=viewer.caller, message_id=message_id)
    return render(
        "raw.html",
        viewer=viewer,
        message_id=message_id,
        source=raw[:RAW_VIEW_BYTES].decode("utf-8", errors="replace"),
        size=len(raw),
        cut=len(raw) > RAW_VIEW_BYTES,
    )


@router.get("/{message_id}/raw.eml")
def raw_download(message_id: MessageId, viewer: ViewerDep) -> Response:
    """The exact bytes, as a file."""
    with session_scope() as db:
        raw = service.get_raw(db, caller=viewer.caller, message_id=message_id)
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{message_id}.eml"'},
    )


@router.post("/{message_id}/cancel")
def cancel(
    message_id: MessageId, viewer: ViewerDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    """Stop a message no worker holds yet; back to its page saying what happened."""
    viewer.authorize_change(csrf)
    notice = "canceled"
    with session_scope() as db:
        try:
            service.cancel_message(db, caller=viewer.caller, message_id=message_id, now=utcnow())
        except Conflict:
            notice = "not-cancelable"
    if notice == "canceled":
        viewer.audit("message canceled", message_id=message_id)
    return RedirectResponse(f"/ui/messages/{message_id}?notice={notice}", status_code=303)
