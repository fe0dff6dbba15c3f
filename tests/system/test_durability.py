"""Nothing lost, nothing doubled, proven by killing things: real processes, real services.

Every test here runs `pochta api`, `pochta worker` and `pochta scheduler` as a user
would, on a PostgreSQL and a Redis of its own (harness/services.py), which it
may flush, stop and restart without touching the machine's shared ones.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from app.outbox.broker import QUEUE
from harness.relay import ScriptedRelay
from harness.services import PostgresServer, RedisServer, drop_database
from harness.stack import Stack
from tests.conftest import BASE_ENV, Env, applied, make_key
from tests.support.checks import (
    copies_by_message_id,
    email,
    message_ids,
    statuses,
    submit,
    wait_for_statuses,
    wait_until,
)

FINAL = {"sent", "partially_sent", "failed", "canceled"}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Outside pytest's own temporary tree: another pytest session on the machine may
    # prune that tree while these servers still keep their files in it.
    path = Path(tempfile.mkdtemp(prefix="pochta-durability-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres(workdir: Path) -> Iterator[PostgresServer]:
    with PostgresServer(workdir / "postgres") as server:
        yield server


@pytest.fixture(scope="module")
def broker(workdir: Path) -> Iterator[RedisServer]:
    with RedisServer(workdir / "redis") as server:
        yield server


@pytest.fixture
def env(postgres: PostgresServer, broker: RedisServer) -> Iterator[Env]:
    """A fresh database on the private PostgreSQL, the private Redis flushed."""
    postgres.start()  # again, if an earlier test left it stopped
    broker.start()
    broker.flushall()
    name = f"pochta_{uuid.uuid4().hex[:12]}"
    env = Env(backend="postgres", values=dict(BASE_ENV))
    env.values["POCHTA_DATABASE_URL"] = postgres.create_database(name)
    env.values["POCHTA_BROKER_URL"] = broker.url
    env.values["POCHTA_WORKER_METRICS_PORT"] = "0"
    try:
        with applied(env):
            yield env
    finally:
        postgres.start()
        drop_database(postgres.url(), name)


@pytest.fixture
def relay(env: Env) -> Iterator[ScriptedRelay]:
    with ScriptedRelay() as server:
        env["POCHTA_SMTP_HOST"] = server.host
        env["POCHTA_SMTP_PORT"] = str(server.port)
        yield server


def kill_group(stack: Stack, name: str) -> None:
    """SIGKILL a process and its children (Celery's pool), as a crash or the OOM killer would."""
    process = stack.processes.pop(name)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def terminate(stack: Stack, name: str, timeout: float = 20) -> int:
    """SIGTERM one process, as a supervisor stopping it would; its exit code."""
    process = stack.processes.pop(name)
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def assert_each_once(relay: ScriptedRelay, ids: list[str]) -> None:
    copies = copies_by_message_id(relay)
    expected = set(message_ids(ids).values())
    assert set(copies) == expected
    assert [m for m, n in copies.items() if n != 1] == [], "a message reached the relay twice"


def queued_ids(broker_url: str) -> set[str]:
    """The message ids the delivery tasks waiting on the broker carry."""
    ids: set[str] = set()
    for raw in redis.Redis.from_url(broker_url).lrange(QUEUE, 0, -1):
        # Celery's message protocol 2: a base64 JSON body of [args, kwargs, embed].
        args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        ids.update(args[0])
    return ids


def test_a_flushed_broker_loses_nothing(
    env: Env, relay: ScriptedRelay, broker: RedisServer, tmp_path: Path
) -> None:
    env["POCHTA_DISPATCH_LEASE_SECONDS"] = "1"
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start("api")
        with stack.client(make_key()) as client:
            ids = [submit(client, i) for i in range(20)]
        wait_until(
            lambda: queued_ids(broker.url) == set(ids),
            timeout=10,
            describe=lambda: f"{len(queued_ids(broker.url))} of 20 ids on the broker",
        )
        broker.flushall()
        stack.start("worker", "scheduler")
        final = wait_for_statuses(ids, FINAL, timeout=60, logs=stack.logs)
    assert set(final.values()) == {"sent"}
    assert_each_once(relay, ids)


def test_an_api_stopped_right_after_answering_has_rung_for_every_message(
    env: Env, broker: RedisServer, tmp_path: Path
) -> None:
    # The doorbell rings from a thread, a little after the answer; SIGTERM must wait for
    # it, or these would wait POCHTA_DISPATCH_LEASE_SECONDS (120 s) for the scheduler.
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start("api")
        with stack.client(make_key()) as client:
            ids = [submit(client, i) for i in range(5)]
        stack.stop("api")
        assert queued_ids(broker.url) == set(ids)


def test_with_redis_down_a_post_is_still_accepted_and_later_delivered(
    env: Env, relay: ScriptedRelay, broker: RedisServer, tmp_path: Path
) -> None:
    # The scheduler, not the dispatch lease, must bring these back once Redis answers.
    env["POCHTA_DISPATCH_LEASE_SECONDS"] = "300"
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start()
        with stack.client(make_key()) as client:
            ids = [submit(client, 0)]
            wait_for_statuses(ids, {"sent"}, timeout=30, logs=stack.logs)
            broker.stop()
            for index in range(1, 4):
                started = time.monotonic()
                ids.append(submit(client, index))
                assert time.monotonic() - started < 2, "a dead broker must not hold a POST"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["content-type"] == "application/problem+json"
            assert "broker" in ready.json()["detail"]
            assert set(statuses(ids[1:]).values()) == {"queued"}
            time.sleep(1)  # the scheduler fails to ring a few times meanwhile
            broker.start()
            ids.append(submit(client, 4))
            final = wait_for_statuses(ids, FINAL, timeout=60, logs=stack.logs)
            assert client.get("/readyz").status_code == 200
    assert set(final.values()) == {"sent"}
    assert_each_once(relay, ids)


def test_a_worker_killed_during_data_loses_nothing(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    env["POCHTA_SENDING_LEASE_SECONDS"] = "3"
    env["POCHTA_SMTP_TIMEOUT"] = "30"
    relay.stall_after_data = 30
    with Stack(env.for_subprocess(), tmp_path, concurrency=5) as stack:
        stack.start()
        with stack.client(make_key()) as client:
            ids = [submit(client, i) for i in range(5)]

        def at_data() -> int:
            return sum(command.upper() == "DATA" for _, command in relay.commands)

        wait_until(lambda: at_data() >= 5, 30, lambda: f"{at_data()} at DATA\n{stack.logs()}")
        kill_group(stack, "worker")
        assert set(statuses(ids).values()) == {"sending"}
        relay.stall_after_data = 0
        stack.start("worker")
        final = wait_for_statuses(ids, FINAL, timeout=60, logs=stack.logs)
    assert set(final.values()) == {"sent"}
    copies = copies_by_message_id(relay)
    assert set(copies) == set(message_ids(ids).values()), "each message arrived"
    assert max(copies.values()) <= 2, "a duplicate only from the window SMTP cannot close"


def test_sigterm_finishes_the_message_in_progress_and_hands_back_the_rest(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    relay.stall_after_data = 1.0
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start("api", "worker")
        with stack.client(make_key()) as client:
            # One request, one task carrying all twenty ids.
            response = client.post(
                "/v1/messages/batch", json={"messages": [email(i) for i in range(20)]}
            )
        assert response.status_code == 200, response.text
        ids = [item["message"]["id"] for item in response.json()["results"]]
        wait_until(lambda: any(c.upper() == "DATA" for _, c in relay.commands), 30, stack.logs)
        started = time.monotonic()
        assert terminate(stack, "worker") == 0
        assert time.monotonic() - started < 10, "stopped after one message, not twenty"
        after_stop = statuses(ids)
        sent = [i for i, s in after_stop.items() if s == "sent"]
        assert 1 <= len(sent) <= 2, after_stop
        assert len(relay.messages) == len(sent), "what the relay took is recorded"
        assert {s for i, s in after_stop.items() if i not in sent} == {"queued"}, after_stop
        relay.stall_after_data = 0
        stack.start("worker", "scheduler")
        final = wait_for_statuses(ids, FINAL, timeout=60, logs=stack.logs)
    assert set(final.values()) == {"sent"}
    assert_each_once(relay, ids)


def test_300_messages_from_20_clients_through_2_workers_and_2_schedulers(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    # The schedulers re-ring what waits longer than a second, racing the API's doorbells.
    env["POCHTA_DISPATCH_LEASE_SECONDS"] = "1"
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start("api")
        for name in ("worker-1", "worker-2"):
            stack.start_process(name, "worker", "--concurrency", "1")
        for name in ("scheduler-1", "scheduler-2"):
            stack.start_process(name, "scheduler")
        key = make_key()

        def client_sends(client_number: int) -> list[str]:
            with stack.client(key) as client:
                return [submit(client, client_number * 15 + i) for i in range(15)]

        with ThreadPoolExecutor(max_workers=20) as pool:
            ids = [i for batch in pool.map(client_sends, range(20)) for i in batch]
        assert len(ids) == 300
        final = wait_for_statuses(ids, FINAL, timeout=120, logs=stack.logs)
        assert terminate(stack, "scheduler-1", timeout=5) == 0, "a scheduler stops on SIGTERM"
        assert terminate(stack, "scheduler-2", timeout=5) == 0
    assert set(final.values()) == {"sent"}
    assert_each_once(relay, ids)


def test_postgres_restarted_mid_run_loses_nothing_answered_202(
    env: Env, relay: ScriptedRelay, postgres: PostgresServer, tmp_path: Path
) -> None:
    env["POCHTA_DISPATCH_LEASE_SECONDS"] = "2"
    env["POCHTA_SENDING_LEASE_SECONDS"] = "5"
    relay.stall_after_data = 0.05  # deliveries are under way when the database goes
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start()
        key = make_key()
        with stack.client(key) as client:
            ids = [submit(client, i) for i in range(30)]
            postgres.stop()
            for index in range(30, 35):
                down = client.post("/v1/messages", json=email(index))
                assert down.status_code == 503, down.text
                assert down.headers["content-type"] == "application/problem+json"
                assert down.json()["type"] == "/problems/unavailable"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "database" in ready.json()["detail"]
            postgres.start()
            ids += [submit(client, i) for i in range(35, 45)]
        final = wait_for_statuses(ids, FINAL, timeout=90, logs=stack.logs)
    assert set(final.values()) == {"sent"}
    copies = copies_by_message_id(relay)
    assert set(copies) == set(message_ids(ids).values()), "every message answered 202 arrived"
    assert max(copies.values()) <= 2, "a duplicate only from the window SMTP cannot close"
