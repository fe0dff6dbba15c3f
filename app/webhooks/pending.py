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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from app.events.models import Event
from app.events.types import EventType
from app.orm import Base
from app.webhooks.models import Delivery, PendingDelivery, Webhook, WebhookStatus


@dataclass(frozen=True)
class Owed:
    """One event a claim took for its endpoint, with what its request needs."""

    pending_id: int
    attempt: int
    event_id: str
    event_type: EventType
    event_created_at: datetime
    event_data: dict[str, Any]


@dataclass(frozen=True)
class Claimed:
    """Deliveries to one endpoint that a sender holds under one lease, to send in turn."""

    webhook_id: str
    url: str
    # Encrypted, newest first: the current secret, then the previous one while it lasts.
    secrets: tuple[str, ...]
    # Shared by every delivery of the claim, and by no other claim's: one slot.
    lease_until: datetime
    owed: tuple[Owed, ...]


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
    leased = other.leased_until >= now
    unleased = or_(other.leased_until.is_(None), other.leased_until < now)
    # A slot is a live lease (one claim's deliveries share theirs) or a task on the broker.
    taken = (
        select(
            other.webhook_pk,
            (
                func.count(distinct(case((leased, other.leased_until))))
                + func.count(case((and_(unleased, other.dispatched_until >= now), 1)))
            ).label("taken"),
        )
        .where(or_(leased, other.dispatched_until >= now))
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

_webhooks = Base.metadata.tables[Webhook.__tablename__]
_pending = Base.metadata.tables[PendingDelivery.__tablename__]
_events = Base.metadata.tables[Event.__tablename__]
_deliveries = Base.metadata.tables[Delivery.__tablename__]

# The statements of a claim, built once: a sender claims many times a second, and
# building a statement costs more CPU than running it.
_ENDPOINT = (
    _webhooks.c.id,
    _webhooks.c.status,
    _webhooks.c.url,
    _webhooks.c.secret_encrypted,
    _webhooks.c.previous_secret_encrypted,
    _webhooks.c.previous_secret_expires_at,
)
_LOCK_BY_PENDING = (
    select(*_ENDPOINT)
    .join(_pending, _pending.c.webhook_pk == _webhooks.c.id)
    .where(_pending.c.id == bindparam("pending_id"))
    .with_for_update(of=_webhooks, key_share=True)
)
_LOCK_BY_ID = (
    select(*_ENDPOINT)
    .where(_webhooks.c.id == bindparam("webhook_id"))
    .with_for_update(key_share=True)
)
# A claim's deliveries share one lease, so the endpoint's open requests are its distinct
# live leases (each claim sends one request at a time).
_OPEN = select(
    func.count(distinct(_pending.c.leased_until)), func.max(_pending.c.leased_until)
).where(
    _pending.c.webhook_pk == bindparam("webhook_id"), _pending.c.leased_until >= bindparam("now")
)
_FREE = (
    _pending.c.next_attempt_at <= bindparam("now"),
    or_(_pending.c.leased_until.is_(None), _pending.c.leased_until < bindparam("now")),
)
# Besides its own, a claim takes only deliveries no task on the broker carries: those
# are their tasks' own, each a sender of its own up to the endpoint's free slots.
_OWN = _pending.c.id == bindparam("own")
_CHOSEN = (
    select(_pending.c.id)
    .where(
        _pending.c.webhook_pk == bindparam("webhook_id"),
        *_FREE,
        or_(
            _OWN,
            _pending.c.dispatched_until.is_(None),
            _pending.c.dispatched_until < bindparam("now"),
        ),
    )
    .order_by(case((_OWN, 0), else_=1), _pending.c.next_attempt_at, _pending.c.id)
    .limit(bindparam("batch"))
)
_TAKE = (
    update(_pending)
    .where(_pending.c.id.in_(_CHOSEN.scalar_subquery()), *_FREE)
    .values(leased_until=bindparam("lease_until"), dispatched_until=None)
    .returning(_pending.c.id, _pending.c.attempts, _pending.c.event_pk)
)
_OWED_EVENTS = select(_events.c.id, _events.c.type, _events.c.created_at, _events.c.data).where(
    _events.c.id.in_(bindparam("ids", expanding=True))
)


def claim(
    session: Session,
    *,
    pending_id: int,
    now: datetime,
    lease_until: datetime,
    max_in_flight: int,
    busy_until: datetime,
    batch: int = 1,
) -> Claimed | str | None:
    """Take a due delivery, and up to batch - 1 more of its endpoint's, under one lease if
    the endpoint has a free slot.

    None: nothing to do (delivered, taken by another worker, endpoint disabled or gone).
    BUSY: every slot is taken; the delivery is due again at busy_until, no attempt counted.
    The endpoint's row is locked first, and its open requests are counted after the lock
    (a claim committed meanwhile is counted), so two workers never both take the last slot.
    """
    endpoint = session.execute(_LOCK_BY_PENDING, {"pending_id": pending_id}).one_or_none()
    if endpoint is None:
        return None
    if endpoint.status is not WebhookStatus.enabled:
        # What a disabled endpoint missed is sent by replay only (SPEC §7).
        session.execute(delete(PendingDelivery).where(PendingDelivery.id == pending_id))
        return None
    claimed = _take(session, endpoint, pending_id, now, lease_until, max_in_flight, batch)
    if claimed is not None:
        return claimed
    busy = session.execute(
        update(PendingDelivery)
        .where(PendingDelivery.id == pending_id, *_FREE)
        .values(next_attempt_at=busy_until, dispatched_until=None)
        .execution_options(synchronize_session=False),
        {"now": now},
    )
    return BUSY if busy.rowcount else None  # type: ignore[attr-defined]


def claim_next(
    session: Session,
    *,
    webhook_id: str,
    now: datetime,
    lease_until: datetime,
    max_in_flight: int,
    batch: int,
) -> Claimed | None:
    """Up to batch of the endpoint's due deliveries that no worker holds and no task on the
    broker carries, if it has a free slot: what a sender whose requests succeeded takes
    next."""
    endpoint = session.execute(_LOCK_BY_ID, {"webhook_id": webhook_id}).one_or_none()
    if endpoint is None or endpoint.status is not WebhookStatus.enabled:
        return None
    return _take(session, endpoint, None, now, lease_until, max_in_flight, batch)


def _take(
    session: Session,
    endpoint: Row[*tuple[Any, ...]],
    own: int | None,
    now: datetime,
    lease_until: datetime,
    max_in_flight: int,
    batch: int,
) -> Claimed | None:
    """Lease own (if free) and the endpoint's oldest uncarried deliveries, if a slot is free."""
    open_requests, latest = session.execute(_OPEN, {"webhook_id": endpoint.id, "now": now}).one()
    if open_requests >= max_in_flight:
        return None
    if latest is not None and latest >= lease_until:
        # Two claims made in the same microsecond must still count as two.
        lease_until = latest + timedelta(microseconds=1)
    taken = session.execute(
        _TAKE,
        {
            "own": own,
            "webhook_id": endpoint.id,
            "now": now,
            "batch": batch,
            "lease_until": lease_until,
        },
    ).all()
    if not taken:
        return None
    events = {
        row.id: row
        for row in session.execute(_OWED_EVENTS, {"ids": [row.event_pk for row in taken]})
    }
    secrets = [endpoint.secret_encrypted]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted is not None and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret_encrypted)
    owed = tuple(
        Owed(
            pending_id=row.id,
            attempt=row.attempts + 1,
            event_id=row.event_pk,
            event_type=events[row.event_pk].type,
            event_created_at=events[row.event_pk].created_at,
            event_data=events[row.event_pk].data,
        )
        for row in sorted(taken, key=lambda row: row.id)
    )
    return Claimed(
        webhook_id=endpoint.id,
        url=endpoint.url,
        secrets=tuple(secrets),
        lease_until=lease_until,
        owed=owed,
    )


def delivered(session: Session, *, pending_ids: Sequence[int], webhook_id: str) -> None:
    """Owed no more, and the endpoint is healthy: no lock taken, nothing read."""
    session.execute(delete(_pending).where(_pending.c.id.in_(pending_ids)))
    session.execute(
        update(_webhooks)
        .where(_webhooks.c.id == webhook_id, _webhooks.c.failing_since.is_not(None))
        .values(failing_since=None)
    )


def release(session: Session, *, pending_ids: Sequence[int]) -> None:
    """Give back deliveries a claim took but did not send: due as they were, no attempt."""
    session.execute(
        update(_pending).where(_pending.c.id.in_(pending_ids)).values(leased_until=None)
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


def log_requests(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One deliveries-log row per request made (one executemany for them all)."""
    session.execute(insert(_deliveries), list(rows))


def oldest_undelivered(session: Session) -> list[tuple[str, datetime]]:
    """Per endpoint with anything owed, the creation time of its oldest undelivered event."""
    rows = session.execute(
        select(PendingDelivery.webhook_pk, func.min(Event.created_at))
        .join(Event, Event.id == PendingDelivery.event_pk)
        .group_by(PendingDelivery.webhook_pk)
    ).all()
    return [(webhook_id, created_at) for webhook_id, created_at in rows]
