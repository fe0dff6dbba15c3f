"""The Celery app: the broker is only a doorbell, so every setting favours 'ring again'."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu.transport import sqlalchemy

from app.config import Settings, get_settings

QUEUE = "pochta"
DELIVER_TASK = "pochta.deliver"


class EmbeddedTransport(sqlalchemy.Transport):  # type: ignore[misc]
    """kombu's SQL transport, polled every 0.1 s instead of every second.

    With a one-second poll each worker process takes about one task a second, which
    makes the embedded default look broken; an indexed SELECT ten times a second is
    nothing for SQLite.
    """

    polling_interval = 0.1


def create_celery(settings: Settings) -> Celery:
    """A Celery app on the configured broker, with the delivery task registered."""
    is_sqla = settings.broker_url.startswith("sqla+")
    app = Celery(
        "pochta",
        broker=settings.broker_url.removeprefix("sqla+") if is_sqla else settings.broker_url,
        include=["worker.tasks"],
    )
    if is_sqla:
        app.conf.broker_transport = EmbeddedTransport
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged after it ran, so a worker that dies mid-task leaves it
        # on the broker; the claim in the database makes the second run a no-op.
        task_acks_late=True,
        # The child that died held the message in `sending`; its lease, not a redelivery,
        # brings it back, so a poison task cannot kill workers in a loop.
        task_reject_on_worker_lost=False,
        # One task at a time per process: a stopped worker strands nothing it reserved.
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_transport_options=(
            {"connect_args": {"timeout": 30}}
            if is_sqla
            else {"visibility_timeout": 3600, "socket_connect_timeout": 3, "socket_timeout": 10}
        ),
    )
    return app


@lru_cache(maxsize=1)
def get_celery() -> Celery:
    """This process's Celery app, made on first use from the settings."""
    return create_celery(get_settings())
