"""`pochta bounces`: the SMTP server the bounce domain's MX points at (SPEC §9).

It takes RCPT only for POCHTA_BOUNCE_DOMAIN (it is no relay), messages up to 10 MiB,
and answers 250 to everything it takes, read or not, matched or not: a report is never
answered with a bounce. Only when the database cannot record one does it say 451, so
the reporting MTA keeps the report and tries again (as it does after any error here).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.exc import SQLAlchemyError

from app import db
from app.bounces.apply import Applied, ReportTooEarly, apply_report
from app.bounces.metrics import count_report
from app.bounces.reports import Report, ReportKind, read_report
from app.clock import utcnow
from app.config import Settings
from app.suppressions.metrics import count_created

log = logging.getLogger("pochta.bounces")

MAX_REPORT_BYTES = 10 * 1024 * 1024


class ReportHandler:
    """aiosmtpd hooks: refuse other domains at RCPT, read and apply what DATA brings."""

    def __init__(self, settings: Settings, domain: str) -> None:
        self.settings = settings
        self.domain = domain

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.rpartition("@")[2].rstrip(".").lower() != self.domain:
            return f"550 5.7.1 Relaying denied: this server takes mail for {self.domain} only"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or b""
        rcpts = list(envelope.rcpt_tos)
        try:
            # The database is blocking I/O: off the event loop, which serves other sessions.
            applied = await asyncio.get_running_loop().run_in_executor(None, self.take, raw, rcpts)
        except ReportTooEarly as early:
            log.info("report for a message still being sent", extra={"message_id": str(early)})
            return "451 4.3.0 The message is still being sent; try the report again later"
        except SQLAlchemyError:
            log.exception("report not recorded", extra={"rcpt": rcpts})
            return "451 4.3.0 Cannot record the report now; try again later"
        except Exception:
            # Never a 5xx: the reporting MTA would bounce the report. It retries a 451.
            log.exception("report not applied", extra={"rcpt": rcpts})
            return "451 4.3.0 Cannot apply the report now; try again later"
        log.info(
            "report taken",
            extra={
                "message_id": applied.message_id,
                "kind": applied.kind.value,
                "matched": applied.matched,
                "changed": applied.changed,
                "rcpt": rcpts,
            },
        )
        return "250 2.0.0 OK: report taken"

    def take(self, raw: bytes, rcpts: Sequence[str]) -> Applied:
        """Read a message and apply it in one transaction; counted once committed."""
        report = _read(raw)
        with db.session_scope() as session:
            applied = apply_report(
                session,
                settings=self.settings,
                report=report,
                envelope_recipients=rcpts,
                now=utcnow(),
            )
        count_report(applied.kind, applied.matched)
        count_created(applied.suppressed)
        return applied


def _read(raw: bytes) -> Report:
    try:
        return read_report(raw)
    except Exception:  # a message no parser can read is no report, never a 5xx
        log.warning("unreadable message dropped", exc_info=True)
        return Report(kind=ReportKind.other)


def run_server(
    settings: Settings, domain: str, host: str, port: int, stop: threading.Event
) -> None:
    """Serve until stop is set."""
    controller = Controller(
        ReportHandler(settings, domain),
        hostname=host,
        port=port,
        decode_data=False,
        enable_SMTPUTF8=True,
        data_size_limit=MAX_REPORT_BYTES,
        server_hostname=domain,
        ident="Pochta bounces",
    )
    controller.start()
    log.info("bounces listening on %s:%d for %s", host, port, domain)
    try:
        stop.wait()
    finally:
        controller.stop()
