"""Celery tasks (thin) and the claim -> deliver -> record loop they run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_shutdown
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import get_engine
from app.messages import repository
from app.orm import utcnow
from worker.delivery import deliver
from worker.dispatch import CHUNK, publish_or_release
from worker.lease import Hold
from worker.metrics import ObservedRelayPool
from worker.recording import Recorder
from worker.retry import RetryPolicy

_pool: ObservedRelayPool | None = None
_pool_pid: int | None = None


def relay_pool() -> ObservedRelayPool:
    """This process's relay connection pool, made after fork so no socket is shared."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ObservedRelayPool(get_settings())
        _pool_pid = os.getpid()
    return _pool


@worker_process_shutdown.connect
def _close_pool(**_: object) -> None:
    if _pool is not None and _pool_pid == os.getpid():
        _pool.close()


@contextmanager
def _task_session() -> Iterator[Session]:
    """One pooled connection for a whole task; each step is its own transaction on it."""
    with (
        get_engine().connect() as connection,
        Session(bind=connection, expire_on_commit=False) as session,
    ):
        yield session


def deliver_messages(message_ids: list[str]) -> list[str]:
    """Claim, deliver and record each message; the ids this call actually claimed."""
    settings = get_settings()
    now = utcnow()
    lease_until = now + timedelta(seconds=settings.sending_lease_seconds)
    with _task_session() as session:
        with session.begin():
            messages = repository.claim(
                session, message_ids=message_ids, now=now, lease_until=lease_until
            )
        if not messages:
            return []
        claimed = [message.id for message in messages]
        pool = relay_pool()
        hold = Hold(session, claimed, lease_until, settings)
        recorder = Recorder(session, RetryPolicy(settings))
        try:
            for message in messages:
                # Not when the worker is stopping (the rest is handed back), nor once taken.
                if not hold.begin(message.id):
                    continue
                result = deliver(pool, message, utcnow)
                pool.observe()
                recorder.add(message, result, hold.token(message.id))
        finally:
            # What the relay said is written before anything else: returning, handing
            # back, or an error on the way out.
            recorder.flush()
        hold.release()
    return claimed


@shared_task(name="pochta.deliver", ignore_result=True)
def deliver_task(message_ids: list[str]) -> None:
    # A batch rings once with all its ids; the first worker to hear it shares them out
    # so both worker processes (and their connections) get a part.
    if len(message_ids) > CHUNK:
        publish_or_release(message_ids[CHUNK:])
        message_ids = message_ids[:CHUNK]
    deliver_messages(message_ids)
