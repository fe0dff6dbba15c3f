"""The messages domain's rules: accepting an email, reading it back, cancelling it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, InvalidFields, NotFound, PayloadTooLarge
from app.events.messages import canceled_event
from app.events.writer import add_events
from app.ids import new_id
from app.keys.service import Caller
from app.messages.addresses import parse_mailbox
from app.messages.lines import UnsendableField
from app.messages.mime import build_message
from app.messages.models import Message
from app.messages.new_message import NewMessage, NewRecipient
from app.messages.repository import api as repository
from app.messages.schemas import SubmitMessage
from app.messages.states import (
    MessageStatus,
)
from app.messages.suppressed import apply_suppressions


def _recipients(submit: SubmitMessage) -> list[NewRecipient]:
    """One row per distinct address: the same mailbox in To and Cc gets one copy."""
    seen: set[str] = set()
    rows: list[NewRecipient] = []
    for kind, values in (("to", submit.to), ("cc", submit.cc), ("bcc", submit.bcc)):
        for value in values:
            email = parse_mailbox(value).email
            if email.lower() in seen:
                continue
            seen.add(email.lower())
            rows.append(NewRecipient(position=len(rows), kind=kind, email=email))
    return rows


def submit_message(
    session: Session, *, caller: Caller, submit: SubmitMessage, settings: Settings, now: datetime
) -> NewMessage:
    """Check the limits, build the bytes once and store the message with its recipients."""
    message = prepare_message(caller=caller, submit=submit, settings=settings, now=now)
    apply_suppressions(session, tenant=caller.tenant, messages=[message], now=now)
    repository.add_messages(session, [message])
    return message


def prepare_message(
    *, caller: Caller, submit: SubmitMessage, settings: Settings, now: datetime
) -> NewMessage:
    """The message to store, with its recipients and bytes; nothing is written yet."""
    total = len(submit.to) + len(submit.cc) + len(submit.bcc)
    if total > settings.max_recipients:
        raise InvalidFields.at(
            "to", f"has {total} recipients with cc and bcc; at most {settings.max_recipients}"
        )
    if submit.send_at is not None and submit.send_at > now + timedelta(
        seconds=settings.max_send_ahead_seconds
    ):
        days = settings.max_send_ahead_seconds / 86400
        raise InvalidFields.at("send_at", f"must be at most {days:g} days ahead")

    message_pk = new_id("msg_")
    scheduled = submit.send_at is not None and submit.send_at > now
    # Date: is when the message is released (SPEC §2), not when it was submitted.
    released = submit.send_at if submit.send_at is not None and scheduled else now
    try:
        built = build_message(submit, local_id=message_pk, now=released)
    except UnsendableField as error:
        raise InvalidFields.at(error.loc, str(error)) from None
    if len(built.raw) > settings.max_message_bytes:
        raise PayloadTooLarge(
            f"the built message is {len(built.raw)} bytes; "
            f"POCHTA_MAX_MESSAGE_BYTES is {settings.max_message_bytes}"
        )

    sender = parse_mailbox(submit.from_)
    envelope = parse_mailbox(submit.envelope_from) if submit.envelope_from else sender
    return NewMessage(
        id=message_pk,
        tenant=caller.tenant,
        status=MessageStatus.scheduled if scheduled else MessageStatus.queued,
        from_header=submit.from_,
        envelope_from=envelope.email,
        to_addrs=submit.to,
        cc_addrs=submit.cc,
        bcc_addrs=submit.bcc,
        reply_to_addrs=submit.reply_to,
        subject=submit.subject,
        message_id=built.message_id,
        tags=submit.tags,
        metadata_=submit.metadata,
        raw=built.raw,
        size=len(built.raw),
        needs_smtputf8=built.needs_smtputf8,
        created_at=now,
        updated_at=now,
        send_at=submit.send_at,
        next_attempt_at=submit.send_at if scheduled else now,
        # The API rings the broker right after commit; the scheduler only steps in if
        # that doorbell is lost (see docs/guarantees.md).
        dispatched_until=None
        if scheduled
        else now + timedelta(seconds=settings.dispatch_lease_seconds),
        recipients=_recipients(submit),
    )


def due_now(messages: Iterable[NewMessage]) -> list[str]:
    """The ids to ring the doorbell for once committed: all but those scheduled for later."""
    return [message.id for message in messages if message.status is MessageStatus.queued]


def get_message(session: Session, *, caller: Caller, message_id: str) -> Message:
    message = repository.get_detailed(session, tenant=caller.tenant, message_id=message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    return message


def get_raw(session: Session, *, caller: Caller, message_id: str) -> bytes:
    raw = repository.get_raw(session, tenant=caller.tenant, message_id=message_id)
    if raw is None:
        raise NotFound(f"no message {message_id}")
    return raw


def cancel_message(session: Session, *, caller: Caller, message_id: str, now: datetime) -> Message:
    """Cancel a message no worker holds yet, with its message.canceled event; Conflict if
    it is sending or finished."""
    if not repository.cancel(session, tenant=caller.tenant, message_id=message_id, now=now):
        message = get_message(session, caller=caller, message_id=message_id)
        raise Conflict(f"message {message_id} is {message.status.value} and cannot be canceled")
    message = get_message(session, caller=caller, message_id=message_id)
    add_events(session, [canceled_event(message, now)])
    return message
