"""The recorder writes each attempt's event in the transaction of its change: both or neither."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app import db
from app.events.models import Event
from app.messages.models import Attempt
from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.checks import statuses
from tests.support.flow import fetch, run_until_final, submit
from worker.delivery_loop import deliver_messages

# PostgreSQL: a trigger run at COMMIT, so the commit itself fails, after every statement
# of the group went through. SQLite has no deferred triggers: there the events' insert,
# the group's last statement, fails, after the messages' and recipients' updates.
_REFUSE = {
    "postgres": [
        "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'events refused'; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_events AFTER INSERT ON events "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_events()",
    ],
    "sqlite": [
        "CREATE TRIGGER refuse_events BEFORE INSERT ON events "
        "BEGIN SELECT RAISE(ABORT, 'events refused'); END",
    ],
}
_ALLOW = {
    "postgres": ["DROP TRIGGER refuse_events ON events", "DROP FUNCTION refuse_events()"],
    "sqlite": ["DROP TRIGGER refuse_events"],
}


@contextmanager
def events_refused(backend: str) -> Iterator[None]:
    with db.session_scope() as session:
        for statement in _REFUSE[backend]:
            session.execute(text(statement))
    try:
        yield
    finally:
        with db.session_scope() as session:
            for statement in _ALLOW[backend]:
                session.execute(text(statement))


def count(model: type[Event] | type[Attempt]) -> int:
    with db.session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_group_whose_commit_fails_leaves_neither_its_changes_nor_their_events(
    relay: ScriptedRelay, env: Env, backend: str
) -> None:
    env["POCHTA_SENDING_LEASE_SECONDS"] = "0.5"
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(3)]
    with events_refused(backend), pytest.raises(DBAPIError, match="events refused"):
        deliver_messages(ids)
    assert len(relay.messages) == 3, "the relay took them"
    assert set(statuses(ids).values()) == {"sending"}, "no status changed"
    assert (count(Attempt), count(Event)) == (0, 0)
    assert {r.status for i in ids for r in fetch(i).recipients} == {"pending"}

    # Once the lease runs out they are sent again, and recorded with their events.
    for message_id in ids:
        assert run_until_final(message_id).status == "sent"
    assert (count(Attempt), count(Event)) == (3, 3)
