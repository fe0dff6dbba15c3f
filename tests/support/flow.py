"""Helpers to submit messages and drive them to a final status in tests."""

from __future__ import annotations

import time
from typing import Any

from app import db
from app.clock import utcnow
from app.config import get_settings
from app.keys.service import Caller
from app.messages import service
from app.messages.schemas import MessageOut, SubmitMessage
from app.messages.serializers import message_out
from app.messages.states import FINAL
from worker.delivery_loop import deliver_messages

CALLER = Caller(key_id="key_test", tenant="acme")


def submit(**fields: Any) -> str:
    """Store a message as the API would (without ringing the broker); its id."""
    body: dict[str, Any] = {"from": "sender@example.org", "to": ["rcpt@example.org"], "text": "hi"}
    body.update(fields)
    with db.session_scope() as session:
        message = service.submit_message(
            session,
            caller=CALLER,
            submit=SubmitMessage.model_validate(body),
            settings=get_settings(),
            now=utcnow(),
        )
        return message.id


def fetch(message_id: str) -> MessageOut:
    with db.session_scope() as session:
        return message_out(service.get_message(session, caller=CALLER, message_id=message_id))


def run_until_final(message_id: str, timeout: float = 10.0) -> MessageOut:
    """Deliver in this process, again whenever the message is due, until it is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliver_messages([message_id])
        message = fetch(message_id)
        if message.status in FINAL:
            return message
        time.sleep(0.01)
    raise AssertionError(f"{message_id} not final after {timeout}s: {fetch(message_id)}")
