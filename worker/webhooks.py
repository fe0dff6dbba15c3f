"""The webhook task (thin): send one owed delivery, count what came of it.

Run by `pochta worker`'s second Celery worker, a pool of threads that consumes only the
webhooks queue: requests wait on the network, and a dead endpoint holds threads of this
pool only, never the email pool's processes.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import httpx
from celery import shared_task

from app.config import get_settings
from app.outbox.broker import WEBHOOK_TASK
from app.webhooks.requests import new_transport
from app.webhooks.sending import deliver_from
from worker import shutdown, webhook_metrics
from worker.cpu_share import CpuShare

_making = threading.Lock()
# The pool's threads share one: the share is the process's.
_share = CpuShare()


def _transport() -> httpx.BaseTransport:
    """The pool's HTTP transport, shared by its threads (httpcore's connection pool is
    thread-safe): connections kept alive between requests, one TLS context for all.

    Made under a lock: the pool's first tasks arrive together, and each thread that found
    no transport made its own, loading the CA bundle again (py-spy put a fifth of a
    drain's pool samples there, bench/README.md).
    """
    with _making:
        return _made_once()


@lru_cache(maxsize=1)
def _made_once() -> httpx.BaseTransport:
    return new_transport(get_settings())


@shared_task(name=WEBHOOK_TASK, ignore_result=True)
def send_webhook_task(pending_id: int) -> None:
    # A stopping worker finishes the request under way and takes no next one.
    deliver_from(
        pending_id,
        _transport(),
        on_sent=webhook_metrics.record,
        keep_going=lambda: not shutdown.requested(),
        pace=_share.wait_turn,
    )
