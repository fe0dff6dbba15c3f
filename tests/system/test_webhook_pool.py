"""`pochta worker`'s webhook pool is started again when it dies, and then delivers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.relay import ScriptedRelay
from harness.stack import Stack
from harness.webhook_receiver import Request, WebhookReceiver
from tests.conftest import Env, make_key
from tests.support.webhooks import verified


def children(pid: int) -> dict[int, list[bytes]]:
    """The live children of pid, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def webhook_pools(worker_pid: int) -> list[int]:
    """The live `--webhooks-only` children of the worker's main process."""
    return [pid for pid, argv in children(worker_pid).items() if b"--webhooks-only" in argv]


def wait_for_pool(worker_pid: int, other_than: int | None = None, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pools = [pid for pid in webhook_pools(worker_pid) if pid != other_than]
        if pools:
            (pid,) = pools
            return pid
        time.sleep(0.1)
    raise AssertionError("no webhook pool")


def send_and_hear(stack: Stack, receiver: WebhookReceiver) -> tuple[str, Request]:
    """Subscribe the receiver to message.sent, send a message: the secret, the request."""
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
    return created["secret"], request


@contextmanager
def running(env: Env, tmp_path: Path) -> Iterator[tuple[Stack, WebhookReceiver, int, int]]:
    """The stack started, a receiver: the stack, the receiver, the worker's and pool's pids."""
    env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "true"
    with WebhookReceiver() as receiver, Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start()
        worker = stack.processes["worker"].pid
        yield stack, receiver, worker, wait_for_pool(worker)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_killed_webhook_pool_is_started_again_and_delivers(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    with running(env, tmp_path) as (stack, receiver, worker, first):
        os.kill(first, signal.SIGKILL)
        second = wait_for_pool(worker, other_than=first)
        secret, request = send_and_hear(stack, receiver)
        assert verified(request, secret)["type"] == "message.sent"
        assert webhook_pools(worker) == [second]
        log = (tmp_path / "worker.log").read_text()
        assert "webhook pool exited with -9; starting it again in 1 s" in log


def policies(pid: int) -> set[int]:
    """The scheduling policy of each of the process's threads."""
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_webhook_threads_run_at_idle_priority_and_email_does_not(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    with running(env, tmp_path) as (stack, receiver, worker, pool):
        send_and_hear(stack, receiver)
        # Every thread of the pool, the ones that made the request included.
        assert len(os.listdir(f"/proc/{pool}/task")) > 1
        assert policies(pool) == {os.SCHED_IDLE}
        assert os.getpriority(os.PRIO_PROCESS, pool) == 19
        email = [pid for pid in children(worker) if pid != pool]
        assert email, "the email pool's processes"
        assert {policy for pid in [worker, *email] for policy in policies(pid)} == {os.SCHED_OTHER}
