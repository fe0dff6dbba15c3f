"""Webhooks through real processes (api, worker, scheduler), a real relay and a real HTTP
receiver on loopback, every request verified with the standardwebhooks library."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import db
from app.webhooks.models import Webhook
from harness.ports import free_port
from harness.relay import ScriptedRelay
from harness.stack import Stack
from harness.webhook_receiver import HANG, Request, WebhookReceiver
from tests.conftest import Env, make_key
from tests.support.prometheus import parse, value
from tests.support.webhooks import signatures, verified, verifies_alone

FINAL = {"sent", "partially_sent", "failed", "canceled"}
MESSAGE_EVENTS = [
    "message.sent",
    "message.partially_sent",
    "message.failed",
    "message.canceled",
    "message.deferred",
]


@pytest.fixture
def receiver(env: Env) -> Iterator[WebhookReceiver]:
    env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "true"
    env["POCHTA_WEBHOOK_RETRY_SCHEDULE"] = "0.2,0.2,0.2"
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def stack(
    env: Env, relay: ScriptedRelay, receiver: WebhookReceiver, tmp_path: Path
) -> Iterator[Stack]:
    with Stack(env.for_subprocess(), tmp_path) as running:
        running.start()
        yield running


def endpoint(client: httpx.Client, url: str, **fields: Any) -> tuple[str, str]:
    response = client.post("/v1/webhooks", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["secret"]


def submit(client: httpx.Client, *to: str, **fields: Any) -> str:
    body = {"from": "a@example.org", "to": list(to), "text": "x", **fields}
    response = client.post("/v1/messages", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def unique(requests: list[Request], secret: str) -> dict[str, dict[str, Any]]:
    """The events received, each verified, repeats dropped by webhook-id."""
    events: dict[str, dict[str, Any]] = {}
    for request in requests:
        event = verified(request, secret)
        assert event["id"] == request.headers["webhook-id"]
        events.setdefault(request.headers["webhook-id"], event)
    return events


def types_by_message(events: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for event in sorted(events.values(), key=lambda e: (e["timestamp"], e["id"])):
        found[event["data"]["message"]["id"]].append(event["type"])
    return found


def test_each_final_status_and_deferral_is_pushed_once(
    stack: Stack, relay: ScriptedRelay, receiver: WebhookReceiver
) -> None:
    relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted, try later")
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user here")
    relay.script_rcpt("gone@example.org", "550 5.1.1 No such user here")
    with stack.client(make_key()) as client:
        # The message.* types only: the 5.1.1s also make suppression.created events.
        _, secret = endpoint(client, receiver.url(), events=MESSAGE_EVENTS)
        sent = submit(client, "ok@example.org")
        deferred_then_sent = submit(client, "grey@example.org")
        failed = submit(client, "nobody@example.org")
        partial = submit(client, "ok2@example.org", "gone@example.org")
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        canceled = submit(client, "ok3@example.org", send_at=later)
        assert client.post(f"/v1/messages/{canceled}/cancel").status_code == 200
        for message_id in (sent, deferred_then_sent, failed, partial):
            stack.wait_for_status(client, message_id, FINAL)

    expected = {
        sent: ["message.sent"],
        deferred_then_sent: ["message.deferred", "message.sent"],
        failed: ["message.failed"],
        partial: ["message.partially_sent"],
        canceled: ["message.canceled"],
    }
    receiver.wait_for(
        lambda seen: len(unique(seen, secret)) >= sum(len(t) for t in expected.values())
    )
    assert types_by_message(unique(receiver.requests(), secret)) == expected


def test_500_500_200_is_three_signed_requests_and_three_logged_deliveries(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    receiver.script("/hook", 500, 500, 200)
    with stack.client(make_key()) as client:
        webhook_id, secret = endpoint(client, receiver.url())
        submit(client, "ok@example.org")
        requests = receiver.wait_for(lambda seen: len(seen) >= 3, path="/hook")
        ids = {request.headers["webhook-id"] for request in requests}
        assert len(ids) == 1
        for request in requests:
            assert verified(request, secret)["id"] in ids
        deadline = time.monotonic() + 30
        while True:
            log = client.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["data"]
            if len(log) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert [(d["attempt"], d["status"], d["response_status"]) for d in reversed(log)] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "succeeded", 200),
    ]
    assert {d["event_id"] for d in log} == ids


def test_410_disables_the_endpoint(stack: Stack, receiver: WebhookReceiver) -> None:
    receiver.default("/hook", 410)
    with stack.client(make_key()) as client:
        webhook_id, _ = endpoint(client, receiver.url())
        submit(client, "ok@example.org")
        deadline = time.monotonic() + 30
        while True:
            hook = client.get(f"/v1/webhooks/{webhook_id}").json()
            if hook["status"] == "disabled" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert (hook["status"], hook["disabled_reason"]) == ("disabled", "gone")
    assert len(receiver.requests("/hook")) == 1


@pytest.mark.serial  # it measures the pace of email: alone, not beside other tests
def test_a_dead_endpoint_slows_neither_email_nor_another_endpoint(
    env: Env, relay: ScriptedRelay, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # Longer than the test: a hung request holds its thread until the receiver lets go.
    env["POCHTA_WEBHOOK_TIMEOUT_SECONDS"] = "300"
    env["POCHTA_WEBHOOK_MAX_IN_FLIGHT"] = "3"
    receiver.default("/dead", HANG)
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start()
        try:
            with stack.client(make_key()) as client:
                endpoint(client, receiver.url("/dead"))
                _, live_secret = endpoint(client, receiver.url("/live"))
                first = [submit(client, f"r{i}@example.org") for i in range(3)]
                # The dead endpoint now holds every slot it may have.
                receiver.wait_for(lambda seen: len(seen) >= 3, path="/dead")
                started = time.monotonic()
                more = [submit(client, f"s{i}@example.org") for i in range(20)]
                for message_id in first + more:
                    assert stack.wait_for_status(client, message_id, FINAL)["status"] == "sent"
                email_seconds = time.monotonic() - started
                live = receiver.wait_for(
                    lambda seen: len(unique(seen, live_secret)) >= 23, path="/live"
                )
            assert len(unique(live, live_secret)) == 23
            assert len(receiver.requests("/dead")) == 3, "never more than max in flight"
            # Twenty messages through one local relay take a second or two; a worker stuck
            # behind the dead endpoint would take the 300 s timeout.
            assert email_seconds < 60
        finally:
            receiver.release()


def test_rotation_sends_two_signatures_then_one(stack: Stack, receiver: WebhookReceiver) -> None:
    with stack.client(make_key()) as client:
        webhook_id, old = endpoint(client, receiver.url())
        rotated = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        submit(client, "ok@example.org")
        (during,) = receiver.wait_for(lambda seen: len(seen) >= 1)
        first, second = signatures(during)
        assert verifies_alone(during, first, new)
        assert verifies_alone(during, second, old)
        assert not verifies_alone(during, first, old)
        # The overlap (a day by default) ends: as if its time had come.
        with db.session_scope() as session:
            row = session.get(Webhook, webhook_id)
            assert row is not None
            row.previous_secret_expires_at = datetime.now(UTC) - timedelta(seconds=1)
        submit(client, "ok@example.org")
        after = receiver.wait_for(lambda seen: len(seen) >= 2)[-1]
    assert len(signatures(after)) == 1
    assert verified(after, new)


def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    env: Env, relay: ScriptedRelay, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    from tests.support.webhooks import create_endpoint

    # Stored while private targets were allowed; delivered by processes that refuse them.
    webhook_id, _ = create_endpoint(receiver.url(host="localhost"))
    env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "false"
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start()
        with stack.client(make_key()) as client:
            submit(client, "ok@example.org")
            deadline = time.monotonic() + 30
            while True:
                log = client.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["data"]
                if log or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    assert log, stack.logs()
    assert log[-1]["error"] == "address not allowed"
    assert log[-1]["response_status"] is None
    assert receiver.requests() == []


# The production shape only: a thousand on SQLite as well would add a minute or two to
# every `make test` and prove nothing more than the smaller tests here do.
@pytest.mark.parametrize("backend", ["postgres"])
def test_a_thousand_messages_each_deliver_their_event(
    env: Env, relay: ScriptedRelay, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    with Stack(env.for_subprocess(), tmp_path, concurrency=2) as stack:
        stack.start()
        with stack.client(make_key()) as client:
            _, secret = endpoint(client, receiver.url(), events=["message.sent"])
            for start in range(0, 1000, 500):
                batch = [
                    {"from": "a@example.org", "to": [f"r{i}@example.org"], "text": "x"}
                    for i in range(start, start + 500)
                ]
                response = client.post("/v1/messages/batch", json={"messages": batch})
                assert response.status_code == 200, response.text
                assert {r["status"] for r in response.json()["results"]} == {202}
        seen = receiver.wait_for(lambda got: len(unique(got, secret)) >= 1000, timeout=240)
    events = unique(seen, secret)
    assert len(events) == 1000
    assert {e["type"] for e in events.values()} == {"message.sent"}
    assert len({e["data"]["message"]["id"] for e in events.values()}) == 1000


def test_the_worker_counts_requests_latency_and_the_oldest_undelivered_event(
    env: Env, relay: ScriptedRelay, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    env["POCHTA_WORKER_METRICS_PORT"] = str(free_port())
    env["POCHTA_WEBHOOK_RETRY_SCHEDULE"] = "3600"
    receiver.default("/down", 503)
    metrics_url = f"http://127.0.0.1:{env.values['POCHTA_WORKER_METRICS_PORT']}/metrics"
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start()
        with stack.client(make_key()) as client:
            endpoint(client, receiver.url("/up"))
            down, _ = endpoint(client, receiver.url("/down"))
            submit(client, "ok@example.org")
            receiver.wait_for(lambda seen: len(seen) >= 1, path="/up")
            receiver.wait_for(lambda seen: len(seen) >= 1, path="/down")
        deadline = time.monotonic() + 30
        while True:
            samples = parse(httpx.get(metrics_url, timeout=10).text)
            counted = value(
                samples, "pochta_webhook_requests_total", outcome="failed", status_class="5xx"
            ) + value(
                samples, "pochta_webhook_requests_total", outcome="succeeded", status_class="2xx"
            )
            if counted >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert (
        value(samples, "pochta_webhook_requests_total", outcome="succeeded", status_class="2xx")
        == 1
    )
    assert (
        value(samples, "pochta_webhook_requests_total", outcome="failed", status_class="5xx") == 1
    )
    assert value(samples, "pochta_webhook_delivery_latency_seconds_count") == 1
    # The failing endpoint still owes its event (the next try is an hour away).
    assert value(samples, "pochta_webhook_oldest_undelivered_seconds", webhook=down) > 0
