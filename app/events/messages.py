"""The message.* events: rows built from what an attempt or a cancel changed.

An event's data is the Message resource as it is after the change. For a settled
attempt that is the message the worker already holds with the Settlement laid over it,
so the recorder writes its events without reading anything back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.events.payloads import message_data
from app.events.types import FOR_MESSAGE_STATUS, EventType
from app.events.writer import event_row
from app.messages.models import Message, Recipient
from app.messages.schemas import AttemptOut, RecipientOut
from app.messages.serializers import message_out
from app.messages.settlement import RecipientChange, Settlement


def settled_event(message: Message, settlement: Settlement) -> dict[str, Any] | None:
    """The event row of a settled attempt: message.deferred or the final status reached."""
    type = FOR_MESSAGE_STATUS.get(settlement.status)
    if type is None:
        return None
    changes = {change.id: change for change in settlement.recipients}
    after = message_out(message, with_attempts=False).model_copy(
        update={
            "status": settlement.status,
            "updated_at": settlement.attempt.finished_at,
            "next_attempt_at": settlement.next_attempt_at,
            "attempt_count": settlement.attempt.number,
            "recipients": [_recipient_after(r, changes.get(r.id)) for r in message.recipients],
        }
    )
    attempt = AttemptOut.model_validate(_shared_fields(settlement.attempt, AttemptOut))
    return event_row(
        type=type,
        tenant=message.tenant,
        message_id=message.id,
        data=message_data(after, attempt),
        at=settlement.attempt.finished_at,
    )


def canceled_event(message: Message, at: datetime) -> dict[str, Any]:
    """The message.canceled row, from the message as read back after the cancel."""
    return event_row(
        type=EventType.message_canceled,
        tenant=message.tenant,
        message_id=message.id,
        data=message_data(message_out(message), None),
        at=at,
    )


def _recipient_after(row: Recipient, change: RecipientChange | None) -> RecipientOut:
    out = RecipientOut.model_validate(row, from_attributes=True)
    return out if change is None else out.model_copy(update=_shared_fields(change, RecipientOut))


def _shared_fields(source: object, schema: type[BaseModel]) -> dict[str, Any]:
    """The schema's fields that source has, by name. The settlement's records and the
    API's schemas name their fields alike, so a field added to both (a bounce class, say)
    reaches the event without another line here."""
    return {name: getattr(source, name) for name in schema.model_fields if hasattr(source, name)}
