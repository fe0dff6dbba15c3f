"""Shared relay limits and shaping with real processes (SPEC §10): two `pochta worker`s of
two processes each, on the embedded backend and on PostgreSQL + Redis.

The limits hold for every process together, so they are seen at the relay: how many
sessions it had open at once, how many messages any one second brought it, and when it
said "slow down", how soon Pochta obeyed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app import db
from app.messages.models import Attempt, Message
from harness.ports import free_port
from harness.relay import ScriptedRelay
from harness.stack import Stack
from tests.conftest import Env, make_key
from tests.support.checks import email, wait_for_statuses

# What the relay sees per second is measured: alone, not beside other tests.
pytestmark = pytest.mark.serial

FINAL = {"sent", "partially_sent", "failed", "canceled"}


@pytest.fixture
def sink(env: Env) -> Iterator[ScriptedRelay]:
    env["POCHTA_WORKER_METRICS_PORT"] = "0"
    with ScriptedRelay() as relay:
        yield relay


def write_relays(env: Env, tmp_path: Path, text: str) -> None:
    path = tmp_path / "relays.toml"
    path.write_text(text)
    env["POCHTA_RELAYS_FILE"] = str(path)


def start(env: Env, tmp_path: Path) -> Stack:
    stack = Stack(env.for_subprocess(), tmp_path)
    stack.start("api", "scheduler")
    for worker in ("worker-1", "worker-2"):
        stack.start_process(worker, "worker", "--concurrency", "2")
    return stack


def submit_all(client: httpx.Client, count: int) -> list[str]:
    ids: list[str] = []
    for first in range(0, count, 100):
        response = client.post(
            "/v1/messages/batch",
            json={"messages": [email(i) for i in range(first, min(first + 100, count))]},
        )
        assert response.status_code == 200, response.text
        ids += [r["message"]["id"] for r in response.json()["results"]]
    return ids


def busiest_second(times: list[float]) -> int:
    """The most messages any window of one second saw."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def relays_command(env: Env) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "relays"],
        env=env.for_subprocess(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_rate_and_connections_hold_for_every_worker_and_a_dead_relay_is_skipped(
    env: Env, tmp_path: Path, sink: ScriptedRelay
) -> None:
    dead = free_port()
    # Marked down once for the whole run, so that `pochta relays` still shows it at the end.
    env["POCHTA_RELAY_DOWN_SECONDS"] = "600"
    write_relays(
        env,
        tmp_path,
        f'[relays.dead]\nhost = "127.0.0.1"\nport = {dead}\n'
        f'[relays.sink]\nhost = "127.0.0.1"\nport = {sink.port}\n'
        'rate = "20/s"\nmax_connections = 2\n'
        '[[routes]]\nrelays = ["dead", "sink"]\n',
    )
    key = make_key()
    count = 400
    with start(env, tmp_path) as stack, stack.client(key) as client:
        ids = submit_all(client, count)
        wait_for_statuses(ids, FINAL, timeout=120, logs=stack.logs)
        listing = relays_command(env)
    received = sink.wait_for(count)
    assert len(received) == count
    # Counted at MAIL, as a relay counts its rate.
    times = [m.mail_at for m in received]
    # 20/s: 400 messages need at least 19 s (Pochta's headroom makes it about 22).
    assert max(times) - min(times) >= 19.0
    assert busiest_second(times) <= 21
    assert sink.peak_sessions <= 2
    with db.session_scope() as session:
        statuses = set(session.scalars(select(Message.status).where(Message.id.in_(ids))))
        relays = set(session.scalars(select(Attempt.relay)))
        numbers = set(session.scalars(select(Attempt.number)))
    assert statuses == {"sent"}
    # Failover within the attempt: the first and only attempt of each names the relay
    # that answered.
    assert relays == {f"sink 127.0.0.1:{sink.port}"}
    assert numbers == {1}
    lines = {line.split()[0]: line for line in listing.splitlines()[1:] if line.strip()}
    assert f"127.0.0.1:{dead}" in lines["dead"]
    assert "down until" in lines["dead"]
    assert "20/s" in lines["sink"]


def test_a_relay_that_throttles_is_obeyed_and_every_message_is_sent(
    env: Env, tmp_path: Path, sink: ScriptedRelay
) -> None:
    # The retry backoff is five minutes: a 454 retried sooner was retried after the pause.
    env["POCHTA_RETRY_BASE_SECONDS"] = "300"
    env["POCHTA_RETRY_MAX_SECONDS"] = "600"
    env["POCHTA_RELAY_BACKOFF_SECONDS"] = "2"
    sink.throttle = (30, 1.0)
    write_relays(
        env,
        tmp_path,
        f'[relays.ses]\nhost = "127.0.0.1"\nport = {sink.port}\nrate = "50/s"\n'
        '[[routes]]\nrelays = ["ses"]\n',
    )
    key = make_key()
    count = 150
    started = time.monotonic()
    with start(env, tmp_path) as stack, stack.client(key) as client:
        ids = submit_all(client, count)
        wait_for_statuses(ids, FINAL, timeout=120, logs=stack.logs)
        listing = relays_command(env)
    assert time.monotonic() - started < 120
    assert sink.throttled >= 1, "the relay said slow down at least once"
    assert len({m.data for m in sink.messages}) == count
    with db.session_scope() as session:
        statuses = set(session.scalars(select(Message.status).where(Message.id.in_(ids))))
        attempts = session.execute(
            select(
                Attempt.message_pk,
                Attempt.number,
                Attempt.smtp_code,
                Attempt.finished_at,
                Attempt.started_at,
            )
        ).all()
    assert statuses == {"sent"}
    by_message: dict[str, dict[int, tuple[int | None, datetime, datetime]]] = {}
    for message_pk, number, code, finished, begun in attempts:
        by_message.setdefault(message_pk, {})[number] = (code, finished, begun)
    throttled = [(m, n) for m, tries in by_message.items() for n, t in tries.items() if t[0] == 454]
    assert throttled, "some attempts met the 454"
    for message_pk, number in throttled:
        _, finished, _ = by_message[message_pk][number]
        _, _, next_start = by_message[message_pk][number + 1]
        assert next_start - finished < timedelta(seconds=30), "retried after the pause"
    (line,) = [line for line in listing.splitlines() if line.startswith("ses ")]
    rates = [word for word in line.split() if word.endswith("/s")]
    shaped = float(rates[0].removesuffix("/s")) if rates else 0.0
    assert 0 < shaped < 30, f"the rate settled below the relay's 30/s: {line}"
