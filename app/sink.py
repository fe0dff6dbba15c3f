"""`pochta sink`: a local SMTP server that keeps every message it receives as an .eml file."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger("pochta.sink")


class _SaveToFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            number = next(self._counter)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{number:06d}.eml"
        path = self.directory / name
        # The envelope goes in front, as a local MTA's Return-Path and X-Original-To would.
        head = f"Return-Path: <{envelope.mail_from}>\r\n"
        head += "".join(f"X-Original-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        path.write_bytes(head.encode() + envelope.original_content)
        log.info("received", extra={"file": str(path), "rcpt": envelope.rcpt_tos})
        return "250 2.0.0 Saved"


def run_sink(host: str, port: int, directory: Path, stop: threading.Event) -> None:
    """Serve until stop is set."""
    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(
        _SaveToFiles(directory),
        hostname=host,
        port=port,
        decode_data=False,
        enable_SMTPUTF8=True,
        data_size_limit=64 * 1024 * 1024,
    )
    controller.start()
    log.info("sink listening on %s:%d, saving to %s", host, port, directory)
    try:
        stop.wait()
    finally:
        controller.stop()
