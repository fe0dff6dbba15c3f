"""What API tests check again and again: the rows a request left, the problem it answered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app import db
from app.messages.models import Message, Recipient


def count_rows() -> tuple[int, int]:
    """How many messages and recipients the database holds."""
    with db.session_scope() as session:
        messages = session.scalar(select(func.count()).select_from(Message))
        recipients = session.scalar(select(func.count()).select_from(Recipient))
    return int(messages or 0), int(recipients or 0)


def problem(response: Any, status: int) -> dict[str, Any]:
    """The RFC 9457 body of a response that must answer status with one."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body
