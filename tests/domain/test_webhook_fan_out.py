"""The webhook fan-out on each backend: which endpoints an event is owed to, and how many
events one call takes."""

from __future__ import annotations

from sqlalchemy import select, update

from app import db
from app.clock import utcnow
from app.config import get_settings
from app.events.models import EventToFanOut
from app.events.types import EventType
from app.keys.service import Caller
from app.webhooks import pending, service
from app.webhooks.models import PendingDelivery, Webhook, WebhookStatus
from app.webhooks.schemas import WebhookCreate
from tests.conftest import Env
from tests.support.webhooks import add_event

ACME = Caller(key_id="key_acme", tenant="acme")
GLOBEX = Caller(key_id="key_globex", tenant="globex")


def endpoint(caller: Caller, events: list[EventType] | None = None) -> str:
    with db.session_scope() as session:
        return service.create_webhook(
            session,
            caller=caller,
            create=WebhookCreate(url="https://1.1.1.1/hook", events=events or []),
            settings=get_settings(),
            now=utcnow(),
        ).webhook.id


def owed() -> set[tuple[str, str]]:
    with db.session_scope() as session:
        rows = session.execute(select(PendingDelivery.webhook_pk, PendingDelivery.event_pk))
        return {(webhook_id, event_id) for webhook_id, event_id in rows}


def fan_out(limit: int) -> int:
    with db.session_scope() as session:
        return pending.fan_out(session, now=utcnow(), limit=limit)


def test_an_event_is_owed_to_each_enabled_endpoint_of_its_tenant_that_takes_its_type(
    env: Env,
) -> None:
    every = endpoint(ACME)
    failed_only = endpoint(ACME, [EventType.message_failed])
    sent_or_failed = endpoint(ACME, [EventType.message_sent, EventType.message_failed])
    disabled = endpoint(ACME)
    other_tenant = endpoint(GLOBEX)
    with db.session_scope() as session:
        session.execute(
            update(Webhook).where(Webhook.id == disabled).values(status=WebhookStatus.disabled)
        )
    sent = add_event(EventType.message_sent)
    failed = add_event(EventType.message_failed)
    canceled = add_event(EventType.message_canceled)
    globex_sent = add_event(EventType.message_sent, tenant="globex")

    assert fan_out(limit=500) == 4
    assert owed() == {
        (every, sent),
        (every, failed),
        (every, canceled),
        (failed_only, failed),
        (sent_or_failed, sent),
        (sent_or_failed, failed),
        (other_tenant, globex_sent),
    }
    assert fan_out(limit=500) == 0, "every event was struck off the list"


def test_one_call_takes_at_most_limit_events_in_id_order(env: Env) -> None:
    every = endpoint(ACME)
    events = [add_event() for _ in range(5)]
    nobodys = add_event(tenant="initech")
    # Ids made in one millisecond are in random order: the list is taken in id order.
    first_two = sorted([*events, nobodys])[:2]

    assert fan_out(limit=2) == 2
    assert owed() == {(every, event) for event in first_two if event != nobodys}
    assert fan_out(limit=10) == 4
    assert owed() == {(every, event) for event in events}, "nobody is owed initech's"
    with db.session_scope() as session:
        assert session.scalars(select(EventToFanOut.event_pk)).all() == []
