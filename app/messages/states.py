"""Statuses of messages, recipients and attempts, and the rules that join them."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class MessageStatus(StrEnum):
    scheduled = "scheduled"
    queued = "queued"
    sending = "sending"
    deferred = "deferred"
    sent = "sent"
    partially_sent = "partially_sent"
    failed = "failed"
    canceled = "canceled"


class RecipientStatus(StrEnum):
    pending = "pending"
    deferred = "deferred"
    sent = "sent"
    failed = "failed"
    canceled = "canceled"
    # Never tried: the address is on the tenant's suppression list (SPEC §8).
    suppressed = "suppressed"
    # The relay took it, then a delivery report said it failed further on (SPEC §9).
    bounced = "bounced"


class AttemptOutcome(StrEnum):
    sent = "sent"
    deferred = "deferred"
    failed = "failed"
    mixed = "mixed"


class Stage(StrEnum):
    connect = "connect"
    ehlo = "ehlo"
    starttls = "starttls"
    auth = "auth"
    mail = "mail"
    rcpt = "rcpt"
    data = "data"
    quit = "quit"
    done = "done"


# A worker may pick these up once they are due.
CLAIMABLE = (MessageStatus.scheduled, MessageStatus.queued, MessageStatus.deferred)
# cancel is allowed only before a worker holds the message.
CANCELABLE = CLAIMABLE
FINAL = (
    MessageStatus.sent,
    MessageStatus.partially_sent,
    MessageStatus.failed,
    MessageStatus.canceled,
)
OPEN_RECIPIENT = (RecipientStatus.pending, RecipientStatus.deferred)


def message_status_for(recipients: Iterable[RecipientStatus]) -> MessageStatus:
    """The message's status once an attempt has settled its recipients."""
    statuses = list(recipients)
    if any(status in OPEN_RECIPIENT for status in statuses):
        return MessageStatus.deferred
    sent = sum(status is RecipientStatus.sent for status in statuses)
    if sent == len(statuses):
        return MessageStatus.sent
    return MessageStatus.partially_sent if sent else MessageStatus.failed


def attempt_outcome_for(outcomes: Iterable[RecipientStatus]) -> AttemptOutcome:
    """One word for what a single attempt did to the recipients it tried."""
    distinct = set(outcomes)
    if len(distinct) != 1:
        return AttemptOutcome.mixed
    return AttemptOutcome(distinct.pop().value)
