"""Helpers for webhook tests: endpoints made as the API makes them, and verified requests."""

from __future__ import annotations

from typing import Any

import standardwebhooks

from app import db
from app.clock import utcnow
from app.config import get_settings
from app.events.types import EventType
from app.events.writer import add_events, event_row
from app.keys.service import Caller
from app.webhooks import service
from app.webhooks.schemas import WebhookCreate
from harness.webhook_receiver import Request

CALLER = Caller(key_id="key_test", tenant="acme")


def create_endpoint(url: str, events: list[EventType] | None = None) -> tuple[str, str]:
    """A webhook endpoint for tenant acme; (its id, its secret)."""
    with db.session_scope() as session:
        made = service.create_webhook(
            session,
            caller=CALLER,
            create=WebhookCreate(url=url, events=events or []),
            settings=get_settings(),
            now=utcnow(),
        )
        return made.webhook.id, made.secret


def add_event(type: EventType = EventType.message_sent, tenant: str = "acme") -> str:
    row = event_row(type=type, tenant=tenant, message_id=None, data={"n": 1}, at=utcnow())
    with db.session_scope() as session:
        add_events(session, [row])
    return str(row["id"])


def verified(request: Request, secret: str) -> dict[str, Any]:
    """The event a request carried, once the reference library has verified it."""
    body: dict[str, Any] = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    return body


def signatures(request: Request) -> list[str]:
    return request.headers["webhook-signature"].split(" ")


def verifies_alone(request: Request, signature: str, secret: str) -> bool:
    """Whether this one signature of the request verifies with secret."""
    headers = {**request.headers, "webhook-signature": signature}
    try:
        standardwebhooks.Webhook(secret).verify(request.body, headers)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True
