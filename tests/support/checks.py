"""What the durability tests look at: statuses in the database, copies at the relay."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from email.parser import BytesHeaderParser
from typing import Any

import httpx
from sqlalchemy import select

from app import db
from app.messages.models import Message
from harness.relay import ScriptedRelay


def copies_by_message_id(relay: ScriptedRelay) -> Counter[str]:
    """How many times the relay accepted each Message-ID."""
    parser = BytesHeaderParser()
    return Counter(str(parser.parsebytes(m.data)["Message-ID"]) for m in relay.messages)


def statuses(message_ids: Iterable[str]) -> dict[str, str]:
    """Each message's status, read from the database."""
    with db.session_scope() as session:
        rows = session.execute(
            select(Message.id, Message.status).where(Message.id.in_(list(message_ids)))
        )
        return {row.id: row.status.value for row in rows}


def message_ids(ids: Iterable[str]) -> dict[str, str]:
    """Each message's Message-ID header, read from the database."""
    with db.session_scope() as session:
        rows = session.execute(
            select(Message.id, Message.message_id).where(Message.id.in_(list(ids)))
        )
        return {row.id: row.message_id for row in rows}


def wait_until(check: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    """Poll check until it holds; AssertionError naming what was seen if it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {describe()}")
        time.sleep(0.05)


def wait_for_statuses(
    ids: Iterable[str], wanted: set[str], timeout: float, logs: Callable[[], str] = str
) -> dict[str, str]:
    """Wait until every message is in one of the wanted statuses; their statuses."""
    ids = list(ids)
    seen: dict[str, str] = {}

    def done() -> bool:
        nonlocal seen
        seen = statuses(ids)
        return len(seen) == len(ids) and all(s in wanted for s in seen.values())

    wait_until(done, timeout, lambda: f"{Counter(seen.values())}\n{logs()}")
    return seen


def email(index: int, **fields: Any) -> dict[str, Any]:
    """A small submit body, numbered so each message is told apart."""
    return {"from": "a@example.org", "to": [f"r{index}@example.org"], "text": f"#{index}", **fields}


def submit(client: httpx.Client, index: int, **fields: Any) -> str:
    """POST one email that must be accepted; its id."""
    response = client.post("/v1/messages", json=email(index, **fields))
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]
    return message_id
