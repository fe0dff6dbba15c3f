"""GET /v1/messages: newest first, filtered, paged with an opaque cursor, no N+1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app import db
from tests.conftest import Env, make_key


@pytest.fixture
def client(env: Env) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_key()}"
        yield test_client


def submit(client: TestClient, index: int, **fields: Any) -> str:
    body = {"from": "a@example.org", "to": [f"r{index}@example.org"], "text": f"#{index}"}
    response = client.post("/v1/messages", json={**body, **fields})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def page(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/messages", params={k: v for k, v in params.items() if v})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def walk(client: TestClient, **params: Any) -> list[str]:
    """Every id a client paging to the end sees, in order."""
    ids: list[str] = []
    cursor = None
    while True:
        body = page(client, cursor=cursor, **params)
        ids += [m["id"] for m in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def test_paging_25_by_10_sees_each_once_newest_first_even_with_an_insert_midway(
    client: TestClient,
) -> None:
    created = [submit(client, i) for i in range(25)]
    newest_first = created[::-1]

    first = page(client, limit=10)
    assert [m["id"] for m in first["data"]] == newest_first[:10]
    assert first["data"][0]["recipients"][0]["email"] == "r24@example.org"
    late = submit(client, 99)  # a message stored while the client is paging
    second = page(client, limit=10, cursor=first["next_cursor"])
    third = page(client, limit=10, cursor=second["next_cursor"])
    assert [m["id"] for m in second["data"]] == newest_first[10:20]
    assert [m["id"] for m in third["data"]] == newest_first[20:]
    assert third["next_cursor"] is None
    assert late not in [m["id"] for p in (second, third) for m in p["data"]]
    # A fresh listing starts with it.
    assert page(client, limit=1)["data"][0]["id"] == late
    assert len(page(client)["data"]) == 20, "the default page size"


def test_filters_narrow_the_listing_and_page_the_same_way(client: TestClient) -> None:
    ids = [
        submit(
            client,
            i,
            tags=["welcome"] if i % 2 else ["digest"],
            cc=["boss@example.org"] if i % 3 == 0 else [],
        )
        for i in range(12)
    ]
    created = {m["id"]: m["created_at"] for m in page(client, limit=100)["data"]}
    for message_id in ids[:4]:
        assert client.post(f"/v1/messages/{message_id}/cancel").status_code == 200

    def expect(predicate: Any) -> list[str]:
        return [ids[i] for i in reversed(range(12)) if predicate(i)]

    assert walk(client, status="canceled", limit=3) == expect(lambda i: i < 4)
    assert walk(client, status="queued", limit=3) == expect(lambda i: i >= 4)
    assert walk(client, tag="welcome", limit=2) == expect(lambda i: i % 2)
    assert walk(client, recipient="Boss <BOSS@EXAMPLE.ORG>", limit=2) == expect(
        lambda i: i % 3 == 0
    )
    assert walk(client, recipient="r5@example.org") == [ids[5]]
    after, before = created[ids[3]], created[ids[9]]
    assert walk(client, created_after=after, created_before=before, limit=2) == expect(
        lambda i: 3 <= i < 9
    )
    both = walk(client, tag="digest", status="queued", created_after=after, limit=1)
    assert both == expect(lambda i: i >= 4 and i % 2 == 0)
    assert walk(client, tag="nothing-has-this") == []


def test_a_cursor_is_refused_with_other_filters_and_limits_are_checked(
    client: TestClient,
) -> None:
    for i in range(3):
        submit(client, i, tags=["welcome"])
    cursor = page(client, tag="welcome", limit=1)["next_cursor"]
    assert page(client, tag="welcome", limit=2, cursor=cursor)["data"], "page size may change"

    for params in (
        {"tag": "other", "cursor": cursor},
        {"cursor": cursor},
        {"cursor": "not-a-cursor"},
        {"cursor": cursor[:-4]},
    ):
        response = client.get("/v1/messages", params=params)
        assert response.status_code == 422, response.text
        assert [e["loc"] for e in response.json()["errors"]] == ["cursor"]
    other_tenant = {"Authorization": f"Bearer {make_key('globex')}"}
    response = client.get(
        "/v1/messages", params={"tag": "welcome", "cursor": cursor}, headers=other_tenant
    )
    assert response.status_code == 422, "a cursor is bound to its tenant too"
    assert client.get("/v1/messages", headers=other_tenant).json()["data"] == []

    for params, loc in (
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"status": "lost"}, "status"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"created_before": "1700000000"}, "created_before"),
        ({"recipient": "not an address"}, "recipient"),
        ({"stauts": "sent"}, "stauts"),
    ):
        response = client.get("/v1/messages", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert loc in [e["loc"] for e in response.json()["errors"]]


def test_a_page_loads_recipients_and_attempts_in_one_query_each(client: TestClient) -> None:
    for i in range(12):
        submit(client, i, cc=[f"c{i}@example.org"])
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        page(client, limit=2)
        small = len(statements)
        statements.clear()
        page(client, limit=12)
        large = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert small == large, "the number of queries does not grow with the page"
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert sum("FROM recipients" in " ".join(s.split()) for s in selects) == 1, selects
    assert sum("FROM attempts" in " ".join(s.split()) for s in selects) == 1, selects
