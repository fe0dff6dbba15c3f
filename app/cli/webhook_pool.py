"""The webhook pool as `pochta worker` keeps it: a process of its own beside the email pool,
started again whenever it dies while the worker runs.

A pool that died unnoticed would lose nothing (what is owed stays in webhook_pending), but
every endpoint would hear nothing until someone restarted the whole worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from app import processes
from worker.cpu_share import START_WAIT_SECONDS, CpuShare

log = logging.getLogger("pochta.worker")

# A pool that dies at once is started again after this, doubling up to the cap; one that
# ran for longer than the cap starts from the first delay again.
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
STOP_TIMEOUT = 30.0


NICENESS = 19


def lower_priority(pid: int) -> None:
    """Give the pool process pid (0: this one) the lowest CPU priority there is.

    When the host's CPUs are all busy, email goes first: a webhook is told a moment later,
    a message is not sent later because of it. Niceness weighs each thread, and ten
    threads sending to a fast endpoint at nice 10 weighed as much as one email process;
    at nice 19 alone they still had a fifth of the CPU during a drain (bench/README.md).
    Under Linux's SCHED_IDLE a thread gives the CPU up as soon as any other wants it.
    Threads started later inherit both.
    """
    os.setpriority(os.PRIO_PROCESS, pid, NICENESS)
    if hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def _spawn() -> subprocess.Popen[bytes]:
    # In this worker's process group: a stop of the group reaches it too.
    argv = [sys.executable, "-m", "app.cli", "worker", "--webhooks-only"]
    process = processes.spawn(argv, new_group=False)
    # At once, from here: its start-up (imports, a CPU-second) is not email's to wait for
    # either, and a worker is often started on a full queue.
    with contextlib.suppress(ProcessLookupError):  # it died already: the watcher sees it
        lower_priority(process.pid)
    return process


class WebhookPool:
    """Starts the pool, watches it from a thread, and stops it with the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        # The watcher starts every pool: their parent-death signal is bound to the thread
        # that forked them, and this one lives until stop().
        self._watcher = threading.Thread(target=self._watch, name="webhook-pool", daemon=True)
        self._watcher.start()

    def signal_stop(self) -> None:
        """Ask the pool to finish its requests under way and exit; no restart after it."""
        with self._lock:
            self._stopping.set()
            if self._process is not None and self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """signal_stop(), then wait for the pool (killed past STOP_TIMEOUT)."""
        self.signal_stop()
        with self._lock:
            process = self._process
        if process is not None:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._watcher.join(timeout=STOP_TIMEOUT)

    def _start(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self._process = _spawn()
            return self._process

    def _watch(self) -> None:
        # A worker is often started on a full queue: the email pool starts at once, this
        # one's start-up (a CPU-second of imports) waits for a quiet host, ten seconds at
        # most (worker/cpu_share.py). This process's own CPU, email's start, counts too.
        quiet = CpuShare(read_own=lambda: 0.0, sleep=self._stopping.wait)
        quiet.wait_for_quiet(START_WAIT_SECONDS)
        process = self._start()
        delay = FIRST_RESTART_DELAY
        while process is not None:
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > MAX_RESTART_DELAY:
                delay = FIRST_RESTART_DELAY
            log.error(
                "webhook pool exited with %s; starting it again in %g s",
                code,
                delay,
                extra={"exit_code": code, "restart_in_seconds": delay},
            )
            if self._stopping.wait(delay):
                return
            process = self._start()
            if process is not None:
                log.info("webhook pool started again", extra={"pid": process.pid})
            delay = min(delay * 2, MAX_RESTART_DELAY)
