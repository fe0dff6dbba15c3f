"""Every SQL statement of the messages domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, insert, or_, select, tuple_, update
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


def lock_held(session: Session, *, message_id: str, held_until: datetime) -> bool:
    """Whether the caller still holds the message; locks its row until the commit."""
    held = session.scalar(
        select(Message.id)
        .where(
            Message.id == message_id,
            Message.status == MessageStatus.sending,
            Message.lease_expires_at == held_until,
        )
        .with_for_update()
    )
    return held is not None


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
