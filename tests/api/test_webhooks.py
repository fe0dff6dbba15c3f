"""/v1/webhooks: CRUD, secrets shown twice and stored encrypted, the SSRF rule, the
deliveries log, replay, and one tenant never seeing another's endpoints."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app import db
from app.config import get_settings
from app.events.types import EventType
from app.events.writer import add_events, event_row
from app.webhooks import secrets
from app.webhooks.models import (
    Delivery,
    DeliveryStatus,
    DisabledReason,
    PendingDelivery,
    Webhook,
    WebhookStatus,
)
from tests.api.helpers import problem
from tests.conftest import Env, make_key

# A public address given literally: accepted without any DNS.
PUBLIC_URL = "https://8.8.8.8/pochta"


@pytest.fixture
def client(env: Env) -> Iterator[TestClient]:
    """The API in-process on the test's backend, as tenant acme."""
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_key()}"
        yield test_client


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": PUBLIC_URL, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stored(webhook_id: str) -> Webhook:
    with db.session_scope() as session:
        webhook = session.get(Webhook, webhook_id)
        assert webhook is not None
        session.expunge(webhook)
        return webhook


def add_event(tenant: str, type: EventType, at: datetime) -> str:
    row = event_row(type=type, tenant=tenant, message_id=None, data={"n": 1}, at=at)
    with db.session_scope() as session:
        add_events(session, [row])
    return str(row["id"])


def pending(webhook_id: str) -> dict[str, PendingDelivery]:
    with db.session_scope() as session:
        rows = session.scalars(
            select(PendingDelivery).where(PendingDelivery.webhook_pk == webhook_id)
        ).all()
        session.expunge_all()
    return {row.event_pk: row for row in rows}


# --- create, read, secrets ---------------------------------------------------------------


def test_create_answers_201_with_the_secret_and_reads_never_show_it(api: TestClient) -> None:
    response = api.post(
        "/v1/webhooks",
        json={"url": PUBLIC_URL, "events": ["message.sent", "message.failed"], "description": "d"},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert response.headers["location"] == f"/v1/webhooks/{made['id']}"
    assert made["id"].startswith("wh_")
    assert made["url"] == PUBLIC_URL
    assert made["events"] == ["message.sent", "message.failed"]
    assert made["description"] == "d"
    assert made["status"] == "enabled"
    assert made["disabled_reason"] is None
    assert made["created_at"].endswith("Z")
    assert made["updated_at"] == made["created_at"]
    assert made["secret"].startswith("whsec_")
    assert len(base64.b64decode(made["secret"].removeprefix("whsec_"))) == 32

    one = api.get(f"/v1/webhooks/{made['id']}")
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert {k: v for k, v in made.items() if k != "secret"} == one.json()
    listed = api.get("/v1/webhooks").json()["data"]
    assert [w["id"] for w in listed] == [made["id"]]
    assert "secret" not in listed[0]
    assert made["secret"] not in api.get("/v1/webhooks").text


def test_omitted_or_empty_events_mean_every_type_and_repeats_are_dropped(api: TestClient) -> None:
    assert create(api)["events"] == []
    assert create(api, events=[])["events"] == []
    twice = create(api, events=["message.sent", "message.sent", "recipient.bounced"])
    assert twice["events"] == ["message.sent", "recipient.bounced"]


def test_the_list_is_newest_first(api: TestClient) -> None:
    ids = [create(api, description=str(i))["id"] for i in range(3)]
    assert [w["id"] for w in api.get("/v1/webhooks").json()["data"]] == ids[::-1]


def test_the_database_holds_no_plaintext_secret(api: TestClient) -> None:
    made = create(api)
    secret = made["secret"]
    rotated = api.post(f"/v1/webhooks/{made['id']}/rotate-secret").json()["secret"]
    with db.session_scope() as session:
        row = session.execute(
            text("SELECT * FROM webhooks WHERE id = :id"), {"id": made["id"]}
        ).one()
    dump = " ".join(str(value) for value in row)
    for plain in (secret, rotated):
        assert plain not in dump
        assert plain.removeprefix("whsec_") not in dump
    webhook = stored(made["id"])
    assert secrets.decrypt(get_settings(), webhook.secret_encrypted) == rotated
    assert webhook.previous_secret_encrypted is not None
    assert secrets.decrypt(get_settings(), webhook.previous_secret_encrypted) == secret


def test_rotate_keeps_the_old_secret_for_the_overlap(sqlite_env: Env) -> None:
    sqlite_env["POCHTA_WEBHOOK_SECRET_OVERLAP_SECONDS"] = "3600"
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as api:
        api.headers["Authorization"] = f"Bearer {make_key()}"
        made = create(api)
        before = datetime.now(UTC)
        response = api.post(f"/v1/webhooks/{made['id']}/rotate-secret")
        after = datetime.now(UTC)
        assert response.status_code == 200, response.text
        rotated = response.json()
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != made["secret"]
        assert rotated["id"] == made["id"]
        assert rotated["updated_at"] > made["updated_at"]
        assert "secret" not in api.get(f"/v1/webhooks/{made['id']}").json()

        webhook = stored(made["id"])
        assert webhook.previous_secret_encrypted is not None
        assert secrets.decrypt(get_settings(), webhook.previous_secret_encrypted) == made["secret"]
        assert webhook.previous_secret_expires_at is not None
        overlap = timedelta(seconds=3600)
        assert before + overlap <= webhook.previous_secret_expires_at + timedelta(milliseconds=1)
        assert webhook.previous_secret_expires_at <= after + overlap

        # Again within the overlap: the newest two are live, the first is gone.
        third = api.post(f"/v1/webhooks/{made['id']}/rotate-secret").json()["secret"]
        webhook = stored(made["id"])
        assert secrets.decrypt(get_settings(), webhook.secret_encrypted) == third
        assert webhook.previous_secret_encrypted is not None
        previous = secrets.decrypt(get_settings(), webhook.previous_secret_encrypted)
        assert previous == rotated["secret"]


def test_rotate_with_no_overlap_keeps_no_old_secret(sqlite_env: Env) -> None:
    sqlite_env["POCHTA_WEBHOOK_SECRET_OVERLAP_SECONDS"] = "0"
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as api:
        api.headers["Authorization"] = f"Bearer {make_key()}"
        made = create(api)
        assert api.post(f"/v1/webhooks/{made['id']}/rotate-secret").status_code == 200
        webhook = stored(made["id"])
        assert webhook.previous_secret_encrypted is None
        assert webhook.previous_secret_expires_at is None


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "ftp://8.8.8.8/x"}, "url"),
        ({"url": "http://127.0.0.1:9000/hook"}, "url"),
        ({"url": "http://localhost/hook"}, "url"),
        ({"url": "http://[::ffff:10.0.0.1]/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest"}, "url"),
        ({"url": "http://100.64.0.1/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": ""}, "url"),
        ({"url": "https://8.8.8.8/\r\nX: y"}, "url"),
        ({}, "url"),
        ({"url": PUBLIC_URL, "events": ["message.exploded"]}, "events[0]"),
        ({"url": PUBLIC_URL, "events": "message.sent"}, "events"),
        ({"url": PUBLIC_URL, "description": "x" * 501}, "description"),
        ({"url": PUBLIC_URL, "secret": "whsec_mine"}, "secret"),
    ],
)
def test_create_refuses_bad_fields_naming_them(
    api: TestClient, body: dict[str, Any], loc: str
) -> None:
    refused = problem(api.post("/v1/webhooks", json=body), 422)
    assert loc in [e["loc"] for e in refused["errors"]], refused
    assert api.get("/v1/webhooks").json()["data"] == []


def test_private_urls_are_allowed_with_the_setting(sqlite_env: Env) -> None:
    sqlite_env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "true"
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as api:
        api.headers["Authorization"] = f"Bearer {make_key()}"
        assert create(api, url="http://127.0.0.1:9000/hook")["url"] == "http://127.0.0.1:9000/hook"
        problem(api.post("/v1/webhooks", json={"url": "ftp://127.0.0.1/"}), 422)


def test_create_wants_json(api: TestClient) -> None:
    problem(api.post("/v1/webhooks", content=b"url=x"), 415)
    response = api.post("/v1/webhooks", content=b"{", headers={"content-type": "application/json"})
    problem(response, 400)


def test_every_route_wants_a_key(api: TestClient) -> None:
    made = create(api)
    del api.headers["Authorization"]
    for method, path in [
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("GET", f"/v1/webhooks/{made['id']}"),
        ("PATCH", f"/v1/webhooks/{made['id']}"),
        ("DELETE", f"/v1/webhooks/{made['id']}"),
        ("POST", f"/v1/webhooks/{made['id']}/rotate-secret"),
        ("GET", f"/v1/webhooks/{made['id']}/deliveries"),
        ("POST", f"/v1/webhooks/{made['id']}/replay"),
    ]:
        problem(api.request(method, path, json={}), 401)


# --- patch and delete --------------------------------------------------------------------


def test_patch_changes_only_what_it_gives(api: TestClient) -> None:
    made = create(api, events=["message.sent"], description="old")
    response = api.patch(f"/v1/webhooks/{made['id']}", json={"description": "new"})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["description"] == "new"
    assert changed["events"] == ["message.sent"]
    assert changed["url"] == PUBLIC_URL
    assert changed["updated_at"] > made["updated_at"]
    assert "secret" not in changed

    changed = api.patch(
        f"/v1/webhooks/{made['id']}",
        json={"url": "https://1.1.1.1/other", "events": []},
    ).json()
    assert changed["url"] == "https://1.1.1.1/other"
    assert changed["events"] == []
    assert api.get(f"/v1/webhooks/{made['id']}").json() == changed
    unchanged = api.patch(f"/v1/webhooks/{made['id']}", json={})
    assert unchanged.json() == changed


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "http://127.0.0.1/"}, "url"),
        ({"url": "gopher://8.8.8.8/"}, "url"),
        ({"url": None}, "url"),
        ({"events": ["nope"]}, "events[0]"),
        ({"events": None}, "events"),
        ({"enabled": None}, "enabled"),
        ({"enabled": "maybe"}, "enabled"),
        ({"status": "enabled"}, "status"),
    ],
)
def test_patch_refuses_bad_fields_naming_them(
    api: TestClient, body: dict[str, Any], loc: str
) -> None:
    made = create(api)
    refused = problem(api.patch(f"/v1/webhooks/{made['id']}", json=body), 422)
    assert loc in [e["loc"] for e in refused["errors"]], refused
    after = api.get(f"/v1/webhooks/{made['id']}").json()
    assert after == {k: v for k, v in made.items() if k != "secret"}


def test_disable_and_enable(api: TestClient) -> None:
    made = create(api)
    off = api.patch(f"/v1/webhooks/{made['id']}", json={"enabled": False}).json()
    assert (off["status"], off["disabled_reason"]) == ("disabled", "manual")

    # The sender turned it off as failing; enabling clears its failing clock too.
    with db.session_scope() as session:
        webhook = session.get(Webhook, made["id"])
        assert webhook is not None
        webhook.disabled_reason = DisabledReason.failing
        webhook.failing_since = datetime.now(UTC) - timedelta(days=6)
    again_off = api.patch(f"/v1/webhooks/{made['id']}", json={"enabled": False}).json()
    assert again_off["disabled_reason"] == "failing"  # an endpoint off stays off for why

    on = api.patch(f"/v1/webhooks/{made['id']}", json={"enabled": True}).json()
    assert (on["status"], on["disabled_reason"]) == ("enabled", None)
    webhook = stored(made["id"])
    assert webhook.status is WebhookStatus.enabled
    assert webhook.failing_since is None


def test_delete_removes_the_endpoint_what_it_is_owed_and_its_log(api: TestClient) -> None:
    made = create(api)
    kept = create(api)
    now = datetime.now(UTC)
    event_id = add_event("acme", EventType.message_sent, now)
    with db.session_scope() as session:
        for webhook_id in (made["id"], kept["id"]):
            session.add(
                PendingDelivery(webhook_pk=webhook_id, event_pk=event_id, next_attempt_at=now)
            )
            session.add(delivery_row(webhook_id, event_id, now))
    response = api.delete(f"/v1/webhooks/{made['id']}")
    assert response.status_code == 204
    assert response.content == b""
    problem(api.get(f"/v1/webhooks/{made['id']}"), 404)
    problem(api.delete(f"/v1/webhooks/{made['id']}"), 404)
    assert [w["id"] for w in api.get("/v1/webhooks").json()["data"]] == [kept["id"]]
    assert pending(made["id"]) == {}
    assert list(pending(kept["id"])) == [event_id]
    with db.session_scope() as session:
        logged = session.scalars(select(Delivery.webhook_pk)).all()
    assert logged == [kept["id"]]


# --- tenants -----------------------------------------------------------------------------


def test_another_tenants_endpoint_is_404_everywhere(api: TestClient) -> None:
    theirs = create(api)
    api.headers["Authorization"] = f"Bearer {make_key('globex')}"
    assert api.get("/v1/webhooks").json()["data"] == []
    wid = theirs["id"]
    for method, path, body in [
        ("GET", f"/v1/webhooks/{wid}", None),
        ("PATCH", f"/v1/webhooks/{wid}", {"enabled": False}),
        ("DELETE", f"/v1/webhooks/{wid}", None),
        ("POST", f"/v1/webhooks/{wid}/rotate-secret", None),
        ("GET", f"/v1/webhooks/{wid}/deliveries", None),
        ("POST", f"/v1/webhooks/{wid}/replay", {"since": "2026-01-01T00:00:00Z"}),
    ]:
        problem(api.request(method, path, json=body), 404)
    ours = create(api)
    assert [w["id"] for w in api.get("/v1/webhooks").json()["data"]] == [ours["id"]]
    webhook = stored(wid)
    assert (webhook.status, webhook.tenant) == (WebhookStatus.enabled, "acme")


def test_an_id_that_cannot_be_one_is_404(api: TestClient) -> None:
    problem(api.get("/v1/webhooks/wh_%C3%A9"), 404)
    problem(api.get("/v1/webhooks/" + "w" * 65), 404)


# --- deliveries --------------------------------------------------------------------------


def delivery_row(
    webhook_id: str,
    event_id: str,
    at: datetime,
    *,
    attempt: int = 1,
    status: DeliveryStatus = DeliveryStatus.succeeded,
) -> Delivery:
    failed = status is DeliveryStatus.failed
    return Delivery(
        webhook_pk=webhook_id,
        event_pk=event_id,
        event_type=EventType.message_sent,
        attempt=attempt,
        status=status,
        response_status=500 if failed else 200,
        error="HTTP 500" if failed else None,
        duration_ms=12,
        created_at=at,
        next_attempt_at=at + timedelta(seconds=5) if failed else None,
    )


def walk(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_deliveries_newest_first_filtered_and_paged(client: TestClient) -> None:
    made = create(client)
    other = create(client)
    start = datetime.now(UTC) - timedelta(hours=1)
    events = [add_event("acme", EventType.message_sent, start) for _ in range(3)]
    rows = [
        delivery_row(
            made["id"],
            events[i % 3],
            start + timedelta(seconds=i // 2),  # pairs share a timestamp: the id breaks ties
            attempt=i // 3 + 1,
            status=DeliveryStatus.failed if i % 4 == 0 else DeliveryStatus.succeeded,
        )
        for i in range(25)
    ]
    with db.session_scope() as session:
        session.add_all(rows)
        session.add(delivery_row(other["id"], events[0], start))
        session.flush()
        expected = [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]
    path = f"/v1/webhooks/{made['id']}/deliveries"

    first = client.get(path, params={"limit": 10}).json()
    assert [d["id"] for d in first["data"]] == expected[:10]
    assert first["next_cursor"]
    assert [d["id"] for d in walk(client, path, limit=10)] == expected

    one = first["data"][0]
    assert set(one) == {
        "id", "event_id", "event_type", "attempt", "status", "response_status", "error",
        "duration_ms", "created_at", "next_attempt_at",
    }  # fmt: skip
    assert one["id"].startswith("whd_")
    assert one["event_type"] == "message.sent"
    assert one["created_at"].endswith("Z")

    failed = walk(client, path, status="failed", limit=3)
    assert {d["status"] for d in failed} == {"failed"}
    assert len(failed) == 7
    assert all(d["response_status"] == 500 and d["error"] and d["next_attempt_at"] for d in failed)
    of_event = walk(client, path, event_id=events[1], limit=2)
    assert {d["event_id"] for d in of_event} == {events[1]}
    assert len(of_event) == 8
    assert walk(client, path, event_id="evt_nothing") == []

    refused = problem(
        client.get(path, params={"cursor": first["next_cursor"], "status": "failed"}), 422
    )
    assert refused["errors"][0]["loc"] == "cursor"
    other_path = f"/v1/webhooks/{other['id']}/deliveries"
    problem(client.get(other_path, params={"cursor": first["next_cursor"]}), 422)
    for bad in ({"limit": 101}, {"limit": 0}, {"status": "pending"}, {"cursor": "x"}, {"x": 1}):
        problem(client.get(path, params=bad), 422)


# --- replay ------------------------------------------------------------------------------


def test_replay_by_ids_owes_those_events_again_now(client: TestClient) -> None:
    made = create(client)
    now = datetime.now(UTC)
    ours = [add_event("acme", EventType.message_sent, now) for _ in range(3)]
    theirs = add_event("globex", EventType.message_sent, now)
    later = now + timedelta(hours=2)
    # One still owed, far off, after 5 attempts, on the broker: replay makes it fresh.
    with db.session_scope() as session:
        session.add(
            PendingDelivery(
                webhook_pk=made["id"],
                event_pk=ours[0],
                attempts=5,
                next_attempt_at=later,
                dispatched_until=later,
            )
        )
    response = client.post(
        f"/v1/webhooks/{made['id']}/replay",
        json={"event_ids": [ours[0], ours[1], theirs, "evt_unknown"]},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"queued": 2}
    owed = pending(made["id"])
    assert set(owed) == {ours[0], ours[1]}
    for row in owed.values():
        assert row.attempts == 0
        assert row.dispatched_until is None
        assert now - timedelta(seconds=1) <= row.next_attempt_at <= datetime.now(UTC)


def test_replay_since_takes_the_endpoints_types_from_that_instant(client: TestClient) -> None:
    made = create(client, events=["message.sent", "message.failed"])
    every = create(client)
    base = datetime.now(UTC) - timedelta(hours=3)
    old = add_event("acme", EventType.message_sent, base)
    sent = add_event("acme", EventType.message_sent, base + timedelta(hours=2))
    failed = add_event("acme", EventType.message_failed, base + timedelta(hours=2))
    deferred = add_event("acme", EventType.message_deferred, base + timedelta(hours=2))
    add_event("globex", EventType.message_sent, base + timedelta(hours=2))
    since = (base + timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    response = client.post(f"/v1/webhooks/{made['id']}/replay", json={"since": since})
    assert response.status_code == 202, response.text
    assert response.json() == {"queued": 2}
    assert set(pending(made["id"])) == {sent, failed}
    # Replayed again: still two, no duplicate rows.
    assert client.post(f"/v1/webhooks/{made['id']}/replay", json={"since": since}).json() == {
        "queued": 2
    }
    assert len(pending(made["id"])) == 2

    assert client.post(f"/v1/webhooks/{every['id']}/replay", json={"since": since}).json() == {
        "queued": 3
    }
    assert set(pending(every["id"])) == {sent, failed, deferred}
    assert old not in pending(every["id"])
    future = client.post(
        f"/v1/webhooks/{made['id']}/replay", json={"since": "2099-01-01T00:00:00Z"}
    )
    assert future.json() == {"queued": 0}


def test_replay_of_a_disabled_endpoint_is_409(client: TestClient) -> None:
    made = create(client)
    event_id = add_event("acme", EventType.message_sent, datetime.now(UTC))
    client.patch(f"/v1/webhooks/{made['id']}", json={"enabled": False})
    refused = problem(
        client.post(f"/v1/webhooks/{made['id']}/replay", json={"event_ids": [event_id]}), 409
    )
    assert "enabled" in refused["detail"]
    assert pending(made["id"]) == {}
    client.patch(f"/v1/webhooks/{made['id']}", json={"enabled": True})
    replayed = client.post(f"/v1/webhooks/{made['id']}/replay", json={"event_ids": [event_id]})
    assert replayed.json() == {"queued": 1}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"event_ids": [], "since": None},
        {"event_ids": ["evt_1"], "since": "2026-01-01T00:00:00Z"},
        {"event_ids": []},
        {"event_ids": ["evt 1"]},
        {"event_ids": ["evt_1"] * 1001},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
        {"events": ["evt_1"]},
    ],
)
def test_replay_refuses_a_bad_body(api: TestClient, body: dict[str, Any]) -> None:
    made = create(api)
    problem(api.post(f"/v1/webhooks/{made['id']}/replay", json=body), 422)
