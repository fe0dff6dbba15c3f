"""The API's shapes of events: the Event resource, a page of them, the listing's query."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.events.models import Event
from app.events.types import EventType
from app.messages.fields import AwareDatetime, UtcTimestamp


class EventOut(BaseModel):
    """The Event resource (SPEC §7), also the body of every webhook request."""

    id: str
    type: EventType
    timestamp: UtcTimestamp = Field(description="When the change was made.")
    data: dict[str, Any] = Field(
        description='`{"message", "attempt"}` for message.*, `{"message", "recipient", '
        '"report"}` for recipient.*, `{"suppression"}` for suppression.created; the '
        "message as it was right after the change, without its attempts."
    )


def event_out(event: Event) -> EventOut:
    return EventOut(id=event.id, type=event.type, timestamp=event.created_at, data=event.data)


class EventPage(BaseModel):
    """One page of GET /v1/events; next_cursor is null on the last page."""

    data: list[EventOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor`, with the same filters, for the next page; null at the end."
    )


class EventQuery(BaseModel):
    """The query of GET /v1/events: filters (all optional), page size and cursor."""

    # A misspelt filter is a 422, not a listing of everything.
    model_config = ConfigDict(extra="forbid")

    type: EventType | None = Field(default=None, examples=["message.sent"])
    message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Events about this message: its `id`, as POST /v1/messages returned it.",
        examples=["msg_01jdq3z8x0d4v6m2k7r9t5w1ya"],
    )
    created_after: AwareDatetime | None = Field(
        default=None,
        description="Made at or after this instant (RFC 3339, with a zone).",
        examples=["2026-11-27T00:00:00Z"],
    )
    created_before: AwareDatetime | None = Field(
        default=None,
        description="Made before this instant (RFC 3339, with a zone).",
        examples=["2026-11-28T00:00:00Z"],
    )
    limit: int = Field(default=20, ge=1, le=100, description="Page size, at most 100.")
    cursor: str | None = Field(
        default=None, max_length=200, description="The `next_cursor` of the previous page."
    )
