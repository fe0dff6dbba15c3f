"""The doorbell: one background thread per process that publishes what requests committed."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from app.outbox.broker import get_celery
from app.outbox.publisher import publish_or_release

log = logging.getLogger("pochta.dispatch")

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
        self._thread: threading.Thread | None = None

    def ring(self, message_ids: Sequence[str]) -> None:
        with self._changed:
            if self._thread is None:
                self.start()
            self._waiting.extend(message_ids)
            self._changed.notify_all()

    def start(self) -> None:
        """Start the ringing thread (the API's lifespan does; the first ring otherwise)."""
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pochta-doorbell", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until every id handed over has been published; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._waiting and not self._ringing, timeout)

    def _run(self) -> None:
        _warm_up()
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


def _warm_up() -> None:
    """Import the broker's transport now, not in the first requests' rings.

    That import took about 0.8 s of one API process's CPU (the GIL held) under load,
    during the first second of traffic. Nothing connects here, so a broker that is away
    costs nothing; anything wrong shows at the first real publish, where it is handled.
    """
    with contextlib.suppress(Exception):
        get_celery().producer_pool  # noqa: B018 - the property builds the pool


doorbell = Doorbell()
