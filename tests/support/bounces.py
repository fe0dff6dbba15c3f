"""`pochta bounces` as a subprocess, and handing reports to it over SMTP, for tests."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from app import processes
from harness.ports import LOOPBACK, free_port, wait_for_port
from tests.conftest import Env
from tests.support import prometheus


@dataclass
class Bounces:
    """A running `pochta bounces` and where it listens."""

    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path

    def send(self, raw: bytes, rcpt: str, mail_from: str = "<>") -> None:
        """Hand a report over as an MTA would (null sender); raise on any refusal."""
        with smtplib.SMTP(LOOPBACK, self.port, timeout=30) as client:
            client.ehlo("mx.example.net")
            code, reply = client.mail(mail_from)
            assert code == 250, reply
            code, reply = client.rcpt(rcpt)
            assert code == 250, reply
            code, reply = client.data(raw)
            assert code == 250, reply

    def reports(self, kind: str, matched: str) -> float:
        text = httpx.get(f"http://{LOOPBACK}:{self.metrics_port}/metrics", timeout=10).text
        return prometheus.value(
            prometheus.parse(text), "pochta_reports_total", kind=kind, matched=matched
        )


def start_bounces(env: Env, tmp_path: Path) -> Bounces:
    port, metrics_port = free_port(), free_port()
    env["POCHTA_BOUNCES_METRICS_PORT"] = str(metrics_port)
    log = tmp_path / "bounces.log"
    process = processes.spawn(
        [sys.executable, "-m", "app.cli", "bounces", "--port", str(port)],
        env=env.for_subprocess(),
        log=log,
    )
    wait_for_port(LOOPBACK, port, timeout=30)
    return Bounces(process, port, metrics_port, log)
