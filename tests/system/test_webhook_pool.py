"""`pochta worker`'s webhook pool is started again when it dies, and then delivers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from harness.relay import ScriptedRelay
from harness.stack import Stack
from harness.webhook_receiver import WebhookReceiver
from tests.conftest import Env, make_key
from tests.support.webhooks import verified


def webhook_pools(worker_pid: int) -> list[int]:
    """The live `--webhooks-only` children of the worker's main process."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == worker_pid and stat[0] != "Z" and b"--webhooks-only" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for_pool(worker_pid: int, other_than: int | None = None, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pools = [pid for pid in webhook_pools(worker_pid) if pid != other_than]
        if pools:
            (pid,) = pools
            return pid
        time.sleep(0.1)
    raise AssertionError("no webhook pool")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_killed_webhook_pool_is_started_again_and_delivers(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "true"
    with WebhookReceiver() as receiver, Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start()
        worker = stack.processes["worker"].pid
        first = wait_for_pool(worker)
        os.kill(first, signal.SIGKILL)
        second = wait_for_pool(worker, other_than=first)

        with stack.client(make_key()) as client:
            created = client.post(
                "/v1/webhooks", json={"url": receiver.url(), "events": ["message.sent"]}
            ).json()
            sent = client.post(
                "/v1/messages",
                json={
                    "from": "app@example.com",
                    "to": ["ok@example.org"],
                    "subject": "hi",
                    "text": "hello",
                },
            )
            assert sent.status_code == 202, sent.text
            (request,) = receiver.wait_for(lambda seen: len(seen) >= 1, path="/hook")
        assert verified(request, created["secret"])["type"] == "message.sent"
        assert webhook_pools(worker) == [second]
        log = (tmp_path / "worker.log").read_text()
        assert "webhook pool exited with -9; starting it again in 1 s" in log
