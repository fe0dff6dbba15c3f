"""What `pochta bounces` counts, served on POCHTA_BOUNCES_METRICS_HOST:PORT."""

from __future__ import annotations

import logging

from prometheus_client import Counter, start_http_server

from app.bounces.reports import ReportKind
from app.config import Settings
from app.metrics import scrape_registry

log = logging.getLogger("pochta.bounces")

REPORTS = Counter(
    "pochta_reports",
    "Messages `pochta bounces` took, by kind (delivery_status, feedback_report, other: not a "
    "report) and whether they matched a message and recipient of ours.",
    ["kind", "matched"],
)
for _kind in ReportKind:
    for _matched in ("true", "false"):
        REPORTS.labels(kind=_kind.value, matched=_matched)  # every series from 0


def count_report(kind: ReportKind, matched: bool) -> None:
    REPORTS.labels(kind=kind.value, matched="true" if matched else "false").inc()


def serve(settings: Settings) -> None:
    """Serve this process's metrics; a busy port is logged, not fatal (as the worker's)."""
    host, port = settings.bounces_metrics_host, settings.bounces_metrics_port
    if not port:
        return
    try:
        start_http_server(port, addr=host, registry=scrape_registry())
    except OSError as error:
        log.warning("bounces metrics not served: %s", error, extra={"host": host, "port": port})
        return
    log.info("bounces metrics on http://%s:%d/metrics", host, port)
