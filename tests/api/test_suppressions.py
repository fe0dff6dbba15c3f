"""/v1/suppressions (SPEC §8), and the suppression list's effect on submit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, select

from app import db, runtime
from app.events.models import Event
from app.suppressions.models import SuppressionReason
from app.suppressions.service import suppress_automatically
from tests.api.helpers import problem
from tests.conftest import make_key
from tests.support.prometheus import parse, value

SUBMIT = {"from": "sender@example.org", "text": "hi"}


def event_types() -> list[str]:
    with db.session_scope() as session:
        return sorted(e.type.value for e in session.scalars(select(Event)))


def test_put_adds_an_address_once_and_get_finds_it_in_any_case(api: TestClient) -> None:
    put = api.put("/v1/suppressions/Billy@Example.org", json={"reason": "manual", "note": "asked"})
    assert put.status_code == 201, put.text
    entry = put.json()
    assert entry == {
        "email": "Billy@example.org",
        "reason": "manual",
        "note": "asked",
        "created_at": entry["created_at"],
        "expires_at": None,
        "source": None,
    }
    assert event_types() == ["suppression.created"]

    again = api.put("/v1/suppressions/billy@EXAMPLE.org", json={"reason": "unsubscribe"})
    assert again.status_code == 200
    assert again.json() == entry, "what was there stays as it was"
    assert event_types() == ["suppression.created"], "nothing new, no event"
    assert api.get("/v1/suppressions/BILLY@example.org").json() == entry


def test_delete_lets_the_address_be_sent_to_again(api: TestClient) -> None:
    assert (
        api.put("/v1/suppressions/billy@example.org", json={"reason": "manual"}).status_code == 201
    )
    assert api.delete("/v1/suppressions/Billy@example.org").status_code == 204
    problem(api.get("/v1/suppressions/billy@example.org"), 404)
    problem(api.delete("/v1/suppressions/billy@example.org"), 404)
    sent = api.post("/v1/messages", json=SUBMIT | {"to": ["billy@example.org"]})
    assert sent.json()["recipients"][0]["status"] == "pending"


def test_bad_input_is_a_problem_naming_the_field(api: TestClient) -> None:
    for body, loc in (
        ({"reason": "hard_bounce"}, "reason"),
        ({"reason": "manual", "color": "red"}, "color"),
        ({"reason": "manual", "note": "x" * 1001}, "note"),
    ):
        errors = problem(api.put("/v1/suppressions/billy@example.org", json=body), 422)["errors"]
        assert [e["loc"] for e in errors] == [loc]
    for address in ("not-an-address", "Billy <billy@example.org>"):
        errors = problem(api.put(f"/v1/suppressions/{address}", json={"reason": "manual"}), 422)
        assert [e["loc"] for e in errors["errors"]] == ["email"]
    problem(api.get("/v1/suppressions?limit=101"), 422)
    problem(api.get("/v1/suppressions?reason=spam"), 422)
    problem(
        api.put(
            "/v1/suppressions/billy@example.org",
            content=b"reason=manual",
            headers={"Content-Type": "text/plain"},
        ),
        415,
    )


def test_another_tenant_sees_none_of_it(api: TestClient) -> None:
    api.put("/v1/suppressions/billy@example.org", json={"reason": "manual"})
    other = {"Authorization": f"Bearer {make_key('zeta')}"}
    problem(api.get("/v1/suppressions/billy@example.org", headers=other), 404)
    assert api.get("/v1/suppressions", headers=other).json() == {"data": [], "next_cursor": None}
    sent = api.post("/v1/messages", json=SUBMIT | {"to": ["billy@example.org"]}, headers=other)
    assert sent.json()["recipients"][0]["status"] == "pending"
    problem(api.get("/v1/suppressions/x@example.org", headers={"Authorization": "Bearer no"}), 401)


def _add(email: str, reason: SuppressionReason, at: datetime) -> None:
    with db.session_scope() as session:
        suppress_automatically(
            session, tenant="acme", email=email, reason=reason, source=None, now=at
        )


def test_the_list_is_newest_first_filtered_and_paged(api: TestClient) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for day in range(5):
        reason = SuppressionReason.complaint if day % 2 else SuppressionReason.manual
        _add(f"u{day}@example.org", reason, start + timedelta(days=day))
    everything = api.get("/v1/suppressions").json()
    assert [e["email"] for e in everything["data"]] == [
        f"u{d}@example.org" for d in (4, 3, 2, 1, 0)
    ]
    assert everything["next_cursor"] is None

    seen: list[str] = []
    query: dict[str, Any] = {"reason": "manual", "limit": 2}
    while True:
        page = api.get("/v1/suppressions", params=query).json()
        seen += [e["email"] for e in page["data"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    assert seen == ["u4@example.org", "u2@example.org", "u0@example.org"]

    after = api.get("/v1/suppressions", params={"created_after": "2026-11-04T00:00:00Z"}).json()
    assert [e["email"] for e in after["data"]] == ["u4@example.org", "u3@example.org"]
    first = api.get("/v1/suppressions", params={"limit": 1}).json()
    mixed = api.get(
        "/v1/suppressions", params={"reason": "complaint", "cursor": first["next_cursor"]}
    )
    assert [e["loc"] for e in problem(mixed, 422)["errors"]] == ["cursor"]
    assert [e["loc"] for e in problem(api.get("/v1/suppressions?cursor=zz"), 422)["errors"]] == [
        "cursor"
    ]


def test_an_expired_entry_does_not_count(api: TestClient, sqlite_env: Any) -> None:
    sqlite_env["POCHTA_SUPPRESSION_HARD_BOUNCE_DAYS"] = "1"
    _add("old@example.org", SuppressionReason.hard_bounce, datetime(2026, 1, 1, tzinfo=UTC))
    problem(api.get("/v1/suppressions/old@example.org"), 404)
    assert api.get("/v1/suppressions").json()["data"] == []
    sent = api.post("/v1/messages", json=SUBMIT | {"to": ["old@example.org"]})
    assert sent.json()["recipients"][0]["status"] == "pending"
    again = api.put("/v1/suppressions/old@example.org", json={"reason": "manual"})
    assert again.status_code == 201
    assert again.json()["reason"] == "manual"


@contextmanager
def suppression_queries() -> Iterator[list[str]]:
    """The SELECTs on the suppressions table made meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "suppressions" in statement:
            seen.append(statement)

    engine = runtime.current().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_submit_suppresses_in_one_query_and_fails_a_message_with_no_one_left(
    api: TestClient,
) -> None:
    before = parse(api.get("/metrics").text)
    for email in ("gone@example.org", "left@example.org"):
        api.put(f"/v1/suppressions/{email}", json={"reason": "unsubscribe"})
    with suppression_queries() as queries:
        one = api.post(
            "/v1/messages",
            json=SUBMIT | {"to": ["GONE@example.org", "billy@example.org"], "bcc": ["Left@x.org"]},
        )
    assert len(queries) == 1
    body = one.json()
    assert one.status_code == 202
    assert body["status"] == "queued"
    assert [(r["email"], r["status"], r["error"]) for r in body["recipients"]] == [
        ("GONE@example.org", "suppressed", "suppressed: unsubscribe"),
        ("billy@example.org", "pending", None),
        ("Left@x.org", "pending", None),
    ]

    items = [SUBMIT | {"to": [f"u{i}@example.org", "left@example.org"]} for i in range(20)]
    items.append(SUBMIT | {"to": ["Left@Example.org"], "cc": ["gone@example.org"]})
    with suppression_queries() as queries:
        batch = api.post("/v1/messages/batch", json={"messages": items}).json()["results"]
    assert len(queries) == 1, "one query for the whole batch"
    assert {r["message"]["status"] for r in batch[:20]} == {"queued"}
    failed = batch[20]["message"]
    assert failed["status"] == "failed"
    assert failed["attempts"] == []
    assert failed["next_attempt_at"] is None
    assert {r["status"] for r in failed["recipients"]} == {"suppressed"}
    shown = api.get(f"/v1/messages/{failed['id']}").json()
    assert shown["status"] == "failed"
    listed = api.get("/v1/messages", params={"status": "failed"}).json()["data"]
    assert [m["id"] for m in listed] == [failed["id"]]

    with db.session_scope() as session:
        rows = session.scalars(select(Event).where(Event.message_pk == failed["id"])).all()
        kinds = sorted(e.type.value for e in rows)
    assert kinds == ["message.failed", "recipient.suppressed", "recipient.suppressed"]

    after = parse(api.get("/metrics").text)

    def counted(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert counted("pochta_sends_suppressed_total") == 1 + 20 + 2
    assert counted("pochta_suppressions_total", reason="unsubscribe") == 2
    assert counted("pochta_suppressions_total", reason="manual") == 0
