"""The whole path with real processes: HTTP in, Celery worker, scheduler, ESMTP out."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from harness.relay import ScriptedRelay
from harness.stack import Stack
from tests.conftest import Env, make_key


@pytest.fixture
def stack(env: Env, relay: ScriptedRelay, tmp_path: Path) -> Iterator[Stack]:
    with Stack(env.for_subprocess(), tmp_path) as running:
        running.start()
        yield running


def test_post_is_delivered_and_get_tells_what_the_relay_said(
    stack: Stack, relay: ScriptedRelay
) -> None:
    relay.script_rcpt("billy@microsoft.com", "451 4.7.1 Greylisted, try later")
    pdf = b"%PDF-1.4 \x00\x01 binary"
    with stack.client(make_key()) as client:
        response = client.post(
            "/v1/messages",
            json={
                "from": "Вася Пупкин <vasiapupkin@ya.ru>",
                "to": ["billy@microsoft.com", "Billy G <billy@example.org>"],
                "bcc": ["audit@example.org"],
                "envelope_from": "bounces@ya.ru",
                "subject": "Привет, Billy",
                "text": "Текст\n.a line with a leading dot\n",
                "html": "<p>Текст</p>",
                "attachments": [
                    {
                        "filename": "a.pdf",
                        "content_type": "application/pdf",
                        "content": base64.b64encode(pdf).decode(),
                    }
                ],
            },
        )
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]
        final = stack.wait_for_status(client, message_id, {"sent", "partially_sent", "failed"})

    assert final["status"] == "sent", final
    assert final["attempt_count"] >= 2
    first = final["attempts"][0]
    assert (first["smtp_code"], first["enhanced_code"], first["smtp_reply"]) == (
        451,
        "4.7.1",
        "Greylisted, try later",
    )
    copies = dict.fromkeys(("billy@microsoft.com", "billy@example.org", "audit@example.org"), 0)
    for received in relay.messages:
        assert received.mail_from == "bounces@ya.ru"
        for rcpt in received.rcpt_tos:
            copies[rcpt] += 1
    assert copies == dict.fromkeys(copies, 1), "each recipient gets exactly one copy"

    parsed = message_from_bytes(relay.messages[0].data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert str(parsed["From"]) == "Вася Пупкин <vasiapupkin@ya.ru>"
    assert str(parsed["Subject"]) == "Привет, Billy"
    assert "audit@example.org" not in relay.messages[0].data.decode()
    text = parsed.get_body(("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == "Текст\n.a line with a leading dot\n"
    (attachment,) = list(parsed.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content() == pdf


def test_relay_down_then_up_ends_sent(stack: Stack, relay: ScriptedRelay) -> None:
    relay.stop()
    with stack.client(make_key()) as client:
        message_id = client.post(
            "/v1/messages", json={"from": "a@example.org", "to": ["b@example.org"], "text": "x"}
        ).json()["id"]
        deferred = stack.wait_for_status(client, message_id, {"deferred"})
        assert deferred["attempts"][0]["stage"] == "connect"
        relay.start()
        final = stack.wait_for_status(client, message_id, {"sent", "failed"})
    assert final["status"] == "sent"
    assert len(relay.messages) == 1


def test_permanent_failure_through_the_processes(stack: Stack, relay: ScriptedRelay) -> None:
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user here")
    with stack.client(make_key()) as client:
        message_id = client.post(
            "/v1/messages",
            json={"from": "a@example.org", "to": ["nobody@example.org"], "text": "x"},
        ).json()["id"]
        final = stack.wait_for_status(client, message_id, {"sent", "failed"})
    assert final["status"] == "failed"
    assert final["recipients"][0]["smtp_reply"] == "No such user here"
    assert final["attempt_count"] == 1


def test_fifty_messages_through_two_worker_processes_use_a_handful_of_connections(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    with Stack(env.for_subprocess(), tmp_path, concurrency=2) as stack:
        stack.start()
        with stack.client(make_key()) as client:
            ids = [
                client.post(
                    "/v1/messages",
                    json={"from": "a@example.org", "to": [f"r{i}@example.org"], "text": "x"},
                ).json()["id"]
                for i in range(50)
            ]
            for message_id in ids:
                stack.wait_for_status(client, message_id, {"sent"})
    assert len(relay.messages) == 50
    assert relay.connections <= 4, "one connection per worker process, not one per message"
