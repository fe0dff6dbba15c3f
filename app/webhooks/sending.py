"""Sending one owed delivery: claim it, make the signed request, record what came of it.

The requests (app/webhooks/requests.py) are made outside any transaction; the claim
before them and their outcomes after are one short transaction each (claims.py, pending.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.config import Settings, get_settings
from app.db import repeatable_scope
from app.events.schemas import EventOut
from app.ids import new_id
from app.webhooks import claims, pending, retries, signing
from app.webhooks.models import DeliveryStatus, DisabledReason, Webhook, WebhookStatus
from app.webhooks.requests import Answer, post
from app.webhooks.secrets import UNREADABLE, signing_secrets

log = logging.getLogger("pochta.webhooks")

# An endpoint whose slots are all taken is tried again this soon, no attempt counted.
BUSY_RETRY_SECONDS = 1.0
# Requests one task makes at most, following on to the endpoint's next due deliveries.
FOLLOW_ON = 100
# Deliveries one claim takes at most: one transaction records them all and claims the next.
BATCH = 50
# A lease outlives the request it covers by this much (the recording after it)...
LEASE_MARGIN_SECONDS = 30.0
# ...and a claim's next request is started only while it and this much after it still fit
# in the lease: a batch is sent within its lease's first few seconds, or given back.
RECORDING_SECONDS = 25.0


@dataclass(frozen=True)
class Sent:
    """One request made and recorded, for the worker's metrics."""

    answer: Answer
    succeeded: bool
    webhook_id: str
    event_created_at: datetime
    finished_at: datetime


def event_body(owed: claims.Owed) -> bytes:
    """The Event resource as GET /v1/events shows it: the same bytes on every retry."""
    event = EventOut(
        id=owed.event_id,
        type=owed.event_type,
        timestamp=owed.event_created_at,
        data=owed.event_data,
    )
    return event.model_dump_json().encode()


def deliver_from(
    pending_id: int,
    transport: httpx.BaseTransport,
    on_sent: Callable[[Sent], None],
    follow_on: int = FOLLOW_ON,
    keep_going: Callable[[], bool] = lambda: True,
    pace: Callable[[], None] = lambda: None,
) -> int:
    """Send this delivery, then, while the endpoint keeps answering 2xx, its next due ones
    (up to follow_on in all, and while keep_going says so); how many requests were made.
    pace is called before each request, and may wait (worker/cpu_share.py).

    Each sender holds one of the endpoint's slots at a time: it claims up to BATCH
    deliveries under one lease, sends them in turn, records them all and claims the next
    ones in one transaction, so a healthy endpoint is kept at POCHTA_WEBHOOK_MAX_IN_FLIGHT
    requests without waiting for the scheduler's next tick, at one commit per claim.
    """
    settings = get_settings()
    with repeatable_scope() as session:
        claimed = _claim(session, pending_id, settings, utcnow(), min(BATCH, follow_on))
    made = 0
    while isinstance(claimed, claims.Claimed):
        sent = _send(transport, claimed, settings, keep_going, pace)
        following: claims.Claimed | None = None
        try:
            with repeatable_scope() as session:
                delivered = settle(session, claimed, sent, settings)
                left = follow_on - made - len(sent)
                # A failing endpoint gets its retries on their schedule only.
                if delivered and left > 0 and keep_going():
                    following = _claim_next(session, claimed.webhook_id, settings, min(BATCH, left))
        except IntegrityError:
            # The endpoint was deleted while its request was open: its log went with it.
            log.info("webhook deleted during its request", extra={"webhook_id": claimed.webhook_id})
            return made
        made += len(sent)
        for owed, answer, finished_at in sent:
            succeeded = retries.is_success(answer.status)
            _log(claimed.webhook_id, owed, answer, succeeded)
            on_sent(Sent(answer, succeeded, claimed.webhook_id, owed.event_created_at, finished_at))
        claimed = following
    return made


def _lease(settings: Settings, now: datetime) -> datetime:
    return now + timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)


def _claim(
    session: Session, pending_id: int, settings: Settings, now: datetime, batch: int
) -> claims.Claimed | str | None:
    return claims.claim(
        session,
        pending_id=pending_id,
        now=now,
        lease_until=_lease(settings, now),
        max_in_flight=settings.webhook_max_in_flight,
        busy_until=now + timedelta(seconds=BUSY_RETRY_SECONDS),
        batch=batch,
    )


def _claim_next(
    session: Session, webhook_id: str, settings: Settings, batch: int
) -> claims.Claimed | None:
    now = utcnow()
    return claims.claim_next(
        session,
        webhook_id=webhook_id,
        now=now,
        lease_until=_lease(settings, now),
        max_in_flight=settings.webhook_max_in_flight,
        batch=batch,
    )


Outcome = tuple[claims.Owed, Answer, datetime]


def _send(
    transport: httpx.BaseTransport,
    claimed: claims.Claimed,
    settings: Settings,
    keep_going: Callable[[], bool],
    pace: Callable[[], None],
) -> list[Outcome]:
    """The claim's requests in turn, up to its first failure; each with when it ended.

    A request is started only if it and the recording after it fit in the lease, so no
    other worker can take a delivery while its request is open.
    """
    secrets = signing_secrets(settings, claimed.secrets)
    if secrets is None:
        # Nothing can be signed: a failed request, retried and in the end disabling as any.
        log.error(UNREADABLE, extra={"webhook_id": claimed.webhook_id})
        return [(claimed.owed[0], Answer(None, UNREADABLE, 0), utcnow())]
    room = timedelta(seconds=settings.webhook_timeout_seconds + RECORDING_SECONDS)
    sent: list[Outcome] = []
    for owed in claimed.owed:
        pace()  # before the lease check: a turn waited for is time the lease has spent
        if sent and (not keep_going() or utcnow() + room > claimed.lease_until):
            break
        answer = _request(transport, claimed.url, owed, secrets, settings)
        sent.append((owed, answer, utcnow()))
        if not retries.is_success(answer.status):
            break
    return sent


def _request(
    transport: httpx.BaseTransport,
    url: str,
    owed: claims.Owed,
    secrets: list[str],
    settings: Settings,
) -> Answer:
    body = event_body(owed)
    headers = signing.headers(
        secrets, message_id=owed.event_id, timestamp=int(time.time()), body=body
    )
    return post(transport, url, body, headers, settings.webhook_timeout_seconds)


def _log(webhook_id: str, owed: claims.Owed, answer: Answer, succeeded: bool) -> None:
    log.info(
        "webhook %s: %s",
        "delivered" if succeeded else "failed",
        answer.status or answer.error,
        extra={
            "webhook_id": webhook_id,
            "event_id": owed.event_id,
            "attempt": owed.attempt,
            "response_status": answer.status,
            "error": answer.error,
            "duration_ms": answer.duration_ms,
        },
    )


def settle(
    session: Session,
    claimed: claims.Claimed,
    sent: Sequence[Outcome],
    settings: Settings,
) -> bool:
    """Record the claim's requests and what follows them, and give back what was not sent;
    whether every delivery of the claim was sent and delivered."""
    delivered = [owed.pending_id for owed, answer, _ in sent if retries.is_success(answer.status)]
    webhook = None
    if len(delivered) < len(sent):
        # The endpoint first, as every transaction that locks it does.
        webhook = pending.lock_webhook(session, claimed.webhook_id)
        if webhook is None:
            return False  # deleted while the request was open: its log went with it
    if delivered:
        # The common case takes no lock: it frees a slot, which needs no counting.
        pending.delivered(session, pending_ids=delivered, webhook_id=claimed.webhook_id)
    unsent = [owed.pending_id for owed in claimed.owed[len(sent) :]]
    if unsent:
        pending.release(session, pending_ids=unsent)
    rows = []
    for owed, answer, finished_at in sent:
        next_at: datetime | None = None
        if webhook is not None and not retries.is_success(answer.status):
            next_at = _after_failure(session, webhook, owed, answer, settings, finished_at)
        rows.append(_logged(claimed.webhook_id, owed, answer, finished_at, next_at))
    pending.log_requests(session, rows)
    return len(delivered) == len(claimed.owed)


def _logged(
    webhook_id: str,
    owed: claims.Owed,
    answer: Answer,
    finished_at: datetime,
    next_at: datetime | None,
) -> dict[str, Any]:
    """The deliveries-log row of one request."""
    succeeded = retries.is_success(answer.status)
    return {
        "id": new_id("whd_", finished_at),
        "webhook_pk": webhook_id,
        "event_pk": owed.event_id,
        "event_type": owed.event_type,
        "attempt": owed.attempt,
        "status": DeliveryStatus.succeeded if succeeded else DeliveryStatus.failed,
        "response_status": answer.status,
        "error": answer.error,
        "duration_ms": answer.duration_ms,
        "created_at": finished_at,
        "next_attempt_at": next_at,
    }


def _after_failure(
    session: Session,
    webhook: Webhook,
    owed: claims.Owed,
    answer: Answer,
    settings: Settings,
    now: datetime,
) -> datetime | None:
    """Disable the endpoint, retry later or give up; when the next request is due, if any."""
    if answer.status == 410:
        _disable(session, webhook, DisabledReason.gone, now)
        return None
    failing_since = webhook.failing_since or now
    webhook.failing_since = failing_since
    if (now - failing_since).total_seconds() >= settings.webhook_disable_after_seconds:
        _disable(session, webhook, DisabledReason.failing, now)
        return None
    delay = retries.next_delay(
        attempt=owed.attempt,
        schedule=settings.webhook_retry_schedule,
        status=answer.status,
        retry_after=retries.parse_retry_after(answer.retry_after, now),
    )
    if delay is None:
        pending.finish(session, pending_id=owed.pending_id)
        return None
    next_at = now + timedelta(seconds=delay)
    pending.reschedule(session, pending_id=owed.pending_id, attempts=owed.attempt, next_at=next_at)
    return next_at


def _disable(session: Session, webhook: Webhook, reason: DisabledReason, now: datetime) -> None:
    webhook.status = WebhookStatus.disabled
    webhook.disabled_reason = reason
    webhook.updated_at = now
    pending.drop_endpoint(session, webhook_id=webhook.id)
    log.warning("webhook endpoint disabled: %s", reason.value, extra={"webhook_id": webhook.id})
