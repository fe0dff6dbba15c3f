"""Deleting events older than POCHTA_EVENT_RETENTION_DAYS, a batch per transaction.

Small batches keep each transaction short: the worker's recorder inserts into the same
table while this runs, and one huge DELETE would hold it up.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from app.clock import utcnow
from app.config import get_settings
from app.db import session_scope
from app.events import repository

log = logging.getLogger("pochta.scheduler")

BATCH = 1000


def purge_old_events(batch: int = BATCH) -> int:
    """Delete every event past its retention; how many were deleted."""
    cutoff = utcnow() - timedelta(days=get_settings().event_retention_days)
    total = 0
    while True:
        with session_scope() as session:
            deleted = repository.delete_older_than(session, cutoff=cutoff, limit=batch)
        total += deleted
        if deleted < batch:
            break
    if total:
        log.info("deleted %d events past their retention", total, extra={"count": total})
    return total
