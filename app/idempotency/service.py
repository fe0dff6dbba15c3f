"""The rules of Idempotency-Key, after draft-ietf-httpapi-idempotency-key-header.

A request with a key first records itself as in flight, committed on its own, so every
other request with that key sees it. Then it runs, and stores its answer in the same
transaction as what it wrote: either both are committed or neither is. A request that
fails writes nothing, so its record is deleted and the key can be used again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy.orm import Session

from app.errors import Conflict, FieldError, InvalidFields
from app.idempotency import repository

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# A record still in flight after this belongs to a request that died (its process was
# killed, or its commit failed): a retry takes it over instead of getting 409 forever.
IN_FLIGHT_SECONDS = 60.0
# Losing a race for a record this many times in a row means it is busy: 409.
_ATTEMPTS = 3


class KeyInFlight(Conflict):
    type = "/problems/idempotency-key-in-flight"
    title = "A request with this Idempotency-Key is in flight"


class KeyReused(InvalidFields):
    type = "/problems/idempotency-key-reused"
    title = "Idempotency-Key already used for another request"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a finished request answered: sent again, as it was, to its repeats."""

    status_code: int
    body: bytes
    location: str | None


@dataclass(frozen=True, slots=True)
class Started:
    """This request holds the record; the token proves it when finishing."""

    api_key_id: str
    key: str
    token: datetime


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's identity beyond its key: method, path and JSON body, key order aside."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def begin(
    session: Session,
    *,
    api_key_id: str,
    key: str,
    request_hash: str,
    now: datetime,
    ttl: timedelta,
) -> Started | Answer:
    """Record the request as in flight (the caller commits at once), or the answer to repeat.

    KeyReused if the key went with another request, KeyInFlight while that one runs.
    """
    for _ in range(_ATTEMPTS):
        if repository.add(
            session, api_key_id=api_key_id, key=key, request_hash=request_hash, now=now
        ):
            return Started(api_key_id, key, now)
        record = repository.get(session, api_key_id=api_key_id, key=key)
        if record is None:
            continue  # purged in between: add it again
        expired = record.created_at <= now - ttl
        abandoned = record.status_code is None and record.created_at <= now - timedelta(
            seconds=IN_FLIGHT_SECONDS
        )
        if expired or abandoned:
            if repository.take_over(
                session,
                api_key_id=api_key_id,
                key=key,
                token=record.created_at,
                request_hash=request_hash,
                now=now,
            ):
                return Started(api_key_id, key, now)
            continue
        if record.request_hash != request_hash:
            raise KeyReused(
                f"this {HEADER} was used with another request; use a new key for this one",
                errors=[FieldError(HEADER, "was used with another request")],
            )
        if record.status_code is None or record.response_body is None:
            raise KeyInFlight(f"a request with this {HEADER} is in flight; retry shortly")
        return Answer(record.status_code, record.response_body, record.location)
    raise KeyInFlight(f"a request with this {HEADER} is in flight; retry shortly")


def finish(session: Session, *, started: Started, answer: Answer) -> None:
    """Store the answer with the request's own writes; KeyInFlight if the record was lost."""
    if not repository.finish(
        session,
        api_key_id=started.api_key_id,
        key=started.key,
        token=started.token,
        status_code=answer.status_code,
        body=answer.body,
        location=answer.location,
    ):
        # Taken over after IN_FLIGHT_SECONDS: the other request's answer is the one.
        raise KeyInFlight(f"this request took too long; its {HEADER} went to a retry")


def forget(session: Session, *, started: Started) -> None:
    """Release the key of a request that failed: it wrote nothing, so it can be sent again."""
    repository.forget(session, api_key_id=started.api_key_id, key=started.key, token=started.token)


def purge_expired(session: Session, *, now: datetime, ttl: timedelta) -> int:
    """Delete the records older than ttl; how many."""
    return repository.purge(session, before=now - ttl)
