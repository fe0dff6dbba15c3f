"""The webhook pool's share of a busy host: while other work keeps the CPUs busy, the pool
runs at most SHARE of one CPU, so email sent from the same host is not slowed by it.

Idle priority (app/cli/webhook_pool.py) is not enough on its own. On a virtual machine
whose CPUs are hyperthreads of the host's cores, a thread that uses a CPU no one else wants
still slows the one on its sibling: an idle-priority loop spinning beside a drain cost it
a third of its rate, and the pool's requests beside a drain about a fifth
(bench/README.md). From inside the guest no one can tell which CPUs are siblings, so the
pool limits what it uses instead.

On an idle host nothing waits. Where /proc/stat cannot be read (not Linux), nothing waits.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

# The host is busy while the other processes use at least this fraction of all its CPUs.
BUSY_FRACTION = 0.5
# CPUs the pool may use while it is, and how far ahead of that share it may run.
SHARE = 0.1
BURST_SECONDS = 0.02
# How often the host's CPU counters are read.
SAMPLE_SECONDS = 0.1
# A sender waits this long at most for its turn: a turn is taken inside a claim's lease.
MAX_WAIT_SECONDS = 1.0
# The pool's start-up waits this long at most for a quiet host.
START_WAIT_SECONDS = 10.0

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC_STAT = Path("/proc/stat")


def host_seconds() -> tuple[float, float] | None:
    """CPU-seconds the host's CPUs have been busy and have existed, since boot; None if
    the counters cannot be read.

    Busy is everything but idle and I/O wait, stolen time included: a CPU the hypervisor
    gave to someone else is not free for us either.
    """
    try:
        with _PROC_STAT.open() as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy / _TICKS_PER_SECOND, (busy + idle + iowait) / _TICKS_PER_SECOND


class CpuShare:
    """One per pool process, shared by its sender threads: wait_turn() before a request."""

    def __init__(
        self,
        *,
        read_host: Callable[[], tuple[float, float] | None] = host_seconds,
        read_own: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        """sleep may end a wait early by returning true (as a set Event's wait does)."""
        self._read_host = read_host
        self._read_own = read_own
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sampled_at = clock()
        self._host = read_host()
        self._own = read_own()
        self._busy = False
        # CPU-seconds the pool may still use before it must wait (negative: in debt).
        self._credit = BURST_SECONDS

    def wait_turn(self) -> None:
        """Return at once while the host is not busy or the pool is within its share;
        otherwise once it is, or after MAX_WAIT_SECONDS."""
        deadline = self._clock() + MAX_WAIT_SECONDS
        while True:
            with self._lock:
                now = self._clock()
                if now - self._sampled_at >= SAMPLE_SECONDS:
                    self._sample(now)
                if not self._busy or self._credit > 0 or now >= deadline:
                    return
                pause = min(-self._credit / SHARE, SAMPLE_SECONDS, deadline - now)
            self._sleep(pause)

    @property
    def busy(self) -> bool:
        """Whether the host was busy at the last reading."""
        return self._busy

    def wait_for_quiet(self, limit: float) -> None:
        """Wait while the host is busy, at most limit seconds: the pool's start-up, a
        CPU-second of imports, is put off while email is being sent beside it."""
        deadline = self._clock() + limit
        while (left := deadline - self._clock()) > 0:
            if self._sleep(min(SAMPLE_SECONDS, left)):
                return
            with self._lock:
                self._sample(self._clock())
                if not self._busy:
                    return

    def _sample(self, now: float) -> None:
        host, own = self._read_host(), self._read_own()
        elapsed, used = now - self._sampled_at, own - self._own
        previous = self._host
        self._sampled_at, self._host, self._own = now, host, own
        if host is None or previous is None or host[1] <= previous[1]:
            self._busy, self._credit = False, BURST_SECONDS
            return
        others = host[0] - previous[0] - used
        self._busy = others >= BUSY_FRACTION * (host[1] - previous[1])
        if not self._busy:
            self._credit = BURST_SECONDS
            return
        self._credit = min(BURST_SECONDS, self._credit + SHARE * elapsed - used)
