"""Publishing delivery tasks for messages already committed, and what to do when that fails."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.db import session_scope
from app.messages.repository import queue
from app.outbox.broker import DELIVER_TASK, get_celery

log = logging.getLogger("pochta.dispatch")

# Ids per task: large enough to reuse one connection for several messages, small
# enough that both worker processes get a share of a burst.
CHUNK = 50


def publish(message_ids: Sequence[str], chunk: int = CHUNK) -> bool:
    """Queue delivery tasks, chunk ids each; False (logged) when the broker is unreachable."""
    celery = get_celery()
    try:
        with celery.producer_or_acquire() as producer:
            for start in range(0, len(message_ids), chunk):
                ids = list(message_ids[start : start + chunk])
                celery.send_task(DELIVER_TASK, args=[ids], producer=producer, retry=False)
    except Exception as error:  # kombu raises many kinds; all mean "not queued"
        log.error(
            "broker unreachable; the scheduler will queue these once it answers",
            extra={"message_ids": list(message_ids), "error": str(error)},
        )
        return False
    return True


def publish_or_release(message_ids: Sequence[str], chunk: int = CHUNK) -> bool:
    """Publish; if the broker fails, let the scheduler pick the messages up at once."""
    if not message_ids or publish(message_ids, chunk):
        return True
    try:
        with session_scope() as session:
            queue.release_dispatch(session, message_ids=message_ids)
    except Exception:
        # The database is down too: the dispatch lease runs out and the scheduler retries.
        log.exception("could not release dispatch lease", extra={"message_ids": list(message_ids)})
    return False
