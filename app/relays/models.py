"""The relays' shared state in the database, for the embedded mode (Redis otherwise)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.orm import Base, UTCDateTime


class RelayStateRow(Base):
    """One relay's pause, down mark, shaped rate and rate-limit cursor."""

    __tablename__ = "relay_states"

    relay: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The rate set by the last `rate_limited` reply (messages per second) and when.
    base_rate: Mapped[float | None] = mapped_column(Float)
    limited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    down_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The reply or error behind the last state change, for `pochta relays` and the logs.
    reason: Mapped[str | None] = mapped_column(Text)
    # GCRA: the earliest time (unix seconds) the next message may go.
    next_slot: Mapped[float | None] = mapped_column(Float)


class RelaySessionRow(Base):
    """An open session with a relay, held by one worker process until it expires."""

    __tablename__ = "relay_sessions"
    __table_args__ = (Index("ix_relay_sessions_relay", "relay", "expires_at"),)

    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    relay: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
