"""Reading events: one by id, or a tenant's newest first, a keyset page at a time.

Pages work as GET /v1/messages's do (app/keyset.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.events import repository
from app.events.models import Event
from app.events.schemas import EventQuery
from app.keys.service import Caller
from app.keyset import decode_cursor, fingerprint, micros, page_of


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Event]
    next_cursor: str | None


def get_event(session: Session, *, caller: Caller, event_id: str) -> Event:
    event = repository.get(session, tenant=caller.tenant, event_id=event_id)
    if event is None:
        raise NotFound(f"no event {event_id}")
    return event


def list_events(session: Session, *, caller: Caller, query: EventQuery) -> Page:
    """One page of the caller's events, newest first, with the cursor of the next one."""
    made_for = _fingerprint(query, caller.tenant)
    after = decode_cursor(query.cursor, made_for) if query.cursor else None
    rows = repository.list_page(
        session,
        tenant=caller.tenant,
        type=query.type,
        message_id=query.message_id,
        created_after=query.created_after,
        created_before=query.created_before,
        before=(after.created_at, after.id) if after else None,
        limit=query.limit + 1,
    )
    page, next_cursor = page_of(rows, query.limit, made_for)
    return Page(events=page, next_cursor=next_cursor)


def _fingerprint(query: EventQuery, tenant: str) -> str:
    return fingerprint(
        "events",
        tenant,
        query.type.value if query.type else None,
        query.message_id,
        micros(query.created_after),
        micros(query.created_before),
    )
