"""The whole benchmark: start the services, run every phase `--runs` times, report, clean up."""

from __future__ import annotations

import contextlib
import shutil
import signal
from datetime import UTC, datetime
from types import FrameType

from bench import machine, phases, profile, transcripts
from bench.figures import SINGLES_DRAIN, DrainFigure, LoadFigure, RunFigures
from bench.options import Options
from bench.report import rows, table
from bench.services import Broker, Database, Receiver, Sink
from bench.stack import Stack, pochta_env


def _say(text: str) -> None:
    print(text, flush=True)


def _load_text(figure: LoadFigure) -> str:
    failures = f", {figure.failures} FAILED" if figure.failures else ""
    return (
        f"{figure.per_second:,.0f} req/s, p50 {figure.p50 * 1000:.1f} ms, "
        f"p99 {figure.p99 * 1000:.1f} ms (load generator {figure.generator_cpu:.0%} of a "
        f"core{failures})"
    )


def _webhooks_text(figure: DrainFigure) -> str:
    if figure.webhooks_after is None:
        return ""
    return f"; its webhooks all delivered {figure.webhooks_after:.1f} s after its last email"


def one_run(ctx: phases.Context, label: str) -> RunFigures:
    """Every phase once, on a freshly started API (so its memory is this run's)."""
    prefix = f"{label}:"
    figures = RunFigures()
    ctx.memory = figures.memory
    ctx.stack.restart_api()
    figures.healthz = phases.healthz(ctx)
    _say(f"{prefix} GET /healthz        {_load_text(figures.healthz)}")
    figures.accept = phases.accept(ctx)
    _say(f"{prefix} accept              {_load_text(figures.accept)}")
    phases.start_delivery(ctx)
    figures.end_to_end = phases.end_to_end(ctx)
    _say(f"{prefix} end to end          {figures.end_to_end:,.0f} emails/s")
    phases.stop_delivery(ctx)
    count, figures.batch = phases.queue_for_drain(ctx)
    if figures.batch is None:
        _say(f"{prefix} batch: endpoint missing ({count:,} queued with single POSTs)")
    else:
        _say(f"{prefix} batch accept        {figures.batch:,.0f} emails/s ({count:,} queued)")
    figures.drain = phases.drain(ctx, count)
    _say(
        f"{prefix} drain               {figures.drain.steady:,.0f} emails/s "
        f"({figures.drain.from_start:,.0f} counting the workers' start)"
        + _webhooks_text(figures.drain)
    )
    phases.stop_delivery(ctx)
    singles = phases.queue_singles(ctx)
    figures.drain_singles = phases.drain(ctx, singles, phase=SINGLES_DRAIN)
    _say(
        f"{prefix} drain, single POSTs  {figures.drain_singles.steady:,.0f} emails/s "
        f"({singles:,} queued; {figures.drain_singles.from_start:,.0f} counting the "
        "workers' start)"
    )
    none, kept = transcripts.drains(ctx)
    figures.drain_no_transcripts, figures.drain_all_transcripts = none, kept
    _say(
        f"{prefix} drain, transcripts   {kept.steady:,.0f} emails/s keeping all, "
        f"{none.steady:,.0f} keeping none ({kept.steady / none.steady:.2f} ×)"
    )
    figures.smtplib_prebuilt, figures.smtplib_build = phases.ceiling(ctx)
    _say(
        f"{prefix} ceiling (smtplib)   {figures.smtplib_prebuilt:,.0f} emails/s prebuilt, "
        f"{figures.smtplib_build:,.0f} emails/s build + send"
    )
    return figures


def profiled_run(ctx: phases.Context) -> None:
    """One more run with py-spy attached; its figures are skewed and not counted."""
    ctx.profile_dir = ctx.options.logdir / "profiles"
    ctx.profile_dir.mkdir(parents=True, exist_ok=True)
    try:
        one_run(ctx, "profiled run (not counted)")
    finally:
        ctx.profile_dir = None
    summaries = ctx.options.logdir / "profiles" / "summary.txt"
    raws = sorted((ctx.options.logdir / "profiles").glob("*.txt"))
    summaries.write_text("\n".join(profile.summarize(raw) for raw in raws if raw != summaries))
    _say(f"profiles: {summaries}")


def _interrupt_on_sigterm() -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _header(options: Options, database: Database, started: datetime, load_before: str) -> str:
    return "\n".join(
        [
            "# Pochta benchmark results",
            "",
            f"- when: {started:%Y-%m-%d %H:%M} UTC, code {machine.code_version()}",
            f"- machine: {machine.describe()}",
            f"- PostgreSQL: {database.server_settings()}",
            f"- load average before / after: {load_before} / {machine.load_average()}",
            f"- runs: {options.runs}; {options.clients} HTTP clients in "
            f"{options.client_processes} process(es); {options.duration:g} s per timed load "
            f"after {options.warmup:g} s warm-up; drain of {options.messages:,} emails "
            f"queued in batches and of {options.single_messages:,} queued by single POSTs",
            f"- pochta api --workers {options.api_workers}; pochta worker --concurrency "
            f"{options.worker_concurrency}; pochta scheduler; POCHTA_LOG_LEVEL=WARNING",
            "- webhooks: "
            + (
                "one endpoint subscribed to every event, bench/receiver.py on loopback "
                "answering 200; each drain waits for its webhooks before the next phase"
                if options.webhook
                else "none (--no-webhook)"
            ),
            "",
        ]
    )


def run(options: Options) -> int:
    """The benchmark from start to end; the process's exit status."""
    _interrupt_on_sigterm()
    started = datetime.now(UTC)
    load_before = machine.load_average()
    shutil.rmtree(options.logdir, ignore_errors=True)
    options.logdir.mkdir(parents=True)
    sink = Sink(options.logdir)
    database = Database(options.postgres, options.database)
    broker = Broker(options.redis, options.redis_db)
    with contextlib.ExitStack() as cleanup:
        # Undone in reverse order, each step even when an earlier one failed.
        cleanup.callback(broker.close)
        cleanup.callback(broker.flush)
        broker.flush()
        cleanup.callback(database.drop)
        database.create()
        cleanup.callback(sink.stop)
        sink.start()
        env = pochta_env(database_url=database.url, broker_url=broker.url, smtp_port=sink.port)
        stack = Stack(env, options.logdir, api_workers=options.api_workers)
        cleanup.callback(stack.stop_all)
        stack.command("migrate")
        key = stack.create_key()
        stack.start_api()
        # Every event of every phase goes to a subscribed endpoint, as in a deployment
        # that uses webhooks: the figures include fanning out and sending them.
        receiver = Receiver(options.logdir)
        cleanup.callback(receiver.stop)
        receiver.start()
        if options.webhook:
            stack.subscribe_webhook(key, receiver.url())
        ctx = phases.Context(options, stack, database, broker, sink, key)
        ctx.batch_available = phases.probe_batch(ctx)
        if not ctx.batch_available:
            _say("batch: endpoint missing (drain is queued with single POSTs instead)")
        results = [one_run(ctx, f"run {n}/{options.runs}") for n in range(1, options.runs + 1)]
        if options.profile:
            profiled_run(ctx)
        text = _header(options, database, started, load_before) + "\n"
        text += table(rows(results, options, batch_missing=not ctx.batch_available)) + "\n"
        _say(f"webhook receiver: {receiver.count():,} requests taken")
    _say("\n" + text)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(text)
    _say(f"written to {options.output}; process logs in {options.logdir}/")
    return 0
