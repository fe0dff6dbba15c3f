"""The scheduler: queues what is due (new, deferred, scheduled, or lost with a dead worker)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from app.config import get_settings
from app.db import session_scope
from app.messages import repository
from app.orm import utcnow
from worker.dispatch import publish_or_release

log = logging.getLogger("pochta.scheduler")

BATCH = 500


def dispatch_due() -> int:
    """Hand every due message to the broker once; how many were handed over."""
    settings = get_settings()
    total = 0
    while True:
        now = utcnow()
        with session_scope() as session:
            ids = repository.take_due(
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


def run(stop: threading.Event) -> None:
    """Dispatch every POCHTA_SCHEDULER_INTERVAL_SECONDS until stop is set."""
    interval = get_settings().scheduler_interval_seconds
    log.info("scheduler started", extra={"interval": interval})
    while not stop.is_set():
        try:
            count = dispatch_due()
            if count:
                log.info("queued %d due messages", count, extra={"count": count})
        except Exception:
            # The database may be restarting: keep going, the next tick tries again.
            log.exception("scheduler tick failed")
        stop.wait(interval)
