"""The HTTP API in-process: what a client sees for good and bad requests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import db
from tests.api.helpers import count_rows, problem
from tests.conftest import Env, make_key

GOOD: dict[str, Any] = {
    "from": "Вася Пупкин <vasiapupkin@ya.ru>",
    "to": ["billy@microsoft.com", "Billy G <billy@example.org>"],
    "subject": "Hello Billy",
    "text": "plain body",
}


def test_submit_answers_202_with_location_and_the_message(api: TestClient) -> None:
    response = api.post(
        "/v1/messages", json={**GOOD, "bcc": ["boss@example.org"], "tags": ["welcome"]}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/messages/{body['id']}"
    assert body["status"] == "queued"
    assert body["from"] == GOOD["from"]
    assert body["bcc"] == ["boss@example.org"]
    assert body["tags"] == ["welcome"]
    assert [r["email"] for r in body["recipients"]] == [
        "billy@microsoft.com",
        "billy@example.org",
        "boss@example.org",
    ]
    assert all(r["status"] == "pending" for r in body["recipients"])
    assert body["message_id"].startswith("<")
    assert body["message_id"].endswith("@ya.ru>")
    assert api.get(body["id"].join(["/v1/messages/", ""])).json()["id"] == body["id"]


def test_get_returns_the_same_resource_and_raw_bytes(api: TestClient) -> None:
    created = api.post("/v1/messages", json=GOOD).json()
    fetched = api.get(f"/v1/messages/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created
    raw = api.get(f"/v1/messages/{created['id']}/raw")
    assert raw.headers["content-type"] == "message/rfc822"
    assert f"Message-ID: {created['message_id']}".encode() in raw.content


def test_same_address_twice_is_one_recipient(api: TestClient) -> None:
    body = api.post("/v1/messages", json={**GOOD, "cc": ["BILLY@microsoft.com"]}).json()
    assert [r["email"] for r in body["recipients"]] == ["billy@microsoft.com", "billy@example.org"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"from": "not an address"}, "from"),
        ({"to": ["ok@example.org", "bad@"]}, "to[1]"),
        ({"to": ["x@example.org\r\nBcc: victim@example.org"]}, "to[0]"),
        ({"subject": "Hi\r\nBcc: victim@example.org"}, "subject"),
        ({"headers": {"X-Evil": "a\r\nBcc: victim@example.org"}}, "headers.X-Evil"),
        ({"headers": {"Subject": "again"}}, "headers"),
        ({"headers": {"Content-Type": "text/html"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"to": [f"r{i}@example.org" for i in range(51)]}, "to"),
        ({"reply_to": ["nope"]}, "reply_to[0]"),
        ({"attachments": [{"filename": "a", "content": "***"}]}, "attachments[0].content"),
        ({"send_at": "2026-12-01T09:00:00"}, "send_at"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_fields_are_422_naming_the_field_and_write_nothing(
    api: TestClient, change: dict[str, Any], loc: str
) -> None:
    body = problem(api.post("/v1/messages", json={**GOOD, **change}), 422)
    assert loc in [e["loc"] for e in body["errors"]], body
    assert count_rows() == (0, 0)


@pytest.mark.parametrize(
    ("drop", "words"), [("from", "from"), ("to", "to, cc or bcc"), ("text", "text or html")]
)
def test_missing_required_parts_are_422(api: TestClient, drop: str, words: str) -> None:
    body = problem(api.post("/v1/messages", json={k: v for k, v in GOOD.items() if k != drop}), 422)
    assert words in body["detail"]


def test_send_at_more_than_30_days_ahead_is_422(api: TestClient) -> None:
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    body = problem(api.post("/v1/messages", json={**GOOD, "send_at": later}), 422)
    assert body["errors"][0]["loc"] == "send_at"


def test_send_at_in_the_future_is_scheduled(api: TestClient) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    body = api.post("/v1/messages", json={**GOOD, "send_at": later}).json()
    assert body["status"] == "scheduled"
    assert body["next_attempt_at"] == body["send_at"]


def test_malformed_json_is_400(api: TestClient) -> None:
    problem(
        api.post(
            "/v1/messages", content=b'{"from": ', headers={"content-type": "application/json"}
        ),
        400,
    )


def test_non_json_is_415(api: TestClient) -> None:
    problem(
        api.post("/v1/messages", content=b"from=a", headers={"content-type": "text/plain"}), 415
    )
    assert count_rows() == (0, 0)


def test_request_over_the_limit_is_413_before_it_is_read(api: TestClient, sqlite_env: Env) -> None:
    sqlite_env["POCHTA_MAX_REQUEST_BYTES"] = "2048"
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        client.headers.update(api.headers)
        big = {**GOOD, "text": "x" * 4096}
        problem(client.post("/v1/messages", json=big), 413)

        def chunks() -> Any:
            # No Content-Length: the guard must count as the body streams in.
            yield b'{"from": "a@example.org", "to": ["b@example.org"], "text": "'
            for _ in range(100):
                yield b"y" * 1024
            yield b'"}'

        streamed = client.post(
            "/v1/messages", content=chunks(), headers={"content-type": "application/json"}
        )
        problem(streamed, 413)
    assert count_rows() == (0, 0)


def test_built_message_over_the_limit_is_413(api: TestClient, sqlite_env: Env) -> None:
    sqlite_env["POCHTA_MAX_MESSAGE_BYTES"] = "4096"
    attachment = {"filename": "big.bin", "content": base64.b64encode(b"z" * 8000).decode()}
    body = problem(api.post("/v1/messages", json={**GOOD, "attachments": [attachment]}), 413)
    assert "POCHTA_MAX_MESSAGE_BYTES" in body["detail"]
    assert count_rows() == (0, 0)


def test_missing_unknown_and_revoked_keys_are_401(api: TestClient) -> None:
    problem(api.get("/v1/messages/msg_x", headers={"Authorization": ""}), 401)
    problem(api.get("/v1/messages/msg_x", headers={"Authorization": "Bearer pk_nope"}), 401)
    from app.keys.service import list_keys, revoke_key

    with db.session_scope() as session:
        key_id = list_keys(session)[0].id
        revoke_key(session, key_id=key_id)
    response = api.post("/v1/messages", json=GOOD)
    problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_unknown_key_is_401_before_any_422(api: TestClient) -> None:
    nope = {"Authorization": "Bearer pk_nope"}
    response = api.post("/v1/messages", json={"to": ["not an address"]}, headers=nope)
    problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    problem(api.get("/v1/messages?status=bogus", headers=nope), 401)
    problem(api.get("/v1/messages?status=bogus"), 422)  # the fixture's key is known


def test_another_tenants_message_is_404(api: TestClient) -> None:
    created = api.post("/v1/messages", json=GOOD).json()
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    problem(api.get(f"/v1/messages/{created['id']}", headers=other), 404)
    problem(api.get(f"/v1/messages/{created['id']}/raw", headers=other), 404)
    problem(api.post(f"/v1/messages/{created['id']}/cancel", headers=other), 404)


def test_cancel_a_queued_message_then_409(api: TestClient) -> None:
    created = api.post("/v1/messages", json=GOOD).json()
    canceled = api.post(f"/v1/messages/{created['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert {r["status"] for r in canceled.json()["recipients"]} == {"canceled"}
    problem(api.post(f"/v1/messages/{created['id']}/cancel"), 409)


def test_unknown_route_is_a_problem_not_html(api: TestClient) -> None:
    problem(api.get("/v1/nothing-here"), 404)


def test_healthz_needs_no_auth(api: TestClient) -> None:
    response = api.get("/healthz", headers={"Authorization": ""})
    assert response.json() == {"status": "ok"}
