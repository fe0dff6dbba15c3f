"""The ceiling: how fast plain smtplib alone delivers into the same smtp-sink.

Two processes (as `pochta worker --concurrency 2` has), each with one connection reused
for every message, as Pochta's worker does. `prebuilt` sends the same bytes again and
again; `build` first makes each message with the `email` package, as the API does once
per message. Nothing is stored, queued or recorded: no sender in Python beats these.
"""

from __future__ import annotations

import multiprocessing
import smtplib
import time
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from enum import StrEnum

from bench import payloads
from bench.spawned import HEAD_START_SECONDS, Helpers

REPORT_GRACE_SECONDS = 30.0
ENVELOPE_FROM = "bench@example.org"
ENVELOPE_TO = ["billy@example.org"]


class Mode(StrEnum):
    prebuilt = "prebuilt"
    build = "build"


def build(number: int) -> bytes:
    """One ~1 KB message, built as Pochta builds one (EmailMessage, then as_bytes)."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = payloads.SENDER
    message["To"] = payloads.RECIPIENT
    message["Subject"] = f"{payloads.SUBJECT} #{number}"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content(payloads.TEXT)
    return message.as_bytes()


def _send_loop(mode: Mode, port: int, start_at: float, duration: float) -> int:
    """Send until start_at + duration over one connection; how many the sink took."""
    prebuilt = build(0)
    client = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.pochta.test", timeout=10)
    try:
        client.ehlo()
        time.sleep(max(0.0, start_at - time.monotonic()))
        deadline = start_at + duration
        sent = 0
        while time.monotonic() < deadline:
            raw = prebuilt if mode is Mode.prebuilt else build(sent)
            client.sendmail(ENVELOPE_FROM, ENVELOPE_TO, raw)
            sent += 1
        client.quit()
    finally:
        client.close()
    return sent


def _process_main(
    mode: Mode, port: int, start_at: float, duration: float, results: multiprocessing.Queue[int]
) -> None:
    results.put(_send_loop(mode, port, start_at, duration))


def smtplib_rate(mode: Mode, *, port: int, processes: int, duration: float) -> float:
    """Messages per second that `processes` smtplib loops get into the sink together."""
    start_at = time.monotonic() + HEAD_START_SECONDS
    helpers: Helpers[int] = Helpers(_process_main, [(mode, port, start_at, duration)] * processes)
    counts = helpers.collect(start_at + duration + REPORT_GRACE_SECONDS, "smtplib")
    return sum(counts) / duration
