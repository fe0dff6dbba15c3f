"""Turning stored rows into the Message resource."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.messages.models import Message
from app.messages.new_message import NewMessage
from app.messages.schemas import AttemptOut, BatchItemResult, MessageOut, RecipientOut

if TYPE_CHECKING:
    # For the annotation only: batch imports the service, which writes events built here.
    from app.messages.batch import ItemOutcome


def message_out(message: Message | NewMessage) -> MessageOut:
    return MessageOut(
        id=message.id,
        status=message.status,
        from_=message.from_header,
        to=message.to_addrs,
        cc=message.cc_addrs,
        bcc=message.bcc_addrs,
        reply_to=message.reply_to_addrs,
        subject=message.subject,
        message_id=message.message_id,
        tags=message.tags,
        metadata=message.metadata_,
        created_at=message.created_at,
        send_at=message.send_at,
        updated_at=message.updated_at,
        next_attempt_at=message.next_attempt_at,
        attempt_count=message.attempt_count,
        recipients=[
            RecipientOut(
                email=r.email,
                status=r.status,
                smtp_code=r.smtp_code,
                enhanced_code=r.enhanced_code,
                smtp_reply=r.smtp_reply,
                attempts=r.attempts,
                error=r.error,
                bounce_class=r.bounce_class,
            )
            for r in message.recipients
        ],
        attempts=[
            AttemptOut(
                number=a.number,
                started_at=a.started_at,
                finished_at=a.finished_at,
                relay=a.relay,
                outcome=a.outcome,
                stage=a.stage,
                smtp_code=a.smtp_code,
                enhanced_code=a.enhanced_code,
                smtp_reply=a.smtp_reply,
                error=a.error,
                bounce_class=a.bounce_class,
            )
            for a in message.attempts
        ],
    )


def batch_item_out(outcome: ItemOutcome) -> BatchItemResult:
    if outcome.message is not None:
        return BatchItemResult(
            index=outcome.index, status=202, message=message_out(outcome.message)
        )
    assert outcome.error is not None
    return BatchItemResult(
        index=outcome.index, status=outcome.error.status, error=outcome.error.as_problem()
    )
