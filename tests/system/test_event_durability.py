"""Events survive a crash as their changes do: a worker SIGKILLed while recording groups.

Real processes (`pochta api`, `worker`, `scheduler`) on PostgreSQL and Redis. Whatever
moment the kill lands on, each group's changes and events commit together or not at
all, so afterwards every attempt has exactly one event and every event its attempt; and
every event reaches the subscribed webhook endpoint.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.relay import ScriptedRelay
from harness.stack import Stack
from harness.webhook_receiver import WebhookReceiver
from tests.conftest import Env, make_key
from tests.support.checks import email, wait_for_statuses, wait_until

FINAL = {"sent", "partially_sent", "failed", "canceled"}
NO_SUCH_USER = "550 5.1.1 No such user"


def kill_group(stack: Stack, name: str) -> None:
    """SIGKILL a process and its children (Celery's pool), as a crash or the OOM killer would."""
    process = stack.processes.pop(name)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def read(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def events_of(client: httpx.Client, message_id: str) -> list[dict[str, Any]]:
    """Every message.* event of a message, oldest first (a hard bounce also has its
    suppression.created)."""
    body = read(client, "/v1/events", message_id=message_id, limit=100)
    assert body["next_cursor"] is None
    return [e for e in reversed(body["data"]) if e["type"].startswith("message.")]


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_worker_killed_mid_group_leaves_every_change_with_exactly_its_event(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    env["POCHTA_SENDING_LEASE_SECONDS"] = "2"
    # A retry's task that the killed worker had taken is handed over again soon.
    env["POCHTA_DISPATCH_LEASE_SECONDS"] = "2"
    env["POCHTA_WORKER_METRICS_PORT"] = "0"
    env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "true"
    env["POCHTA_WEBHOOK_TIMEOUT_SECONDS"] = "2"
    # Each SMTP transaction takes a little while, so a group spans a few and is written
    # every few dozen milliseconds: the kill lands among writes, not after the last.
    relay.stall_after_data = 0.02
    for i in range(0, 40, 4):
        relay.script_rcpt(f"r{i}@example.org", "451 4.7.1 Greylisted, try later")
    # Refusals scripted thrice: an attempt lost with the worker is made again.
    for i in range(1, 40, 4):
        relay.script_rcpt(f"r{i}@example.org", *[NO_SUCH_USER] * 3)
    bodies = [email(i) for i in range(40)]
    for i in range(2, 40, 4):  # half refused: partially_sent
        relay.script_rcpt(f"x{i}@example.org", *[NO_SUCH_USER] * 3)
        bodies[i]["to"].append(f"x{i}@example.org")

    with (
        WebhookReceiver() as receiver,
        Stack(env.for_subprocess(), tmp_path, concurrency=2) as stack,
    ):
        stack.start()
        with stack.client(make_key()) as client:
            hook = client.post("/v1/webhooks", json={"url": receiver.url()})
            assert hook.status_code == 201, hook.text
            response = client.post("/v1/messages/batch", json={"messages": bodies})
            assert response.status_code == 200, response.text
            ids = [item["message"]["id"] for item in response.json()["results"]]
            wait_until(
                lambda: len(relay.messages) >= 12,
                timeout=30,
                describe=lambda: f"{len(relay.messages)} at the relay\n{stack.logs()}",
            )
            kill_group(stack, "worker")
            stack.start("worker")
            final = wait_for_statuses(ids, FINAL, timeout=90, logs=stack.logs)

            assert Counter(final.values()) == {"sent": 20, "failed": 10, "partially_sent": 10}
            for message_id in ids:
                message = read(client, f"/v1/messages/{message_id}")
                events = events_of(client, message_id)
                finals = [e for e in events if e["type"] != "message.deferred"]
                assert [e["type"] for e in finals] == [f"message.{message['status']}"]
                assert events[-1] is finals[0], "the final event is the last"
                # One event per recorded attempt, each carrying that attempt.
                assert [e["data"]["attempt"] for e in events] == message["attempts"]
                for event in events:
                    after = event["data"]["message"]
                    assert event["type"] == f"message.{after['status']}"
                    assert after["attempt_count"] == event["data"]["attempt"]["number"]
                assert events[-1]["data"]["message"] == {
                    k: v for k, v in message.items() if k != "attempts"
                }

            # Every event, suppression.created included, was delivered (at least once).
            every = {
                event["id"]
                for message_id in ids
                for event in read(client, "/v1/events", message_id=message_id, limit=100)["data"]
            }
            receiver.wait_for(
                lambda seen: every <= {r.headers["webhook-id"] for r in seen}, timeout=90
            )
            path = f"/v1/webhooks/{hook.json()['id']}/deliveries"

            def logged_as_delivered() -> set[str]:
                succeeded: set[str] = set()
                page = read(client, path, limit=100)
                while True:
                    succeeded |= {d["event_id"] for d in page["data"] if d["status"] == "succeeded"}
                    if page["next_cursor"] is None:
                        return succeeded
                    page = read(client, path, limit=100, cursor=page["next_cursor"])

            # A request is logged once its answer is in. One the kill cut off after the
            # receiver had it is sent again when its lease runs out (timeout + 30 s).
            wait_until(
                lambda: every <= logged_as_delivered(),
                timeout=60,
                describe=lambda: f"the deliveries log lacks {every - logged_as_delivered()}",
            )
