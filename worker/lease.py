"""A task's hold on the messages it claimed: one lease each, renewed as its turn comes.

A task claims up to fifty messages at once, under one lease. Each message's own SMTP
transaction starts only if the task still holds it, with its lease renewed when less
than half is left, so a slow relay cannot make a later message look abandoned while
its worker is alive. The attempt is recorded only while the hold is still the task's
(worker/recording.py). When the worker is stopping, the messages not started yet go
back to the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.clock import utcnow
from app.config import Settings
from app.messages.repository import queue
from worker import shutdown

log = logging.getLogger("pochta.worker")


class Hold:
    """The messages one task claimed, each with the lease expiry that proves it is ours."""

    def __init__(
        self,
        session: Session,
        message_ids: Sequence[str],
        held_until: datetime,
        settings: Settings,
    ) -> None:
        self._session = session
        self._lease = timedelta(seconds=settings.sending_lease_seconds)
        self._claimed_until = held_until
        self._held = dict.fromkeys(message_ids, held_until)
        self._unstarted = list(message_ids)
        self._postponed: list[tuple[str, datetime, datetime]] = []

    def token(self, message_id: str) -> datetime:
        """The lease expiry the message's row carries while this task holds it."""
        return self._held[message_id]

    def begin(self, message_id: str) -> bool:
        """Whether to start this message's transaction: not if stopping, nor if taken from us."""
        if shutdown.requested():
            return False
        self._unstarted.remove(message_id)
        now = utcnow()
        if self._held[message_id] - now > self._lease / 2:
            return True
        with self._session.begin():
            renewed = queue.renew_lease(
                self._session,
                message_id=message_id,
                held_until=self._held[message_id],
                lease_until=now + self._lease,
            )
        if not renewed:
            log.warning("lease lost to another task", extra={"message_id": message_id})
            return False
        self._held[message_id] = now + self._lease
        return True

    def postpone(self, message_id: str, until: datetime) -> None:
        """Hand this one back at release, due at `until`, with no attempt charged."""
        self._postponed.append((message_id, self._held[message_id], until))

    def release(self) -> None:
        """Hand back to the queue every claimed message whose transaction never started."""
        if self._postponed:
            with self._session.begin():
                queue.postpone(self._session, holds=self._postponed, now=utcnow())
            self._postponed = []
        if not self._unstarted:
            return
        with self._session.begin():
            returned = queue.hand_back(
                self._session,
                message_ids=self._unstarted,
                held_until=self._claimed_until,
                now=utcnow(),
            )
        log.info("handed back %d unstarted messages", returned, extra={"count": returned})
        self._unstarted = []
