"""Whether this worker is stopping: set in the main process on SIGTERM, read by its pool.

Celery's warm shutdown (SIGTERM to the main process) waits for the running tasks, but
only the main process hears it: a pool process running a task of fifty messages would
go on to deliver all fifty. The flag lives in shared memory made before the pool
forks, so a pool process sees it flip and stops after the message in progress.
"""

from __future__ import annotations

import ctypes
import multiprocessing

from celery.signals import worker_shutting_down

# Made at import, which for `pochta worker` is in the main process before the pool forks.
_stopping = multiprocessing.RawValue(ctypes.c_bool, False)


def requested() -> bool:
    """True once the worker was asked to stop: start no new SMTP transaction."""
    return bool(_stopping.value)


def request_stop() -> None:
    """Tell every process of this worker to stop after its message in progress."""
    _stopping.value = True


def reset() -> None:
    """Forget a stop request (tests run tasks in-process)."""
    _stopping.value = False


def _on_worker_shutting_down(**_: object) -> None:
    request_stop()


worker_shutting_down.connect(_on_worker_shutting_down, weak=False)
