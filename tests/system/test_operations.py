"""An operator's view of the running processes: `pochta send`, both /metrics, the logs.

One stack (api, a worker with two pool processes, scheduler) on SQLite for the module,
with JSON logs and a relay that wants AUTH, so that there is a password to leak.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.ports import free_port, wait_for_port
from harness.relay import ScriptedRelay
from harness.stack import Stack
from tests.conftest import Env, _configure, make_key
from tests.support.prometheus import Samples, parse, value

RELAY_USER = "pochta-relay-user"
RELAY_PASSWORD = "relay-Pa55-never-logged"
BODY = "the-body-text-never-logged"
RETRY_SECONDS = 2


@pytest.fixture(scope="module")
def ops_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from _configure("sqlite", Path(tmp_path_factory.mktemp("ops")))


@pytest.fixture(scope="module")
def relay(ops_env: Env) -> Iterator[ScriptedRelay]:
    with ScriptedRelay(auth={RELAY_USER: RELAY_PASSWORD}) as server:
        ops_env["POCHTA_SMTP_HOST"] = server.host
        ops_env["POCHTA_SMTP_PORT"] = str(server.port)
        ops_env["POCHTA_SMTP_USERNAME"] = RELAY_USER
        ops_env["POCHTA_SMTP_PASSWORD"] = RELAY_PASSWORD
        yield server


@pytest.fixture(scope="module")
def stack(
    ops_env: Env, relay: ScriptedRelay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    ops_env["POCHTA_LOG_FORMAT"] = "json"
    # A greylisted message comes back within seconds, for `pochta send --wait` to watch.
    ops_env["POCHTA_RETRY_MAX_SECONDS"] = ops_env["POCHTA_RETRY_BASE_SECONDS"] = str(RETRY_SECONDS)
    ops_env["POCHTA_WORKER_METRICS_PORT"] = str(free_port())
    with Stack(
        ops_env.for_subprocess(), Path(tmp_path_factory.mktemp("logs")), concurrency=2
    ) as running:
        running.start()
        wait_for_port("127.0.0.1", int(ops_env.values["POCHTA_WORKER_METRICS_PORT"]), 30)
        # The embedded broker's tables are made by whoever comes first; let that be the
        # worker (a race with the API's first publish can stop it: see the report).
        deadline = time.monotonic() + 30
        while "ready." not in (running.logdir / "worker.log").read_text():
            assert time.monotonic() < deadline, running.logs()
            time.sleep(0.05)
        yield running


@pytest.fixture(scope="module")
def key(stack: Stack) -> str:
    return make_key()


def send_env(stack: Stack, key: str | None) -> dict[str, str]:
    env = {k: v for k, v in stack.env.items() if k != "POCHTA_API_KEY"}
    if key is not None:
        env["POCHTA_API_KEY"] = key
    return env


def pochta_send(
    stack: Stack, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "send", "--api", stack.url, *args],
        env=send_env(stack, key),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pochta_send_prints_the_id_and_with_wait_each_recipients_reply(
    stack: Stack, relay: ScriptedRelay, key: str
) -> None:
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user here")
    mixed = pochta_send(
        stack,
        *("--from", "Вася <vasia@example.org>", "--to", "billy@example.org"),
        *("--to", "nobody@example.org", "--subject", "Hi", "--text", "hello", "--wait"),
        key=key,
    )
    assert mixed.returncode == 1, mixed.stderr
    lines = mixed.stdout.splitlines()
    assert lines[0].startswith("msg_")
    assert lines[1:] == [
        "partially_sent",
        "billy@example.org\tsent\t250\t2.0.0\tMessage accepted",
        "nobody@example.org\tfailed\t550\t5.1.1\tNo such user here",
    ]

    with stack.client(key) as client:
        assert client.put("/v1/suppressions/gone@example.org", json={"reason": "manual"}).is_success
    suppressed = pochta_send(
        stack,
        "--from",
        "a@example.org",
        "--to",
        "gone@example.org",
        "--text",
        "x",
        "--wait",
        key=key,
    )
    assert suppressed.returncode == 1, suppressed.stderr
    assert suppressed.stdout.splitlines()[1:] == [
        "failed",
        "gone@example.org\tsuppressed\t-\t-\tsuppressed: manual",
    ]

    sent = pochta_send(
        stack,
        *("--from", "a@example.org", "--to", "b@example.org", "--html", "<p>hi</p>"),
        *("--key", key, "--wait"),
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines()[1] == "sent"

    queued = pochta_send(
        stack, "--from", "a@example.org", "--to", "b@example.org", "--text", "x", key=key
    )
    assert queued.returncode == 0
    assert queued.stdout.strip().startswith("msg_"), "without --wait: the id alone"

    refused = pochta_send(stack, "--from", "a@example.org", "--to", "nope", "--text", "x", key=key)
    assert refused.returncode == 1
    assert "422" in refused.stderr
    assert "to[0]" in refused.stderr

    unauthorized = pochta_send(stack, "--from", "a@example.org", "--to", "b@example.org", key="x")
    assert unauthorized.returncode == 1
    assert "401" in unauthorized.stderr
    no_key = pochta_send(stack, "--from", "a@example.org", "--to", "b@example.org")
    assert no_key.returncode == 2
    assert "POCHTA_API_KEY" in no_key.stderr


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def send_and_wait(stack: Stack, key: str, **fields: Any) -> dict[str, Any]:
    body = {"from": "a@example.org", "to": ["ok@example.org"], "text": BODY, **fields}
    with stack.client(key) as client:
        response = client.post("/v1/messages", json=body)
        assert response.status_code == 202, response.text
        final = {"sent", "partially_sent", "failed"}
        return stack.wait_for_status(client, response.json()["id"], final)


def test_metrics_of_the_api_and_of_the_worker_processes_follow_a_delivery(
    stack: Stack, key: str
) -> None:
    api_url = f"{stack.url}/metrics"
    worker_url = f"http://127.0.0.1:{stack.env['POCHTA_WORKER_METRICS_PORT']}/metrics"
    api_before, worker_before = scrape(api_url), scrape(worker_url)
    assert send_and_wait(stack, key)["status"] == "sent"
    # The worker counts after it has recorded the attempt, which GET may see first.
    deadline = time.monotonic() + 10
    while True:
        api_after, worker_after = scrape(api_url), scrape(worker_url)
        attempts = ("pochta_attempts_total", {"outcome": "sent", "reply_class": "2xx"})
        done = value(worker_after, attempts[0], **attempts[1]) > value(
            worker_before, attempts[0], **attempts[1]
        )
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(api_after, api_before, "pochta_messages_accepted_total") == 1
    assert delta(api_after, api_before, "pochta_messages", status="sent") == 1
    assert delta(worker_after, worker_before, attempts[0], **attempts[1]) == 1
    latency = "pochta_delivery_latency_seconds_count"
    assert delta(worker_after, worker_before, latency, status="sent") == 1
    assert value(worker_after, "pochta_relay_connections_total", event="opened") >= 1
    # Each process group answers for what it does, and only that.
    assert not any(name.startswith("pochta_attempts") for name, _ in api_after)
    assert not any(name.startswith("pochta_messages") for name, _ in worker_after)


def test_every_scrape_adds_up_all_api_worker_processes(
    ops_env: Env, key: str, tmp_path: Path
) -> None:
    with Stack(ops_env.for_subprocess(), tmp_path) as api:
        api.start_process("api", "api", "--port", str(api.port), "--workers", "2")
        wait_for_port("127.0.0.1", api.port, timeout=30)
        body = {"from": "a@example.org", "to": ["b@example.org"], "text": "x"}
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(6):
            # A connection each, so that both processes get some.
            response = httpx.post(f"{api.url}/v1/messages", json=body, headers=headers)
            assert response.status_code == 202
        for _ in range(6):
            accepted = value(scrape(f"{api.url}/metrics"), "pochta_messages_accepted_total")
            assert accepted == 6


def test_a_delivery_logs_one_json_line_and_no_secret_reaches_any_log(
    stack: Stack, key: str, relay: ScriptedRelay
) -> None:
    message = send_and_wait(stack, key, subject="secret test")
    with stack.client("pk_wrong-key") as stranger:
        assert stranger.get("/v1/messages").status_code == 401
    with stack.client(key) as client:
        refused = client.post("/v1/messages", json={"from": "bad", "to": ["x"], "text": BODY})
        assert refused.status_code == 422
    time.sleep(0.5)  # let the processes flush what they log after answering

    logs = {path.stem: path.read_text() for path in stack.logdir.glob("*.log")}
    assert set(logs) == {"api", "worker", "scheduler"}
    records = {
        name: [json.loads(line) for line in text.splitlines()] for name, text in logs.items()
    }

    (delivery,) = [r for r in records["worker"] if r.get("message_id") == message["id"]]
    assert delivery["level"] == "info"
    assert delivery["tenant"] == "acme"
    assert delivery["attempt"] == 1
    assert delivery["relay"] == f"default {relay.host}:{relay.port}"
    assert (delivery["smtp_code"], delivery["enhanced_code"]) == (250, "2.0.0")

    plain = base64.b64encode(f"\0{RELAY_USER}\0{RELAY_PASSWORD}".encode()).decode()
    for name, text in logs.items():
        for secret in (RELAY_PASSWORD, plain, key, "pk_wrong-key", BODY):
            assert secret not in text, f"{secret!r} in the {name} log"


def test_the_api_process_logs_one_json_access_line_per_request(stack: Stack, key: str) -> None:
    with stack.client("pk_wrong-key") as stranger:
        refused = stranger.get("/v1/messages", headers={"X-Request-Id": "ops-check-401"})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == "ops-check-401"
    with stack.client(key) as client:
        accepted = client.post(
            "/v1/messages", json={"from": "a@example.org", "to": ["b@example.org"], "text": "x"}
        )
    assert accepted.status_code == 202
    time.sleep(0.5)  # let the API process flush its log

    api_log = (stack.logdir / "api.log").read_text().splitlines()
    access = [r for r in map(json.loads, api_log) if r["logger"] == "pochta.access"]
    (denied,) = [r for r in access if r["request_id"] == "ops-check-401"]
    assert (denied["method"], denied["path"], denied["status"]) == ("GET", "/v1/messages", 401)
    (created,) = [r for r in access if r["request_id"] == accepted.headers["x-request-id"]]
    assert (created["status"], created["tenant"]) == (202, "acme")
    assert created["message_id"] == accepted.json()["id"]


def test_pochta_send_wait_tells_each_attempt_on_stderr_as_it_happens(
    stack: Stack, relay: ScriptedRelay, key: str
) -> None:
    relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted, try later")
    command = [sys.executable, "-m", "app.cli", "send", "--api", stack.url, "--wait"]
    fields = ["--from", "a@example.org", "--to", "grey@example.org", "--text", "x"]
    with subprocess.Popen(
        [*command, *fields], env=send_env(stack, key), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        before: list[str] = []
        while not (first := process.stderr.readline().rstrip("\n")).startswith("attempt"):
            assert first, f"exited before telling the first attempt: {before}"
            before.append(first)
        assert process.poll() is None, "the deferral is told while it waits, not at the end"
        out, rest = process.communicate(timeout=60)
    assert process.returncode == 0, [*before, first, rest]

    statuses = {"queued", "sending"}
    assert set(before) <= statuses, before
    assert re.fullmatch(
        r"attempt 1: deferred 451 4\.7\.1 Greylisted, try later, next at 20\S+", first
    ), first
    after = rest.splitlines()
    assert after[-1] == "sent", after
    (second,) = [line for line in after[:-1] if line not in statuses]
    assert second == "attempt 2: sent 250 2.0.0 Message accepted", after
    assert out.splitlines()[1:] == ["sent", "grey@example.org\tsent\t250\t2.0.0\tMessage accepted"]


def test_pochta_send_wait_gives_up_after_its_timeout_with_its_own_exit_status(
    stack: Stack, relay: ScriptedRelay, key: str
) -> None:
    relay.script_rcpt("slow@example.org", *["451 4.7.1 Greylisted, try later"] * 5)
    started = time.monotonic()
    waited = pochta_send(
        stack, "--from", "a@example.org", "--to", "slow@example.org", "--text", "x",
        "--wait", "--timeout", "1", key=key,
    )  # fmt: skip
    assert waited.returncode == 3, waited.stderr
    assert time.monotonic() - started < 1 + RETRY_SECONDS + 5
    message_id = waited.stdout.strip()
    assert f"pochta send: {message_id} not final after 1s" in waited.stderr
    with stack.client(key) as client:
        assert client.get(f"/v1/messages/{message_id}").json()["status"] != "sent"
        client.post(f"/v1/messages/{message_id}/cancel")  # it would retry on for a while

    default = pochta_send(stack, "--help")
    assert "default 60" in default.stdout
    assert "3  with --wait: not final when --timeout ran out" in default.stdout


def test_a_load_balancer_probing_with_head_gets_the_status_and_no_body(stack: Stack) -> None:
    host, port = stack.url.removeprefix("http://").split(":")
    for path in ("/healthz", "/readyz"):
        got = httpx.get(f"{stack.url}{path}", timeout=10)
        # A raw socket: an HTTP client would not read a body after HEAD, were one sent.
        with socket.create_connection((host, int(port)), timeout=10) as probe:
            probe.sendall(f"HEAD {path} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n".encode())
            answer = b"".join(iter(lambda: probe.recv(65536), b""))
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), (path, head)
        assert f"content-length: {len(got.content)}".encode() in head.lower(), head
        assert body == b"", (path, body)
