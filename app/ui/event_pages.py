"""The events page: what changed, newest first, with the filters of GET /v1/events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.clock import utcnow
from app.db import session_scope
from app.errors import InvalidFields
from app.events import service
from app.events.models import Event
from app.events.schemas import EventQuery
from app.events.types import EventType
from app.keys.service import Caller
from app.ui.forms import field_errors, read_query
from app.ui.render import render
from app.ui.viewer import ViewerDep
from app.webhooks import service as webhooks
from app.webhooks.models import Delivery

router = APIRouter(prefix="/events")

# A message's page lists this many of its events, newest first.
MESSAGE_EVENTS = 100


def summary(event: Event) -> str:
    """One line on what the event says, from its data (SPEC §7's shapes)."""
    data: dict[str, Any] = event.data or {}
    if "suppression" in data:
        entry = data["suppression"] or {}
        return f"{entry.get('email', '?')} suppressed ({entry.get('reason', '?')})"
    if "recipient" in data:
        recipient = data["recipient"] or {}
        reply = " ".join(
            str(part)
            for part in (recipient.get("smtp_code"), recipient.get("smtp_reply"))
            if part is not None
        )
        return f"{recipient.get('email', '?')}: {reply}".rstrip(": ")
    attempt = data.get("attempt") or {}
    if attempt:
        parts = (attempt.get("smtp_code"), attempt.get("enhanced_code"), attempt.get("smtp_reply"))
        reply = " ".join(str(part) for part in parts if part)
        return f"attempt {attempt.get('number', '?')}: {reply or attempt.get('error') or ''}"
    message = data.get("message") or {}
    return str(message.get("subject", ""))


def pretty(event: Event) -> str:
    return orjson.dumps(event.data, option=orjson.OPT_INDENT_2).decode()


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event as a row shows it, with the webhook requests made for it."""

    event: Event
    summary: str
    data: str
    deliveries: list[tuple[Delivery, str]]


def event_rows(session: Session, *, caller: Caller, events: list[Event]) -> list[EventRow]:
    """The rows of these events, each with its deliveries (one query for all of them)."""
    sent: dict[str, list[tuple[Delivery, str]]] = {}
    found = webhooks.deliveries_of_events(
        session, caller=caller, event_ids=[event.id for event in events]
    )
    for delivery, url in found:
        sent.setdefault(delivery.event_pk, []).append((delivery, url))
    return [EventRow(e, summary(e), pretty(e), sent.get(e.id, [])) for e in events]


def message_events(session: Session, *, caller: Caller, message_id: str) -> list[EventRow]:
    """A message's events, newest first, with their webhook deliveries (for its page)."""
    query = EventQuery(message_id=message_id, limit=MESSAGE_EVENTS)
    events = service.list_events(session, caller=caller, query=query).events
    return event_rows(session, caller=caller, events=events)


@router.get("")
def events_page(
    viewer: ViewerDep,
    type: str = "",
    message_id: str = "",
    created_after: str = "",
    created_before: str = "",
    cursor: str = "",
) -> Response:
    """The tenant's events, newest first, filtered as GET /v1/events is."""
    filters = {
        "type": type.strip(),
        "message_id": message_id.strip(),
        "created_after": created_after.strip(),
        "created_before": created_before.strip(),
    }
    query, errors = read_query(EventQuery, filters, cursor)
    events: list[Event] = []
    next_url = None
    with session_scope() as db:
        if query is not None:
            try:
                page = service.list_events(db, caller=viewer.caller, query=query)
            except InvalidFields as error:
                errors = field_errors(error)
            else:
                events = page.events
                if page.next_cursor:
                    kept = {k: v for k, v in filters.items() if v}
                    next_url = "/ui/events?" + urlencode({**kept, "cursor": page.next_cursor})
        return render(
            "events.html",
            status_code=422 if errors else 200,
            viewer=viewer,
            events=event_rows(db, caller=viewer.caller, events=events),
            filters=filters,
            types=[t.value for t in EventType],
            errors=errors,
            next_url=next_url,
            paged=bool(cursor),
            now=utcnow(),
        )
