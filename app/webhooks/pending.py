"""SQL over the deliveries still owed: fan-out, what is due, a worker's claim, the outcome.

Every statement that changes an endpoint's in-flight count first locks the endpoint's row
(FOR NO KEY UPDATE on PostgreSQL, so the fan-out's foreign-key checks are not blocked;
SQLite's BEGIN IMMEDIATE serialises everything anyway): two workers can then never both
take the last slot, and every transaction takes its locks in one order, endpoint first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.events.models import Event
from app.events.types import EventType
from app.webhooks.models import Delivery, PendingDelivery, Webhook, WebhookStatus


@dataclass(frozen=True)
class Claimed:
    """A pending delivery a worker holds, with what its request needs."""

    pending_id: int
    lease_until: datetime
    attempt: int
    webhook_id: str
    url: str
    # Encrypted, newest first: the current secret, then the previous one while it lasts.
    secrets: tuple[str, ...]
    event_id: str
    event_type: EventType
    event_created_at: datetime
    event_data: dict[str, Any]


def fan_out(session: Session, *, now: datetime, limit: int) -> int:
    """Make one pending delivery per subscribed, enabled endpoint for up to limit events not
    yet fanned out, and mark them fanned out; how many events were."""
    events = session.execute(
        select(Event.id, Event.tenant, Event.type)
        .where(Event.fanned_out_at.is_(None))
        .order_by(Event.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not events:
        return 0
    endpoints: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for webhook_id, tenant, types in session.execute(
        select(Webhook.id, Webhook.tenant, Webhook.events).where(
            Webhook.tenant.in_({event.tenant for event in events}),
            Webhook.status == WebhookStatus.enabled,
        )
    ):
        endpoints[tenant].append((webhook_id, list(types or [])))
    rows = [
        {
            "webhook_pk": webhook_id,
            "event_pk": event.id,
            "attempts": 0,
            "next_attempt_at": now,
            "dispatched_until": None,
            "leased_until": None,
            "created_at": now,
        }
        for event in events
        for webhook_id, types in endpoints[event.tenant]
        if not types or event.type in types
    ]
    if rows:
        session.execute(insert(PendingDelivery), rows)
    session.execute(
        update(Event).where(Event.id.in_([event.id for event in events])).values(fanned_out_at=now)
    )
    return len(events)


def take_due(
    session: Session, *, now: datetime, until: datetime, limit: int, max_in_flight: int
) -> list[int]:
    """Mark up to limit due deliveries as on the broker until `until`; their ids.

    No endpoint gets more than its free slots (max_in_flight less what is already open or
    on the broker), so a dead endpoint's backlog does not fill the queue with tasks that
    could only wait.
    """
    other = aliased(PendingDelivery)
    taken = (
        select(other.webhook_pk, func.count().label("taken"))
        .where(or_(other.leased_until >= now, other.dispatched_until >= now))
        .group_by(other.webhook_pk)
        .subquery()
    )
    ranked = (
        select(
            PendingDelivery.id,
            PendingDelivery.next_attempt_at,
            func.row_number()
            .over(
                partition_by=PendingDelivery.webhook_pk,
                order_by=(PendingDelivery.next_attempt_at, PendingDelivery.id),
            )
            .label("rank"),
            func.coalesce(taken.c.taken, 0).label("taken"),
        )
        .outerjoin(taken, taken.c.webhook_pk == PendingDelivery.webhook_pk)
        .where(
            PendingDelivery.next_attempt_at <= now,
            or_(PendingDelivery.dispatched_until.is_(None), PendingDelivery.dispatched_until < now),
            or_(PendingDelivery.leased_until.is_(None), PendingDelivery.leased_until < now),
        )
        .subquery()
    )
    chosen = (
        select(ranked.c.id)
        .where(ranked.c.rank + ranked.c.taken <= max_in_flight)
        .order_by(ranked.c.next_attempt_at)
        .limit(limit)
    )
    # Two schedulers on PostgreSQL split the work (the window cannot be locked itself).
    ids = list(
        session.scalars(
            select(PendingDelivery.id)
            .where(PendingDelivery.id.in_(chosen))
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(
            update(PendingDelivery)
            .where(PendingDelivery.id.in_(ids))
            .values(dispatched_until=until)
        )
    return ids


def release_dispatch(session: Session, *, pending_ids: Sequence[int]) -> None:
    """Let the scheduler hand these over at once (their publish failed)."""
    session.execute(
        update(PendingDelivery)
        .where(PendingDelivery.id.in_(pending_ids))
        .values(dispatched_until=None)
    )


def lock_webhook(session: Session, webhook_id: str) -> Webhook | None:
    return session.scalars(
        select(Webhook).where(Webhook.id == webhook_id).with_for_update(key_share=True)
    ).one_or_none()


BUSY = "busy"


def claim(
    session: Session,
    *,
    pending_id: int,
    now: datetime,
    lease_until: datetime,
    max_in_flight: int,
    busy_until: datetime,
) -> Claimed | str | None:
    """Take a due delivery under a lease if its endpoint has a free slot.

    None: nothing to do (delivered, taken by another worker, endpoint disabled or gone).
    BUSY: every slot is taken; the delivery is due again at busy_until, no attempt counted.
    Two statements on the way that sends: one read that locks the endpoint, one UPDATE
    that counts its open requests (with a snapshot taken after the lock, so a claim
    committed meanwhile is counted) and takes the lease.
    """
    found = session.execute(
        select(Webhook, Event)
        .join(PendingDelivery, PendingDelivery.webhook_pk == Webhook.id)
        .join(Event, Event.id == PendingDelivery.event_pk)
        .where(PendingDelivery.id == pending_id)
        .with_for_update(of=Webhook.__table__, key_share=True)
    ).one_or_none()
    if found is None:
        return None
    webhook, event = found
    if webhook.status is not WebhookStatus.enabled:
        # What a disabled endpoint missed is sent by replay only (SPEC §7).
        session.execute(delete(PendingDelivery).where(PendingDelivery.id == pending_id))
        return None
    takeable = (
        PendingDelivery.id == pending_id,
        PendingDelivery.next_attempt_at <= now,
        or_(PendingDelivery.leased_until.is_(None), PendingDelivery.leased_until < now),
    )
    other = aliased(PendingDelivery)
    open_requests = (
        select(func.count())
        .select_from(other)
        .where(other.webhook_pk == webhook.id, other.leased_until >= now)
        .scalar_subquery()
    )
    attempts = session.scalar(
        update(PendingDelivery)
        .where(*takeable, open_requests < max_in_flight)
        .values(leased_until=lease_until, dispatched_until=None)
        .returning(PendingDelivery.attempts)
        .execution_options(synchronize_session=False)
    )
    if attempts is None:
        busy = session.execute(
            update(PendingDelivery)
            .where(*takeable)
            .values(next_attempt_at=busy_until, dispatched_until=None)
            .execution_options(synchronize_session=False)
        )
        return BUSY if busy.rowcount else None  # type: ignore[attr-defined]
    secrets = [webhook.secret_encrypted]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret_encrypted is not None and expires is not None and expires > now:
        secrets.append(webhook.previous_secret_encrypted)
    return Claimed(
        pending_id=pending_id,
        lease_until=lease_until,
        attempt=attempts + 1,
        webhook_id=webhook.id,
        url=webhook.url,
        secrets=tuple(secrets),
        event_id=event.id,
        event_type=event.type,
        event_created_at=event.created_at,
        event_data=event.data,
    )


def next_due(session: Session, *, webhook_id: str, now: datetime) -> int | None:
    """The endpoint's oldest due delivery that no worker holds and the broker does not
    carry, if any: what a sender whose request just succeeded takes next."""
    return session.scalar(
        select(PendingDelivery.id)
        .where(
            PendingDelivery.webhook_pk == webhook_id,
            PendingDelivery.next_attempt_at <= now,
            or_(PendingDelivery.leased_until.is_(None), PendingDelivery.leased_until < now),
            or_(PendingDelivery.dispatched_until.is_(None), PendingDelivery.dispatched_until < now),
        )
        .order_by(PendingDelivery.next_attempt_at)
        .limit(1)
    )


def delivered(session: Session, *, pending_id: int, webhook_id: str) -> None:
    """Owed no more, and the endpoint is healthy: no lock taken, nothing read."""
    finish(session, pending_id=pending_id)
    session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.failing_since.is_not(None))
        .values(failing_since=None)
        .execution_options(synchronize_session=False)
    )


def reschedule(session: Session, *, pending_id: int, attempts: int, next_at: datetime) -> None:
    """Count the request made and free the slot; due again at next_at."""
    session.execute(
        update(PendingDelivery)
        .where(PendingDelivery.id == pending_id)
        .values(
            attempts=attempts, next_attempt_at=next_at, leased_until=None, dispatched_until=None
        )
    )


def finish(session: Session, *, pending_id: int) -> None:
    """Owed no more: delivered, or the schedule is spent (the deliveries log keeps it)."""
    session.execute(delete(PendingDelivery).where(PendingDelivery.id == pending_id))


def drop_endpoint(session: Session, *, webhook_id: str) -> None:
    """A disabled endpoint is owed nothing more until it is replayed to."""
    session.execute(delete(PendingDelivery).where(PendingDelivery.webhook_pk == webhook_id))


def log_request(session: Session, delivery: Delivery) -> None:
    session.add(delivery)


def oldest_undelivered(session: Session) -> list[tuple[str, datetime]]:
    """Per endpoint with anything owed, the creation time of its oldest undelivered event."""
    rows = session.execute(
        select(PendingDelivery.webhook_pk, func.min(Event.created_at))
        .join(Event, Event.id == PendingDelivery.event_pk)
        .group_by(PendingDelivery.webhook_pk)
    ).all()
    return [(webhook_id, created_at) for webhook_id, created_at in rows]
