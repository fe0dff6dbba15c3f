"""Events older than POCHTA_EVENT_RETENTION_DAYS are deleted by the scheduler, in batches."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from app import db
from app.clock import utcnow
from app.events.models import Event
from app.events.retention import purge_old_events
from app.events.types import EventType
from app.events.writer import add_events, event_row
from app.outbox import scheduler
from tests.conftest import Env
from tests.support.checks import wait_until


def store(ages_in_days: list[float]) -> list[str]:
    now = utcnow()
    rows = [
        event_row(
            type=EventType.message_sent,
            tenant="acme",
            message_id=None,
            data={},
            at=now - timedelta(days=age),
        )
        for age in ages_in_days
    ]
    with db.session_scope() as session:
        add_events(session, rows)
    return [row["id"] for row in rows]


def kept() -> set[str]:
    with db.session_scope() as session:
        return set(session.scalars(select(Event.id)))


def test_events_past_retention_are_deleted_in_batches_and_the_rest_kept(env: Env) -> None:
    env["POCHTA_EVENT_RETENTION_DAYS"] = "7"
    store([7.01, 8, 30, 31, 365])
    recent = store([0, 1, 6.99])
    assert purge_old_events(batch=2) == 5
    assert kept() == set(recent)
    assert purge_old_events(batch=2) == 0


def test_the_scheduler_purges_them(env: Env) -> None:
    store([31, 40])
    (recent,) = store([1])
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: kept() == {recent}, timeout=10, describe=lambda: f"{kept()}")
    finally:
        stop.set()
        thread.join(timeout=10)
