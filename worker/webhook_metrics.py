"""What the webhook pool counts, and the oldest undelivered event per endpoint at scrape time."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.clock import utcnow
from app.db import session_scope
from app.webhooks import pending
from app.webhooks.sending import Sent

log = logging.getLogger("pochta.metrics")

OUTCOMES = ("succeeded", "failed")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")

REQUESTS = Counter(
    "pochta_webhook_requests",
    "Webhook requests made, by outcome and by the class of the receiver's status "
    "(none: no answer, e.g. a timeout, a refused connection or an address not allowed).",
    ["outcome", "status_class"],
)
LATENCY = Histogram(
    "pochta_webhook_delivery_latency_seconds",
    "From the event's creation to the 2xx that delivered it, retries included.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 86400, 2 * 86400),
)

for _outcome in OUTCOMES:
    for _status_class in STATUS_CLASSES:
        REQUESTS.labels(_outcome, _status_class)


def status_class(status: int | None) -> str:
    if status is None or not 100 <= status < 600:
        return "none"
    return "2xx" if status < 300 else f"{status // 100}xx"


def record(sent: Sent) -> None:
    REQUESTS.labels(
        "succeeded" if sent.succeeded else "failed", status_class(sent.answer.status)
    ).inc()
    if sent.succeeded:
        LATENCY.observe(max((sent.finished_at - sent.event_created_at).total_seconds(), 0.0))


class OldestUndelivered(Collector):
    """pochta_webhook_oldest_undelivered_seconds{webhook}: the alert that matters."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with session_scope() as session:
                rows = pending.oldest_undelivered(session)
        except Exception as error:
            log.warning("oldest undelivered events not read: %s", error.__class__.__name__)
            return
        family = GaugeMetricFamily(
            "pochta_webhook_oldest_undelivered_seconds",
            "Per endpoint, the age of its oldest event not yet delivered (or given up on).",
            labels=["webhook"],
        )
        now = utcnow()
        for webhook_id, created_at in rows:
            family.add_metric([webhook_id], max((now - created_at).total_seconds(), 0.0))
        yield family
