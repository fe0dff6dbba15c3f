"""POST /v1/messages/batch: each item stands alone, the valid ones stored together."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from harness.relay import ScriptedRelay
from tests.api.helpers import count_rows, problem
from tests.support.flow import run_until_final


def item(n: int, **change: Any) -> dict[str, Any]:
    return {"from": "a@example.org", "to": [f"r{n}@example.org"], "text": f"#{n}", **change}


def test_mixed_items_each_get_their_own_answer(api: TestClient) -> None:
    items = [item(0), item(1, to=["bad@"]), item(2, subject="x\r\ny"), item(3), {"nonsense": 1}]
    response = api.post("/v1/messages/batch", json={"messages": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [202, 422, 422, 202, 422]
    assert results[1]["error"]["errors"][0]["loc"] == "to[0]"
    assert results[2]["error"]["errors"][0]["loc"] == "subject"
    assert results[0]["message"]["status"] == "queued"
    assert results[1].get("message") is None
    stored = api.get(f"/v1/messages/{results[3]['message']['id']}")
    assert stored.json()["recipients"][0]["email"] == "r3@example.org"
    assert count_rows() == (2, 2)


def test_five_hundred_is_the_limit(api: TestClient) -> None:
    ok = api.post("/v1/messages/batch", json={"messages": [item(i) for i in range(500)]})
    assert ok.status_code == 200
    assert {r["status"] for r in ok.json()["results"]} == {202}
    assert count_rows() == (500, 500)
    body = problem(api.post("/v1/messages/batch", json={"messages": [item(0)] * 501}), 422)
    assert body["errors"][0]["loc"] == "messages"
    problem(api.post("/v1/messages/batch", json={"messages": []}), 422)
    assert count_rows() == (500, 500)


def test_a_message_over_the_size_limit_is_413_for_that_item_only(
    api: TestClient, sqlite_env: Any
) -> None:
    sqlite_env["POCHTA_MAX_MESSAGE_BYTES"] = "2048"
    response = api.post(
        "/v1/messages/batch", json={"messages": [item(0, text="z" * 5000), item(1)]}
    )
    assert [r["status"] for r in response.json()["results"]] == [413, 202]


def test_a_batch_is_delivered(relay: ScriptedRelay, env: Any) -> None:
    from app.main import create_app
    from tests.conftest import make_key

    with TestClient(create_app()) as client:
        client.headers["Authorization"] = f"Bearer {make_key()}"
        results = client.post(
            "/v1/messages/batch", json={"messages": [item(i) for i in range(30)]}
        ).json()["results"]
    ids = [r["message"]["id"] for r in results]
    assert {run_until_final(i).status for i in ids} == {"sent"}
    assert sorted(r for m in relay.messages for r in m.rcpt_tos) == sorted(
        f"r{i}@example.org" for i in range(30)
    )
