"""SQL over the deliveries still owed: fan-out, what is due, the outcome of a request
(app/webhooks/claims.py holds a worker's claim).

Every statement that changes an endpoint's in-flight count first locks the endpoint's row
(FOR NO KEY UPDATE on PostgreSQL, so the fan-out's foreign-key checks are not blocked;
SQLite's BEGIN IMMEDIATE serialises everything anyway): two workers can then never both
take the last slot, and every transaction takes its locks in one order, endpoint first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from app.events.models import Event, EventToFanOut
from app.orm import Base, UTCDateTime, json_rows
from app.webhooks.models import Delivery, PendingDelivery, Webhook, WebhookStatus

_webhooks = Base.metadata.tables[Webhook.__tablename__]
_pending = Base.metadata.tables[PendingDelivery.__tablename__]
_deliveries = Base.metadata.tables[Delivery.__tablename__]
_to_fan_out = Base.metadata.tables[EventToFanOut.__tablename__]


# On PostgreSQL the fan-out is one statement that strikes events off the list and makes
# their deliveries in the server: a drain's events cost the scheduler no Python per row,
# where the ORM's bulk insert of one dict per delivery was most of its CPU. The batch is
# materialised, so its locking SELECT runs once (app/messages/repository/queue.py::claim).
_FAN_OUT_PG = text(
    """
    WITH chosen AS MATERIALIZED (
        SELECT event_pk FROM events_to_fan_out ORDER BY event_pk LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), struck AS (
        DELETE FROM events_to_fan_out USING chosen
        WHERE events_to_fan_out.event_pk = chosen.event_pk
        RETURNING events_to_fan_out.event_pk
    ), owed AS (
        INSERT INTO webhook_pending (webhook_pk, event_pk, attempts, next_attempt_at, created_at)
        SELECT w.id, e.id, 0, :now, :now
        FROM struck
        JOIN events AS e ON e.id = struck.event_pk
        JOIN webhooks AS w ON w.tenant = e.tenant AND w.status = 'enabled'
        WHERE json_array_length(w.events) = 0
            OR EXISTS (
                SELECT FROM json_array_elements_text(w.events) AS t(type) WHERE t.type = e.type
            )
        ORDER BY e.id, w.id
    )
    SELECT count(*) FROM struck
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


def fan_out(session: Session, *, now: datetime, limit: int) -> int:
    """Make one pending delivery per subscribed, enabled endpoint for up to limit events not
    yet fanned out, and strike them off the fan-out's list; how many events were."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.execute(_FAN_OUT_PG, {"now": now, "limit": limit}).scalar_one())
    events = session.execute(
        select(Event.id, Event.tenant, Event.type)
        .join(_to_fan_out, _to_fan_out.c.event_pk == Event.id)
        .order_by(_to_fan_out.c.event_pk)
        .limit(limit)
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
        endpoints[tenant].append((webhook_id, list(types)))
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
        delete(_to_fan_out).where(_to_fan_out.c.event_pk.in_([event.id for event in events]))
    )
    return len(events)


# Due, and held by no worker (as of the statement's :now): what a claim may lease.
DUE_AND_FREE = (
    _pending.c.next_attempt_at <= bindparam("now"),
    or_(_pending.c.leased_until.is_(None), _pending.c.leased_until < bindparam("now")),
)

# take_due's statements, built once: the scheduler runs them on every tick, and building
# the window query cost more of its CPU than running it.
_other = _pending.alias("other")
_leased = _other.c.leased_until >= bindparam("now")
_unleased = or_(_other.c.leased_until.is_(None), _other.c.leased_until < bindparam("now"))
# A slot is a live lease (one claim's deliveries share theirs) or a task on the broker.
_TAKEN = (
    select(
        _other.c.webhook_pk,
        (
            func.count(distinct(case((_leased, _other.c.leased_until))))
            + func.count(case((and_(_unleased, _other.c.dispatched_until >= bindparam("now")), 1)))
        ).label("taken"),
    )
    .where(or_(_leased, _other.c.dispatched_until >= bindparam("now")))
    .group_by(_other.c.webhook_pk)
    .subquery("taken")
)
_RANKED = (
    select(
        _pending.c.id,
        _pending.c.next_attempt_at,
        func.row_number()
        .over(
            partition_by=_pending.c.webhook_pk,
            order_by=(_pending.c.next_attempt_at, _pending.c.id),
        )
        .label("rank"),
        func.coalesce(_TAKEN.c.taken, 0).label("taken"),
    )
    .outerjoin(_TAKEN, _TAKEN.c.webhook_pk == _pending.c.webhook_pk)
    .where(
        *DUE_AND_FREE,
        or_(
            _pending.c.dispatched_until.is_(None),
            _pending.c.dispatched_until < bindparam("now"),
        ),
    )
    .subquery("ranked")
)
_CHOSEN = (
    select(_RANKED.c.id)
    .where(_RANKED.c.rank + _RANKED.c.taken <= bindparam("max_in_flight", type_=Integer))
    .order_by(_RANKED.c.next_attempt_at)
    .limit(bindparam("limit", type_=Integer))
)
# Two schedulers on PostgreSQL split the work (the window cannot be locked itself).
_LOCK_CHOSEN = (
    select(_pending.c.id).where(_pending.c.id.in_(_CHOSEN)).with_for_update(skip_locked=True)
)
_MARK_DISPATCHED = (
    update(_pending)
    .where(_pending.c.id.in_(bindparam("ids", expanding=True)))
    .values(dispatched_until=bindparam("until"))
)


def take_due(
    session: Session, *, now: datetime, until: datetime, limit: int, max_in_flight: int
) -> list[int]:
    """Mark up to limit due deliveries as on the broker until `until`; their ids.

    No endpoint gets more than its free slots (max_in_flight less what is already open or
    on the broker), so a dead endpoint's backlog does not fill the queue with tasks that
    could only wait.
    """
    ids = list(
        session.scalars(_LOCK_CHOSEN, {"now": now, "limit": limit, "max_in_flight": max_in_flight})
    )
    if ids:
        session.execute(_MARK_DISPATCHED, {"ids": ids, "until": until})
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


# PostgreSQL runs an executemany once per row: a claim's log rows are one statement.
_LOG_REQUESTS_PG = text(
    """
    INSERT INTO webhook_deliveries (id, webhook_pk, event_pk, event_type, attempt, status,
        response_status, error, duration_ms, created_at, next_attempt_at)
    SELECT id, webhook_pk, event_pk, event_type, attempt, status, response_status, error,
        duration_ms, created_at, next_attempt_at
    FROM json_to_recordset(CAST(:rows AS json)) AS u(id varchar, webhook_pk varchar,
        event_pk varchar, event_type varchar, attempt integer, status varchar,
        response_status integer, error text, duration_ms integer, created_at timestamp,
        next_attempt_at timestamp)
    """
)


def log_requests(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One deliveries-log row per request made, in one statement for them all."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOG_REQUESTS_PG, {"rows": json_rows(rows)})
        return
    session.execute(insert(_deliveries), list(rows))


def oldest_undelivered(session: Session) -> list[tuple[str, datetime]]:
    """Per endpoint with anything owed, the creation time of its oldest undelivered event."""
    rows = session.execute(
        select(PendingDelivery.webhook_pk, func.min(Event.created_at))
        .join(Event, Event.id == PendingDelivery.event_pk)
        .group_by(PendingDelivery.webhook_pk)
    ).all()
    return [(webhook_id, created_at) for webhook_id, created_at in rows]
