"""The suppression list at submit (SPEC §8): recipients on it are never tried.

In the submit's own transaction and with one query for every recipient of the request
(a whole batch included), a suppressed address becomes a `suppressed` recipient with
`recipient.suppressed`; a message left with no one to send to is `failed` at once, with
`message.failed`, no attempt, and nothing for the broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.events.payloads import message_data, recipient_data
from app.events.types import EventType
from app.events.writer import add_events, event_row
from app.messages.new_message import NewMessage
from app.messages.serializers import message_out
from app.messages.states import MessageStatus, RecipientStatus
from app.suppressions.service import email_key, reasons_for


def apply_suppressions(
    session: Session, *, tenant: str, messages: Sequence[NewMessage], now: datetime
) -> None:
    """Mark the messages' suppressed recipients (before they are stored); add the events."""
    emails = {r.email for m in messages for r in m.recipients}
    reasons = reasons_for(session, tenant=tenant, emails=emails, now=now)
    if not reasons:
        return
    events: list[dict[str, Any]] = []
    for message in messages:
        hit = [r for r in message.recipients if email_key(r.email) in reasons]
        if not hit:
            continue
        for recipient in hit:
            recipient.status = RecipientStatus.suppressed
            recipient.error = f"suppressed: {reasons[email_key(recipient.email)].value}"
        if len(hit) == len(message.recipients):
            message.status = MessageStatus.failed
            message.next_attempt_at = None
            message.dispatched_until = None
        out = message_out(message)
        by_email = {r.email: r for r in out.recipients}
        events.extend(
            event_row(
                type=EventType.recipient_suppressed,
                tenant=tenant,
                message_id=message.id,
                data=recipient_data(out, by_email[r.email], None),
                at=now,
            )
            for r in hit
        )
        if message.status is MessageStatus.failed:
            events.append(
                event_row(
                    type=EventType.message_failed,
                    tenant=tenant,
                    message_id=message.id,
                    data=message_data(out, None),
                    at=now,
                )
            )
    add_events(session, events)


def suppressed_count(messages: Sequence[NewMessage]) -> int:
    """How many recipients of these messages the list kept from being sent to."""
    return sum(r.status is RecipientStatus.suppressed for m in messages for r in m.recipients)
