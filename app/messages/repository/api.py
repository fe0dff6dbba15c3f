"""The API's statements: storing accepted messages, reading, listing, cancelling them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.orm import Session, selectinload, undefer

from app.messages.models import Attempt, Message, MessageTag, Recipient
from app.messages.new_message import NewMessage
from app.messages.states import CANCELABLE, MessageStatus, RecipientStatus
from app.orm import Base

_message_table = Base.metadata.tables[Message.__tablename__]
_recipient_table = Base.metadata.tables[Recipient.__tablename__]
# The Message resource shows each attempt's transcript (deferred for every other reader).
_ATTEMPTS_WITH_TRANSCRIPTS = selectinload(Message.attempts).options(undefer(Attempt.transcript))


def add_messages(session: Session, messages: Sequence[NewMessage]) -> None:
    """Insert messages with their recipients and tags, one statement a table (not committed).

    Core inserts: the ORM's unit of work would cost more than the statements themselves.
    """
    if not messages:
        return
    session.execute(insert(_message_table), [_row(m, MESSAGE_COLUMNS) for m in messages])
    recipients = [
        _row(r, RECIPIENT_COLUMNS) | {"message_pk": m.id} for m in messages for r in m.recipients
    ]
    session.execute(insert(_recipient_table), recipients)
    tags = [{"message_pk": m.id, "tag": t} for m in messages for t in set(m.tags)]
    if tags:
        session.execute(insert(MessageTag), tags)


# (column, attribute) of each column a new row gets, named as in the ORM classes; a
# recipient's id is the database's.
MESSAGE_COLUMNS = tuple((p.columns[0].name, p.key) for p in Message.__mapper__.column_attrs)
RECIPIENT_COLUMNS = tuple(
    (p.columns[0].name, p.key)
    for p in Recipient.__mapper__.column_attrs
    if p.key not in ("id", "message_pk")
)


def _row(entity: object, columns: Sequence[tuple[str, str]]) -> dict[str, object]:
    return {column: getattr(entity, key) for column, key in columns}


def get_detailed(session: Session, *, tenant: str, message_id: str) -> Message | None:
    """A tenant's message with recipients and attempts, in three indexed queries."""
    return session.scalars(
        select(Message)
        .where(Message.id == message_id, Message.tenant == tenant)
        .options(selectinload(Message.recipients), _ATTEMPTS_WITH_TRANSCRIPTS)
        .execution_options(populate_existing=True)
    ).one_or_none()


def get_raw(session: Session, *, tenant: str, message_id: str) -> bytes | None:
    return session.scalar(
        select(Message.raw).where(Message.id == message_id, Message.tenant == tenant)
    )


def cancel(session: Session, *, tenant: str, message_id: str, now: datetime) -> bool:
    """Cancel if nobody holds it yet; False when the message is sending or finished."""
    result = session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.tenant == tenant,
            Message.status.in_(CANCELABLE),
        )
        .values(status=MessageStatus.canceled, updated_at=now, next_attempt_at=None)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return False
    session.execute(
        update(Recipient)
        .where(
            Recipient.message_pk == message_id,
            Recipient.status.in_((RecipientStatus.pending, RecipientStatus.deferred)),
        )
        .values(status=RecipientStatus.canceled)
    )
    return True


def list_page(
    session: Session,
    *,
    tenant: str,
    status: MessageStatus | None,
    tag: str | None,
    recipient_any_of: Sequence[str] | None,
    created_after: datetime | None,
    created_before: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Message]:
    """Up to limit of a tenant's messages, newest first, older than `before` (created_at, id).

    Walks ix_messages_tenant_created backwards; tag and recipient are semi-joins on
    ix_message_tags_tag and ix_recipients_email. Recipients and attempts come in one
    query each for the whole page.
    """
    query = select(Message).where(Message.tenant == tenant)
    if status is not None:
        query = query.where(Message.status == status)
    if tag is not None:
        query = query.where(
            Message.id.in_(select(MessageTag.message_pk).where(MessageTag.tag == tag))
        )
    if recipient_any_of:
        query = query.where(
            Message.id.in_(
                select(Recipient.message_pk).where(Recipient.email.in_(recipient_any_of))
            )
        )
    if created_after is not None:
        query = query.where(Message.created_at >= created_after)
    if created_before is not None:
        query = query.where(Message.created_at < created_before)
    if before is not None:
        # A plain tuple on the right binds through the columns' own types (UTCDateTime).
        query = query.where(tuple_(Message.created_at, Message.id) < before)
    query = (
        query.order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
        .options(selectinload(Message.recipients), _ATTEMPTS_WITH_TRANSCRIPTS)
    )
    return list(session.scalars(query))


def count_by_status(session: Session) -> dict[MessageStatus, int]:
    """How many messages are in each status, over every tenant."""
    rows = session.execute(select(Message.status, func.count()).group_by(Message.status))
    return {status: int(count) for status, count in rows}
