"""Every SQL statement of the messages domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session, selectinload, undefer

from app.messages.models import Attempt, Message, MessageTag, Recipient
from app.messages.new_message import NewMessage
from app.messages.outcomes import AttemptRecord, Settlement
from app.messages.states import CANCELABLE, CLAIMABLE, MessageStatus, RecipientStatus
from app.orm import Base

# Tables for Core statements: executemany with no unit of work, where a whole group of
# rows is written at once.
_message_table = Base.metadata.tables[Message.__tablename__]
_recipient_table = Base.metadata.tables[Recipient.__tablename__]
_attempt_table = Base.metadata.tables[Attempt.__tablename__]


def add_messages(session: Session, messages: Sequence[NewMessage]) -> None:
    """Insert messages with their recipients and tags, one statement a table (not committed).

    Core inserts: the ORM's unit of work would cost more than the statements themselves.
    """
    if not messages:
        return
    session.execute(insert(_message_table), [_row(m, MESSAGE_COLUMNS) for m in messages])
    recipients = [
        _row(r, RECIPIENT_COLUMNS) | {"message_pk": m.id} for m in messages for r in m.recipients
    ]
    session.execute(insert(_recipient_table), recipients)
    tags = [{"message_pk": m.id, "tag": t} for m in messages for t in set(m.tags)]
    if tags:
        session.execute(insert(MessageTag), tags)


# (column, attribute) of each column a new row gets, named as in the ORM classes; a
# recipient's id is the database's.
MESSAGE_COLUMNS = tuple((p.columns[0].name, p.key) for p in Message.__mapper__.column_attrs)
RECIPIENT_COLUMNS = tuple(
    (p.columns[0].name, p.key)
    for p in Recipient.__mapper__.column_attrs
    if p.key not in ("id", "message_pk")
)


def _row(entity: object, columns: Sequence[tuple[str, str]]) -> dict[str, object]:
    return {column: getattr(entity, key) for column, key in columns}


def get_detailed(session: Session, *, tenant: str, message_id: str) -> Message | None:
    """A tenant's message with recipients and attempts, in three indexed queries."""
    return session.scalars(
        select(Message)
        .where(Message.id == message_id, Message.tenant == tenant)
        .options(selectinload(Message.recipients), selectinload(Message.attempts))
        .execution_options(populate_existing=True)
    ).one_or_none()


def get_raw(session: Session, *, tenant: str, message_id: str) -> bytes | None:
    return session.scalar(
        select(Message.raw).where(Message.id == message_id, Message.tenant == tenant)
    )


def cancel(session: Session, *, tenant: str, message_id: str, now: datetime) -> bool:
    """Cancel if nobody holds it yet; False when the message is sending or finished."""
    result = session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.tenant == tenant,
            Message.status.in_(CANCELABLE),
        )
        .values(status=MessageStatus.canceled, updated_at=now, next_attempt_at=None)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return False
    session.execute(
        update(Recipient)
        .where(
            Recipient.message_pk == message_id,
            Recipient.status.in_((RecipientStatus.pending, RecipientStatus.deferred)),
        )
        .values(status=RecipientStatus.canceled)
    )
    return True


def _due(now: datetime) -> object:
    return or_(
        and_(Message.status.in_(CLAIMABLE), Message.next_attempt_at <= now),
        # A `sending` message whose lease ran out lost its worker.
        and_(Message.status == MessageStatus.sending, Message.lease_expires_at < now),
    )


def claim(
    session: Session, *, message_ids: Sequence[str], now: datetime, lease_until: datetime
) -> list[Message]:
    """Move the due ones among message_ids to `sending`; a repeated claim gets nothing.

    The claimed messages come back ready to deliver, bytes and recipients loaded, oldest
    first: the UPDATE returns the rows, one more query brings the recipients.
    """
    claimed = session.scalars(
        update(Message)
        .where(Message.id.in_(message_ids), _due(now))  # type: ignore[arg-type]
        .values(
            status=MessageStatus.sending,
            lease_expires_at=lease_until,
            dispatched_until=None,
            updated_at=now,
        )
        .returning(Message)
        .options(undefer(Message.raw), selectinload(Message.recipients))
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed, key=lambda message: (message.created_at, message.id))


def take_due(session: Session, *, now: datetime, until: datetime, limit: int) -> list[str]:
    """Mark up to limit due messages as handed to the broker until `until`; their ids."""
    candidates = (
        select(Message.id)
        .where(
            _due(now),  # type: ignore[arg-type]
            or_(Message.dispatched_until.is_(None), Message.dispatched_until < now),
        )
        .order_by(Message.next_attempt_at)
        .limit(limit)
        # Two schedulers on PostgreSQL split the work instead of waiting on each other;
        # SQLite ignores this and serialises them with its write lock (BEGIN IMMEDIATE).
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(candidates))
    if ids:
        session.execute(update(Message).where(Message.id.in_(ids)).values(dispatched_until=until))
    return ids


def release_dispatch(session: Session, *, message_ids: Sequence[str]) -> None:
    """Let the scheduler hand these over at once (their broker publish failed)."""
    session.execute(
        update(Message).where(Message.id.in_(message_ids)).values(dispatched_until=None)
    )


# A task's hold on the messages it claimed (worker/lease.py). The lease's expiry time is
# the hold's token: a message re-claimed after its lease ran out has another one.


def renew_lease(
    session: Session, *, message_id: str, held_until: datetime, lease_until: datetime
) -> bool:
    """Extend a lease the caller still holds; False if the message was taken from it."""
    result = session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.status == MessageStatus.sending,
            Message.lease_expires_at == held_until,
        )
        .values(lease_expires_at=lease_until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


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


def hand_back(
    session: Session, *, message_ids: Sequence[str], held_until: datetime, now: datetime
) -> int:
    """Return held, unstarted messages to the queue, due at once; how many were returned."""
    returned = 0
    for first_try, status in ((True, MessageStatus.queued), (False, MessageStatus.deferred)):
        result = session.execute(
            update(Message)
            .where(
                Message.id.in_(message_ids),
                Message.status == MessageStatus.sending,
                Message.lease_expires_at == held_until,
                (Message.attempt_count == 0) if first_try else (Message.attempt_count > 0),
            )
            .values(status=status, lease_expires_at=None, dispatched_until=None, updated_at=now)
        )
        returned += result.rowcount  # type: ignore[attr-defined]
    return returned


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
    }


# Listing and counting (GET /v1/messages, /metrics).


def list_page(
    session: Session,
    *,
    tenant: str,
    status: MessageStatus | None,
    tag: str | None,
    recipient_any_of: Sequence[str] | None,
    created_after: datetime | None,
    created_before: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Message]:
    """Up to limit of a tenant's messages, newest first, older than `before` (created_at, id).

    Walks ix_messages_tenant_created backwards; tag and recipient are semi-joins on
    ix_message_tags_tag and ix_recipients_email. Recipients and attempts come in one
    query each for the whole page.
    """
    query = select(Message).where(Message.tenant == tenant)
    if status is not None:
        query = query.where(Message.status == status)
    if tag is not None:
        query = query.where(
            Message.id.in_(select(MessageTag.message_pk).where(MessageTag.tag == tag))
        )
    if recipient_any_of:
        query = query.where(
            Message.id.in_(
                select(Recipient.message_pk).where(Recipient.email.in_(recipient_any_of))
            )
        )
    if created_after is not None:
        query = query.where(Message.created_at >= created_after)
    if created_before is not None:
        query = query.where(Message.created_at < created_before)
    if before is not None:
        # A plain tuple on the right binds through the columns' own types (UTCDateTime).
        query = query.where(tuple_(Message.created_at, Message.id) < before)
    query = (
        query.order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
        .options(selectinload(Message.recipients), selectinload(Message.attempts))
    )
    return list(session.scalars(query))


def count_by_status(session: Session) -> dict[MessageStatus, int]:
    """How many messages are in each status, over every tenant."""
    rows = session.execute(select(Message.status, func.count()).group_by(Message.status))
    return {status: int(count) for status, count in rows}
