"""The benchmark's command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Self

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379"
ROOT = Path(__file__).resolve().parent.parent
# (runs, messages, duration, single messages) by default, and with --quick.
FULL = (5, 6000, 5.0, 2000)
QUICK = (1, 1000, 2.0, 500)


@dataclass(frozen=True, slots=True)
class Options:
    runs: int
    messages: int
    single_messages: int
    duration: float
    warmup: float
    clients: int
    client_processes: int
    batch_clients: int
    api_workers: int
    worker_concurrency: int
    phase_timeout: float
    postgres: str
    database: str
    redis: str
    redis_db: int
    output: Path
    logdir: Path
    profile: bool
    webhook: bool

    @classmethod
    def parse(cls, argv: list[str] | None = None) -> Self:
        args = _parser().parse_args(argv)
        # --quick changes the defaults; what is given explicitly still wins.
        defaults = QUICK if args.quick else FULL
        runs = args.runs or defaults[0]
        messages = args.messages or defaults[1]
        duration = args.duration or defaults[2]
        single_messages = args.single_messages or defaults[3]
        return cls(
            runs=runs,
            messages=messages,
            single_messages=single_messages,
            duration=duration,
            warmup=min(1.0, duration / 4),
            clients=args.clients,
            client_processes=args.client_processes,
            batch_clients=args.batch_clients,
            api_workers=args.api_workers,
            worker_concurrency=args.worker_concurrency,
            phase_timeout=args.phase_timeout,
            postgres=args.postgres,
            database=args.database,
            redis=args.redis,
            redis_db=args.redis_db,
            output=args.output,
            logdir=args.logdir,
            profile=args.profile,
            webhook=not args.no_webhook,
        )


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure Pochta on PostgreSQL + Redis with Postfix's smtp-sink as the "
        "relay; each figure is the median of several runs (see bench/README.md).",
    )
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help="one short run: --runs 1 --messages 1000 --duration 2 --single-messages 500",
    )
    add("--runs", type=_positive_int, help=f"runs; each figure is their median ({FULL[0]})")
    add(
        "--messages",
        type=_positive_int,
        help=f"emails queued (in batches of 500) for drain ({FULL[1]})",
    )
    add(
        "--single-messages",
        type=_positive_int,
        help="emails queued with single POSTs, one doorbell each at most, for the drain of "
        f"a single-POST backlog ({FULL[3]})",
    )
    add(
        "--duration",
        type=_positive_float,
        help=f"seconds per timed load, after a warm-up ({FULL[2]:g})",
    )
    add(
        "--clients",
        type=_positive_int,
        default=32,
        help="concurrent HTTP clients, keep-alive (32)",
    )
    add(
        "--client-processes",
        type=_positive_int,
        default=1,
        help="processes the HTTP clients are spread over (1)",
    )
    add(
        "--batch-clients",
        type=_positive_int,
        default=4,
        help="concurrent clients posting batches (4)",
    )
    add("--api-workers", type=_positive_int, default=2, help="pochta api --workers (2)")
    add(
        "--worker-concurrency",
        type=_positive_int,
        default=2,
        help="pochta worker --concurrency (2)",
    )
    add(
        "--phase-timeout",
        type=_positive_float,
        default=180.0,
        help="seconds before a phase is given up (180)",
    )
    add(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help=f"a PostgreSQL URL to create and drop --database with ({DEFAULT_POSTGRES})",
    )
    add(
        "--database",
        default="pochta_bench",
        help="the benchmark's own database, dropped first and after (pochta_bench)",
    )
    add("--redis", default=DEFAULT_REDIS, help=f"the Redis server ({DEFAULT_REDIS})")
    add(
        "--redis-db",
        type=int,
        default=14,
        help="the benchmark's own Redis db number, flushed before and after (14)",
    )
    add(
        "--output",
        type=Path,
        default=ROOT / "bench" / "results.md",
        help="where the Markdown results go (bench/results.md)",
    )
    add(
        "--logdir",
        type=Path,
        default=ROOT / "var" / "bench",
        help="logs of every process, and profiles (var/bench)",
    )
    add(
        "--profile",
        action="store_true",
        help="one more run, not counted, with py-spy on the API (accept, batch) and the "
        "worker (drain); profiles and their summaries go to the log directory",
    )
    add(
        "--no-webhook",
        action="store_true",
        help="no webhook endpoint subscribed (to compare with the figures of a run with one)",
    )
    return parser
