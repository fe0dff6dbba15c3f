"""The recorder's statements: checking a group of holds, then writing the settled attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from app.messages.models import Attempt, Message, Recipient
from app.messages.settlement import AttemptRecord, RecipientChange, Settlement
from app.messages.states import MessageStatus
from app.orm import Base, json_rows

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


# Core statements run with executemany on SQLite: one call for a group, no unit of work.
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


# On PostgreSQL each table's rows go in one statement, read from one JSON array
# (app/orm.py json_rows): an executemany UPDATE or INSERT is planned and run once per row,
# a group's worth of round trips through the pipeline for the worker and of executions
# for the server.
_SETTLE_RECIPIENTS_PG = text(
    """
    UPDATE recipients AS r SET status = u.status, smtp_code = u.smtp_code,
        enhanced_code = u.enhanced_code, smtp_reply = u.smtp_reply, attempts = u.attempts,
        error = u.error, bounce_class = u.bounce_class
    FROM json_to_recordset(CAST(:rows AS json)) AS u(id integer, status varchar,
        smtp_code integer, enhanced_code varchar, smtp_reply text, attempts integer,
        error text, bounce_class varchar)
    WHERE r.id = u.id
    """
)
_SETTLE_MESSAGES_PG = text(
    """
    UPDATE messages AS m SET status = u.status, attempt_count = u.attempt_count,
        updated_at = u.updated_at, next_attempt_at = u.next_attempt_at,
        lease_expires_at = NULL
    FROM json_to_recordset(CAST(:rows AS json)) AS u(id varchar, status varchar,
        attempt_count integer, updated_at timestamp, next_attempt_at timestamp)
    WHERE m.id = u.id
    """
)
_ADD_ATTEMPTS_PG = text(
    """
    INSERT INTO attempts (message_pk, number, started_at, finished_at, relay, outcome, stage,
        smtp_code, enhanced_code, smtp_reply, error, bounce_class, transcript)
    SELECT message_pk, number, started_at, finished_at, relay, outcome, stage, smtp_code,
        enhanced_code, smtp_reply, error, bounce_class, transcript
    FROM json_to_recordset(CAST(:rows AS json)) AS u(message_pk varchar, number integer,
        started_at timestamp, finished_at timestamp, relay varchar, outcome varchar,
        stage varchar, smtp_code integer, enhanced_code varchar, smtp_reply text,
        error text, bounce_class varchar, transcript json)
    """
)


def add_attempts(session: Session, *, settled: Sequence[Settlement]) -> None:
    """Write settled attempts: recipients, attempt rows, messages; one statement each.

    The caller has checked (lock_held) that it still holds every one of these messages.
    """
    if not settled:
        return
    changes = [change for settlement in settled for change in settlement.recipients]
    on_postgres = session.get_bind().dialect.name == "postgresql"
    if changes:
        if on_postgres:
            session.execute(_SETTLE_RECIPIENTS_PG, {"rows": json_rows(_recipient_values(changes))})
        else:
            session.execute(_SETTLE_RECIPIENT, _prefixed("r_", _recipient_values(changes)))
    attempts = [_attempt_row(settlement.message_id, settlement.attempt) for settlement in settled]
    if on_postgres:
        session.execute(_ADD_ATTEMPTS_PG, {"rows": json_rows(attempts)})
    else:
        session.execute(insert(_attempt_table), attempts)
    messages: list[dict[str, object]] = [
        {
            "id": settlement.message_id,
            "status": settlement.status.value,
            "attempt_count": settlement.attempt.number,
            "updated_at": settlement.attempt.finished_at,
            "next_attempt_at": settlement.next_attempt_at,
        }
        for settlement in settled
    ]
    if on_postgres:
        session.execute(_SETTLE_MESSAGES_PG, {"rows": json_rows(messages)})
    else:
        session.execute(_SETTLE_MESSAGE, _prefixed("m_", messages))


def _recipient_values(changes: Sequence[RecipientChange]) -> list[dict[str, object]]:
    return [
        {
            "id": change.id,
            "status": change.status.value,
            "smtp_code": change.smtp_code,
            "enhanced_code": change.enhanced_code,
            "smtp_reply": change.smtp_reply,
            "attempts": change.attempts,
            "error": change.error,
            "bounce_class": change.bounce_class.value if change.bounce_class else None,
        }
        for change in changes
    ]


def _prefixed(prefix: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{prefix + name: value for name, value in row.items()} for row in rows]


def _attempt_row(message_id: str, attempt: AttemptRecord) -> dict[str, object]:
    return {
        "message_pk": message_id,
        "number": attempt.number,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "relay": attempt.relay,
        "outcome": attempt.outcome.value,
        "stage": attempt.stage.value,
        "smtp_code": attempt.smtp_code,
        "enhanced_code": attempt.enhanced_code,
        "smtp_reply": attempt.smtp_reply,
        "error": attempt.error,
        "bounce_class": attempt.bounce_class.value if attempt.bounce_class else None,
        "transcript": [
            {"at_ms": line.at_ms, "dir": line.dir, "line": line.line} for line in attempt.transcript
        ]
        if attempt.transcript is not None
        else None,
    }
