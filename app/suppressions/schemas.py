"""What the suppression API accepts and answers (SPEC §8)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.bounces.classes import BounceClass
from app.messages.fields import AwareDatetime, UtcTimestamp
from app.suppressions.models import SuppressionReason


class SuppressionSource(BaseModel):
    """The refusal behind an automatic entry."""

    message_id: str | None
    smtp_code: int | None
    enhanced_code: str | None
    smtp_reply: str | None
    bounce_class: BounceClass | None


class SuppressionOut(BaseModel):
    """The Suppression resource."""

    email: str
    reason: SuppressionReason
    note: str | None
    created_at: UtcTimestamp
    expires_at: UtcTimestamp | None = Field(
        description="After this the address may be sent to again; null: never expires."
    )
    source: SuppressionSource | None = Field(
        description="The refusal that added it (hard_bounce, complaint); null when added by hand."
    )


class SuppressionPage(BaseModel):
    data: list[SuppressionOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor`, with the same filters, for the next page; null at the end."
    )


class PutSuppression(BaseModel):
    """PUT /v1/suppressions/{email}: an address added by the tenant."""

    model_config = ConfigDict(extra="forbid")

    reason: Literal["manual", "unsubscribe"]
    note: str | None = Field(default=None, max_length=1000)


class SuppressionQuery(BaseModel):
    """The query of GET /v1/suppressions."""

    model_config = ConfigDict(extra="forbid")

    reason: SuppressionReason | None = None
    created_after: AwareDatetime | None = Field(
        default=None, description="Added at or after this instant (RFC 3339, with a zone)."
    )
    limit: int = Field(default=20, ge=1, le=100, description="Page size, at most 100.")
    cursor: str | None = Field(
        default=None, max_length=200, description="The `next_cursor` of the previous page."
    )
