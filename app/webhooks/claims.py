"""A sender's claim: the endpoint locked, its open requests counted, up to a batch of its
due deliveries leased together.

The claim locks the endpoint's row first (FOR NO KEY UPDATE on PostgreSQL; SQLite's
BEGIN IMMEDIATE serialises everything anyway), so two workers never both take the last
slot, and it takes its locks in the order every transaction does, endpoint first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, case, delete, distinct, func, or_, select, update
from sqlalchemy.orm import Session

from app.events.models import Event
from app.events.types import EventType
from app.orm import Base
from app.webhooks import pending
from app.webhooks.models import PendingDelivery, Webhook, WebhookStatus


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


BUSY = "busy"

_webhooks = Base.metadata.tables[Webhook.__tablename__]
_pending = Base.metadata.tables[PendingDelivery.__tablename__]
_events = Base.metadata.tables[Event.__tablename__]

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
# Besides its own, a claim takes only deliveries no task on the broker carries: those
# are their tasks' own, each a sender of its own up to the endpoint's free slots.
_OWN = _pending.c.id == bindparam("own")
_CHOSEN = (
    select(_pending.c.id)
    .where(
        _pending.c.webhook_pk == bindparam("webhook_id"),
        *pending.DUE_AND_FREE,
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
    .where(_pending.c.id.in_(_CHOSEN.scalar_subquery()), *pending.DUE_AND_FREE)
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
        .where(PendingDelivery.id == pending_id, *pending.DUE_AND_FREE)
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
