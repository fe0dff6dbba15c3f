"""Every SQL statement of the messages domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload, undefer

from app.messages.models import Attempt, Message, MessageTag, Recipient
from app.messages.states import CANCELABLE, CLAIMABLE, MessageStatus, RecipientStatus


def add_messages(session: Session, messages: Sequence[Message]) -> None:
    """Insert messages with their recipients and tags in one flush (not committed)."""
    session.add_all(messages)
    session.flush()
    tags = [{"message_pk": m.id, "tag": t} for m in messages for t in set(m.tags)]
    if tags:
        session.execute(insert(MessageTag), tags)


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
) -> list[str]:
    """Move the due ones among message_ids to `sending`; a repeated claim gets nothing."""
    rows = session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), _due(now))  # type: ignore[arg-type]
        .values(
            status=MessageStatus.sending,
            lease_expires_at=lease_until,
            dispatched_until=None,
            updated_at=now,
        )
        .returning(Message.id)
    )
    return [row.id for row in rows]


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


def load_for_delivery(session: Session, *, message_ids: Sequence[str]) -> list[Message]:
    """The claimed messages with their bytes and recipients, in two queries."""
    return list(
        session.scalars(
            select(Message)
            .where(Message.id.in_(message_ids))
            .options(undefer(Message.raw), selectinload(Message.recipients))
            .order_by(Message.created_at)
        )
    )


def add_attempt(session: Session, attempt: Attempt) -> None:
    session.add(attempt)
