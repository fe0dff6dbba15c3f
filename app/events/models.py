"""The events table: every change a caller may react to, kept for GET /v1/events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
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
    # Until set, the webhook fan-out has not yet made this event's deliveries.
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_events_tenant_created", "tenant", "created_at", "id"),
        Index("ix_events_message", "message_pk"),
        Index("ix_events_fan_out", "fanned_out_at", "created_at"),
    )
