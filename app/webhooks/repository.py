"""SQL of the /v1/webhooks routes: endpoints, their deliveries log, and replays."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    delete,
    func,
    literal,
    null,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.events.models import Event
from app.events.types import EventType
from app.orm import UTCDateTime
from app.webhooks.models import Delivery, DeliveryStatus, PendingDelivery, Webhook


def add(session: Session, webhook: Webhook) -> None:
    session.add(webhook)
    session.flush()


def get(session: Session, *, tenant: str, webhook_id: str) -> Webhook | None:
    """The tenant's endpoint with this id; another tenant's is None, as a missing one."""
    return session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.tenant == tenant))


def list_for_tenant(session: Session, *, tenant: str) -> list[Webhook]:
    """The tenant's endpoints, newest first (ix_webhooks_tenant)."""
    query = (
        select(Webhook)
        .where(Webhook.tenant == tenant)
        .order_by(Webhook.created_at.desc(), Webhook.id.desc())
    )
    return list(session.scalars(query))


def remove(session: Session, webhook: Webhook) -> None:
    """The endpoint, what it is still owed and its log: nothing more is sent to it."""
    # Said outright rather than left to ON DELETE CASCADE, which SQLite honours only
    # with its foreign_keys pragma on.
    session.execute(delete(PendingDelivery).where(PendingDelivery.webhook_pk == webhook.id))
    session.execute(delete(Delivery).where(Delivery.webhook_pk == webhook.id))
    session.delete(webhook)
    session.flush()


def deliveries_page(
    session: Session,
    *,
    webhook_pk: str,
    event_id: str | None,
    status: DeliveryStatus | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Delivery]:
    """Up to limit of an endpoint's requests, newest first, older than `before`."""
    query = select(Delivery).where(Delivery.webhook_pk == webhook_pk)
    if event_id is not None:
        query = query.where(Delivery.event_pk == event_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    if before is not None:
        query = query.where(tuple_(Delivery.created_at, Delivery.id) < before)
    query = query.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)
    return list(session.scalars(query))


def _replayable(
    *,
    tenant: str,
    types: Sequence[EventType],
    event_ids: Sequence[str] | None,
    since: datetime | None,
) -> ColumnElement[bool]:
    """Which events a replay takes: the tenant's, of the endpoint's types, by id or age."""
    condition = Event.tenant == tenant
    if types:
        condition = and_(condition, Event.type.in_(list(types)))
    if event_ids is not None:
        condition = and_(condition, Event.id.in_(list(event_ids)))
    if since is not None:
        condition = and_(condition, Event.created_at >= since)
    return condition


def replay(
    session: Session,
    *,
    webhook: Webhook,
    event_ids: Sequence[str] | None,
    since: datetime | None,
    now: datetime,
) -> int:
    """Make those events due to this endpoint now, afresh; how many they are.

    One INSERT … SELECT … ON CONFLICT (both backends have it): an event still owed is
    re-dued with its attempts reset, one not owed any more is owed again, and a replay
    of a month of events is one statement, not a row per event.
    """
    condition = _replayable(
        tenant=webhook.tenant, types=webhook.events, event_ids=event_ids, since=since
    )
    count = session.scalar(select(func.count()).select_from(Event).where(condition)) or 0
    if not count:
        return 0
    rows = select(
        literal(webhook.id).label("webhook_pk"),
        Event.id.label("event_pk"),
        literal(0, Integer).label("attempts"),
        literal(now, UTCDateTime).label("next_attempt_at"),
        null().label("dispatched_until"),
        literal(now, UTCDateTime).label("created_at"),
    ).where(condition)
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    insert = dialect.insert(PendingDelivery).from_select(
        ["webhook_pk", "event_pk", "attempts", "next_attempt_at", "dispatched_until", "created_at"],
        rows,
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[PendingDelivery.webhook_pk, PendingDelivery.event_pk],
            set_={
                "attempts": 0,
                "next_attempt_at": insert.excluded.next_attempt_at,
                "dispatched_until": None,
            },
        )
    )
    return int(count)


def deliveries_of_events(
    session: Session, *, tenant: str, event_ids: Sequence[str]
) -> list[tuple[Delivery, str]]:
    """Every request made for these events to the tenant's endpoints, newest first, each
    with its endpoint's URL (a message's page shows them under its events)."""
    if not event_ids:
        return []
    rows = session.execute(
        select(Delivery, Webhook.url)
        .join(Webhook, Webhook.id == Delivery.webhook_pk)
        .where(Webhook.tenant == tenant, Delivery.event_pk.in_(list(event_ids)))
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
    )
    return [(delivery, url) for delivery, url in rows.tuples()]
