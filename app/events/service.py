"""Reading events: one by id, or a tenant's newest first, a keyset page at a time.

Pages work as GET /v1/messages's do (app/messages/listing.py, whose cursor format this
shares): a page starts strictly after the last event of the one before, and a cursor
carries a fingerprint of the filters and tenant it was made for, so it is refused
(422) with other filters.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.events import repository
from app.events.models import Event
from app.events.schemas import EventQuery
from app.keys.service import Caller
from app.messages.listing import decode_cursor, page_of

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    """A short digest of the filters (not the page size) and the tenant, kept in a cursor."""
    canonical = [
        "events",
        tenant,
        query.type.value if query.type else None,
        query.message_id,
        _micros(query.created_after),
        _micros(query.created_before),
    ]
    digest = hashlib.sha256(orjson.dumps(canonical)).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def _micros(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1)
