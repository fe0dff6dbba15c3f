"""The suppression list's rules: who may not be sent to, automatic entries, the API's calls.

Every entry that is written emits `suppression.created` in the same transaction (SPEC §7);
addresses are compared by email_key, the address lower-cased, per tenant.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import get_settings
from app.errors import InvalidFields, NotFound
from app.events.payloads import suppression_data
from app.events.types import EventType
from app.events.writer import add_events, event_row
from app.keys.service import Caller
from app.messages.addresses import parse_mailbox
from app.suppressions import listing, repository
from app.suppressions.models import SuppressionReason
from app.suppressions.schemas import (
    PutSuppression,
    SuppressionOut,
    SuppressionPage,
    SuppressionQuery,
)


def email_key(email: str) -> str:
    """What addresses are compared by: nearly every mailbox treats case alike."""
    return email.lower()


@dataclass(frozen=True, slots=True)
class NewSuppression:
    """An entry to add if the address has none: the refusal behind it in `source`."""

    tenant: str
    email: str
    reason: SuppressionReason
    source: dict[str, Any] | None = None
    note: str | None = None


def resource(row: dict[str, Any]) -> dict[str, Any]:
    """The Suppression resource of a row, JSON-ready (as GET and the event show it)."""
    return SuppressionOut.model_validate(row).model_dump(mode="json")


def expires_at(reason: SuppressionReason, now: datetime) -> datetime | None:
    """hard_bounce entries may expire (POCHTA_SUPPRESSION_HARD_BOUNCE_DAYS); others never."""
    days = get_settings().suppression_hard_bounce_days
    if reason is SuppressionReason.hard_bounce and days is not None:
        return now + timedelta(days=days)
    return None


def suppress_many(
    session: Session, *, entries: Sequence[NewSuppression], now: datetime
) -> list[dict[str, Any]]:
    """Add the entries whose address has no live one, with their suppression.created
    events: one statement each. The resources added, as the events carry them."""
    unique: dict[tuple[str, str], NewSuppression] = {}
    for entry in entries:
        unique.setdefault((entry.tenant, email_key(entry.email)), entry)
    rows = [
        {
            "tenant": entry.tenant,
            "email": entry.email,
            "email_key": key,
            "reason": entry.reason,
            "note": entry.note,
            "created_at": now,
            "expires_at": expires_at(entry.reason, now),
            "source": entry.source,
        }
        # One order for every writer, so two groups inserting the same addresses on
        # PostgreSQL never wait on each other in a circle.
        for (_, key), entry in sorted(unique.items(), key=lambda item: item[0])
    ]
    written = repository.add_absent(session, rows=rows, now=now)
    by_address = {(row["tenant"], email_key(row["email"])): row for row in written}
    added = []
    events = []
    for (tenant, key), entry in unique.items():
        row = by_address.get((tenant, key))
        if row is None:
            continue
        created = resource(row)
        added.append(created)
        source = entry.source or {}
        events.append(
            event_row(
                type=EventType.suppression_created,
                tenant=tenant,
                message_id=source.get("message_id"),
                data=suppression_data(created),
                at=now,
            )
        )
    add_events(session, events)
    return added


def suppress_automatically(
    session: Session,
    *,
    tenant: str,
    email: str,
    reason: SuppressionReason,
    source: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Add one address unless it is there already, with its event; its resource, or None."""
    added = suppress_many(
        session,
        entries=[NewSuppression(tenant=tenant, email=email, reason=reason, source=source)],
        now=now,
    )
    return added[0] if added else None


def reasons_for(
    session: Session, *, tenant: str, emails: Collection[str], now: datetime
) -> dict[str, SuppressionReason]:
    """email_key -> reason for those of the addresses on the tenant's list: one query."""
    return repository.reasons_for(
        session, tenant=tenant, email_keys={email_key(e) for e in emails}, now=now
    )


def address(value: str) -> str:
    """The address an API call names, as submit stores it; 422 naming `email` if it is none."""
    if "<" in value:
        # A display name ("Billy <billy@example.org>") names no entry: the path is an address.
        raise InvalidFields.at("email", "must be an address alone, such as billy@example.org")
    try:
        return parse_mailbox(value).email
    except ValueError as error:
        raise InvalidFields.at("email", str(error)) from None


def get_suppression(
    session: Session, *, caller: Caller, email: str, now: datetime
) -> SuppressionOut:
    row = repository.get(
        session, tenant=caller.tenant, email_key=email_key(address(email)), now=now
    )
    if row is None:
        raise NotFound(f"{email} is not suppressed")
    return SuppressionOut.model_validate(row)


def put_suppression(
    session: Session, *, caller: Caller, email: str, body: PutSuppression, now: datetime
) -> tuple[SuppressionOut, bool]:
    """Add the address by hand; (the entry, whether it is new). One already there stays."""
    entry = NewSuppression(
        tenant=caller.tenant,
        email=address(email),
        reason=SuppressionReason(body.reason),
        note=body.note,
    )
    added = suppress_many(session, entries=[entry], now=now)
    if added:
        return SuppressionOut.model_validate(added[0]), True
    return get_suppression(session, caller=caller, email=email, now=now), False


def delete_suppression(session: Session, *, caller: Caller, email: str, now: datetime) -> None:
    """The address may be sent to again; NotFound if it was not on the list."""
    key = email_key(address(email))
    if not repository.remove(session, tenant=caller.tenant, email_key=key, now=now):
        raise NotFound(f"{email} is not suppressed")


def list_suppressions(
    session: Session, *, caller: Caller, query: SuppressionQuery, now: datetime
) -> SuppressionPage:
    return listing.list_page(session, tenant=caller.tenant, query=query, now=now)
