"""The event types of SPEC §7."""

from __future__ import annotations

from enum import StrEnum

from app.messages.states import MessageStatus


class EventType(StrEnum):
    message_sent = "message.sent"
    message_partially_sent = "message.partially_sent"
    message_failed = "message.failed"
    message_canceled = "message.canceled"
    message_deferred = "message.deferred"
    recipient_suppressed = "recipient.suppressed"
    recipient_bounced = "recipient.bounced"
    recipient_complained = "recipient.complained"
    suppression_created = "suppression.created"


# The event a message's new status announces; statuses not here announce nothing.
FOR_MESSAGE_STATUS = {
    MessageStatus.sent: EventType.message_sent,
    MessageStatus.partially_sent: EventType.message_partially_sent,
    MessageStatus.failed: EventType.message_failed,
    MessageStatus.canceled: EventType.message_canceled,
    MessageStatus.deferred: EventType.message_deferred,
}
