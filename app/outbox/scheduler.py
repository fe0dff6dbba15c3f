"""The scheduler: queues what is due (new, deferred, scheduled, or lost with a dead worker)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from app.clock import utcnow
from app.config import get_settings
from app.db import session_scope
from app.events.retention import purge_old_events
from app.idempotency import service as idempotency
from app.messages.repository import queue
from app.outbox.publisher import publish_or_release

log = logging.getLogger("pochta.scheduler")

BATCH = 500
# Expired Idempotency-Key records are ignored anyway; deleting them is housekeeping.
PURGE_INTERVAL = 60.0


def dispatch_due() -> int:
    """Hand every due message to the broker once; how many were handed over."""
    settings = get_settings()
    total = 0
    while True:
        now = utcnow()
        with session_scope() as session:
            ids = queue.take_due(
                session,
                now=now,
                until=now + timedelta(seconds=settings.dispatch_lease_seconds),
                limit=BATCH,
            )
        if not ids:
            return total
        if not publish_or_release(ids):
            return total
        total += len(ids)
        if len(ids) < BATCH:
            return total


def purge_idempotency_records() -> int:
    """Delete the Idempotency-Key records older than POCHTA_IDEMPOTENCY_TTL_SECONDS."""
    ttl = timedelta(seconds=get_settings().idempotency_ttl_seconds)
    with session_scope() as session:
        purged = idempotency.purge_expired(session, now=utcnow(), ttl=ttl)
    if purged:
        log.info("purged %d expired idempotency records", purged, extra={"count": purged})
    return purged


def run(stop: threading.Event) -> None:
    """Dispatch every POCHTA_SCHEDULER_INTERVAL_SECONDS until stop is set."""
    interval = get_settings().scheduler_interval_seconds
    log.info("scheduler started", extra={"interval": interval})
    next_purge = 0.0
    while not stop.is_set():
        try:
            count = dispatch_due()
            if count:
                log.info("queued %d due messages", count, extra={"count": count})
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_INTERVAL
                purge_idempotency_records()
                purge_old_events()
        except Exception:
            # The database may be restarting: keep going, the next tick tries again.
            log.exception("scheduler tick failed")
        stop.wait(interval)
