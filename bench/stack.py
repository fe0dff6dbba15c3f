"""Pochta's own processes, started with the `pochta` command as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app import processes
from bench.procs import descendants
from harness.ports import free_port

COMMAND_TIMEOUT = 120.0
READY_TIMEOUT = 60.0


def pochta_env(*, database_url: str, broker_url: str, smtp_port: int) -> dict[str, str]:
    """This process's environment without POCHTA_*, plus the benchmark's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCHTA_")}
    env.update(
        POCHTA_DATABASE_URL=database_url,
        POCHTA_BROKER_URL=broker_url,
        POCHTA_SECRET_KEY="bench-secret-key",
        POCHTA_SMTP_HOST="127.0.0.1",
        POCHTA_SMTP_PORT=str(smtp_port),
        POCHTA_SMTP_HELO_NAME="bench.pochta.test",
        # A log line per message would measure the logging, not the sending.
        POCHTA_LOG_LEVEL="WARNING",
        POCHTA_SCHEDULER_INTERVAL_SECONDS="0.2",
        # No metrics listener: the port may be taken, and nobody scrapes it here.
        POCHTA_WORKER_METRICS_PORT="0",
        # The benchmark's webhook receiver listens on loopback (bench/runner.py).
        POCHTA_WEBHOOK_ALLOW_PRIVATE="true",
        PYTHONUNBUFFERED="1",
    )
    return env


class Stack:
    """`pochta api`, `pochta worker` and `pochta scheduler`, each in its own process group."""

    def __init__(self, env: dict[str, str], logdir: Path, *, api_workers: int) -> None:
        self.env = env
        self.logdir = logdir
        self.api_workers = api_workers
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *args: str) -> str:
        """Run a `pochta` command to its end; its stdout, or RuntimeError with its output."""
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pochta {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def create_key(self) -> str:
        """A fresh API key: the last line `pochta keys create` prints."""
        return self.command("keys", "create", "--tenant", "bench", "--name", "bench").split()[-1]

    def subscribe_webhook(self, key: str, url: str) -> None:
        """An endpoint of the bench tenant at url, subscribed to every event type."""
        response = httpx.post(
            f"{self.url}/v1/webhooks",
            json={"url": url, "description": "bench receiver"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"webhook endpoint: {response.status_code} {response.text[:500]}")

    def start(self, name: str, *args: str) -> None:
        log = self.logdir / f"{name}.log"
        self.processes[name] = processes.spawn(
            [sys.executable, "-m", "app.cli", *args], env=self.env, log=log
        )

    def start_api(self) -> None:
        self.start("api", "api", "--port", str(self.port), "--workers", str(self.api_workers))
        self._wait_healthy()

    def restart_api(self) -> None:
        self.stop("api")
        self.start_api()

    def start_delivery(self, concurrency: int) -> None:
        """The worker (with its pool) and the scheduler."""
        self.start("worker", "worker", "--concurrency", str(concurrency))
        self.start("scheduler", "scheduler")

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            processes.stop([process])

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def pid(self, name: str) -> int:
        """The main process of a running group."""
        return self.processes[name].pid

    def pids(self) -> dict[str, list[int]]:
        """Each running process and its descendants, main process first."""
        return {
            name: [process.pid, *descendants(process.pid)]
            for name, process in self.processes.items()
            if process.poll() is None
        }

    def check_alive(self) -> None:
        """RuntimeError naming any process that ended on its own, with its log's tail."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"pochta {name} exited with {process.returncode}:\n{self.log_tail(name)}"
                )

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not answer /healthz in {READY_TIMEOUT:.0f}s")
