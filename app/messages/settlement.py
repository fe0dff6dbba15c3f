"""What an attempt means for the message, its recipients and its next try.

The worker hands over what the relay said (relay_results.AttemptResult); settle_attempt
decides, without writing anything, each tried recipient's new status, the attempt's row
and the message's next step, asking a RetryPolicy (backoff.py) when to try again. The
recorder writes a group of these Settlements at once (repository/recording.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from app.bounces.classes import SUPPRESSING, BounceClass
from app.bounces.rules import classify
from app.messages.models import Message
from app.messages.relay_results import AttemptResult, RecipientResult
from app.messages.states import (
    OPEN_RECIPIENT,
    AttemptOutcome,
    MessageStatus,
    RecipientStatus,
    Stage,
    attempt_outcome_for,
    message_status_for,
)
from app.suppressions.models import SuppressionReason
from app.suppressions.service import NewSuppression


@dataclass(frozen=True, slots=True)
class RecipientChange:
    """One tried recipient's new status and the reply (or Pochta's note) that decided it."""

    id: int
    status: RecipientStatus
    smtp_code: int | None
    enhanced_code: str | None
    smtp_reply: str | None
    attempts: int
    # Why Pochta stopped where the reply alone would not say (it asked to try later).
    error: str | None
    # What kind of refusal it was (SPEC §8); None when the relay took it.
    bounce_class: BounceClass | None = None


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
    bounce_class: BounceClass | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """Everything one attempt changes: its recipients, its row, the message's next step."""

    message_id: str
    status: MessageStatus
    next_attempt_at: datetime | None
    recipients: list[RecipientChange]
    attempt: AttemptRecord
    # Set when this attempt ended the retries: the note its deferred recipients failed with.
    gave_up: str | None = None
    # Addresses this attempt proved wrong (failed, bad_mailbox or bad_domain), to suppress.
    suppress: tuple[NewSuppression, ...] = ()


@dataclass(frozen=True, slots=True)
class AttemptsSpent:
    """The retries ended because the message had this many attempts."""

    attempts: int


@dataclass(frozen=True, slots=True)
class LifetimeSpent:
    """The retries ended because the message had been due for longer than this."""

    lifetime: timedelta


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """When to try again; or None to give up on what is still deferred, and which limit
    said so."""

    next_attempt_at: datetime | None
    limit: AttemptsSpent | LifetimeSpent | None = None


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
    if decision.next_attempt_at is not None and result.retry_at is not None:
        decision = RetryDecision(result.retry_at, decision.limit)

    gave_up = give_up_note(decision) if open_after and decision.next_attempt_at is None else None

    statuses = {r.id: r.status for r in message.recipients}
    changes = []
    suppress = []
    for row in tried:
        outcome = result.recipients[row.email]
        status = outcome.status
        error = None
        if status in OPEN_RECIPIENT and gave_up is not None:
            # The reply says "try later"; the recipient fails because Pochta stopped trying.
            status = RecipientStatus.failed
            error = gave_up
        statuses[row.id] = status
        reply = outcome.reply
        changes.append(
            RecipientChange(
                id=row.id,
                status=status,
                smtp_code=reply.code if reply else None,
                enhanced_code=reply.enhanced if reply else outcome.enhanced,
                smtp_reply=reply.text if reply else outcome.note,
                attempts=row.attempts + 1,
                error=error,
                bounce_class=_class_of(status, outcome, result),
            )
        )
        if status is RecipientStatus.failed and changes[-1].bounce_class in SUPPRESSING:
            suppress.append(_hard_bounce(message, row.email, changes[-1]))

    last = result.reply
    attempt_outcome = attempt_outcome_for(result.recipients[r.email].status for r in tried)
    attempt = AttemptRecord(
        number=message.attempt_count + 1,
        started_at=result.started_at,
        finished_at=now,
        relay=result.relay,
        outcome=attempt_outcome,
        stage=result.stage,
        smtp_code=last.code if last else None,
        enhanced_code=last.enhanced if last else result.enhanced,
        smtp_reply=last.text if last else None,
        error=result.error,
        bounce_class=None
        if attempt_outcome is AttemptOutcome.sent
        else classify(
            last.code if last else None,
            last.enhanced if last else result.enhanced,
            last.text if last else None,
            stage=result.stage,
            error=result.error,
        ),
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
        gave_up=gave_up,
        suppress=tuple(suppress),
    )


def _class_of(
    status: RecipientStatus, outcome: RecipientResult, result: AttemptResult
) -> BounceClass | None:
    """The bounce class of a recipient's refusal; None when the relay took it."""
    if status is RecipientStatus.sent:
        return None
    reply = outcome.reply
    if reply is None:
        return classify(None, outcome.enhanced, None, stage=result.stage, error=outcome.note)
    return classify(reply.code, reply.enhanced, reply.text, stage=result.stage)


def _hard_bounce(message: Message, email: str, change: RecipientChange) -> NewSuppression:
    return NewSuppression(
        tenant=message.tenant,
        email=email,
        reason=SuppressionReason.hard_bounce,
        source={
            "message_id": message.id,
            "smtp_code": change.smtp_code,
            "enhanced_code": change.enhanced_code,
            "smtp_reply": change.smtp_reply,
            "bounce_class": change.bounce_class,
        },
    )


def give_up_note(decision: RetryDecision) -> str:
    """What a recipient that is failed for want of another try says about it."""
    match decision.limit:
        case AttemptsSpent(attempts=attempts):
            return f"gave up after {_count(attempts, 'attempt')}"
        case LifetimeSpent(lifetime=lifetime):
            return f"retry lifetime of {spoken_duration(lifetime)} exceeded"
    return "gave up retrying"


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def spoken_duration(duration: timedelta) -> str:
    """A duration in the units it falls into: "5 days", "1 day 12 hours",
    "1 minute 30 seconds", "0.25 seconds"."""
    # Whole milliseconds: the settings take fractions, and float noise must not show.
    milliseconds = round(duration.total_seconds() * 1000)
    parts = []
    for name, seconds in _UNITS:
        amount, milliseconds = divmod(milliseconds, seconds * 1000)
        if amount:
            parts.append(_count(amount, name))
    if milliseconds or not parts:
        seconds_text = f"{milliseconds / 1000:.3f}".rstrip("0").rstrip(".")
        parts.append(f"{seconds_text} second{'' if seconds_text == '1' else 's'}")
    return " ".join(parts)


def _count(amount: int, unit: str) -> str:
    return f"{amount} {unit}{'' if amount == 1 else 's'}"
