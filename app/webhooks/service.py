"""The rules of the /v1/webhooks routes: validation against the network, secrets, states."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, InvalidFields, NotFound
from app.keys.service import Caller
from app.webhooks import repository, secrets
from app.webhooks.addresses import check_url
from app.webhooks.listing import page_of_deliveries
from app.webhooks.models import Delivery, DisabledReason, Webhook, WebhookStatus
from app.webhooks.schemas import DeliveryQuery, ReplayRequest, WebhookCreate, WebhookPatch

log = logging.getLogger("pochta.webhooks")


@dataclass(frozen=True, slots=True)
class WithSecret:
    """An endpoint and its new secret in the clear: the answer to create and rotate."""

    webhook: Webhook
    secret: str


def _checked_url(url: str, settings: Settings) -> str:
    error = check_url(url, allow_private=settings.webhook_allow_private)
    if error is not None:
        raise InvalidFields.at("url", error)
    return url


def create_webhook(
    session: Session, *, caller: Caller, create: WebhookCreate, settings: Settings, now: datetime
) -> WithSecret:
    """A new enabled endpoint with a fresh secret, stored encrypted."""
    secret = secrets.new_secret()
    webhook = Webhook(
        tenant=caller.tenant,
        url=_checked_url(create.url, settings),
        events=list(create.events),
        description=create.description,
        status=WebhookStatus.enabled,
        disabled_reason=None,
        secret_encrypted=secrets.encrypt(settings, secret),
        created_at=now,
        updated_at=now,
    )
    repository.add(session, webhook)
    log.info("webhook created", extra={"webhook_id": webhook.id, "tenant": caller.tenant})
    return WithSecret(webhook, secret)


def get_webhook(session: Session, *, caller: Caller, webhook_id: str) -> Webhook:
    webhook = repository.get(session, tenant=caller.tenant, webhook_id=webhook_id)
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id}")
    return webhook


def list_webhooks(session: Session, *, caller: Caller) -> list[Webhook]:
    return repository.list_for_tenant(session, tenant=caller.tenant)


def update_webhook(
    session: Session,
    *,
    caller: Caller,
    webhook_id: str,
    patch: WebhookPatch,
    settings: Settings,
    now: datetime,
) -> Webhook:
    """Change what the patch gives; enabling clears why it was off and its failing clock."""
    webhook = get_webhook(session, caller=caller, webhook_id=webhook_id)
    if not patch.model_fields_set:
        return webhook
    if patch.url is not None:
        webhook.url = _checked_url(patch.url, settings)
    if patch.events is not None:
        webhook.events = list(patch.events)
    if patch.description is not None:
        webhook.description = patch.description
    if patch.enabled is True:
        webhook.status = WebhookStatus.enabled
        webhook.disabled_reason = None
        webhook.failing_since = None
    elif patch.enabled is False and webhook.status is WebhookStatus.enabled:
        # One already off (gone, failing) keeps the reason it went off for.
        webhook.status = WebhookStatus.disabled
        webhook.disabled_reason = DisabledReason.manual
    webhook.updated_at = now
    session.flush()
    return webhook


def delete_webhook(session: Session, *, caller: Caller, webhook_id: str) -> None:
    webhook = get_webhook(session, caller=caller, webhook_id=webhook_id)
    repository.remove(session, webhook)
    log.info("webhook deleted", extra={"webhook_id": webhook_id, "tenant": caller.tenant})


def rotate_secret(
    session: Session, *, caller: Caller, webhook_id: str, settings: Settings, now: datetime
) -> WithSecret:
    """A new secret; the current one keeps signing beside it for the overlap.

    Only two are ever live: rotating again within the overlap drops the oldest.
    """
    webhook = get_webhook(session, caller=caller, webhook_id=webhook_id)
    secret = secrets.new_secret()
    overlap = settings.webhook_secret_overlap_seconds
    if overlap > 0:
        webhook.previous_secret_encrypted = webhook.secret_encrypted
        webhook.previous_secret_expires_at = now + timedelta(seconds=overlap)
    else:
        webhook.previous_secret_encrypted = None
        webhook.previous_secret_expires_at = None
    webhook.secret_encrypted = secrets.encrypt(settings, secret)
    webhook.updated_at = now
    session.flush()
    log.info("webhook secret rotated", extra={"webhook_id": webhook.id, "tenant": caller.tenant})
    return WithSecret(webhook, secret)


def list_deliveries(
    session: Session, *, caller: Caller, webhook_id: str, query: DeliveryQuery
) -> tuple[list[Delivery], str | None]:
    """One page of the endpoint's requests, newest first, and the next page's cursor."""
    webhook = get_webhook(session, caller=caller, webhook_id=webhook_id)
    return page_of_deliveries(session, webhook=webhook, query=query)


def replay(
    session: Session,
    *,
    caller: Caller,
    webhook_id: str,
    request: ReplayRequest,
    now: datetime,
) -> int:
    """Owe those events to the endpoint again, due now; how many. 409 if it is disabled."""
    webhook = get_webhook(session, caller=caller, webhook_id=webhook_id)
    if webhook.status is not WebhookStatus.enabled:
        raise Conflict(
            f"webhook {webhook_id} is disabled ({webhook.disabled_reason}); "
            'enable it with PATCH {"enabled": true} first'
        )
    queued = repository.replay(
        session, webhook=webhook, event_ids=request.event_ids, since=request.since, now=now
    )
    log.info(
        "webhook replay queued",
        extra={"webhook_id": webhook.id, "tenant": caller.tenant, "queued": queued},
    )
    return queued


def deliveries_of_events(
    session: Session, *, caller: Caller, event_ids: list[str]
) -> list[tuple[Delivery, str]]:
    """The requests made for these events, newest first, with each endpoint's URL."""
    return repository.deliveries_of_events(session, tenant=caller.tenant, event_ids=event_ids)
