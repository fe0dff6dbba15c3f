"""Webhook endpoints, the deliveries still owed to them, and the log of every request."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import utcnow
from app.events.types import EventType
from app.ids import new_id
from app.orm import Base, EnumText, UTCDateTime


class WebhookStatus(StrEnum):
    enabled = "enabled"
    disabled = "disabled"


class DisabledReason(StrEnum):
    gone = "gone"
    failing = "failing"
    manual = "manual"


class DeliveryStatus(StrEnum):
    succeeded = "succeeded"
    failed = "failed"


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("wh_"))
    tenant: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    # Empty: every type.
    events: Mapped[list[EventType]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[WebhookStatus] = mapped_column(EnumText(WebhookStatus))
    disabled_reason: Mapped[DisabledReason | None] = mapped_column(EnumText(DisabledReason))
    # The signing secrets, encrypted under POCHTA_SECRET_KEY: a dump alone cannot sign.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Since when every request to it has failed; None after any success.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_webhooks_tenant", "tenant", "created_at", "id"),)


class PendingDelivery(Base):
    """An event still owed to an endpoint: sent when due, gone once delivered or given up."""

    __tablename__ = "webhook_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_pk: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_pk: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    # Requests made so far for this event to this endpoint.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Until then it sits on the broker; after it, the scheduler hands it over again.
    dispatched_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While set and ahead, a worker holds it and its request is open: it takes one of the
    # endpoint's POCHTA_WEBHOOK_MAX_IN_FLIGHT slots. A worker that died frees it by expiry.
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_webhook_pending_pair", "webhook_pk", "event_pk", unique=True),
        Index("ix_webhook_pending_due", "next_attempt_at"),
        Index("ix_webhook_pending_leased", "webhook_pk", "leased_until"),
        # A sender that just finished a request takes the endpoint's next due one.
        Index("ix_webhook_pending_endpoint_due", "webhook_pk", "next_attempt_at"),
    )


class Delivery(Base):
    """One HTTP request made to an endpoint, kept for GET /v1/webhooks/{id}/deliveries."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("whd_"))
    webhook_pk: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_pk: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[EventType] = mapped_column(EnumText(EventType, length=32))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[DeliveryStatus] = mapped_column(EnumText(DeliveryStatus))
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook", "webhook_pk", "created_at", "id"),
        Index("ix_webhook_deliveries_event", "event_pk"),
    )
