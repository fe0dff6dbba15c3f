"""The webhook task (thin): send one owed delivery, count what came of it.

Run by `pochta worker`'s second Celery worker, a pool of threads that consumes only the
webhooks queue: requests wait on the network, and a dead endpoint holds threads of this
pool only, never the email pool's processes.
"""

from __future__ import annotations

import threading

import httpx
from celery import shared_task

from app.config import get_settings
from app.outbox.broker import WEBHOOK_TASK
from app.webhooks.sending import deliver_from, new_client
from worker import shutdown, webhook_metrics

_local = threading.local()


def _client() -> httpx.Client:
    """This thread's HTTP client (its connections are kept alive between requests)."""
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = new_client(get_settings())
        _local.client = client
    return client


@shared_task(name=WEBHOOK_TASK, ignore_result=True)
def send_webhook_task(pending_id: int) -> None:
    # A stopping worker finishes the request under way and takes no next one.
    deliver_from(
        pending_id,
        _client(),
        on_sent=webhook_metrics.record,
        keep_going=lambda: not shutdown.requested(),
    )
