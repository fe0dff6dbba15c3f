"""Every SQL statement about idempotency records.

A record's `created_at` doubles as the token of the request that holds it: taking over
an abandoned or expired record gives it a new one, and finishing or forgetting a
record needs the token, so a request that lost its record cannot touch the new one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.idempotency.models import IdempotencyRecord


def add(session: Session, *, api_key_id: str, key: str, request_hash: str, now: datetime) -> bool:
    """Record a request as in flight; False (nothing written) if the key is taken."""
    try:
        with session.begin_nested():
            session.execute(
                insert(IdempotencyRecord).values(
                    api_key_id=api_key_id, key=key, request_hash=request_hash, created_at=now
                )
            )
    except IntegrityError:
        return False
    return True


def get(session: Session, *, api_key_id: str, key: str) -> IdempotencyRecord | None:
    return session.scalars(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key)
        .execution_options(populate_existing=True)
    ).one_or_none()


def _held(api_key_id: str, key: str, token: datetime) -> tuple[object, ...]:
    return (
        IdempotencyRecord.api_key_id == api_key_id,
        IdempotencyRecord.key == key,
        IdempotencyRecord.created_at == token,
    )


def take_over(
    session: Session,
    *,
    api_key_id: str,
    key: str,
    token: datetime,
    request_hash: str,
    now: datetime,
) -> bool:
    """Restart the record that `token` held as a new request in flight; False if it moved."""
    result = session.execute(
        update(IdempotencyRecord)
        .where(*_held(api_key_id, key, token))  # type: ignore[arg-type]
        .values(
            request_hash=request_hash,
            status_code=None,
            response_body=None,
            location=None,
            created_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    session: Session,
    *,
    api_key_id: str,
    key: str,
    token: datetime,
    status_code: int,
    body: bytes,
    location: str | None,
) -> bool:
    """Store the answer of the request holding the record; False if it no longer does."""
    result = session.execute(
        update(IdempotencyRecord)
        .where(
            *_held(api_key_id, key, token),  # type: ignore[arg-type]
            IdempotencyRecord.status_code.is_(None),
        )
        .values(status_code=status_code, response_body=body, location=location)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def forget(session: Session, *, api_key_id: str, key: str, token: datetime) -> None:
    """Delete the record of a request that failed, if that request still holds it."""
    session.execute(
        delete(IdempotencyRecord).where(
            *_held(api_key_id, key, token),  # type: ignore[arg-type]
            IdempotencyRecord.status_code.is_(None),
        )
    )


def purge(session: Session, *, before: datetime) -> int:
    """Delete every record made before `before`; how many."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
