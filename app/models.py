"""Every table, imported in one place so Alembic and tests see the whole schema."""

from app.events.models import Event
from app.idempotency.models import IdempotencyRecord
from app.keys.models import ApiKey
from app.messages.models import Attempt, Message, MessageTag, Recipient
from app.orm import Base
from app.relays.models import RelaySessionRow, RelayStateRow
from app.suppressions.models import Suppression
from app.webhooks.models import Delivery, PendingDelivery, Webhook

__all__ = [
    "ApiKey",
    "Attempt",
    "Base",
    "Delivery",
    "Event",
    "IdempotencyRecord",
    "Message",
    "MessageTag",
    "PendingDelivery",
    "Recipient",
    "RelaySessionRow",
    "RelayStateRow",
    "Suppression",
    "Webhook",
]
