"""`pochta relays`: each relay's name, host:port, state, current rate and open sessions."""

from __future__ import annotations

import argparse

from app.cli.database import database_errors
from app.config import Settings


def cmd_relays(_: argparse.Namespace, settings: Settings) -> None:
    from app.clock import utcnow
    from app.relays.report import rate_text, relay_reports
    from app.relays.state import RelayCondition

    with database_errors(settings):
        reports = relay_reports(settings, utcnow())
    rows = [("NAME", "HOST:PORT", "STATE", "RATE", "SESSIONS")]
    for report in reports:
        shown = report.condition.value
        if report.condition is not RelayCondition.up and report.until is not None:
            shown = f"{report.condition.value} until {report.until.isoformat(timespec='seconds')}"
        limit = f" (max {report.max_connections})" if report.max_connections else ""
        rows.append(
            (
                report.name,
                report.address,
                shown,
                rate_text(report.rate_per_second),
                f"{report.sessions}{limit}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for report in reports:
        if report.reason:
            print(f"{report.name}: {report.reason}")
