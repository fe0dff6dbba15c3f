"""Every SQL statement about the suppression list.

An entry whose expires_at has passed counts as absent everywhere: it is not found, not
listed, does not suppress, and a new entry for the address replaces it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, delete, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.orm import Base
from app.suppressions.models import Suppression, SuppressionReason

_table = Base.metadata.tables[Suppression.__tablename__]
_RESOURCE = (
    _table.c.email,
    _table.c.reason,
    _table.c.note,
    _table.c.created_at,
    _table.c.expires_at,
    _table.c.source,
)


def _live(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    return or_(_table.c.expires_at.is_(None), _table.c.expires_at > now)


# Run by every submit, so built once: building it and its cache key on every call cost
# about as much CPU as executing it (py-spy, bench --profile).
_REASONS = select(_table.c.email_key, _table.c.reason).where(
    _table.c.tenant == bindparam("tenant"),
    _table.c.email_key.in_(bindparam("email_keys", expanding=True)),
    _live(bindparam("now")),
)


def reasons_for(
    session: Session, *, tenant: str, email_keys: Collection[str], now: datetime
) -> dict[str, SuppressionReason]:
    """email_key -> reason for those of the addresses that are suppressed: one query."""
    if not email_keys:
        return {}
    rows = session.execute(
        _REASONS, {"tenant": tenant, "email_keys": sorted(set(email_keys)), "now": now}
    )
    return {str(key): SuppressionReason(reason) for key, reason in rows}


def add_absent(
    session: Session, *, rows: Sequence[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Insert the rows whose address has no live entry (an expired one is replaced): one
    statement; the resources of those written. Rows must not repeat an address."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = insert(_table).values(list(rows))
    statement = values.on_conflict_do_update(
        index_elements=[_table.c.tenant, _table.c.email_key],
        set_={
            column: values.excluded[column]
            for column in ("email", "reason", "note", "created_at", "expires_at", "source")
        },
        where=and_(_table.c.expires_at.is_not(None), _table.c.expires_at <= now),
    ).returning(_table.c.tenant, *_RESOURCE)
    return [dict(row._mapping) for row in session.execute(statement)]


def get(session: Session, *, tenant: str, email_key: str, now: datetime) -> dict[str, Any] | None:
    """The live entry for the address, as a resource dict."""
    row = session.execute(
        select(*_RESOURCE).where(
            _table.c.tenant == tenant, _table.c.email_key == email_key, _live(now)
        )
    ).first()
    return dict(row._mapping) if row is not None else None


def remove(session: Session, *, tenant: str, email_key: str, now: datetime) -> bool:
    """Delete the address's entry; whether a live one was there."""
    live = session.execute(
        delete(_table)
        .where(_table.c.tenant == tenant, _table.c.email_key == email_key)
        .returning(_table.c.expires_at)
    ).first()
    return live is not None and (live.expires_at is None or live.expires_at > now)


def list_page(
    session: Session,
    *,
    tenant: str,
    reason: SuppressionReason | None,
    created_after: datetime | None,
    before: tuple[datetime, int] | None,
    limit: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Live entries newest first, strictly after the keyset position `before`; with id."""
    query = select(*_RESOURCE, _table.c.id).where(_table.c.tenant == tenant, _live(now))
    if reason is not None:
        query = query.where(_table.c.reason == reason)
    if created_after is not None:
        query = query.where(_table.c.created_at >= created_after)
    if before is not None:
        query = query.where(tuple_(_table.c.created_at, _table.c.id) < before)
    query = query.order_by(_table.c.created_at.desc(), _table.c.id.desc()).limit(limit)
    return [dict(row._mapping) for row in session.execute(query)]
