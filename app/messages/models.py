"""Tables of the messages domain: a message, one row per recipient, one per attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.bounces.classes import BounceClass
from app.clock import utcnow
from app.ids import new_id
from app.messages.states import AttemptOutcome, MessageStatus, RecipientStatus, Stage
from app.orm import Base, EnumText, UTCDateTime


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("msg_"))
    tenant: Mapped[str] = mapped_column(String(64))
    status: Mapped[MessageStatus] = mapped_column(EnumText(MessageStatus))
    from_header: Mapped[str] = mapped_column(Text)
    envelope_from: Mapped[str] = mapped_column(String(320))
    to_addrs: Mapped[list[str]] = mapped_column(JSON)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON)
    bcc_addrs: Mapped[list[str]] = mapped_column(JSON)
    reply_to_addrs: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    # The exact RFC 5322 bytes, built once at submit; loaded only when sending or asked for.
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    size: Mapped[int] = mapped_column(Integer)
    needs_smtputf8: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # Until then the message sits on the broker; after it, the scheduler hands it over again.
    dispatched_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Until then a worker holds the message in `sending`; after it, the worker is presumed dead.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="message", order_by="Recipient.position", lazy="raise"
    )
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="message", order_by="Attempt.number", lazy="raise"
    )

    __table_args__ = (
        Index("ix_messages_tenant_created", "tenant", "created_at", "id"),
        Index("ix_messages_due", "status", "next_attempt_at"),
    )


class Recipient(Base):
    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_pk: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[RecipientStatus] = mapped_column(EnumText(RecipientStatus))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    enhanced_code: Mapped[str | None] = mapped_column(String(16))
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Pochta's own note where the reply does not say it all ("gave up after 3 attempts").
    error: Mapped[str | None] = mapped_column(Text)
    bounce_class: Mapped[BounceClass | None] = mapped_column(EnumText(BounceClass, length=24))

    message: Mapped[Message] = relationship(back_populates="recipients", lazy="raise")

    __table_args__ = (
        Index("ix_recipients_message", "message_pk", "position"),
        Index("ix_recipients_email", "email"),
    )


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_pk: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    relay: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[AttemptOutcome] = mapped_column(EnumText(AttemptOutcome))
    stage: Mapped[Stage] = mapped_column(EnumText(Stage))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    enhanced_code: Mapped[str | None] = mapped_column(String(16))
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    bounce_class: Mapped[BounceClass | None] = mapped_column(EnumText(BounceClass, length=24))
    # The SMTP dialogue, [{"at_ms", "dir", "line"}], when POCHTA_TRANSCRIPTS keeps it.
    # SQL NULL when not kept (not JSON null), so `transcript IS NULL` says "not kept".
    transcript: Mapped[list[dict[str, Any]] | None] = deferred(
        mapped_column(JSON(none_as_null=True))
    )

    message: Mapped[Message] = relationship(back_populates="attempts", lazy="raise")

    __table_args__ = (Index("ix_attempts_message", "message_pk", "number", unique=True),)


class MessageTag(Base):
    __tablename__ = "message_tags"

    message_pk: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)

    __table_args__ = (Index("ix_message_tags_tag", "tag", "message_pk"),)
