"""Celery tasks (thin) and the claim -> deliver -> record loop they run."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_shutdown

from app.config import get_settings
from app.db import session_scope
from app.messages import repository
from app.orm import utcnow
from worker.delivery import deliver
from worker.dispatch import CHUNK, publish_or_release
from worker.lease import Hold
from worker.metrics import ObservedRelayPool, record_attempt
from worker.retry import RetryPolicy

log = logging.getLogger("pochta.worker")

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


def deliver_messages(message_ids: list[str]) -> list[str]:
    """Claim, deliver and record each message; the ids this call actually claimed."""
    settings = get_settings()
    now = utcnow()
    lease_until = now + timedelta(seconds=settings.sending_lease_seconds)
    with session_scope() as session:
        claimed = repository.claim(
            session, message_ids=message_ids, now=now, lease_until=lease_until
        )
    if not claimed:
        return []
    with session_scope() as session:
        messages = repository.load_for_delivery(session, message_ids=claimed)
    pool = relay_pool()
    retry = RetryPolicy(settings)
    hold = Hold(claimed, lease_until, settings)
    for message in messages:
        # Not when the worker is stopping (the rest is handed back), nor once taken from us.
        if not hold.begin(message.id):
            continue
        result = deliver(pool, message, utcnow)
        pool.observe()
        # One commit per message: a crash after this loses no recorded outcome.
        status = hold.settle(message, result, retry)
        if status is None:
            continue
        record_attempt(message, result, status)
        log.info(
            "attempt %d: %s",
            message.attempt_count + 1,
            status.value,
            extra={
                "message_id": message.id,
                "tenant": message.tenant,
                "attempt": message.attempt_count + 1,
                "relay": result.relay,
                "stage": result.stage.value,
                "smtp_code": result.reply.code if result.reply else None,
                "enhanced_code": result.reply.enhanced if result.reply else result.enhanced,
                "error": result.error,
            },
        )
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
