"""Listing a tenant's messages newest first, a page at a time, with an opaque cursor.

Pages are keyset pages on (created_at, id), descending: a page starts strictly after the
last message of the one before, so a message stored while a client pages is neither
skipped nor shown twice (it is newer than the cursor, so it belongs to a later listing).
The cursor carries that position and a fingerprint of the filters and tenant it was made
for; used with other filters it is refused (422) rather than silently mixing two listings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import orjson
from sqlalchemy.orm import Session

from app.errors import InvalidFields
from app.keys.service import Caller
from app.messages.models import Message
from app.messages.repository import api as repository
from app.messages.schemas import ListQuery
from app.messages.states import MessageStatus

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CURSOR_VERSION = 1


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def fingerprint(query: ListQuery, tenant: str) -> str:
    """A short digest of the filters (not the page size) and the tenant, kept in a cursor."""
    canonical = [
        tenant,
        query.status.value if query.status else None,
        query.tag,
        query.recipient,
        _micros(query.created_after) if query.created_after else None,
        _micros(query.created_before) if query.created_before else None,
    ]
    digest = hashlib.sha256(orjson.dumps(canonical)).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last message's (created_at, id)."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    next_cursor: str | None


def encode_cursor(position: Position, fingerprint: str) -> str:
    payload = orjson.dumps(
        [_CURSOR_VERSION, _micros(position.created_at), position.id, fingerprint]
    )
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


class _Keyed(Protocol):
    created_at: datetime
    id: str


K = TypeVar("K", bound=_Keyed)


def page_of(rows: Sequence[K], limit: int, fingerprint: str) -> tuple[list[K], str | None]:
    """The page in rows fetched with limit + 1, and the cursor of the next (None at the end)."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    last = page[-1]
    return page, encode_cursor(Position(last.created_at, last.id), fingerprint)


def decode_cursor(cursor: str, fingerprint: str) -> Position:
    """The position a cursor names; 422 naming `cursor` if it is not ours for these filters."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, micros, message_id, made_for = orjson.loads(raw)
        valid = (
            version == _CURSOR_VERSION
            and type(micros) is int
            and 0 <= micros < 2**53
            and isinstance(message_id, str)
            and message_id.isascii()
            and message_id.isprintable()
            and len(message_id) <= 32
            and isinstance(made_for, str)
        )
    except (binascii.Error, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidFields.at("cursor", "is not a cursor this API returned")
    if made_for != fingerprint:
        raise InvalidFields.at(
            "cursor", "was made for other filters; repeat the filters of the first page"
        )
    return Position(created_at=_EPOCH + micros * _MICROSECOND, id=message_id)


def list_messages(session: Session, *, caller: Caller, query: ListQuery) -> Page:
    """One page of the caller's messages, newest first, with the cursor of the next one."""
    made_for = fingerprint(query, caller.tenant)
    after = decode_cursor(query.cursor, made_for) if query.cursor else None
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
    page, next_cursor = page_of(rows, query.limit, made_for)
    return Page(messages=page, next_cursor=next_cursor)


def count_by_status(session: Session) -> dict[MessageStatus, int]:
    """How many messages are in each status, over every tenant (/metrics)."""
    return repository.count_by_status(session)
