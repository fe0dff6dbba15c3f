"""attempts[].transcript in the Message resource (SPEC §11), as a client reads it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from harness.relay import ScriptedRelay
from tests.conftest import Env, make_key
from worker.delivery_loop import deliver_messages


def test_a_550_message_shows_mail_rcpt_and_the_550_line(env: Env, relay: ScriptedRelay) -> None:
    from app.main import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {make_key()}"
    relay.script_rcpt("billy@microsoft.com", "550 5.1.1 <billy@microsoft.com>: no such user")
    body = {"from": "vasiapupkin@ya.ru", "to": ["billy@microsoft.com"], "text": "hi"}
    message_id = client.post("/v1/messages", json=body).json()["id"]
    deliver_messages([message_id])

    message = client.get(f"/v1/messages/{message_id}").json()
    assert message["status"] == "failed"
    (attempt,) = message["attempts"]
    transcript = attempt["transcript"]
    assert {line["dir"] for line in transcript} == {"out", "in"}
    assert all(set(line) == {"at_ms", "dir", "line"} for line in transcript)
    out = [line["line"] for line in transcript if line["dir"] == "out"]
    assert "MAIL FROM:<vasiapupkin@ya.ru>" in out
    assert "RCPT TO:<billy@microsoft.com>" in out
    assert transcript[-1] == {
        "at_ms": transcript[-1]["at_ms"],
        "dir": "in",
        "line": "550 5.1.1 <billy@microsoft.com>: no such user",
    }
    # The list answers the same resource.
    (listed,) = client.get("/v1/messages").json()["data"]
    assert listed["attempts"][0]["transcript"] == transcript


def test_a_sent_attempt_answers_null_by_default(env: Env, relay: ScriptedRelay) -> None:
    from app.main import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {make_key()}"
    body = {"from": "vasiapupkin@ya.ru", "to": ["billy@example.org"], "text": "hi"}
    message_id = client.post("/v1/messages", json=body).json()["id"]
    deliver_messages([message_id])
    (attempt,) = client.get(f"/v1/messages/{message_id}").json()["attempts"]
    assert attempt["outcome"] == "sent"
    assert attempt["transcript"] is None
