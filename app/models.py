"""Every table, imported in one place so Alembic and tests see the whole schema."""

from app.idempotency.models import IdempotencyRecord
from app.keys.models import ApiKey
from app.messages.models import Attempt, Message, MessageTag, Recipient
from app.orm import Base

__all__ = ["ApiKey", "Attempt", "Base", "IdempotencyRecord", "Message", "MessageTag", "Recipient"]
