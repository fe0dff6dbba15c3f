"""Idempotency-Key (SPEC §2): a repeat gets the first answer, never a second message."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import db
from app.clock import utcnow
from app.idempotency import repository, service
from app.idempotency.models import IdempotencyRecord
from app.keys.service import authenticate
from app.messages import service as message_service
from app.messages.models import Message
from app.outbox.scheduler import purge_idempotency_records
from harness.stack import Stack
from tests.conftest import Env, make_key
from tests.support.prometheus import parse, value

BODY: dict[str, Any] = {"from": "a@example.org", "to": ["b@example.org"], "text": "hello"}


def messages_stored() -> int:
    with db.session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def records() -> list[IdempotencyRecord]:
    with db.session_scope() as session:
        return list(session.scalars(select(IdempotencyRecord)))


def key_id(client: TestClient) -> str:
    secret = client.headers["Authorization"].removeprefix("Bearer ")
    with db.session_scope() as session:
        return authenticate(session, secret=secret).key_id


def post(client: TestClient, key: str, body: dict[str, Any] = BODY) -> httpx.Response:
    response: httpx.Response = client.post(
        "/v1/messages", json=body, headers={"Idempotency-Key": key}
    )
    return response


def put_record(client: TestClient, key: str, *, age: timedelta, body: dict[str, Any]) -> None:
    """An in-flight record for this request, made `age` ago, as a concurrent request leaves it."""
    request_hash = service.fingerprint("POST", "/v1/messages", orjson.dumps(body))
    with db.session_scope() as session:
        assert repository.add(
            session,
            api_key_id=key_id(client),
            key=key,
            request_hash=request_hash,
            now=utcnow() - age,
        )


def test_a_repeat_gets_the_first_answer_again(api: TestClient) -> None:
    first = post(api, "order-1")
    again = post(api, "order-1")
    assert first.status_code == again.status_code == 202
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content, "the same bytes, not a fresh rendering"
    assert again.headers["location"] == first.headers["location"]
    assert messages_stored() == 1


def test_key_order_and_spacing_do_not_make_another_request(api: TestClient) -> None:
    first = post(api, "order-2")
    reordered = b'{ "text": "hello",  "to": ["b@example.org"], "from": "a@example.org" }'
    again = api.post(
        "/v1/messages",
        content=reordered,
        headers={"Idempotency-Key": "order-2", "Content-Type": "application/json"},
    )
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_the_same_key_with_another_body_is_422(api: TestClient) -> None:
    assert post(api, "order-3").status_code == 202
    other = post(api, "order-3", {**BODY, "text": "something else"})
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert other.json()["errors"] == [
        {"loc": "Idempotency-Key", "message": "was used with another request"}
    ]
    assert messages_stored() == 1


def test_a_key_over_255_characters_is_422(api: TestClient) -> None:
    refused = post(api, "k" * 256)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == "Idempotency-Key"
    assert post(api, "k" * 255).status_code == 202
    assert messages_stored() == 1


def test_keys_belong_to_one_api_key(api: TestClient) -> None:
    first = post(api, "order-4")
    other_key = {"Authorization": f"Bearer {make_key()}", "Idempotency-Key": "order-4"}
    second = api.post("/v1/messages", json=BODY, headers=other_key)
    assert second.status_code == 202
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]


def test_a_repeat_while_the_first_is_in_flight_is_409(api: TestClient) -> None:
    put_record(api, "order-5", age=timedelta(seconds=1), body=BODY)
    busy = post(api, "order-5")
    assert busy.status_code == 409
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.json()["type"] == "/problems/idempotency-key-in-flight"
    assert post(api, "order-5", {**BODY, "text": "other"}).status_code == 422
    assert messages_stored() == 0


def test_a_record_abandoned_by_a_dead_request_is_taken_over(api: TestClient) -> None:
    put_record(api, "order-6", age=timedelta(seconds=service.IN_FLIGHT_SECONDS + 1), body=BODY)
    taken = post(api, "order-6")
    assert taken.status_code == 202
    assert post(api, "order-6").headers["idempotent-replayed"] == "true"
    assert messages_stored() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {**BODY, "to": ["not an address"]},  # refused by validation, before the route
        {**BODY, "send_at": (datetime.now(UTC) + timedelta(days=31)).isoformat()},  # by the rule
    ],
)
def test_a_refused_request_frees_its_key_for_the_corrected_one(
    api: TestClient, bad: dict[str, Any]
) -> None:
    assert post(api, "order-7", bad).status_code == 422
    assert records() == []
    corrected = post(api, "order-7")
    assert corrected.status_code == 202
    assert "idempotent-replayed" not in corrected.headers
    assert messages_stored() == 1


def test_an_expired_record_is_not_replayed(api: TestClient, sqlite_env: Env) -> None:
    sqlite_env["POCHTA_IDEMPOTENCY_TTL_SECONDS"] = "3600"
    put_record(api, "order-8", age=timedelta(hours=2), body={**BODY, "text": "long ago"})
    fresh = post(api, "order-8")
    assert fresh.status_code == 202
    assert "idempotent-replayed" not in fresh.headers
    assert messages_stored() == 1


def test_the_scheduler_purges_expired_records(api: TestClient, sqlite_env: Env) -> None:
    sqlite_env["POCHTA_IDEMPOTENCY_TTL_SECONDS"] = "3600"
    put_record(api, "old", age=timedelta(hours=2), body=BODY)
    assert post(api, "new").status_code == 202
    assert purge_idempotency_records() == 1
    assert [r.key for r in records()] == ["new"]


def test_a_batch_is_replayed_too(api: TestClient) -> None:
    batch = {"messages": [BODY, {**BODY, "to": ["bad"]}]}
    headers = {"Idempotency-Key": "batch-1"}
    first = api.post("/v1/messages/batch", json=batch, headers=headers)
    again = api.post("/v1/messages/batch", json=batch, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert messages_stored() == 1


def test_a_request_whose_record_was_taken_over_stores_nothing(sqlite_env: Env) -> None:
    # A request slower than IN_FLIGHT_SECONDS lost its record to a retry: its commit
    # would make a second message, so finishing refuses and the transaction rolls back.
    now = utcnow()
    with db.session_scope() as session:
        slow = service.begin(
            session, api_key_id="key_x", key="k", request_hash="h", now=now, ttl=timedelta(days=1)
        )
    assert isinstance(slow, service.Started)
    with db.session_scope() as session:
        assert repository.take_over(
            session, api_key_id="key_x", key="k", token=now, request_hash="h", now=utcnow()
        )
    answer = service.Answer(202, b"{}", None)
    with pytest.raises(service.KeyInFlight), db.session_scope() as session:
        service.finish(session, started=slow, answer=answer)


def test_ten_concurrent_identical_requests_make_one_message(env: Env, tmp_path: Path) -> None:
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start("api")
        key = make_key()
        start = threading.Barrier(10)

        def send(_: int) -> httpx.Response:
            with stack.client(key) as client:
                start.wait()
                return client.post("/v1/messages", json=BODY, headers={"Idempotency-Key": "burst"})

        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(send, range(10)))
    assert messages_stored() == 1
    assert Counter(a.status_code for a in answers).keys() <= {202, 409}
    replayed = [a.headers.get("idempotent-replayed") == "true" for a in answers]
    originals = [
        a for a, again in zip(answers, replayed, strict=True) if a.status_code == 202 and not again
    ]
    assert len(originals) == 1
    accepted = {a.json()["id"] for a in answers if a.status_code == 202}
    assert accepted == {originals[0].json()["id"]}


def accepted_total(client: TestClient) -> float:
    scrape = client.get("/metrics", headers={"Authorization": ""})
    return value(parse(scrape.text), "pochta_messages_accepted_total")


def test_a_request_that_loses_its_key_inside_the_route_counts_nothing(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The route registers its after-commit actions, then keep() finds the record taken
    # over (KeyInFlight) and the transaction rolls back. Releasing the key afterwards is
    # another commit: the rolled-back message's actions must not run with it.
    api_key_id = key_id(api)
    submit = message_service.submit_message

    def submit_while_a_retry_takes_the_key(session: Any, **kwargs: Any) -> Any:
        with db.session_scope() as other:
            record = repository.get(other, api_key_id=api_key_id, key="order-slow")
            assert record is not None
            assert repository.take_over(
                other,
                api_key_id=api_key_id,
                key="order-slow",
                token=record.created_at,
                request_hash=record.request_hash,
                now=utcnow(),
            )
        return submit(session, **kwargs)

    monkeypatch.setattr(message_service, "submit_message", submit_while_a_retry_takes_the_key)
    before = accepted_total(api)
    lost = post(api, "order-slow")
    assert lost.status_code == 409
    assert messages_stored() == 0
    assert accepted_total(api) == before
