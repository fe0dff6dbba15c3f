"""The Celery task (thin): share out a large doorbell, run the delivery loop on the rest."""

from __future__ import annotations

from celery import Celery, shared_task

from app.outbox.broker import DELIVER_TASK, WEBHOOK_TASK, get_celery
from app.outbox.publisher import CHUNK, publish_or_release
from worker.delivery_loop import deliver_messages
from worker.webhooks import send_webhook_task


def consuming_app() -> Celery:
    """The broker's Celery app, with the delivery task (defined here) and the webhook task
    (worker/webhooks.py) registered on it."""
    assert send_webhook_task.name == WEBHOOK_TASK
    return get_celery()


@shared_task(name=DELIVER_TASK, ignore_result=True)
def deliver_task(message_ids: list[str]) -> None:
    # A batch rings once with all its ids; the first worker to hear it shares them out
    # so both worker processes (and their connections) get a part.
    if len(message_ids) > CHUNK:
        publish_or_release(message_ids[CHUNK:])
        message_ids = message_ids[:CHUNK]
    deliver_messages(message_ids)
