"""What a worker counts (attempts, delivery latency, relay connections) and where it says so.

Every pool process of one `pochta worker` writes to the group's metrics directory
(app/metrics.py); the worker's main process serves their sum on
POCHTA_WORKER_METRICS_HOST:POCHTA_WORKER_METRICS_PORT.
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from app.config import Settings
from app.messages.models import Message
from app.messages.relay_results import AttemptResult
from app.messages.states import FINAL, AttemptOutcome, MessageStatus, attempt_outcome_for
from app.metrics import scrape_registry
from app.relays.config import Relay
from app.relays.state import RelayCondition, RelayState
from worker.smtp.connection import RelayConnection
from worker.smtp.errors import RelayError
from worker.smtp.pool import RelayPool

log = logging.getLogger("pochta.metrics")

REPLY_CLASSES = ("2xx", "4xx", "5xx", "none")
CONNECTION_EVENTS = ("opened", "failed", "closed")
DELIVERED = (MessageStatus.sent, MessageStatus.partially_sent, MessageStatus.failed)

ATTEMPTS = Counter(
    "pochta_attempts",
    "Delivery attempts, by outcome and by the class of the relay reply the attempt recorded "
    "(none: the relay said nothing, e.g. a refused connection or a timeout).",
    ["outcome", "reply_class"],
)
DELIVERY_LATENCY = Histogram(
    "pochta_delivery_latency_seconds",
    "From acceptance by the API to the final status the worker recorded, retries included.",
    ["status"],
    # Seconds on the happy path; minutes to days when the relay defers (5 days by default).
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 5 * 86400),
)
RELAY_CONNECTIONS = Counter(
    "pochta_relay_connections",
    "Relay connection events: opened (greeted, secured, authenticated), failed (an open "
    "that did not get that far), closed (an opened one ended, by us or by the relay).",
    ["event"],
)

# The relays' shared state as this worker last read it (each process reads the same
# store, so the most recent value is the group's).
RELAY_STATE = Gauge(
    "pochta_relay_state",
    "1 for the relay's current state (up, paused, down), 0 for the others.",
    ["relay", "state"],
    multiprocess_mode="mostrecent",
)
RELAY_RATE = Gauge(
    "pochta_relay_rate",
    "Messages per second the relay may take now, after shaping (0: no limit).",
    ["relay"],
    multiprocess_mode="mostrecent",
)
RELAY_SESSIONS = Gauge(
    "pochta_relay_sessions",
    "Sessions open with the relay, every worker on every host together.",
    ["relay"],
    multiprocess_mode="mostrecent",
)

# Every series exists from the start, at 0: rate() and alerts need no special case.
for _outcome in AttemptOutcome:
    for _reply_class in REPLY_CLASSES:
        ATTEMPTS.labels(_outcome.value, _reply_class)
for _status in DELIVERED:
    DELIVERY_LATENCY.labels(_status.value)
for _event in CONNECTION_EVENTS:
    RELAY_CONNECTIONS.labels(_event)


def reply_class(code: int | None) -> str:
    if code is None or not 200 <= code < 600 or 300 <= code < 400:
        return "none"
    return f"{code // 100}xx"


def record_attempt(message: Message, result: AttemptResult, status: MessageStatus) -> None:
    """Count an attempt once it is recorded, and the delivery's latency if it was the last."""
    outcome = attempt_outcome_for(r.status for r in result.recipients.values())
    code = result.reply.code if result.reply else None
    ATTEMPTS.labels(outcome.value, reply_class(code)).inc()
    if status in FINAL and result.finished_at is not None:
        latency = (result.finished_at - message.created_at).total_seconds()
        DELIVERY_LATENCY.labels(status.value).observe(max(latency, 0.0))


def show_relays(
    relays: dict[str, Relay], states: dict[str, RelayState], sessions: dict[str, int], now: datetime
) -> None:
    """Set the relay gauges from the shared state just read."""
    for name, relay in relays.items():
        state = states[name]
        current = state.condition(now)
        for condition in RelayCondition:
            RELAY_STATE.labels(name, condition.value).set(1 if condition is current else 0)
        RELAY_RATE.labels(name).set(state.rate(relay, now) or 0)
        RELAY_SESSIONS.labels(name).set(sessions.get(name, 0))


class ObservedRelayPool(RelayPool):
    """The relay pool, counting its connections' events (worker/smtp/ stays unaware)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._live: RelayConnection | None = None

    def acquire(self) -> RelayConnection:
        tried_before = self.connections_opened
        try:
            connection = super().acquire()
        except RelayError:
            # Only opening a new connection raises; the old one, if any, is gone.
            self._gone()
            RELAY_CONNECTIONS.labels("failed").inc()
            raise
        if self.connections_opened != tried_before:
            self._gone()
            RELAY_CONNECTIONS.labels("opened").inc()
            self._live = connection
        return connection

    def observe(self) -> None:
        """Count a close the last transaction caused (a 421, a dropped socket)."""
        if self._live is not None and not self._live.is_open:
            self._gone()

    def close(self) -> None:
        super().close()
        self._gone()

    def _gone(self) -> None:
        if self._live is not None:
            self._live = None
            RELAY_CONNECTIONS.labels("closed").inc()


def serve(settings: Settings) -> None:
    """Serve the worker group's metrics from this (main) process; a busy port is not fatal."""
    port = settings.worker_metrics_port
    if not port:
        return
    host = settings.worker_metrics_host
    try:
        start_http_server(port, addr=host, registry=scrape_registry())
    except OSError as error:
        log.warning(
            "worker metrics not served: %s",
            error,
            extra={"host": host, "port": port},
        )
        return
    log.info("worker metrics on http://%s:%d/metrics", host, port)
