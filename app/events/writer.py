"""Writing events: rows inserted in the caller's transaction, one executemany for many.

The change and its event commit together or not at all (SPEC §7), so every writer of a
status (the worker's recorder, cancel, submit, the bounce reader) adds its events to the
transaction that makes the change, through add_events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from app.events.models import Event, EventToFanOut
from app.events.types import EventType
from app.ids import new_id
from app.orm import Base, json_rows

_event_table = Base.metadata.tables[Event.__tablename__]
_to_fan_out = Base.metadata.tables[EventToFanOut.__tablename__]


def event_row(
    *,
    type: EventType,
    tenant: str,
    message_id: str | None,
    data: dict[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """One event as a row for add_events; `data` must already be JSON-ready."""
    return {
        # Ordered by when the change was made, as created_at is: the retention purge
        # finds old events by their id (app/events/repository.py).
        "id": new_id("evt_", at),
        "tenant": tenant,
        "type": type,
        "message_pk": message_id,
        "created_at": at,
        "data": data,
    }


# On PostgreSQL the events and their marks are one statement, however many: an
# executemany is run once per row by the server (app/messages/repository/recording.py).
_ADD_EVENTS_PG = text(
    """
    WITH added AS (
        INSERT INTO events (id, tenant, type, message_pk, created_at, data)
        SELECT id, tenant, type, message_pk, created_at, data
        FROM json_to_recordset(CAST(:rows AS json)) AS u(id varchar, tenant varchar,
            type varchar, message_pk varchar, created_at timestamp, data json)
        RETURNING id
    )
    INSERT INTO events_to_fan_out (event_pk) SELECT id FROM added
    """
)


def add_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert events in the session's transaction, and their marks for the webhook
    fan-out: one statement for each (one for both on PostgreSQL), however many events."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_ADD_EVENTS_PG, {"rows": json_rows(rows)})
        return
    session.execute(insert(_event_table), list(rows))
    session.execute(insert(_to_fan_out), [{"event_pk": row["id"]} for row in rows])
