"""An endpoint's deliveries log a page at a time, newest first, with an opaque cursor.

Keyset pages on (created_at, id) as GET /v1/messages has them (app/keyset.py): the cursor
carries the position and a fingerprint of the endpoint and filters, and is refused (422)
with others.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.keyset import decode_cursor, fingerprint, page_of
from app.webhooks import repository
from app.webhooks.models import Delivery, Webhook
from app.webhooks.schemas import DeliveryQuery


def _fingerprint(query: DeliveryQuery, webhook: Webhook) -> str:
    return fingerprint(webhook.id, query.event_id, query.status.value if query.status else None)


def page_of_deliveries(
    session: Session, *, webhook: Webhook, query: DeliveryQuery
) -> tuple[list[Delivery], str | None]:
    made_for = _fingerprint(query, webhook)
    after = decode_cursor(query.cursor, made_for) if query.cursor else None
    rows = repository.deliveries_page(
        session,
        webhook_pk=webhook.id,
        event_id=query.event_id,
        status=query.status,
        before=(after.created_at, after.id) if after else None,
        limit=query.limit + 1,
    )
    return page_of(rows, query.limit, made_for)
