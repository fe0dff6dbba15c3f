"""GET /v1/events: every status change's event, as a caller reads it; filters and paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harness.relay import ScriptedRelay
from tests.conftest import Env, make_key
from tests.support.flow import run_until_final, submit
from worker.delivery_loop import deliver_messages


@pytest.fixture
def client(env: Env) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_key()}"
        yield test_client


def events_of(client: TestClient, message_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/events", params={"message_id": message_id})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def message_now(client: TestClient, message_id: str) -> dict[str, Any]:
    """The message as GET shows it, as an event carries it: without its attempts."""
    response = client.get(f"/v1/messages/{message_id}")
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()
    message.pop("attempts")
    return message


def last_attempt(client: TestClient, message_id: str) -> dict[str, Any]:
    attempt: dict[str, Any] = client.get(f"/v1/messages/{message_id}").json()["attempts"][-1]
    return attempt


def test_a_sent_message_has_one_message_sent_with_the_message_as_it_ended(
    client: TestClient, relay: ScriptedRelay
) -> None:
    message_id = submit(to=["billy@example.org"])
    run_until_final(message_id)
    (event,) = events_of(client, message_id)
    assert event["type"] == "message.sent"
    assert event["id"].startswith("evt_")
    assert event["data"] == {
        "message": message_now(client, message_id),
        "attempt": last_attempt(client, message_id),
    }
    assert event["timestamp"] == event["data"]["attempt"]["finished_at"]
    assert client.get(f"/v1/events/{event['id']}").json() == event


def test_greylisted_then_sent_has_message_deferred_then_message_sent(
    client: TestClient, relay: ScriptedRelay
) -> None:
    relay.script_rcpt("billy@example.org", "451 4.7.1 Greylisted, try later")
    message_id = submit(to=["billy@example.org"])
    deliver_messages([message_id])
    while_deferred = message_now(client, message_id)
    first_attempt = last_attempt(client, message_id)
    assert while_deferred["status"] == "deferred"
    run_until_final(message_id)

    sent, deferred = events_of(client, message_id)  # newest first
    assert deferred["type"] == "message.deferred"
    assert deferred["data"] == {"message": while_deferred, "attempt": first_attempt}
    (recipient,) = deferred["data"]["message"]["recipients"]
    assert (recipient["status"], recipient["smtp_code"], recipient["smtp_reply"]) == (
        "deferred",
        451,
        "Greylisted, try later",
    )
    assert deferred["data"]["message"]["next_attempt_at"] is not None
    assert sent["type"] == "message.sent"
    assert sent["data"]["message"] == message_now(client, message_id)
    assert sent["data"]["attempt"]["number"] == 2


def test_a_refused_message_has_message_failed_and_a_half_refused_one_partially_sent(
    client: TestClient, relay: ScriptedRelay
) -> None:
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user")
    failed = submit(to=["nobody@example.org"])
    relay.script_rcpt("gone@example.org", "550 5.1.1 No such user")
    partial = submit(to=["billy@example.org", "gone@example.org"])
    run_until_final(failed)
    run_until_final(partial)

    (event,) = events_of(client, failed)
    assert event["type"] == "message.failed"
    assert event["data"]["message"] == message_now(client, failed)
    assert event["data"]["message"]["recipients"][0]["smtp_code"] == 550
    assert event["data"]["attempt"] == last_attempt(client, failed)

    (event,) = events_of(client, partial)
    assert event["type"] == "message.partially_sent"
    assert event["data"]["message"] == message_now(client, partial)
    statuses = [r["status"] for r in event["data"]["message"]["recipients"]]
    assert statuses == ["sent", "failed"]
    assert event["data"]["attempt"]["outcome"] == "mixed"


def test_a_canceled_message_has_message_canceled_without_an_attempt(
    client: TestClient,
) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    message_id = submit(send_at=send_at)
    canceled = client.post(f"/v1/messages/{message_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    (event,) = events_of(client, message_id)
    assert event["type"] == "message.canceled"
    expected = canceled.json()
    expected.pop("attempts")
    assert event["data"] == {"message": expected, "attempt": None}
    assert event["data"]["message"]["recipients"][0]["status"] == "canceled"
    # A refused cancel changes nothing, so it says nothing either.
    assert client.post(f"/v1/messages/{message_id}/cancel").status_code == 409
    assert len(events_of(client, message_id)) == 1
