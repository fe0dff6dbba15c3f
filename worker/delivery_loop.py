"""The loop a delivery task runs: claim a batch, deliver each, record what happened.

A task's ids are a hint, not its unit of work. A backlog that arrived as single POSTs
sits on the broker as hundreds of tasks of one to three ids; the first task to run
claims its own ids and then other due `queued` messages up to a batch, and the tasks
whose ids it took find nothing and return after one statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy.orm import Session

from app.clock import utcnow
from app.config import get_settings
from app.db import get_engine
from app.messages.backoff import ExponentialBackoff
from app.messages.repository import queue
from app.outbox.publisher import CHUNK
from worker import shutdown
from worker.lease import Hold
from worker.process import relay_router
from worker.recording import Recorder
from worker.relays import Postponed


@contextmanager
def _task_session() -> Iterator[Session]:
    """One pooled connection for a whole task; each step is its own transaction on it."""
    with (
        get_engine().connect() as connection,
        Session(bind=connection, expire_on_commit=False) as session,
    ):
        yield session


# As many as one publish carries, so a batch's tasks and a backlog's cost the same.
BATCH = CHUNK


def deliver_messages(message_ids: list[str]) -> list[str]:
    """Claim these and other due messages, deliver and record each; the ids claimed."""
    settings = get_settings()
    now = utcnow()
    lease_until = now + timedelta(seconds=settings.sending_lease_seconds)
    with _task_session() as session:
        with session.begin():
            messages = queue.claim(
                session,
                message_ids=message_ids,
                now=now,
                lease_until=lease_until,
                # A stopping worker would only hand the others back.
                batch=0 if shutdown.requested() else BATCH,
            )
        if not messages:
            return []
        claimed = [message.id for message in messages]
        router = relay_router()
        hold = Hold(session, claimed, lease_until, settings)
        recorder = Recorder(session, ExponentialBackoff(settings))
        try:
            for message in messages:
                # Not when the worker is stopping (the rest is handed back), nor once taken.
                if not hold.begin(message.id):
                    continue
                result = router.deliver(message, utcnow)
                if isinstance(result, Postponed):
                    # No relay could take it now (paused, or no slot): back to the queue
                    # without an attempt, due when a relay may have room again.
                    hold.postpone(message.id, result.until)
                    continue
                recorder.add(message, result, hold.token(message.id))
        finally:
            # What the relay said is written before anything else: returning, handing
            # back, or an error on the way out.
            recorder.flush()
            router.task_done()
        hold.release()
    return claimed
