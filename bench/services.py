"""What the benchmark runs against: smtp-sink, a webhook receiver, its own database, its own
Redis db number."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import redis

from app import processes
from harness.ports import free_port, wait_for_port
from harness.postfix import smtp_sink_path
from harness.services import create_database, drop_database

# Every table the messages domain writes; keys stay, so the API key survives a reset.
# The webhook endpoint stays; what it was sent and owed goes with the messages.
_MESSAGE_TABLES = (
    "attempts, recipients, message_tags, idempotency_records, messages, "
    "webhook_deliveries, webhook_pending, events_to_fan_out, events"
)


class _LoopbackServer:
    """A server process of the benchmark's on a free loopback port: started, waited for,
    stopped."""

    log_name = ""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.port = free_port()
        log = self.logdir / self.log_name
        self._process = processes.spawn(self.argv(), env=dict(os.environ), log=log)
        try:
            wait_for_port("127.0.0.1", self.port, timeout=10)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            processes.stop([process])


class Sink(_LoopbackServer):
    """Postfix's smtp-sink: answers 250 to everything, keeps nothing."""

    log_name = "smtp-sink.log"

    def argv(self) -> list[str]:
        # As root smtp-sink must drop privileges (-u) once it has its socket.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        return [smtp_sink_path(), "-4", *user, f"127.0.0.1:{self.port}", "1000"]


class Receiver(_LoopbackServer):
    """The webhook endpoint, bench/receiver.py: at normal priority, like smtp-sink, as a
    real endpoint would run on its own host."""

    log_name = "receiver.log"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "bench.receiver", str(self.port)]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def count(self) -> int:
        """How many requests it has answered."""
        return int(httpx.get(f"http://127.0.0.1:{self.port}/count", timeout=10).text)


def _libpq(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def _epoch(value: datetime) -> float:
    # Pochta stores UTC without a zone (app/orm.py UTCDateTime).
    return value.replace(tzinfo=UTC).timestamp()


RESET_TRIES = 10


class Database:
    """A PostgreSQL database of the benchmark's own: created, reset between phases, dropped."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url = admin_url
        self.name = name
        self.url = ""
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def create(self) -> None:
        drop_database(self.admin_url, self.name)  # left over from a run that was killed
        self.url = create_database(self.admin_url, self.name)

    def drop(self) -> None:
        self.close()
        drop_database(self.admin_url, self.name)

    def _conn(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(_libpq(self.url), autocommit=True)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def server_settings(self) -> str:
        """The PostgreSQL version and the settings that weigh on commit-heavy work."""
        names = ("server_version", "synchronous_commit", "fsync", "shared_buffers")
        values = [str(self._row(f"SHOW {name}")[0]) for name in names]
        return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))

    def reset(self) -> None:
        """Empty the message tables, so every phase starts from the same state.

        The scheduler and the webhook pool may still be fanning out or recording the last
        phase's events: TRUNCATE then loses a deadlock now and again, and simply retries.
        """
        for attempt in range(RESET_TRIES):
            try:
                self._conn().execute(f"TRUNCATE {_MESSAGE_TABLES} RESTART IDENTITY")
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == RESET_TRIES - 1:
                    raise
                time.sleep(0.2)

    def _row(self, query: str, params: tuple[object, ...] = ()) -> tuple[object, ...]:
        row = self._conn().execute(query, params).fetchone()
        assert row is not None
        return row

    def count(self, status: str) -> int:
        """How many messages have this status: one count(*) on ix_messages_due."""
        (count,) = self._row("SELECT count(*) FROM messages WHERE status = %s", (status,))
        return int(str(count))

    def statuses(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, count(*) FROM messages GROUP BY status")
        return {str(status): int(str(count)) for status, count in rows}

    def kept_transcripts(self) -> int:
        """How many attempts kept their SMTP transcript."""
        (count,) = self._row("SELECT count(*) FROM attempts WHERE transcript IS NOT NULL")
        return int(str(count))

    def webhooks_owed(self) -> int:
        """Events not yet fanned out, and deliveries not yet made."""
        (count,) = self._row(
            "SELECT (SELECT count(*) FROM events_to_fan_out)"
            " + (SELECT count(*) FROM webhook_pending)"
        )
        return int(str(count))

    def attempt_span(self) -> tuple[float, float]:
        """When the first attempt started and the last one finished (epoch seconds)."""
        first, last = self._row("SELECT min(started_at), max(finished_at) FROM attempts")
        if not isinstance(first, datetime) or not isinstance(last, datetime):
            raise RuntimeError("no delivery attempt was recorded")
        return _epoch(first), _epoch(last)


class Broker:
    """One Redis database number of the shared server, the benchmark's alone."""

    def __init__(self, base_url: str, db: int) -> None:
        self.url = f"{base_url.rstrip('/')}/{db}"
        self._client = redis.Redis.from_url(self.url, socket_timeout=5)

    def flush(self) -> None:
        self._client.flushdb()

    def purge_queue(self) -> None:
        """Drop queued tasks (and unacknowledged ones) but keep kombu's exchange bindings.

        Flushing the whole db under a running API would drop `_kombu.binding.*`, and its
        publisher, which declared the queue once, would then route tasks nowhere.
        """
        for pattern in ("pochta*", "unacked*"):
            keys = list(self._client.scan_iter(match=pattern, count=1000))
            if keys:
                self._client.delete(*keys)

    def close(self) -> None:
        self._client.close()
