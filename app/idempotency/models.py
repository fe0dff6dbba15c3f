"""The idempotency_records table: one row per Idempotency-Key of an API key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import utcnow
from app.orm import Base, UTCDateTime


class IdempotencyRecord(Base):
    """A request made with an Idempotency-Key, and the answer it got once it finished."""

    __tablename__ = "idempotency_records"

    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    location: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_idempotency_records_created", "created_at"),)
