"""Every SQL statement about API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from app.keys.models import ApiKey, KeyScope


def add(session: Session, key: ApiKey) -> None:
    session.add(key)
    session.flush()


def all_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke(session: Session, *, key_id: str, now: datetime) -> bool:
    """Revoke an active key; False if there is none with that id or it was revoked."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def exists(session: Session, *, key_id: str) -> bool:
    return session.get(ApiKey, key_id) is not None


def active_by_hash(session: Session, *, key_hash: str) -> Row[str, str, KeyScope] | None:
    """(id, tenant, scope) of the active key with this hash, if any."""
    return session.execute(
        select(ApiKey.id, ApiKey.tenant, ApiKey.scope).where(
            ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
        )
    ).first()


def active_by_id(session: Session, *, key_id: str) -> ApiKey | None:
    """The key with this id if it is not revoked."""
    return session.scalars(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    ).one_or_none()
