"""Pochta's own processes (api, worker, scheduler) started as a user would start them.

Each leads its own process group (app/processes.py), so a stop reaches Celery's pool too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from app import processes
from harness.ports import free_port, wait_for_port


class Stack:
    """`pochta api`, `pochta worker` and `pochta scheduler` as subprocesses."""

    def __init__(self, env: dict[str, str], logdir: Path, *, concurrency: int = 1) -> None:
        self.env = env
        self.logdir = logdir
        self.concurrency = concurrency
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_process(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        process = processes.spawn(
            [sys.executable, "-m", "app.cli", *args],
            env=self.env,
            log=self.logdir / f"{name}.log",
        )
        self.processes[name] = process
        return process

    def start(self, *names: str) -> None:
        """Start the named processes (all three when none are named)."""
        commands = {
            "api": ("api", "--port", str(self.port)),
            "worker": ("worker", "--concurrency", str(self.concurrency)),
            "scheduler": ("scheduler",),
        }
        for name in names or tuple(commands):
            self.start_process(name, *commands[name])
        if not names or "api" in names:
            wait_for_port("127.0.0.1", self.port, timeout=30)

    def stop(self, *names: str, sig: int = signal.SIGTERM) -> None:
        """Stop the named processes' groups (all when none are named), SIGKILL after 30 s."""
        stopping = [
            self.processes.pop(name)
            for name in names or tuple(self.processes)
            if name in self.processes
        ]
        processes.stop(stopping, timeout=30, sig=sig)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.logdir.glob("*.log"))
        )

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def wait_for_status(
        self, client: httpx.Client, message_id: str, statuses: set[str], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = client.get(f"/v1/messages/{message_id}").json()
            if body.get("status") in statuses:
                return body
            time.sleep(0.05)
        raise AssertionError(f"{message_id} never reached {statuses}: {body}\n{self.logs()}")

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
