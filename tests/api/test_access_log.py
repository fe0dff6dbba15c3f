"""The access log: one line per request, through the real app on SQLite."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from app.logs import JsonFormatter
from tests.conftest import Env, make_key

FIELDS = {"method", "path", "status", "duration_ms", "tenant", "message_id", "request_id"}
SUBMIT: dict[str, Any] = {"from": "a@example.org", "to": ["b@example.org"], "text": "hi"}


@pytest.fixture
def client(sqlite_env: Env) -> Iterator[TestClient]:
    sqlite_env["POCHTA_MAX_REQUEST_BYTES"] = "2048"
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as running:
        yield running


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="pochta.access"):
        yield caplog


def only(lines: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The one access line logged since the last call, as the JSON log writes it."""
    access = [r for r in lines.records if r.name == "pochta.access"]
    assert len(access) == 1, [r.__dict__ for r in access]
    lines.clear()
    entry: dict[str, Any] = orjson.loads(JsonFormatter().format(access[0]))
    assert entry["level"] == "info"
    return entry


def test_each_request_is_one_line_with_its_route_status_tenant_and_message(
    client: TestClient, lines: pytest.LogCaptureFixture
) -> None:
    key = make_key("acme")
    auth = {"Authorization": f"Bearer {key}"}

    accepted = client.post("/v1/messages", json=SUBMIT, headers=auth)
    assert accepted.status_code == 202
    message_id = accepted.json()["id"]
    entry = only(lines)
    assert set(entry) >= FIELDS
    assert entry["method"] == "POST"
    assert entry["path"] == "/v1/messages"
    assert (entry["status"], entry["tenant"], entry["message_id"]) == (202, "acme", message_id)
    assert entry["request_id"] == accepted.headers["x-request-id"]
    assert isinstance(entry["duration_ms"], float)
    assert entry["duration_ms"] >= 0

    read = client.get(f"/v1/messages/{message_id}", headers=auth)
    assert read.status_code == 200
    entry = only(lines)
    assert entry["path"] == "/v1/messages/{message_id}", "the template, not the id"
    assert (entry["status"], entry["tenant"], entry["message_id"]) == (200, "acme", message_id)

    missing = client.get("/v1/messages/msg_nope/raw", headers=auth)
    assert missing.status_code == 404
    entry = only(lines)
    assert entry["path"] == "/v1/messages/{message_id}/raw"
    assert (entry["status"], entry["message_id"]) == (404, "msg_nope")


def test_refusals_are_logged_without_the_key_or_the_body(
    client: TestClient, lines: pytest.LogCaptureFixture
) -> None:
    key = make_key("acme")

    stranger = client.get("/v1/messages", headers={"Authorization": "Bearer pk_not-a-real-key"})
    assert stranger.status_code == 401
    entry = only(lines)
    seen = [entry]
    assert (entry["path"], entry["status"]) == ("/v1/messages", 401)
    assert "tenant" not in entry, "no tenant for a key that is no one's"

    body = {**SUBMIT, "to": ["not-an-address"], "text": "body-never-logged"}
    invalid = client.post("/v1/messages", json=body, headers={"Authorization": f"Bearer {key}"})
    assert invalid.status_code == 422
    entry = only(lines)
    seen.append(entry)
    assert (entry["status"], entry["tenant"]) == (422, "acme")
    assert "message_id" not in entry

    huge = {**SUBMIT, "text": "x" * 4096}
    too_large = client.post("/v1/messages", json=huge, headers={"Authorization": f"Bearer {key}"})
    assert too_large.status_code == 413
    entry = only(lines)
    seen.append(entry)
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/v1/messages", 413)
    assert entry["request_id"] == too_large.headers["x-request-id"]

    nowhere = client.get("/nowhere%0Aforged?key=secret")
    assert nowhere.status_code == 404
    entry = only(lines)
    assert entry["path"] == "/nowhere%0Aforged", "still encoded, and no query string"

    logged = orjson.dumps(seen).decode()
    for secret in (key, "pk_not-a-real-key", "body-never-logged", "xxxxxxxx"):
        assert secret not in logged


def test_a_sane_incoming_request_id_is_kept_and_anything_else_replaced(
    client: TestClient, lines: pytest.LogCaptureFixture
) -> None:
    kept = client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.42"})
    assert kept.headers["x-request-id"] == "lb-7f3a.42"
    assert only(lines)["request_id"] == "lb-7f3a.42"

    for hostile in ("x" * 200, "two words", "a\tb", ""):
        replaced = client.get("/healthz", headers={"X-Request-Id": hostile})
        made = replaced.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{24}", made), (hostile, made)
        assert only(lines)["request_id"] == made

    first, second = client.get("/healthz"), client.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
