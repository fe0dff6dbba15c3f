"""The queue's statements: which messages are due, claiming them, a task's leases on them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select, union_all, update
from sqlalchemy.orm import Session, selectinload, undefer

from app.messages.models import Message
from app.messages.states import CLAIMABLE, MessageStatus


def _due(now: datetime) -> object:
    return or_(
        and_(Message.status.in_(CLAIMABLE), Message.next_attempt_at <= now),
        # A `sending` message whose lease ran out lost its worker.
        and_(Message.status == MessageStatus.sending, Message.lease_expires_at < now),
    )


def claim(
    session: Session,
    *,
    message_ids: Sequence[str],
    now: datetime,
    lease_until: datetime,
    batch: int = 0,
) -> list[Message]:
    """Move the due ones among message_ids to `sending`, then other due `queued` ones until
    `batch` in all; a repeated claim of taken ids, with nothing else due, gets nothing.

    One statement on both backends. On PostgreSQL both halves skip rows another
    transaction holds (a concurrent claim, a cancel), so two workers never wait on each
    other and take disjoint sets. SQLite has no row locks, but every transaction there
    holds the write lock from BEGIN, so two claims cannot overlap. The claimed messages
    come back ready to deliver, bytes and recipients loaded, oldest first: the UPDATE
    returns the rows, one more query brings the recipients.
    """
    # Each part is materialised, so its locking SELECT runs once: as a plain subquery
    # PostgreSQL may rescan it for the UPDATE's join, and each rescan, skipping the rows
    # just updated, would take another batch. The ids are sent once, in `hinted`.
    hinted = (
        select(Message.id)
        .where(Message.id.in_(message_ids), _due(now))  # type: ignore[arg-type]
        .with_for_update(skip_locked=True)
        .cte("hinted")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # The others lock no row beyond the batch: a row locked and then left untouched
    # would be skipped by the claim of the task that carries it, and wait for the
    # scheduler. Oldest first along ix_messages_due, so the scan stops after the batch
    # even under a large backlog; scheduled and deferred ones come when the scheduler
    # rings for them.
    hinted_count = select(func.count()).select_from(hinted).scalar_subquery()
    others = (
        select(Message.id)
        .where(
            Message.status == MessageStatus.queued,
            Message.next_attempt_at <= now,
            Message.id.not_in(select(hinted.c.id)),
        )
        .order_by(Message.next_attempt_at)
        .limit(case((hinted_count < batch, batch - hinted_count), else_=0))
        .with_for_update(skip_locked=True)
        .cte("others")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    chosen = union_all(select(hinted.c.id), select(others.c.id))
    claimed = session.scalars(
        update(Message)
        .where(
            Message.id.in_(chosen),
            _due(now),  # type: ignore[arg-type]
        )
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


def postpone(
    session: Session, *, holds: Sequence[tuple[str, datetime, datetime]], now: datetime
) -> None:
    """Return held messages (id, lease token, due at) to the queue unattempted, due then:
    no relay could take them yet (SPEC §10). Rare, so one statement each."""
    for message_id, held_until, due_at in holds:
        session.execute(
            update(Message)
            .where(
                Message.id == message_id,
                Message.status == MessageStatus.sending,
                Message.lease_expires_at == held_until,
            )
            .values(
                status=case(
                    (Message.attempt_count == 0, MessageStatus.queued.value),
                    else_=MessageStatus.deferred.value,
                ),
                next_attempt_at=due_at,
                lease_expires_at=None,
                dispatched_until=None,
                updated_at=now,
            )
        )
