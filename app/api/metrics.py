"""GET /metrics: what the API processes counted, and messages by status from the database."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.db import session_scope
from app.messages import listing
from app.messages.states import MessageStatus
from app.metrics import scrape_registry

log = logging.getLogger("pochta.metrics")

ACCEPTED = Counter(
    "pochta_messages_accepted",
    "Messages the API accepted (answered 202 for, alone or in a batch) and committed.",
)


def count_accepted(count: int = 1) -> None:
    """Count messages once their transaction has committed."""
    ACCEPTED.inc(count)


class MessagesByStatus(Collector):
    """pochta_messages{status}: one GROUP BY over every tenant's messages, at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with session_scope() as session:
                counts = listing.count_by_status(session)
        except Exception as error:
            # The rest of the scrape is still worth having; /readyz says the database is down.
            log.warning("messages by status not counted: %s", error.__class__.__name__)
            return
        family = GaugeMetricFamily(
            "pochta_messages",
            "Messages in each status now, counted in the database at scrape time.",
            labels=["status"],
        )
        for status in MessageStatus:
            family.add_metric([status.value], counts.get(status, 0))
        yield family


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": (
                        "# HELP pochta_messages_accepted_total Messages the API accepted ...\n"
                        "# TYPE pochta_messages_accepted_total counter\n"
                        "pochta_messages_accepted_total 42.0\n"
                        'pochta_messages{status="sent"} 40.0\n'
                    ),
                }
            },
        }
    },
)
def metrics() -> Response:
    """Prometheus metrics of the API processes; no auth (publish it only to your scraper)."""
    body = generate_latest(scrape_registry([MessagesByStatus()]))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
