"""What the /v1/webhooks routes accept and answer (SPEC §7)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.events.types import EventType
from app.messages.fields import AwareDatetime, SingleLine, Text, UtcTimestamp
from app.webhooks.models import DeliveryStatus, DisabledReason, WebhookStatus

# Longer URLs are refused by many HTTP stacks anyway; a cap keeps the row small.
MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 500
MAX_REPLAY_IDS = 1000

# Printable ASCII, as every id Pochta hands out.
EventId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[!-~]+$")]

Url = Annotated[SingleLine, Field(min_length=1, max_length=MAX_URL_CHARS)]
Description = Annotated[Text, Field(max_length=MAX_DESCRIPTION_CHARS)]
EventTypes = Annotated[
    list[EventType],
    Field(
        max_length=len(EventType),
        description="The event types to send; omitted or empty: every type.",
        examples=[["message.sent", "message.failed"]],
    ),
]


def _known_once(types: list[EventType]) -> list[EventType]:
    """Each type once, in the order first given."""
    return list(dict.fromkeys(types))


class WebhookCreate(BaseModel):
    """The body of POST /v1/webhooks."""

    model_config = ConfigDict(extra="forbid")

    url: Url = Field(examples=["https://hooks.example.org/pochta"])
    events: EventTypes = []
    description: Description = ""

    @field_validator("events")
    @classmethod
    def _dedupe(cls, value: list[EventType]) -> list[EventType]:
        return _known_once(value)


class WebhookPatch(BaseModel):
    """The body of PATCH /v1/webhooks/{id}: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = Field(
        default=None, description="true: enabled again (what it missed comes by replay only)."
    )

    @field_validator("url", "events", "description", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Defaults are not validated: only an explicit null gets here.
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it")
        return value

    @field_validator("events")
    @classmethod
    def _dedupe(cls, value: list[EventType] | None) -> list[EventType] | None:
        return None if value is None else _known_once(value)


class WebhookOut(BaseModel):
    """The Webhook resource; its secret is shown only by create and rotate-secret."""

    id: str
    url: str
    events: list[EventType]
    description: str
    status: WebhookStatus
    disabled_reason: DisabledReason | None
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class WebhookWithSecret(WebhookOut):
    """The answer to create and rotate-secret: the only two that show the secret."""

    secret: str = Field(
        description="Signs every request (Standard Webhooks); keep it, it is not shown again.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookList(BaseModel):
    data: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One HTTP request made to an endpoint."""

    id: str
    event_id: str
    event_type: EventType
    attempt: int = Field(description="1 for the first request of this event to this endpoint.")
    status: DeliveryStatus
    response_status: int | None
    error: str | None
    duration_ms: int
    created_at: UtcTimestamp
    next_attempt_at: UtcTimestamp | None = Field(
        description="When the next request for this event is due; null if none is."
    )


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor`, with the same filters, for the next page; null at the end."
    )


class DeliveryQuery(BaseModel):
    """The query of GET /v1/webhooks/{id}/deliveries."""

    model_config = ConfigDict(extra="forbid")

    event_id: EventId | None = Field(default=None, examples=["evt_01jdq3z8x0d4v6m2k7r9t5w1ya"])
    status: DeliveryStatus | None = None
    limit: int = Field(default=20, ge=1, le=100, description="Page size, at most 100.")
    cursor: str | None = Field(
        default=None, max_length=200, description="The `next_cursor` of the previous page."
    )


class ReplayRequest(BaseModel):
    """The body of POST /v1/webhooks/{id}/replay: the events to send again."""

    model_config = ConfigDict(extra="forbid")

    event_ids: Annotated[list[EventId], Field(min_length=1, max_length=MAX_REPLAY_IDS)] | None = (
        Field(default=None, examples=[["evt_01jdq3z8x0d4v6m2k7r9t5w1ya"]])
    )
    since: AwareDatetime | None = Field(
        default=None,
        description="Every event created at or after this instant (RFC 3339, with a zone).",
        examples=["2026-12-01T00:00:00Z"],
    )

    @model_validator(mode="after")
    def _one_of(self) -> ReplayRequest:
        if (self.event_ids is None) == (self.since is None):
            raise ValueError("give either event_ids or since")
        return self


class ReplayQueued(BaseModel):
    queued: int = Field(description="How many events are due to be sent again.")
