"""The suppression list: addresses a tenant never sends to, and why (SPEC §8)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import utcnow
from app.orm import Base, EnumText, UTCDateTime


class SuppressionReason(StrEnum):
    hard_bounce = "hard_bounce"
    complaint = "complaint"
    manual = "manual"
    unsubscribe = "unsubscribe"


class Suppression(Base):
    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    # As given; compared through email_key.
    email: Mapped[str] = mapped_column(String(320))
    # The address lower-cased: addresses are compared case-insensitively, per tenant.
    email_key: Mapped[str] = mapped_column(String(320))
    reason: Mapped[SuppressionReason] = mapped_column(EnumText(SuppressionReason))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # {"message_id", "smtp_code", "enhanced_code", "smtp_reply", "bounce_class"} or None.
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_suppressions_address", "tenant", "email_key", unique=True),
        Index("ix_suppressions_tenant_created", "tenant", "created_at", "id"),
    )
