"""GET /v1/messages/{id}/raw is byte for byte what the relay received."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from harness.relay import ScriptedRelay
from tests.conftest import Env, make_key
from worker.delivery_loop import deliver_messages


def test_raw_bytes_equal_what_the_relay_received(env: Env, relay: ScriptedRelay) -> None:
    from app.main import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {make_key()}"
    body = {
        "from": "Вася Пупкин <vasiapupkin@ya.ru>",
        "to": ["billy@example.org"],
        "bcc": ["audit@example.org"],
        "subject": "Привет, Billy",
        "text": "Текст\n.a line with a leading dot\n",
        "html": "<p>Текст</p>",
        "attachments": [
            {"filename": "a.bin", "content": base64.b64encode(bytes(range(256))).decode()}
        ],
    }
    message_id = client.post("/v1/messages", json=body).json()["id"]
    deliver_messages([message_id])

    (received,) = relay.wait_for(1)
    response = client.get(f"/v1/messages/{message_id}/raw")
    assert response.status_code == 200
    assert response.headers["content-type"] == "message/rfc822"
    assert response.content == received.data
    assert b"audit@example.org" not in response.content, "Bcc is never a header"
