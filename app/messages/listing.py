"""Listing a tenant's messages newest first, a page at a time (keyset pages with an opaque
cursor: app/keyset.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app import keyset
from app.keys.service import Caller
from app.messages.models import Message
from app.messages.repository import api as repository
from app.messages.schemas import ListQuery
from app.messages.states import MessageStatus


def _fingerprint(query: ListQuery, tenant: str) -> str:
    return keyset.fingerprint(
        tenant,
        query.status.value if query.status else None,
        query.tag,
        query.recipient,
        keyset.micros(query.created_after),
        keyset.micros(query.created_before),
    )


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    next_cursor: str | None


def list_messages(session: Session, *, caller: Caller, query: ListQuery) -> Page:
    """One page of the caller's messages, newest first, with the cursor of the next one."""
    made_for = _fingerprint(query, caller.tenant)
    after = keyset.decode_cursor(query.cursor, made_for) if query.cursor else None
    rows = repository.list_page(
        session,
        tenant=caller.tenant,
        status=query.status,
        tag=query.tag,
        # As submitted, or all lower case: what nearly every mailbox treats as the same,
        # and each an exact match on ix_recipients_email.
        recipient_any_of=sorted({query.recipient, query.recipient.lower()})
        if query.recipient
        else None,
        created_after=query.created_after,
        created_before=query.created_before,
        before=(after.created_at, after.id) if after else None,
        limit=query.limit + 1,
    )
    page, next_cursor = keyset.page_of(rows, query.limit, made_for)
    return Page(messages=page, next_cursor=next_cursor)


def count_by_status(session: Session) -> dict[MessageStatus, int]:
    """How many messages are in each status, over every tenant (/metrics)."""
    return repository.count_by_status(session)
