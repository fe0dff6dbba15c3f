"""A message as accepted, before it is stored: plain rows, cheaper to make than ORM objects.

Submitting builds these (a batch builds up to 500), inserts them with Core statements and
answers from them; only messages read back from the database are ORM objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.bounces.classes import BounceClass
from app.messages.states import MessageStatus, RecipientStatus


@dataclass(slots=True)
class NewRecipient:
    """A `recipients` row to be; attribute names are the ORM's (app/messages/models.py)."""

    position: int
    kind: str
    email: str
    status: RecipientStatus = RecipientStatus.pending
    smtp_code: int | None = None
    enhanced_code: str | None = None
    smtp_reply: str | None = None
    attempts: int = 0
    error: str | None = None
    bounce_class: BounceClass | None = None


@dataclass(slots=True)
class NewMessage:
    """A `messages` row to be, with its recipients; attribute names are the ORM's."""

    id: str
    tenant: str
    status: MessageStatus
    from_header: str
    envelope_from: str
    to_addrs: list[str]
    cc_addrs: list[str]
    bcc_addrs: list[str]
    reply_to_addrs: list[str]
    subject: str
    message_id: str
    tags: list[str]
    metadata_: dict[str, Any]
    raw: bytes
    size: int
    needs_smtputf8: bool
    created_at: datetime
    updated_at: datetime
    send_at: datetime | None
    next_attempt_at: datetime | None
    dispatched_until: datetime | None
    recipients: list[NewRecipient]
    attempt_count: int = 0
    lease_expires_at: datetime | None = None
    attempts: tuple[()] = field(default=())
