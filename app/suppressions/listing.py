"""GET /v1/suppressions pages: newest first, keyset on (created_at, id) with an opaque
cursor (app/keyset.py); the row id is an integer, kept in the cursor as its digits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app import keyset
from app.errors import InvalidFields
from app.suppressions import repository
from app.suppressions.schemas import SuppressionOut, SuppressionPage, SuppressionQuery


def _fingerprint(query: SuppressionQuery, tenant: str) -> str:
    return keyset.fingerprint(
        "suppressions",
        tenant,
        query.reason.value if query.reason else None,
        keyset.micros(query.created_after),
    )


def _position(cursor: str, made_for: str) -> tuple[datetime, int]:
    position = keyset.decode_cursor(cursor, made_for)
    if not (position.id.isdigit() and 0 < int(position.id) < 2**63):
        raise InvalidFields.at("cursor", "is not a cursor this API returned")
    return position.created_at, int(position.id)


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
        before=_position(query.cursor, made_for) if query.cursor else None,
        limit=query.limit + 1,
        now=now,
    )
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        last = keyset.Position(page[-1]["created_at"], str(page[-1]["id"]))
        next_cursor = keyset.encode_cursor(last, made_for)
    return SuppressionPage(
        data=[SuppressionOut.model_validate(row) for row in page], next_cursor=next_cursor
    )
