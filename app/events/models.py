"""The events table: every change a caller may react to, kept for GET /v1/events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import utcnow
from app.events.types import EventType
from app.ids import new_id
from app.orm import Base, EnumText, UTCDateTime


class Event(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("evt_"))
    tenant: Mapped[str] = mapped_column(String(64))
    type: Mapped[EventType] = mapped_column(EnumText(EventType, length=32))
    # No foreign key: an event outlives nothing it names, but must not block a purge.
    message_pk: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The event's `data` as sent in every webhook request: a snapshot at the change.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_events_tenant_created", "tenant", "created_at", "id"),
        Index("ix_events_message", "message_pk"),
    )


class EventToFanOut(Base):
    """An event the webhook fan-out has not yet made deliveries for: inserted with it,
    deleted by the fan-out. A narrow row of its own, so the event's row is written once
    (marking it in place rewrote the whole row and every index of the table)."""

    __tablename__ = "events_to_fan_out"

    event_pk: Mapped[str] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
