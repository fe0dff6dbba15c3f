"""The recorder's statements: checking a group of holds, then writing the settled attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from app.messages.models import Attempt, Message, Recipient
from app.messages.settlement import AttemptRecord, Settlement
from app.messages.states import MessageStatus
from app.orm import Base

# Tables for Core statements: executemany with no unit of work, where a whole group of
# rows is written at once.
_message_table = Base.metadata.tables[Message.__tablename__]
_recipient_table = Base.metadata.tables[Recipient.__tablename__]
_attempt_table = Base.metadata.tables[Attempt.__tablename__]


def lock_held(session: Session, *, holds: Sequence[tuple[str, datetime]]) -> set[str]:
    """Which of the (message id, token) pairs the caller still holds; locks those rows.

    One statement for a whole group; the rows stay locked until the commit, so no claim
    can take one between this check and the writes that follow it.
    """
    if not holds:
        return set()
    held = session.scalars(
        select(Message.id)
        .where(
            tuple_(Message.id, Message.lease_expires_at).in_(holds),
            Message.status == MessageStatus.sending,
        )
        # One order for every locker, so two groups never wait on each other in a circle.
        .order_by(Message.id)
        .with_for_update()
    )
    return set(held)


# Core statements run with executemany: one round trip for a group, no unit of work.
_SETTLE_RECIPIENT = (
    update(_recipient_table)
    .where(_recipient_table.c.id == bindparam("r_id"))
    .values(
        status=bindparam("r_status"),
        smtp_code=bindparam("r_smtp_code"),
        enhanced_code=bindparam("r_enhanced_code"),
        smtp_reply=bindparam("r_smtp_reply"),
        attempts=bindparam("r_attempts"),
        error=bindparam("r_error"),
        bounce_class=bindparam("r_bounce_class"),
    )
)
_SETTLE_MESSAGE = (
    update(_message_table)
    .where(_message_table.c.id == bindparam("m_id"))
    .values(
        status=bindparam("m_status"),
        attempt_count=bindparam("m_attempt_count"),
        updated_at=bindparam("m_updated_at"),
        next_attempt_at=bindparam("m_next_attempt_at"),
        lease_expires_at=None,
    )
)


def add_attempts(session: Session, *, settled: Sequence[Settlement]) -> None:
    """Write settled attempts: recipients, attempt rows, messages; one executemany each.

    The caller has checked (lock_held) that it still holds every one of these messages.
    """
    if not settled:
        return
    recipients = [
        {
            "r_id": change.id,
            "r_status": change.status,
            "r_smtp_code": change.smtp_code,
            "r_enhanced_code": change.enhanced_code,
            "r_smtp_reply": change.smtp_reply,
            "r_attempts": change.attempts,
            "r_error": change.error,
            "r_bounce_class": change.bounce_class,
        }
        for settlement in settled
        for change in settlement.recipients
    ]
    if recipients:
        session.execute(_SETTLE_RECIPIENT, recipients)
    session.execute(
        insert(_attempt_table),
        [_attempt_row(settlement.message_id, settlement.attempt) for settlement in settled],
    )
    session.execute(
        _SETTLE_MESSAGE,
        [
            {
                "m_id": settlement.message_id,
                "m_status": settlement.status,
                "m_attempt_count": settlement.attempt.number,
                "m_updated_at": settlement.attempt.finished_at,
                "m_next_attempt_at": settlement.next_attempt_at,
            }
            for settlement in settled
        ],
    )


def _attempt_row(message_id: str, attempt: AttemptRecord) -> dict[str, object]:
    return {
        "message_pk": message_id,
        "number": attempt.number,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "relay": attempt.relay,
        "outcome": attempt.outcome,
        "stage": attempt.stage,
        "smtp_code": attempt.smtp_code,
        "enhanced_code": attempt.enhanced_code,
        "smtp_reply": attempt.smtp_reply,
        "error": attempt.error,
        "bounce_class": attempt.bounce_class,
    }
