"""The webhook side of the outbox: events fanned out to endpoints, due requests published.

Run by the scheduler on every tick, in one transaction (one write lock on SQLite), so the
email hot path pays nothing for webhooks: the recorder only inserts the event rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from app.clock import utcnow
from app.config import get_settings
from app.db import repeatable_scope
from app.outbox.broker import WEBHOOK_QUEUE, WEBHOOK_TASK, get_celery
from app.webhooks import pending

log = logging.getLogger("pochta.scheduler")

BATCH = 500
# Batches per tick at most, so email dispatch on the same tick is not starved.
MAX_BATCHES = 20


def dispatch_webhooks() -> tuple[int, int]:
    """Fan out new events, publish due deliveries; (events fanned out, tasks published)."""
    settings = get_settings()
    fanned = published = 0
    for _ in range(MAX_BATCHES):
        now = utcnow()
        with repeatable_scope() as session:
            events = pending.fan_out(session, now=now, limit=BATCH)
            ids = pending.take_due(
                session,
                now=now,
                until=now + timedelta(seconds=settings.dispatch_lease_seconds),
                limit=BATCH,
                max_in_flight=settings.webhook_max_in_flight,
            )
        fanned += events
        if ids and not publish_or_release(ids):
            break
        published += len(ids)
        if events < BATCH and len(ids) < BATCH:
            break
    return fanned, published


def publish(pending_ids: Sequence[int]) -> bool:
    """One task per delivery on the webhooks queue; False (logged) if the broker failed."""
    celery = get_celery()
    try:
        with celery.producer_or_acquire() as producer:
            for pending_id in pending_ids:
                celery.send_task(
                    WEBHOOK_TASK,
                    args=[pending_id],
                    queue=WEBHOOK_QUEUE,
                    producer=producer,
                    retry=False,
                )
    except Exception as error:  # kombu raises many kinds; all mean "not queued"
        log.error(
            "broker unreachable; webhook deliveries wait for the next tick",
            extra={"count": len(pending_ids), "error": str(error)},
        )
        return False
    return True


def publish_or_release(pending_ids: Sequence[int]) -> bool:
    if publish(pending_ids):
        return True
    try:
        with repeatable_scope() as session:
            pending.release_dispatch(session, pending_ids=pending_ids)
    except Exception:
        log.exception("could not release webhook dispatch lease")
    return False
