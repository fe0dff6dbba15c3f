"""Webhook delivery in-process: fan-out, the signed request, retries, disabling, the
in-flight cap and the address check at connect, against a real receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from app import db
from app.clock import utcnow
from app.config import get_settings
from app.events.types import EventType
from app.webhooks import claims, pending, service
from app.webhooks.models import (
    Delivery,
    DeliveryStatus,
    DisabledReason,
    PendingDelivery,
    Webhook,
    WebhookStatus,
)
from app.webhooks.requests import new_transport
from app.webhooks.secrets import UNREADABLE
from app.webhooks.sending import deliver_from
from harness.webhook_receiver import Answer, WebhookReceiver
from tests.conftest import Env
from tests.support.webhooks import (
    CALLER,
    add_event,
    create_endpoint,
    signatures,
    verified,
    verifies_alone,
)


@pytest.fixture
def receiver(env: Env) -> Iterator[WebhookReceiver]:
    env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "true"
    env["POCHTA_WEBHOOK_RETRY_SCHEDULE"] = "0.01,0.01"
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def client(receiver: WebhookReceiver) -> Iterator[httpx.BaseTransport]:
    with new_transport(get_settings()) as http:
        yield http


def pump(client: httpx.BaseTransport, rounds: int = 200) -> None:
    """Fan out and send what is due, as the scheduler and the worker would, until idle."""
    settings = get_settings()
    for _ in range(rounds):
        now = utcnow()
        with db.session_scope() as session:
            pending.fan_out(session, now=now, limit=500)
            ids = pending.take_due(
                session,
                now=now,
                until=now + timedelta(seconds=60),
                limit=500,
                max_in_flight=settings.webhook_max_in_flight,
            )
            left = session.scalar(select(PendingDelivery.id).limit(1))
        for pending_id in ids:
            deliver_from(pending_id, client, on_sent=lambda _: None, follow_on=1)
        if not ids and left is None:
            return
    raise AssertionError("deliveries still owed after every round")


def deliveries(webhook_id: str) -> list[Delivery]:
    with db.session_scope() as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.webhook_pk == webhook_id).order_by(Delivery.attempt)
        ).all()
        session.expunge_all()
    return list(rows)


def webhook(webhook_id: str) -> Webhook:
    with db.session_scope() as session:
        row = session.get(Webhook, webhook_id)
        assert row is not None
        session.expunge(row)
    return row


def rotate(webhook_id: str) -> str:
    """Rotate the endpoint's secret as the API does; the new secret."""
    with db.session_scope() as session:
        return service.rotate_secret(
            session, caller=CALLER, webhook_id=webhook_id, settings=get_settings(), now=utcnow()
        ).secret


def test_an_event_is_sent_signed_to_each_subscribed_endpoint(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    every, every_secret = create_endpoint(receiver.url("/every"))
    failed_only, _ = create_endpoint(receiver.url("/failed"), [EventType.message_failed])
    event_id = add_event(EventType.message_sent)
    pump(client)

    (request,) = receiver.requests("/every")
    assert request.headers["webhook-id"] == event_id
    assert request.headers["content-type"] == "application/json"
    event = verified(request, every_secret)
    assert (event["id"], event["type"], event["data"]) == (event_id, "message.sent", {"n": 1})
    assert event["timestamp"].endswith("Z")
    assert receiver.requests("/failed") == [], "not subscribed to message.sent"
    (logged,) = deliveries(every)
    assert (logged.status, logged.response_status, logged.attempt) == (
        DeliveryStatus.succeeded,
        200,
        1,
    )
    assert deliveries(failed_only) == []


def test_500_twice_then_200_is_three_requests_with_one_webhook_id(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    receiver.script("/hook", 500, 500, 200)
    webhook_id, secret = create_endpoint(receiver.url())
    event_id = add_event()
    pump(client)

    requests = receiver.requests("/hook")
    assert [r.answered for r in requests] == [500, 500, 200]
    assert {r.headers["webhook-id"] for r in requests} == {event_id}
    for request in requests:
        assert verified(request, secret)["id"] == event_id
    log = deliveries(webhook_id)
    assert [(d.attempt, d.status, d.response_status) for d in log] == [
        (1, DeliveryStatus.failed, 500),
        (2, DeliveryStatus.failed, 500),
        (3, DeliveryStatus.succeeded, 200),
    ]
    assert log[0].next_attempt_at is not None
    assert log[2].next_attempt_at is None
    assert webhook(webhook_id).failing_since is None


def test_after_the_last_retry_it_stays_failed(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    receiver.default("/hook", 503)
    webhook_id, _ = create_endpoint(receiver.url())
    add_event()
    pump(client)

    log = deliveries(webhook_id)
    # The first request and one per delay of the schedule (two here).
    assert [d.status for d in log] == [DeliveryStatus.failed] * 3
    assert log[-1].next_attempt_at is None
    assert webhook(webhook_id).status is WebhookStatus.enabled


def test_retry_after_on_429_replaces_the_delay(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    receiver.script("/hook", Answer(429, {"Retry-After": "120"}))
    webhook_id, _ = create_endpoint(receiver.url())
    add_event()
    before = utcnow()
    with pytest.raises(AssertionError):
        pump(client, rounds=3)
    (logged,) = deliveries(webhook_id)
    assert logged.next_attempt_at is not None
    assert timedelta(seconds=119) < logged.next_attempt_at - before < timedelta(seconds=125)


def test_410_disables_the_endpoint_as_gone(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    receiver.default("/hook", 410)
    webhook_id, _ = create_endpoint(receiver.url())
    add_event()
    add_event()
    pump(client)

    gone = webhook(webhook_id)
    assert (gone.status, gone.disabled_reason) == (WebhookStatus.disabled, DisabledReason.gone)
    assert len(receiver.requests("/hook")) <= 2
    add_event()
    pump(client)
    assert len(receiver.requests("/hook")) <= 2, "a disabled endpoint gets nothing new"


def test_an_endpoint_failing_for_the_disable_period_is_disabled(
    env: Env, receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    env["POCHTA_WEBHOOK_DISABLE_AFTER_SECONDS"] = "0.001"
    receiver.default("/hook", 500)
    webhook_id, _ = create_endpoint(receiver.url())
    add_event()
    pump(client)
    off = webhook(webhook_id)
    assert (off.status, off.disabled_reason) == (WebhookStatus.disabled, DisabledReason.failing)


def test_rotation_signs_with_both_secrets_during_the_overlap(
    env: Env, receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    webhook_id, old_secret = create_endpoint(receiver.url())
    new_secret = rotate(webhook_id)
    add_event()
    pump(client)
    (request,) = receiver.requests("/hook")
    first, second = signatures(request)
    assert verifies_alone(request, first, new_secret)
    assert verifies_alone(request, second, old_secret)
    assert not verifies_alone(request, first, old_secret)

    with db.session_scope() as session:
        row = session.get(Webhook, webhook_id)
        assert row is not None
        row.previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    add_event()
    pump(client)
    latest = receiver.requests("/hook")[-1]
    assert len(signatures(latest)) == 1
    assert verified(latest, new_secret)


def test_a_secret_that_no_longer_decrypts_fails_each_request_until_rotated(
    env: Env, receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    webhook_id, _ = create_endpoint(receiver.url())
    env["POCHTA_SECRET_KEY"] = "another-key-than-the-secret-was-stored-under"
    add_event()
    pump(client)
    assert receiver.requests() == []
    log = deliveries(webhook_id)
    # The first request and one per delay of the schedule, each failed with the reason.
    assert [(d.status, d.error) for d in log] == [(DeliveryStatus.failed, UNREADABLE)] * 3

    new_secret = rotate(webhook_id)
    add_event()
    pump(client)
    (request,) = receiver.requests("/hook")
    # Signed with the new secret alone: the previous one is unreadable too.
    assert len(signatures(request)) == 1
    assert verified(request, new_secret)


def test_a_host_resolving_to_loopback_is_refused_at_connect(
    env: Env, receiver: WebhookReceiver
) -> None:
    # Created while allowed (as a name that resolved publicly would be), sent while not.
    webhook_id, _ = create_endpoint(receiver.url(host="localhost"))
    env["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "false"
    add_event()
    with new_transport(get_settings()) as strict:
        pump(strict)
    assert receiver.requests() == []
    log = deliveries(webhook_id)
    assert log
    assert {d.error for d in log} == {"address not allowed"}
    assert {d.response_status for d in log} == {None}


def test_no_more_than_max_in_flight_requests_are_open_to_one_endpoint(
    env: Env, receiver: WebhookReceiver
) -> None:
    env["POCHTA_WEBHOOK_MAX_IN_FLIGHT"] = "2"
    webhook_id, _ = create_endpoint(receiver.url())
    for _ in range(5):
        add_event()
    now = utcnow()
    with db.session_scope() as session:
        pending.fan_out(session, now=now, limit=500)
        due = pending.take_due(
            session, now=now, until=now + timedelta(seconds=60), limit=500, max_in_flight=2
        )
    assert len(due) == 2, "the scheduler hands over only the free slots"
    taken = []
    for pending_id in due:
        with db.session_scope() as session:
            taken.append(
                claims.claim(
                    session,
                    pending_id=pending_id,
                    now=now,
                    lease_until=now + timedelta(seconds=60),
                    max_in_flight=2,
                    busy_until=now + timedelta(seconds=1),
                )
            )
    assert all(isinstance(c, claims.Claimed) for c in taken)
    with db.session_scope() as session:
        others = session.scalars(
            select(PendingDelivery.id).where(PendingDelivery.id.not_in(due))
        ).all()
        assert (
            pending.take_due(
                session, now=now, until=now + timedelta(seconds=60), limit=500, max_in_flight=2
            )
            == []
        )
        busy = claims.claim(
            session,
            pending_id=others[0],
            now=now,
            lease_until=now + timedelta(seconds=60),
            max_in_flight=2,
            busy_until=now + timedelta(seconds=1),
        )
    assert busy == claims.BUSY
    with db.session_scope() as session:
        row = session.get(PendingDelivery, others[0])
        assert row is not None
        assert row.attempts == 0, "waiting for a slot is no attempt"
    assert deliveries(webhook_id) == []


def test_a_sender_follows_on_to_the_endpoints_next_due_deliveries(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    from app.webhooks.sending import Sent

    webhook_id, _ = create_endpoint(receiver.url())
    events = [add_event() for _ in range(5)]
    now = utcnow()
    with db.session_scope() as session:
        pending.fan_out(session, now=now, limit=500)
        first = session.scalars(select(PendingDelivery.id).order_by(PendingDelivery.id)).first()
    assert first is not None
    counted: list[Sent] = []
    # No scheduler hands the other four over: the one task takes them in turn.
    assert deliver_from(first, client, on_sent=counted.append) == 5
    assert sorted(r.headers["webhook-id"] for r in receiver.requests()) == sorted(events)
    assert all(sent.succeeded for sent in counted)
    assert len(deliveries(webhook_id)) == 5


def test_each_request_waits_for_its_turn_first(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    create_endpoint(receiver.url())
    for _ in range(3):
        add_event()
    with db.session_scope() as session:
        pending.fan_out(session, now=utcnow(), limit=500)
        first = session.scalars(select(PendingDelivery.id).order_by(PendingDelivery.id)).first()
    assert first is not None
    heard_before_turn: list[int] = []

    def turn() -> None:
        heard_before_turn.append(len(receiver.requests()))

    assert deliver_from(first, client, on_sent=lambda _: None, pace=turn) == 3
    assert heard_before_turn == [0, 1, 2], "one turn before each request, none after"


def _claim_batch(pending_id: int, now: datetime, batch: int) -> claims.Claimed | str | None:
    with db.session_scope() as session:
        return claims.claim(
            session,
            pending_id=pending_id,
            now=now,
            lease_until=now + timedelta(seconds=60),
            max_in_flight=2,
            busy_until=now + timedelta(seconds=1),
            batch=batch,
        )


def test_a_claim_takes_a_batch_under_one_lease_and_holds_one_slot(
    env: Env, receiver: WebhookReceiver
) -> None:
    env["POCHTA_WEBHOOK_MAX_IN_FLIGHT"] = "2"
    create_endpoint(receiver.url())
    for _ in range(12):
        add_event()
    now = utcnow()
    with db.session_scope() as session:
        pending.fan_out(session, now=now, limit=500)
        ids = list(session.scalars(select(PendingDelivery.id).order_by(PendingDelivery.id)))
    first = _claim_batch(ids[0], now, batch=5)
    assert isinstance(first, claims.Claimed)
    assert [owed.pending_id for owed in first.owed] == ids[:5]
    assert {owed.attempt for owed in first.owed} == {1}
    with db.session_scope() as session:
        # One claim is one request open at a time: one slot of two, whatever its size.
        assert (
            len(
                pending.take_due(
                    session, now=now, until=now + timedelta(seconds=60), limit=500, max_in_flight=2
                )
            )
            == 1
        )
        session.rollback()
    second = _claim_batch(ids[5], now, batch=5)
    assert isinstance(second, claims.Claimed)
    assert second.owed[0].pending_id == ids[5]
    assert second.lease_until != first.lease_until, "two claims never share a lease"
    assert _claim_batch(ids[10], now, batch=5) == claims.BUSY


def test_a_failure_ends_a_batch_and_what_it_did_not_send_is_given_back(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    from app.webhooks.sending import Sent

    receiver.script("/hook", 200, 500)
    webhook_id, _ = create_endpoint(receiver.url())
    events = [add_event() for _ in range(5)]
    with db.session_scope() as session:
        pending.fan_out(session, now=utcnow(), limit=500)
        first = session.scalars(select(PendingDelivery.id).order_by(PendingDelivery.id)).first()
    assert first is not None
    counted: list[Sent] = []
    assert deliver_from(first, client, on_sent=counted.append) == 2
    assert [sent.succeeded for sent in counted] == [True, False]
    log = deliveries(webhook_id)
    assert [(d.status, d.response_status) for d in log] == [
        (DeliveryStatus.succeeded, 200),
        (DeliveryStatus.failed, 500),
    ]
    with db.session_scope() as session:
        left = session.scalars(select(PendingDelivery).order_by(PendingDelivery.id)).all()
        # The failed one waits for its retry; the three never sent are due, uncounted.
        assert [(row.attempts, row.leased_until) for row in left[1:]] == [(0, None)] * 3
        assert left[0].attempts == 1
    pump(client)
    delivered = {d.event_pk for d in deliveries(webhook_id) if d.status is DeliveryStatus.succeeded}
    assert delivered == set(events)


def test_a_sender_that_dies_mid_batch_loses_nothing(
    receiver: WebhookReceiver, client: httpx.BaseTransport
) -> None:
    _, secret = create_endpoint(receiver.url())
    events = [add_event() for _ in range(3)]
    long_ago = utcnow() - timedelta(minutes=10)
    with db.session_scope() as session:
        pending.fan_out(session, now=long_ago, limit=500)
        first = session.scalars(select(PendingDelivery.id).order_by(PendingDelivery.id)).first()
    assert first is not None
    # Claimed, then the worker died before recording anything: its lease has run out.
    claimed = _claim_batch(first, long_ago, batch=3)
    assert isinstance(claimed, claims.Claimed)
    assert len(claimed.owed) == 3
    pump(client)
    requests = receiver.requests("/hook")
    assert sorted(r.headers["webhook-id"] for r in requests) == sorted(events)
    assert {verified(r, secret)["id"] for r in requests} == set(events)
