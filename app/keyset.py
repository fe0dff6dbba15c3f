"""Keyset pages, newest first on (created_at, id), with an opaque cursor: GET /v1/messages,
/v1/events, /v1/suppressions and a webhook's deliveries all page this way.

A page starts strictly after the last row of the one before, so a row stored while a
client pages is neither skipped nor shown twice (it is newer than the cursor, so it
belongs to a later listing). The cursor carries that position and a fingerprint of the
filters and tenant it was made for; used with other filters it is refused (422) rather
than silently mixing two listings.
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

from app.errors import InvalidFields

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CURSOR_VERSION = 1


def micros(value: datetime | None) -> int | None:
    """A time as whole microseconds since the epoch, for a fingerprint or a cursor."""
    return None if value is None else (value - _EPOCH) // _MICROSECOND


def fingerprint(*filters: object) -> str:
    """A short digest of a listing's filters (not its page size) and tenant, as JSON values."""
    digest = hashlib.sha256(orjson.dumps(list(filters))).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: its last row's (created_at, id); an integer id as its digits."""

    created_at: datetime
    id: str


def encode_cursor(position: Position, made_for: str) -> str:
    payload = orjson.dumps([_CURSOR_VERSION, micros(position.created_at), position.id, made_for])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(cursor: str, made_for: str) -> Position:
    """The position a cursor names; 422 naming `cursor` if it is not ours for these filters."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, at, row_id, fingerprint_ = orjson.loads(raw)
        valid = (
            version == _CURSOR_VERSION
            and type(at) is int
            and 0 <= at < 2**53
            and isinstance(row_id, str)
            and row_id.isascii()
            and row_id.isprintable()
            and len(row_id) <= 32
            and isinstance(fingerprint_, str)
        )
    except (binascii.Error, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidFields.at("cursor", "is not a cursor this API returned")
    if fingerprint_ != made_for:
        raise InvalidFields.at(
            "cursor", "was made for other filters; repeat the filters of the first page"
        )
    return Position(created_at=_EPOCH + at * _MICROSECOND, id=row_id)


class _Keyed(Protocol):
    created_at: datetime
    id: str


K = TypeVar("K", bound=_Keyed)


def page_of(rows: Sequence[K], limit: int, made_for: str) -> tuple[list[K], str | None]:
    """The page in rows fetched with limit + 1, and the cursor of the next (None at the end)."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    last = page[-1]
    return page, encode_cursor(Position(last.created_at, last.id), made_for)
