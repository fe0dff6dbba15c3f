"""Ringing the broker's doorbell for messages already committed to the database."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from app.db import session_scope
from app.messages import repository
from worker.celery_app import DELIVER_TASK, get_celery

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
            repository.release_dispatch(session, message_ids=message_ids)
    except Exception:
        # The database is down too: the dispatch lease runs out and the scheduler retries.
        log.exception("could not release dispatch lease", extra={"message_ids": list(message_ids)})
    return False


LINGER_SECONDS = 0.02


class Doorbell:
    """Rings for committed messages from one background thread, all waiting ids at once.

    A request only hands its ids over and answers; one broker round trip then carries
    the ids of every request that committed within LINGER_SECONDS.
    Ids still waiting when the process dies are not lost: their dispatch lease runs out
    and the scheduler rings for them.
    """

    def __init__(self) -> None:
        self._waiting: list[str] = []
        self._ringing = False
        self._changed = threading.Condition()
        self._pid: int | None = None

    def ring(self, message_ids: Sequence[str]) -> None:
        with self._changed:
            if self._pid != os.getpid():  # first use, or a fork: this process's own thread
                self._pid = os.getpid()
                self._waiting, self._ringing = [], False
                threading.Thread(target=self._run, name="pochta-doorbell", daemon=True).start()
            self._waiting.extend(message_ids)
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every id handed over has been published; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._waiting and not self._ringing, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._waiting))
                self._ringing = True
            # A publish, and the task it makes, cost more CPU than accepting a message:
            # let the requests committing now join this one. The wait delays delivery a
            # little, never an answer.
            time.sleep(LINGER_SECONDS)
            with self._changed:
                message_ids, self._waiting = self._waiting, []
            try:
                # One task for them all: the first worker to take it shares them out.
                publish_or_release(message_ids, chunk=len(message_ids))
            except Exception:
                log.exception("doorbell failed", extra={"message_ids": message_ids})
            finally:
                with self._changed:
                    self._ringing = False
                    self._changed.notify_all()


doorbell = Doorbell()
