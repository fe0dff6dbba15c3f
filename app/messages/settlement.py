"""What an attempt means for the message, its recipients and its next try.

The worker hands over what the relay said (relay_results.AttemptResult); settle_attempt
decides, without writing anything, each tried recipient's new status, the attempt's row
and the message's next step, asking a RetryPolicy (backoff.py) when to try again. The
recorder writes a group of these Settlements at once (repository/recording.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.messages.models import Message
from app.messages.relay_results import AttemptResult
from app.messages.states import (
    OPEN_RECIPIENT,
    AttemptOutcome,
    MessageStatus,
    RecipientStatus,
    Stage,
    attempt_outcome_for,
    message_status_for,
)


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


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """When to try again, or None to give up on what is still deferred."""

    next_attempt_at: datetime | None


class RetryPolicy(Protocol):
    """When to try a message whose recipients are still deferred (backoff.py has ours)."""

    def __call__(self, message: Message, now: datetime) -> RetryDecision: ...


def settle_attempt(*, message: Message, result: AttemptResult, retry: RetryPolicy) -> Settlement:
    """Each tried recipient's outcome, the attempt and the message's next step, to be written.

    Decides only: nothing is written, so the worker can record many at once.
    """
    assert result.finished_at is not None
    now = result.finished_at
    tried = [r for r in message.recipients if r.email in result.recipients]
    open_after = [r for r in tried if result.recipients[r.email].status in OPEN_RECIPIENT]
    decision = retry(message, now) if open_after else RetryDecision(None)

    statuses = {r.id: r.status for r in message.recipients}
    changes = []
    for row in tried:
        outcome = result.recipients[row.email]
        status = outcome.status
        note = outcome.note
        if status in OPEN_RECIPIENT and decision.next_attempt_at is None:
            status = RecipientStatus.failed
            note = note or "retries exhausted"
        statuses[row.id] = status
        reply = outcome.reply
        changes.append(
            RecipientChange(
                id=row.id,
                status=status,
                smtp_code=reply.code if reply else None,
                enhanced_code=reply.enhanced if reply else outcome.enhanced,
                smtp_reply=reply.text if reply else note,
                attempts=row.attempts + 1,
            )
        )

    last = result.reply
    attempt = AttemptRecord(
        number=message.attempt_count + 1,
        started_at=result.started_at,
        finished_at=now,
        relay=result.relay,
        outcome=attempt_outcome_for(result.recipients[r.email].status for r in tried),
        stage=result.stage,
        smtp_code=last.code if last else None,
        enhanced_code=last.enhanced if last else result.enhanced,
        smtp_reply=last.text if last else None,
        error=result.error,
    )
    message_status = message_status_for(statuses.values())
    return Settlement(
        message_id=message.id,
        status=message_status,
        next_attempt_at=decision.next_attempt_at
        if message_status is MessageStatus.deferred
        else None,
        recipients=changes,
        attempt=attempt,
    )
