"""The message.* events: rows built from what an attempt or a cancel changed.

An event's data is the Message resource as it is after the change, without attempts,
and the attempt behind it. For a settled attempt that is the message the worker already
holds with the Settlement laid over it, so the recorder reads nothing back. It is built
as plain JSON, not through the API's pydantic models: on the worker's hot path those
cost several times the rest of recording a message (tests/api/test_events.py checks it
against what GET answers).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any

from app.events.payloads import message_data
from app.events.types import FOR_MESSAGE_STATUS, EventType
from app.events.writer import event_row
from app.messages.fields import format_utc
from app.messages.models import Message
from app.messages.schemas import AttemptOut, RecipientOut
from app.messages.serializers import message_out
from app.messages.settlement import RecipientChange, Settlement

# The records a settlement holds and the API's schemas name their fields alike, so a
# field added to both (a bounce class, say) reaches the event without another line here.
_RECIPIENT_FIELDS = tuple(RecipientOut.model_fields)
_ATTEMPT_FIELDS = tuple(AttemptOut.model_fields)
_CHANGED_FIELDS = tuple(
    name
    for name in _RECIPIENT_FIELDS
    if name in {field.name for field in dataclasses.fields(RecipientChange)}
)


def settled_event(message: Message, settlement: Settlement) -> dict[str, Any] | None:
    """The event row of a settled attempt: message.deferred or the final status reached."""
    type = FOR_MESSAGE_STATUS.get(settlement.status)
    if type is None:
        return None
    attempt = settlement.attempt
    changes = {change.id: change for change in settlement.recipients}
    recipients = []
    for row in message.recipients:
        recipient = _json_fields(row, _RECIPIENT_FIELDS)
        change = changes.get(row.id)
        if change is not None:
            recipient |= _json_fields(change, _CHANGED_FIELDS)
        recipients.append(recipient)
    after = {
        "id": message.id,
        "status": settlement.status.value,
        "from": message.from_header,
        "to": list(message.to_addrs),
        "cc": list(message.cc_addrs),
        "bcc": list(message.bcc_addrs),
        "reply_to": list(message.reply_to_addrs),
        "subject": message.subject,
        "message_id": message.message_id,
        "tags": list(message.tags),
        "metadata": dict(message.metadata_),
        "created_at": format_utc(message.created_at),
        "send_at": _json(message.send_at),
        "updated_at": format_utc(attempt.finished_at),
        "next_attempt_at": _json(settlement.next_attempt_at),
        "attempt_count": attempt.number,
        "recipients": recipients,
    }
    return event_row(
        type=type,
        tenant=message.tenant,
        message_id=message.id,
        data={"message": after, "attempt": _json_fields(attempt, _ATTEMPT_FIELDS)},
        at=attempt.finished_at,
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


def _json_fields(source: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _json(getattr(source, name)) for name in names}


# Most fields are one of these, and are their own JSON: they skip the checks below, run
# for every field of every event on the worker's hot path.
_AS_IS = frozenset({str, int, float, bool, type(None)})


def _json(value: Any) -> Any:
    """A field's value as the API writes it in JSON."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, tuple):
        # An attempt's transcript: its lines as the resource writes them.
        return [_json(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Field by field: asdict() deep-copies every value first.
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
