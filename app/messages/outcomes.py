"""What a settled attempt writes, as plain rows: the service decides them, the repository
writes a group of them at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.messages.states import AttemptOutcome, MessageStatus, RecipientStatus, Stage


@dataclass(frozen=True, slots=True)
class RecipientChange:
    """One tried recipient's new status and the reply (or Pochta's note) that decided it."""

    id: int
    status: RecipientStatus
    smtp_code: int | None
    enhanced_code: str | None
    smtp_reply: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """The attempt's own row."""

    number: int
    started_at: datetime
    finished_at: datetime
    relay: str
    outcome: AttemptOutcome
    stage: Stage
    smtp_code: int | None
    enhanced_code: str | None
    smtp_reply: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Settlement:
    """Everything one attempt changes: its recipients, its row, the message's next step."""

    message_id: str
    status: MessageStatus
    next_attempt_at: datetime | None
    recipients: list[RecipientChange]
    attempt: AttemptRecord
