"""The broker connection, as a Celery app: the broker is only a doorbell, so every setting
favours 'ring again'.

It belongs to the producing side (the API and the scheduler publish with it); `pochta
worker` consumes from the same app with worker/tasks.py's task registered on it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery
from kombu.transport import sqlalchemy
from sqlalchemy.exc import IntegrityError

from app.config import Settings, get_settings

QUEUE = "pochta"
DELIVER_TASK = "pochta.deliver"
# Webhook requests have a queue of their own, consumed by a pool of their own, so a slow
# or dead endpoint never holds up email (SPEC §7).
WEBHOOK_QUEUE = "webhooks"
WEBHOOK_TASK = "pochta.webhook"


class _EmbeddedChannel(sqlalchemy.Channel):
    def _get_or_create(self, queue: str) -> Any:
        try:
            return super()._get_or_create(queue)  # type: ignore[no-untyped-call]
        except IntegrityError:
            # The API's first publish and a starting worker both created the queue row;
            # the other one won, so read it back instead of dying.
            self.session.rollback()
            return super()._get_or_create(queue)  # type: ignore[no-untyped-call]


class EmbeddedTransport(sqlalchemy.Transport):
    """kombu's SQL transport, polled every 0.1 s instead of every second.

    With a one-second poll each worker process takes about one task a second, which
    makes the embedded default look broken; an indexed SELECT ten times a second is
    nothing for SQLite.
    """

    Channel = _EmbeddedChannel
    polling_interval = 0.1


def _transport_options(is_sqla: bool) -> dict[str, Any]:
    # One immediate reconnect when a publisher finds its pooled connection broken, then
    # give up; a worker's consumer reconnects by broker_connection_max_retries instead.
    publish = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
    if is_sqla:
        return {**publish, "connect_args": {"timeout": 30}}
    # Redis re-delivers an unacknowledged task after visibility_timeout; that second
    # run is a no-op, and a dead worker's messages come back by their lease instead.
    return {
        **publish,
        "visibility_timeout": 3600,
        "socket_connect_timeout": 1,
        "socket_timeout": 2,
    }


def create_celery(settings: Settings) -> Celery:
    """A Celery app on the configured broker (the worker registers its task on it)."""
    is_sqla = settings.broker_url.startswith("sqla+")
    app = Celery(
        "pochta",
        broker=settings.broker_url.removeprefix("sqla+") if is_sqla else settings.broker_url,
    )
    if is_sqla:
        app.conf.broker_transport = EmbeddedTransport
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        # Each choice below is explained in docs/guarantees.md ("The broker settings").
        # A task is acknowledged after it ran, so a worker that dies mid-task leaves it
        # on the broker; the claim in the database makes the second run a no-op.
        task_acks_late=True,
        # The child that died held the message in `sending`; its lease, not a redelivery,
        # brings it back, so a poison task cannot kill workers in a loop.
        task_reject_on_worker_lost=False,
        # One task at a time per process: a stopped worker strands nothing it reserved.
        worker_prefetch_multiplier=1,
        # A broker that went away must not cancel an SMTP transaction under way: its
        # outcome goes to the database, and the unacknowledged doorbell is a no-op later.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # A worker waits for the broker however long it is away (Celery gives up after
        # 100 tries by default, and a worker that exits needs someone to restart it).
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=2,
        # Publishing fails fast: the message is stored and the scheduler rings again, so
        # a dead broker must not hold a POST (kombu's default is retrying for seconds).
        task_publish_retry=False,
        broker_transport_options=_transport_options(is_sqla),
    )
    return app


@lru_cache(maxsize=1)
def get_celery() -> Celery:
    """This process's Celery app, made on first use from the settings."""
    return create_celery(get_settings())
