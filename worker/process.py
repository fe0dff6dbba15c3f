"""What one worker pool process holds: its runtime and its relays' connections.

Both are made at `worker_process_init`, in the pool process after the fork, so no
socket is shared with the parent or a sibling; a test that calls the delivery loop
in-process gets them on first use instead.
"""

from __future__ import annotations

from celery.signals import worker_process_init, worker_process_shutdown

from app import runtime
from app.config import get_settings
from worker.relays import RelayRouter

_router: RelayRouter | None = None


def relay_router() -> RelayRouter:
    """This process's relays, each with its connection pool."""
    global _router
    if _router is None:
        _router = RelayRouter(get_settings())
    return _router


def close_pool() -> None:
    global _router
    if _router is not None:
        _router.close()
    _router = None


@worker_process_init.connect
def _start(**_: object) -> None:
    global _router
    runtime.start(forked=True)
    # The parent never delivers, so it has no pool of its own to inherit.
    _router = RelayRouter(get_settings())


@worker_process_shutdown.connect
def _stop(**_: object) -> None:
    close_pool()
