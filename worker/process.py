"""What one worker pool process holds: its runtime and its relay connections.

Both are made at `worker_process_init`, in the pool process after the fork, so no
socket is shared with the parent or a sibling; a test that calls the delivery loop
in-process gets them on first use instead.
"""

from __future__ import annotations

from celery.signals import worker_process_init, worker_process_shutdown

from app import runtime
from app.config import get_settings
from worker.metrics import ObservedRelayPool

_pool: ObservedRelayPool | None = None


def relay_pool() -> ObservedRelayPool:
    """This process's relay connection pool."""
    global _pool
    if _pool is None:
        _pool = ObservedRelayPool(get_settings())
    return _pool


def close_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.close()
    _pool = None


@worker_process_init.connect
def _start(**_: object) -> None:
    global _pool
    runtime.start(forked=True)
    # The parent never delivers, so it has no pool of its own to inherit.
    _pool = ObservedRelayPool(get_settings())


@worker_process_shutdown.connect
def _stop(**_: object) -> None:
    close_pool()
