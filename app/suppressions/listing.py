"""GET /v1/suppressions pages: newest first, keyset on (created_at, id), an opaque cursor
that remembers the filters and tenant it was made for (as app/messages/listing.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.orm import Session

from app.errors import InvalidFields
from app.suppressions import repository
from app.suppressions.schemas import SuppressionOut, SuppressionPage, SuppressionQuery

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _fingerprint(query: SuppressionQuery, tenant: str) -> str:
    canonical = [
        tenant,
        query.reason.value if query.reason else None,
        _micros(query.created_after) if query.created_after else None,
    ]
    return base64.urlsafe_b64encode(hashlib.sha256(orjson.dumps(canonical)).digest()[:9]).decode()


def _encode(created_at: datetime, row_id: int, made_for: str) -> str:
    payload = orjson.dumps(["s1", _micros(created_at), row_id, made_for])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def _decode(cursor: str, made_for: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, micros, row_id, fingerprint = orjson.loads(raw)
        valid = (
            version == "s1"
            and type(micros) is int
            and 0 <= micros < 2**53
            and type(row_id) is int
            and 0 < row_id < 2**63
            and isinstance(fingerprint, str)
        )
    except (binascii.Error, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidFields.at("cursor", "is not a cursor this API returned")
    if fingerprint != made_for:
        raise InvalidFields.at(
            "cursor", "was made for other filters; repeat the filters of the first page"
        )
    return _EPOCH + micros * _MICROSECOND, row_id


def list_page(
    session: Session, *, tenant: str, query: SuppressionQuery, now: datetime
) -> SuppressionPage:
    """One page of the tenant's live entries, with the cursor of the next one."""
    made_for = _fingerprint(query, tenant)
    rows = repository.list_page(
        session,
        tenant=tenant,
        reason=query.reason,
        created_after=query.created_after,
        before=_decode(query.cursor, made_for) if query.cursor else None,
        limit=query.limit + 1,
        now=now,
    )
    page = rows[: query.limit]
    next_cursor = (
        _encode(page[-1]["created_at"], page[-1]["id"], made_for)
        if len(rows) > query.limit
        else None
    )
    return SuppressionPage(
        data=[SuppressionOut.model_validate(row) for row in page], next_cursor=next_cursor
    )
