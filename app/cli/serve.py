"""The long-running commands: api, worker, scheduler, sink; and send, their client.

The command line is the composition root: the only part of `app` that may import
`worker` (the import contract in pyproject.toml says so).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from app.config import LogFormat, Settings


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


def cmd_api(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from app.metrics import use_private_multiprocess_dir

    # Before uvicorn starts its --workers: they inherit it, /metrics adds them up.
    use_private_multiprocess_dir("api")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=False,
    )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from app.metrics import use_private_multiprocess_dir

    if args.webhooks_only:
        _run_webhook_pool(settings)
        return
    from app.outbox.broker import QUEUE

    # Before the pool forks: its processes count there, this one serves the sum (the
    # webhook pool's process inherits the directory too).
    use_private_multiprocess_dir("worker")
    from app.cli.webhook_pool import WebhookPool
    from worker.metrics import serve
    from worker.tasks import consuming_app

    webhook_pool = WebhookPool()

    def _stop_both(**_: object) -> None:
        # Both pools wind down together, within one stop timeout.
        webhook_pool.signal_stop()

    from celery.signals import worker_shutting_down

    worker_shutting_down.connect(_stop_both, weak=False)
    try:
        serve(settings)
        argv = [*_celery_common(settings), "-Q", QUEUE]
        argv += ["--concurrency", str(args.concurrency or os.cpu_count() or 1)]
        consuming_app().worker_main(argv)
    finally:
        webhook_pool.stop()


def _celery_common(settings: Settings) -> list[str]:
    # JSON logs are one object a line: no banner (--quiet) among them.
    quiet = ["--quiet"] if settings.log_format is LogFormat.json else []
    argv = [*quiet, "worker", "--loglevel", settings.log_level.upper()]
    return [*argv, "--without-gossip", "--without-mingle", "--without-heartbeat"]


def _run_webhook_pool(settings: Settings) -> None:
    """Threads consuming only the webhooks queue: requests wait on the network, not the CPU,
    and one dead endpoint holds these threads, never email's processes (SPEC §7)."""
    from app.cli.webhook_pool import lower_priority

    # Before the imports, which cost a CPU-second: `pochta worker` starts its pool
    # lowered already, an operator's own `pochta worker --webhooks-only` is lowered here.
    lower_priority(0)
    from app.outbox.broker import WEBHOOK_QUEUE
    from worker.tasks import consuming_app

    # One line per request is ours (pochta.webhooks, with the event and endpoint ids).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    argv = [*_celery_common(settings), "-Q", WEBHOOK_QUEUE, "--pool", "threads"]
    argv += ["--concurrency", str(settings.webhook_worker_threads), "--hostname", "webhooks@%h"]
    consuming_app().worker_main(argv)


def cmd_scheduler(_: argparse.Namespace, settings: Settings) -> None:
    from app.outbox.scheduler import run

    run(stop_on_signals())


def cmd_send(args: argparse.Namespace, settings: Settings) -> None:
    from app.send import run

    raise SystemExit(run(args))


def cmd_sink(args: argparse.Namespace, settings: Settings) -> None:
    from app.sink import run_sink

    run_sink(args.host, args.port, Path(args.dir), stop_on_signals())


def cmd_bounces(args: argparse.Namespace, settings: Settings) -> None:
    from app.bounces.metrics import serve
    from app.bounces.server import run_server

    if settings.bounce_domain is None:
        raise SystemExit(
            "pochta: POCHTA_BOUNCE_DOMAIN is not set: `pochta bounces` takes mail only for it"
        )
    serve(settings)
    run_server(settings, settings.bounce_domain, args.host, args.port, stop_on_signals())
