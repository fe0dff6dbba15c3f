"""GET /v1/events: every status change's event, as a caller reads it; filters and paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import db
from app.events.types import EventType
from app.events.writer import add_events, event_row
from harness.relay import ScriptedRelay
from tests.api.helpers import problem
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


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TYPES = (EventType.message_sent, EventType.message_deferred, EventType.message_failed)


def store_events(tenant: str, count: int) -> list[str]:
    """count events a minute apart, of three messages and three types; ids oldest first."""
    rows = [
        event_row(
            type=TYPES[i % 3],
            tenant=tenant,
            message_id=f"msg_{tenant}_{i % 3}",
            data={"n": i},
            at=T0 + timedelta(minutes=i),
        )
        for i in range(count)
    ]
    with db.session_scope() as session:
        add_events(session, rows)
    return [row["id"] for row in rows]


def walk(client: TestClient, **params: Any) -> list[str]:
    """Every event id a client paging to the end sees, in order."""
    ids: list[str] = []
    cursor = None
    while True:
        query = {k: v for k, v in (params | {"cursor": cursor}).items() if v is not None}
        response = client.get("/v1/events", params=query)
        assert response.status_code == 200, response.text
        ids += [e["id"] for e in response.json()["data"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids


@pytest.mark.parametrize("backend", ["sqlite"])
def test_events_page_newest_first_and_filter_by_type_message_and_time(
    client: TestClient,
) -> None:
    ids = store_events("acme", 12)
    store_events("globex", 3)

    def expect(keep: Any) -> list[str]:
        return [ids[i] for i in reversed(range(12)) if keep(i)]

    assert walk(client, limit=5) == expect(lambda i: True)
    assert len(client.get("/v1/events").json()["data"]) == 12, "the default page is 20"
    assert walk(client, type="message.deferred", limit=2) == expect(lambda i: i % 3 == 1)
    assert walk(client, message_id="msg_acme_2", limit=2) == expect(lambda i: i % 3 == 2)
    after, before = (T0 + timedelta(minutes=3)).isoformat(), (T0 + timedelta(minutes=9)).isoformat()
    assert walk(client, created_after=after, created_before=before, limit=4) == expect(
        lambda i: 3 <= i < 9
    )
    assert walk(client, type="message.sent", created_after=after, limit=1) == expect(
        lambda i: i >= 3 and i % 3 == 0
    )
    assert walk(client, message_id="msg_globex_0") == [], "another tenant's are not listed"
    one = client.get(f"/v1/events/{ids[4]}").json()
    assert (one["type"], one["data"], one["timestamp"]) == (
        "message.deferred",
        {"n": 4},
        "2026-11-30T12:04:00.000Z",
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_another_tenants_event_and_an_unknown_one_are_404(client: TestClient) -> None:
    (theirs,) = store_events("globex", 1)
    for path in (f"/v1/events/{theirs}", "/v1/events/evt_nothing", "/v1/events/%20x"):
        body = problem(client.get(path), 404)
        assert body["type"] == "/problems/not-found"
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    assert client.get(f"/v1/events/{theirs}", headers=other).status_code == 200
    assert client.get("/v1/events", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_bad_filter_or_cursor_is_422_naming_it(client: TestClient) -> None:
    store_events("acme", 3)
    cursor = client.get("/v1/events", params={"type": "message.sent", "limit": 1}).json()
    assert cursor["next_cursor"] is None, "one message.sent among three"
    cursor = client.get("/v1/events", params={"limit": 1}).json()["next_cursor"]
    assert cursor is not None
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    for params, headers in (
        ({"cursor": cursor, "type": "message.sent"}, {}),
        ({"cursor": "not-a-cursor"}, {}),
        ({"cursor": cursor[:-4]}, {}),
        ({"cursor": cursor}, other),
    ):
        body = problem(client.get("/v1/events", params=params, headers=headers), 422)
        assert [e["loc"] for e in body["errors"]] == ["cursor"]
    for params, loc in (
        ({"type": "message.lost"}, "type"),
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"created_before": "yesterday"}, "created_before"),
        ({"message_id": ""}, "message_id"),
        ({"typ": "message.sent"}, "typ"),
    ):
        body = problem(client.get("/v1/events", params=params), 422)
        assert loc in [e["loc"] for e in body["errors"]], (params, body)
