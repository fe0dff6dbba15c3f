"""The events' statements: one event, a page of them, and deleting the old ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from app.events.models import Event
from app.events.types import EventType
from app.ids import id_floor


def get(session: Session, *, tenant: str, event_id: str) -> Event | None:
    return session.scalar(select(Event).where(Event.id == event_id, Event.tenant == tenant))


def list_page(
    session: Session,
    *,
    tenant: str,
    type: EventType | None,
    message_id: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Event]:
    """Up to limit of a tenant's events, newest first, older than `before` (created_at, id).

    Walks ix_events_tenant_created backwards, or ix_events_message for one message.
    """
    query = select(Event).where(Event.tenant == tenant)
    if type is not None:
        query = query.where(Event.type == type)
    if message_id is not None:
        query = query.where(Event.message_pk == message_id)
    if created_after is not None:
        query = query.where(Event.created_at >= created_after)
    if created_before is not None:
        query = query.where(Event.created_at < created_before)
    if before is not None:
        query = query.where(tuple_(Event.created_at, Event.id) < before)
    query = query.order_by(Event.created_at.desc(), Event.id.desc()).limit(limit)
    return list(session.scalars(query))


def delete_older_than(session: Session, *, cutoff: datetime, limit: int) -> int:
    """Delete up to limit events made before cutoff, oldest first; how many went.

    Ids are time-ordered, so the primary key finds them, over every tenant, without an
    index on created_at that each insert on the worker's hot path would also pay for.
    """
    oldest = (
        select(Event.id).where(Event.id < id_floor("evt_", cutoff)).order_by(Event.id).limit(limit)
    )
    result = session.execute(
        delete(Event).where(Event.id.in_(oldest)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
