"""Input that once made a 500 (mostly on PostgreSQL) is a 4xx problem naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Env, make_key

GOOD: dict[str, Any] = {"from": "a@example.org", "to": ["b@example.org"], "text": "x"}


@pytest.fixture
def client(env: Env) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_key()}"
        yield test_client


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# PostgreSQL refuses NUL in text, so it is the backend these ran into.
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"subject": "a\x00b"}, "subject"),
        ({"text": "a\x00b"}, "text"),
        ({"tags": ["a\x00"]}, "tags[0]"),
        ({"headers": {"X-A": "a\x00"}}, "headers.X-A"),
        ({"metadata": {"k": "a\x00"}}, "metadata.k"),
        ({"attachments": [{"filename": "a\x00", "content": ""}]}, "attachments[0].filename"),
        ({"subject": "line\u2028separator"}, "subject"),
        ({"subject": "next\x85line"}, "subject"),
        ({"from": "A\u2028B <a@example.org>"}, "from"),
        ({"send_at": "0001-01-01T00:00:00+01:00"}, "send_at"),
        ({"send_at": "9999-12-31T23:59:59-01:00"}, "send_at"),
        ({"send_at": 0}, "send_at"),
        ({"send_at": "1700000000"}, "send_at"),
        ({"send_at": "2026-12-01"}, "send_at"),
        ({"attachments": [{"filename": "a", "content": "", "content_type": "é/ü"}]},
         "attachments[0].content_type"),
        ({"attachments": [{"filename": "a", "content": "", "content_type": "message/rfc822"}]},
         "attachments[0].content_type"),
        ({"attachments": [{"filename": "a", "content": "", "content_type": "Multipart/mixed"}]},
         "attachments[0].content_type"),
    ],
)  # fmt: skip
def test_fields_that_cannot_be_stored_or_sent_are_422(
    client: TestClient, change: dict[str, Any], loc: str
) -> None:
    body = problem(client.post("/v1/messages", json={**GOOD, **change}), 422)
    assert loc in [e["loc"] for e in body["errors"]], body


@pytest.mark.parametrize(
    "raw",
    [
        b'{"from": "a@example.org", "to": ["b@example.org"], "text": "\\udfff"}',
        b'{"from": "a@example.org", "to": ["b@example.org"], "text": "x", "tags": ["\\ud800"]}',
    ],
)
def test_lone_surrogates_are_422(client: TestClient, raw: bytes) -> None:
    headers = {"content-type": "application/json"}
    problem(client.post("/v1/messages", content=raw, headers=headers), 422)


@pytest.mark.parametrize(
    "raw", [b"[" * 100_000 + b"]" * 100_000, b'{"from": ' + b"9" * 5000 + b"}"]
)
def test_json_too_deep_or_numbers_too_long_are_400(client: TestClient, raw: bytes) -> None:
    headers = {"content-type": "application/json"}
    body = problem(client.post("/v1/messages", content=raw, headers=headers), 400)
    assert body["type"] == "/problems/malformed-request"


def test_ids_and_filters_that_cannot_exist_are_4xx(client: TestClient) -> None:
    for path in ("/v1/messages/a%00b", "/v1/messages/a%00b/raw", "/v1/messages/" + "x" * 65):
        problem(client.get(path), 404)
    problem(client.post("/v1/messages/a%00b/cancel"), 404)
    problem(client.get("/v1/messages/a%00b", headers={"Authorization": ""}), 401)
    body = problem(client.get("/v1/messages", params={"tag": "a\x00"}), 422)
    assert body["errors"][0]["loc"] == "tag"


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/v1/messages")
    problem(response, 405)
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}
