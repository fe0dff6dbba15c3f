"""Endpoints and deliveries -> the response schemas."""

from __future__ import annotations

from typing import Any

from app.webhooks.models import Delivery, Webhook
from app.webhooks.schemas import DeliveryOut, WebhookOut, WebhookWithSecret


def _fields(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events,
        "description": webhook.description,
        "status": webhook.status,
        "disabled_reason": webhook.disabled_reason,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
    }


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(**_fields(webhook))


def webhook_with_secret(webhook: Webhook, secret: str) -> WebhookWithSecret:
    return WebhookWithSecret(**_fields(webhook), secret=secret)


def delivery_out(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        event_id=delivery.event_pk,
        event_type=delivery.event_type,
        attempt=delivery.attempt,
        status=delivery.status,
        response_status=delivery.response_status,
        error=delivery.error,
        duration_ms=delivery.duration_ms,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
    )
