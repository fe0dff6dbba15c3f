"""SQL of the bounce reader: the message a report names, held while its report is applied."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.messages.models import Message


def message_for_report(session: Session, *, message_id: str) -> Message | None:
    """A message of any tenant with its recipients and attempts, its row locked (PostgreSQL)
    so that two reports for it are applied one after the other."""
    return session.scalars(
        select(Message)
        .where(Message.id == message_id)
        .options(selectinload(Message.recipients), selectinload(Message.attempts))
        .with_for_update(of=Message)
        .execution_options(populate_existing=True)
    ).one_or_none()
