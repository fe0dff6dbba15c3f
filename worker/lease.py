"""A task's hold on the messages it claimed: one lease each, renewed as its turn comes.

A task claims up to twenty messages at once, under one lease. Each message's own SMTP
transaction starts only if the task still holds it, with its lease renewed when less
than half is left, so a slow relay cannot make a later message look abandoned while
its worker is alive. The attempt is recorded only while the hold is still the task's.
When the worker is stopping, the messages not started yet go back to the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.config import Settings
from app.db import session_scope
from app.messages import repository
from app.messages.attempts import AttemptResult
from app.messages.models import Message
from app.messages.service import RetryPolicy, settle_attempt
from app.messages.states import MessageStatus
from app.orm import utcnow
from worker import shutdown

log = logging.getLogger("pochta.worker")


def _database_away(error: DBAPIError) -> bool:
    return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)


class Hold:
    """The messages one task claimed, each with the lease expiry that proves it is ours."""

    def __init__(self, message_ids: Sequence[str], held_until: datetime, settings: Settings):
        self._lease = timedelta(seconds=settings.sending_lease_seconds)
        self._claimed_until = held_until
        self._held = dict.fromkeys(message_ids, held_until)
        self._unstarted = list(message_ids)

    def begin(self, message_id: str) -> bool:
        """Whether to start this message's transaction: not if stopping, nor if taken from us."""
        if shutdown.requested():
            return False
        self._unstarted.remove(message_id)
        now = utcnow()
        if self._held[message_id] - now > self._lease / 2:
            return True
        with session_scope() as session:
            renewed = repository.renew_lease(
                session,
                message_id=message_id,
                held_until=self._held[message_id],
                lease_until=now + self._lease,
            )
        if not renewed:
            log.warning("lease lost to another task", extra={"message_id": message_id})
            return False
        self._held[message_id] = now + self._lease
        return True

    def settle(
        self, message: Message, result: AttemptResult, retry: RetryPolicy
    ) -> MessageStatus | None:
        """Record the attempt if the message is still ours; None if it was taken from us.

        The relay has answered, so losing this record would send the message again: a
        database that went away is waited for while the lease lasts.
        """
        held_until = self._held[message.id]
        delay = 0.1
        while True:
            try:
                with session_scope() as session:
                    if not repository.lock_held(
                        session, message_id=message.id, held_until=held_until
                    ):
                        log.warning(
                            "attempt not recorded: the lease was lost",
                            extra={"message_id": message.id},
                        )
                        return None
                    return settle_attempt(session, message=message, result=result, retry=retry)
            except DBAPIError as error:
                if not _database_away(error) or utcnow() + timedelta(seconds=delay) > held_until:
                    raise
                log.warning(
                    "database unavailable; recording the attempt again shortly",
                    extra={"message_id": message.id, "error": type(error.orig).__name__},
                )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def release(self) -> None:
        """Hand back to the queue every claimed message whose transaction never started."""
        if not self._unstarted:
            return
        with session_scope() as session:
            returned = repository.hand_back(
                session, message_ids=self._unstarted, held_until=self._claimed_until, now=utcnow()
            )
        log.info("handed back %d unstarted messages", returned, extra={"count": returned})
        self._unstarted = []
