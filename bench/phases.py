"""The phases of one run: each sets up what it needs, measures, and returns its figure."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import payloads, profile
from bench.ceiling import Mode, smtplib_rate
from bench.figures import (
    ACCEPT,
    BATCH,
    DRAIN,
    END_TO_END,
    HEALTHZ,
    SINGLES,
    DrainFigure,
    LoadFigure,
    MemoryPeaks,
)
from bench.httpload import Tally, start_load
from bench.options import Options
from bench.services import Broker, Database, Sink
from bench.stack import Stack

BATCH_SIZE = 500
POLL_SECONDS = 0.1
SAMPLE_SECONDS = 0.25
CEILING_SECONDS = 3.0
# Messages that end up here never become `sent` within a run: stop waiting at once.
STUCK = ("deferred", "failed", "partially_sent", "canceled")


@dataclass(slots=True)
class Context:
    """Everything a phase works with."""

    options: Options
    stack: Stack
    database: Database
    broker: Broker
    sink: Sink
    key: str
    memory: MemoryPeaks = field(default_factory=MemoryPeaks)  # the current run's
    phase: str = ""  # what memory samples are filed under
    batch_available: bool = False
    profile_dir: Path | None = None  # set for the one profiled run

    def post(self, path: str, body: bytes) -> bytes:
        return payloads.post(path, body, key=self.key, port=self.stack.port)

    def clean_slate(self) -> None:
        """No message rows, no queued tasks: each phase starts from the same state."""
        self.database.reset()
        self.broker.purge_queue()

    def sample_memory(self) -> None:
        self.memory.sample(self.stack.pids(), self.phase)

    @contextlib.contextmanager
    def profiled(self, process: str, phase: str, *, wall_clock: bool) -> Iterator[None]:
        """py-spy on a process group during the block, when this is the profiled run."""
        if self.profile_dir is None:
            yield
            return
        output = self.profile_dir / f"{phase}-{process}.txt"
        with profile.recording(self.stack.pid(process), output, wall_clock=wall_clock):
            yield


def probe_batch(ctx: Context) -> bool:
    """Whether `POST /v1/messages/batch` exists and accepts a valid item."""
    response = httpx.post(
        f"{ctx.stack.url}/v1/messages/batch",
        content=payloads.batch_json(1),
        headers={"Authorization": f"Bearer {ctx.key}", "Content-Type": "application/json"},
        timeout=30,
    )
    if response.status_code in (404, 405):
        return False
    if response.status_code != 200:
        raise RuntimeError(f"batch probe: {response.status_code} {response.text[:500]}")
    results = response.json()["results"]
    if [r["status"] for r in results] != [202]:
        raise RuntimeError(f"batch probe: the item was not accepted: {results}")
    return True


def _load(
    ctx: Context,
    request: bytes,
    *,
    connections: int,
    duration: float,
    warmup: float = 0.0,
    count: int | None = None,
) -> Tally:
    """Run a load while sampling every process's memory; its tally."""
    load = start_load(
        port=ctx.stack.port,
        request=request,
        connections=connections,
        processes=min(ctx.options.client_processes, connections),
        duration=duration,
        warmup=warmup,
        count=count,
    )
    try:
        while load.running():
            ctx.sample_memory()
            time.sleep(SAMPLE_SECONDS)
        return load.result()
    finally:
        load.close()


def _timed(ctx: Context, request: bytes) -> LoadFigure:
    options = ctx.options
    total = options.duration + options.warmup
    tally = _load(ctx, request, connections=options.clients, duration=total, warmup=options.warmup)
    return LoadFigure.of(tally, total)


def healthz(ctx: Context) -> LoadFigure:
    """The same load against an endpoint that does nothing: the HTTP path's own ceiling."""
    ctx.phase = HEALTHZ
    return _timed(ctx, payloads.get("/healthz", port=ctx.stack.port))


def accept(ctx: Context) -> LoadFigure:
    """Single `POST /v1/messages` from many clients, no worker running."""
    ctx.phase = ACCEPT
    ctx.clean_slate()
    with ctx.profiled("api", "accept", wall_clock=False):
        return _timed(ctx, ctx.post("/v1/messages", payloads.message_json()))


def queue_for_drain(ctx: Context) -> tuple[int, float | None]:
    """Have the API accept the drain's emails, no worker running: (count, batch emails/s).

    Through `POST /v1/messages/batch` when it exists, timed from the first request sent
    to the last answer read (that is the batch figure); else with single POSTs (None).
    """
    ctx.phase = BATCH
    ctx.clean_slate()
    options = ctx.options
    if ctx.batch_available:
        requests = math.ceil(options.messages / BATCH_SIZE)
        count, connections = requests * BATCH_SIZE, options.batch_clients
        request = ctx.post("/v1/messages/batch", payloads.batch_json(BATCH_SIZE))
    else:
        requests = count = options.messages
        connections = options.clients
        request = ctx.post("/v1/messages", payloads.message_json())
    with ctx.profiled("api", "batch", wall_clock=False):
        tally = _load(
            ctx,
            request,
            connections=min(connections, requests),
            duration=options.phase_timeout,
            count=requests,
        )
    ok = 200 if ctx.batch_available else 202
    if tally.errors or tally.statuses != {ok: requests}:
        raise RuntimeError(f"queueing for drain: {tally.statuses} {tally.errors[:5]}")
    queued = ctx.database.count("queued")
    if queued != count:
        raise RuntimeError(f"queueing for drain: {queued} messages queued instead of {count}")
    if not ctx.batch_available:
        return count, None
    return count, count / (tally.last_done_wall - tally.first_sent_wall)


def queue_singles(ctx: Context) -> int:
    """Have the API accept single POSTs with no worker running, as while workers are down.

    The broker then holds a doorbell per few messages (each API process's doorbell
    rings for what committed in its last 20 ms), the common backlog; how many are queued.
    """
    ctx.phase = SINGLES
    ctx.clean_slate()
    count = ctx.options.single_messages
    tally = _load(
        ctx,
        ctx.post("/v1/messages", payloads.message_json()),
        connections=min(ctx.options.clients, count),
        duration=ctx.options.phase_timeout,
        count=count,
    )
    if tally.errors or tally.statuses != {202: count}:
        raise RuntimeError(f"queueing single POSTs: {tally.statuses} {tally.errors[:5]}")
    queued = ctx.database.count("queued")
    if queued != count:
        raise RuntimeError(f"queueing single POSTs: {queued} messages queued, not {count}")
    return count


def _wait_sent(ctx: Context, count: int) -> None:
    """Poll the database until count messages are `sent`; RuntimeError if stuck or too slow."""
    deadline = time.monotonic() + ctx.options.phase_timeout
    while ctx.database.count("sent") < count:
        ctx.stack.check_alive()
        ctx.sample_memory()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {ctx.database.count('sent')} of {count} messages sent after "
                f"{ctx.options.phase_timeout:.0f}s: {ctx.database.statuses()}"
            )
        statuses = ctx.database.statuses()
        if any(statuses.get(stuck) for stuck in STUCK):
            raise RuntimeError(f"messages that will not be sent in this run: {statuses}")
        time.sleep(POLL_SECONDS)


def drain(ctx: Context, count: int, *, phase: str = DRAIN) -> DrainFigure:
    """Start the workers on a full queue: how fast do they empty it?"""
    ctx.phase = phase
    started = time.time()
    ctx.stack.start_delivery(ctx.options.worker_concurrency)
    with ctx.profiled("worker", phase.replace(" ", "-"), wall_clock=True):
        _wait_sent(ctx, count)
    first, last = ctx.database.attempt_span()
    webhooks_after = _wait_webhooks(ctx) - last if ctx.options.webhook else None
    return DrainFigure(
        steady=count / (last - first),
        from_start=count / (last - started),
        webhooks_after=webhooks_after,
    )


def _wait_webhooks(ctx: Context) -> float:
    """Poll until every event is delivered, so that the next phase neither drops what is
    owed nor starts beside it; when that was (epoch seconds)."""
    deadline = time.monotonic() + ctx.options.phase_timeout
    while ctx.database.webhooks_owed():
        ctx.stack.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{ctx.database.webhooks_owed()} webhook deliveries still owed after "
                f"{ctx.options.phase_timeout:.0f}s"
            )
        time.sleep(POLL_SECONDS)
    return time.time()


def start_delivery(ctx: Context) -> None:
    """Start worker and scheduler, and wait until one message goes through them."""
    ctx.phase = END_TO_END
    ctx.clean_slate()
    ctx.stack.start_delivery(ctx.options.worker_concurrency)
    response = httpx.post(
        f"{ctx.stack.url}/v1/messages",
        content=payloads.message_json(),
        headers={"Authorization": f"Bearer {ctx.key}", "Content-Type": "application/json"},
        timeout=30,
    )
    if response.status_code != 202:
        raise RuntimeError(f"warm-up message: {response.status_code} {response.text[:500]}")
    _wait_sent(ctx, 1)


def end_to_end(ctx: Context) -> float:
    """Clients posting single messages while the (running, warm) workers deliver: emails/s."""
    ctx.phase = END_TO_END
    ctx.database.reset()  # the queue is empty: the warm-up message is sent
    options = ctx.options
    tally = _load(
        ctx,
        ctx.post("/v1/messages", payloads.message_json()),
        connections=options.clients,
        duration=options.duration,
    )
    accepted = tally.statuses.get(202, 0)
    if not accepted or tally.errors or accepted != sum(tally.statuses.values()):
        raise RuntimeError(f"end to end: {tally.statuses} {tally.errors[:5]}")
    _wait_sent(ctx, accepted)
    _, last = ctx.database.attempt_span()
    return accepted / (last - tally.first_sent_wall)


def stop_delivery(ctx: Context) -> None:
    ctx.stack.stop("worker")
    ctx.stack.stop("scheduler")


def ceiling(ctx: Context) -> tuple[float, float]:
    """smtplib alone into the same sink, workers stopped: (prebuilt, build) emails/s."""
    stop_delivery(ctx)
    processes = ctx.options.worker_concurrency
    duration = min(ctx.options.duration, CEILING_SECONDS)
    return (
        smtplib_rate(Mode.prebuilt, port=ctx.sink.port, processes=processes, duration=duration),
        smtplib_rate(Mode.build, port=ctx.sink.port, processes=processes, duration=duration),
    )
