"""A lean HTTP/1.1 load generator: keep-alive connections in asyncio, in 1-2 processes.

httpx costs more CPU per request than the API it would measure on a 2-core machine, so
each connection here writes prebuilt request bytes and parses only the status line and
Content-Length of the answer, the next request leaving as soon as the last one is read.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import resource
import time
from dataclasses import dataclass, field

from bench.spawned import HEAD_START_SECONDS, Helpers
from bench.stats import Latencies

# A process that has not reported this long after its plan ended is stuck.
REPORT_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What one process does: its connections, until `count` requests or the deadline."""

    port: int
    request: bytes
    connections: int
    start_at: float  # time.monotonic(), shared by every process on Linux
    duration: float  # the deadline is start_at + duration, also with a count
    warmup: float = 0.0  # requests finished before start_at + warmup are not counted
    count: int | None = None  # None: as many as fit in the duration


@dataclass(slots=True)
class Tally:
    """What one process (or, merged, all of them) saw."""

    latencies: list[float] = field(default_factory=list)  # seconds, counted requests only
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    first_sent_wall: float = float("inf")  # time.time() of the first request written
    last_done_wall: float = 0.0  # time.time() of the last answer read
    window: float = 0.0  # seconds over which latencies were counted
    cpu_seconds: float = 0.0  # user + system time the generator itself spent

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.completed / self.window if self.window > 0 else 0.0

    def summary(self) -> Latencies:
        return Latencies.of(self.latencies)

    def merge(self, other: Tally) -> None:
        self.latencies += other.latencies
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.errors += other.errors
        self.first_sent_wall = min(self.first_sent_wall, other.first_sent_wall)
        self.last_done_wall = max(self.last_done_wall, other.last_done_wall)
        self.window = max(self.window, other.window)
        self.cpu_seconds += other.cpu_seconds


class _Run:
    """The shared state of one process's connections: tickets, window and tally."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.remaining = plan.count
        self.counted_from = plan.start_at + plan.warmup
        self.deadline = plan.start_at + plan.duration
        self.tally = Tally(window=plan.duration - plan.warmup)

    def take(self) -> bool:
        """Whether another request may go out now."""
        if time.monotonic() >= self.deadline:
            return False
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    def record(self, sent_at: float, status: int) -> None:
        done = time.monotonic()
        tally = self.tally
        tally.last_done_wall = time.time()
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if self.counted_from <= done <= self.deadline:
            tally.latencies.append(done - sent_at)


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError(f"answer without Content-Length: {head[:200]!r}")
    end = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : end if end >= 0 else len(head)])


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the plan's request back to back."""

    def __init__(self, run: _Run, finished: asyncio.Future[None]) -> None:
        self.run = run
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.body_end = -1  # where the answer being read ends, once its head is parsed
        self.status = 0
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if not self.run.take():
            self.transport.close()
            if not self.finished.done():
                self.finished.set_result(None)
            return
        self.sent_at = time.monotonic()
        self.run.tally.first_sent_wall = min(self.run.tally.first_sent_wall, time.time())
        self.transport.write(self.run.plan.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.body_end < 0:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end])
            self.status = int(head[9:12])
            self.body_end = head_end + 4 + _content_length(head)
        if len(self.buffer) < self.body_end:
            return
        if len(self.buffer) > self.body_end:
            self._fail(f"{len(self.buffer) - self.body_end} unexpected bytes after an answer")
            return
        self.buffer.clear()
        self.body_end = -1
        self.run.record(self.sent_at, self.status)
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self._fail(f"connection lost: {exc!r}")

    def _fail(self, reason: str) -> None:
        self.run.tally.errors.append(reason)
        if self.transport is not None:
            self.transport.close()
        if not self.finished.done():
            self.finished.set_result(None)


async def _drive(plan: Plan) -> Tally:
    run = _Run(plan)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, plan.start_at - time.monotonic()))
    finished = [loop.create_future() for _ in range(plan.connections)]
    for future in finished:
        try:
            await loop.create_connection(
                functools.partial(_Connection, run, future), "127.0.0.1", plan.port
            )
        except OSError as error:
            run.tally.errors.append(f"connect: {error}")
            future.set_result(None)
    grace = plan.duration + REPORT_GRACE_SECONDS / 2
    try:
        await asyncio.wait_for(asyncio.gather(*finished), timeout=grace)
    except TimeoutError:
        run.tally.errors.append("connections still busy after the deadline")
    return run.tally


def _process_main(plan: Plan, results: multiprocessing.Queue[Tally]) -> None:
    """One load-generator process: run the plan, report the tally with its CPU time."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    tally = asyncio.run(_drive(plan))
    after = resource.getrusage(resource.RUSAGE_SELF)
    tally.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    results.put(tally)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Load:
    """Load-generator processes at work; `result()` waits for their merged tally."""

    def __init__(self, plans: list[Plan]) -> None:
        self._window = plans[0].duration - plans[0].warmup
        self._deadline = plans[0].start_at + plans[0].duration + REPORT_GRACE_SECONDS
        self._helpers: Helpers[Tally] = Helpers(_process_main, [(plan,) for plan in plans])

    def result(self) -> Tally:
        """The merged tally once every process reported; the processes are then gone."""
        merged = Tally(window=self._window)
        for tally in self._helpers.collect(self._deadline, "load generator"):
            merged.merge(tally)
        return merged

    def running(self) -> bool:
        """Whether a process is still at work (result() would wait)."""
        return self._helpers.running()

    def close(self) -> None:
        """End the processes at once (a no-op once result() returned)."""
        self._helpers.end(grace=0.0)


def start_load(
    *,
    port: int,
    request: bytes,
    connections: int,
    processes: int,
    duration: float,
    warmup: float = 0.0,
    count: int | None = None,
) -> Load:
    """Start the load in `processes` fresh processes, connections and count split evenly."""
    start_at = time.monotonic() + HEAD_START_SECONDS
    counts: list[int | None] = [None] * processes if count is None else [*_split(count, processes)]
    return Load(
        [
            Plan(port, request, share, start_at, duration, warmup, counts[i])
            for i, share in enumerate(_split(connections, processes))
        ]
    )
