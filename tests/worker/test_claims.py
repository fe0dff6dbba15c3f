"""A task's hold on its messages, in-process on both backends: stop, hand back, never twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from app import db
from app.clock import utcnow
from app.messages.models import Message
from app.messages.repository import queue, recording
from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.checks import statuses
from tests.support.flow import fetch, submit
from worker import shutdown
from worker.delivery import deliver as real_deliver
from worker.delivery_loop import deliver_messages


@pytest.fixture(autouse=True)
def _no_stop_request() -> Iterator[None]:
    shutdown.reset()
    yield
    shutdown.reset()


@pytest.fixture
def one_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's outcomes wait for the end of the task, however slow the machine is."""
    monkeypatch.setattr("worker.recording.FLUSH_AFTER", timedelta(minutes=1))


def row(message_id: str) -> Message:
    with db.session_scope() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def steal(message_id: str) -> None:
    """Another task claims the message, as it may once the lease ran out."""
    now = utcnow()
    with db.session_scope() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(lease_expires_at=now - timedelta(seconds=1))
        )
        (taken,) = queue.claim(
            session, message_ids=[message_id], now=now, lease_until=now + timedelta(minutes=5)
        )
        assert taken.id == message_id


def deliver_then(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Run action(message) right after the relay answered for each message."""

    def deliver(pool: Any, message: Message, clock: Any, **kwargs: Any) -> Any:
        result = real_deliver(pool, message, clock, **kwargs)
        action(message)
        return result

    monkeypatch.setattr("worker.relays.deliver", deliver)


def test_a_stopping_worker_starts_nothing_and_hands_all_back(relay: ScriptedRelay) -> None:
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(3)]
    shutdown.request_stop()
    assert sorted(deliver_messages(ids)) == sorted(ids)
    assert set(statuses(ids).values()) == {"queued"}
    assert all(row(i).dispatched_until is None and row(i).lease_expires_at is None for i in ids)
    assert relay.messages == []


@pytest.mark.usefixtures("one_group")
def test_a_stop_mid_task_finishes_the_message_in_progress(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(3)]
    deliver_then(monkeypatch, lambda _: shutdown.request_stop())
    deliver_messages(ids)
    after = statuses(ids)
    assert sorted(after.values()) == ["queued", "queued", "sent"], "recorded, then handed back"
    monkeypatch.undo()
    shutdown.reset()
    deliver_messages([i for i, s in after.items() if s == "queued"])
    assert set(statuses(ids).values()) == {"sent"}
    assert len(relay.messages) == 3, "each exactly once"


def test_a_handed_back_retry_stays_deferred(relay: ScriptedRelay) -> None:
    relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted")
    message_id = submit(to=["grey@example.org"])
    deliver_messages([message_id])
    with db.session_scope() as session:
        session.execute(
            update(Message).where(Message.id == message_id).values(next_attempt_at=utcnow())
        )
    shutdown.request_stop()
    deliver_messages([message_id])
    handed_back = fetch(message_id)
    assert (handed_back.status, handed_back.attempt_count) == ("deferred", 1)


def test_a_message_taken_by_another_task_is_not_sent_twice(
    relay: ScriptedRelay, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env["POCHTA_SENDING_LEASE_SECONDS"] = "1"
    first, second = submit(to=["one@example.org"]), submit(to=["two@example.org"])

    def slow_then_lose_the_second(message: Message) -> None:
        if message.id == first:
            time.sleep(1.1)  # the claim's lease on `second` runs out meanwhile
            steal(second)

    deliver_then(monkeypatch, slow_then_lose_the_second)
    deliver_messages([first, second])
    assert [m.rcpt_tos for m in relay.messages] == [["one@example.org"]]
    assert statuses([first, second]) == {first: "sent", second: "sending"}


def test_an_attempt_is_not_recorded_by_a_task_that_lost_the_message(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = submit()
    deliver_then(monkeypatch, lambda message: steal(message.id))
    deliver_messages([message_id])
    taken = fetch(message_id)
    assert (taken.status, taken.attempt_count) == ("sending", 0), "the new holder records it"


@pytest.mark.usefixtures("one_group")
def test_a_message_taken_mid_task_is_not_recorded_while_the_others_are(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(3)]

    def steal_the_second(message: Message) -> None:
        # Sent, its outcome waiting for the group, when another task claims it.
        if message.id == ids[1]:
            steal(message.id)

    deliver_then(monkeypatch, steal_the_second)
    deliver_messages(ids)
    assert len(relay.messages) == 3
    assert statuses(ids) == {ids[0]: "sent", ids[1]: "sending", ids[2]: "sent"}
    taken = fetch(ids[1])
    assert (taken.attempt_count, taken.attempts) == (0, [])
    assert [(r.status, r.attempts) for r in taken.recipients] == [("pending", 0)]
    assert row(ids[1]).lease_expires_at is not None, "the new holder's lease is untouched"
    assert [len(fetch(i).attempts) for i in (ids[0], ids[2])] == [1, 1]


def test_a_slow_relay_has_each_outcome_recorded_before_the_next_message(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay.stall_after_data = 0.06  # each transaction takes longer than FLUSH_AFTER
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(3)]
    seen: list[dict[str, str]] = []
    deliver_then(monkeypatch, lambda _: seen.append(statuses(ids)))
    deliver_messages(ids)
    assert [sorted(s.values()) for s in seen] == [
        ["sending", "sending", "sending"],
        ["sending", "sending", "sent"],
        ["sending", "sent", "sent"],
    ], "at most the message in progress is sent and unrecorded"
    assert set(statuses(ids).values()) == {"sent"}


@pytest.mark.usefixtures("one_group")
def test_outcomes_are_recorded_before_an_error_leaves_the_task(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(3)]

    def fail_at_the_third(message: Message) -> None:
        if message.id == ids[2]:
            raise RuntimeError("a bug after the relay answered")

    deliver_then(monkeypatch, fail_at_the_third)
    with pytest.raises(RuntimeError):
        deliver_messages(ids)
    assert statuses(ids) == {ids[0]: "sent", ids[1]: "sent", ids[2]: "sending"}


def test_recording_waits_for_a_database_that_went_away(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    add_attempts = recording.add_attempts

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE messages", {}, ConnectionError("server closed"))
        return add_attempts(*args, **kwargs)

    monkeypatch.setattr(recording, "add_attempts", flaky)
    message_id = submit()
    deliver_messages([message_id])
    recorded = fetch(message_id)
    assert (recorded.status, recorded.attempt_count, len(calls)) == ("sent", 1, 2)
    assert len(relay.messages) == 1


@pytest.mark.parametrize("backend", ["postgres"])
def test_two_schedulers_on_postgresql_split_the_due_messages(env: Env) -> None:
    ids = {submit(to=[f"r{i}@example.org"]) for i in range(10)}
    now = utcnow()
    with db.session_scope() as session:
        session.execute(update(Message).values(dispatched_until=None))
    first, second = db.new_session(), db.new_session()
    try:
        taken_first = queue.take_due(session=first, now=now, until=now, limit=4)
        # The first has not committed: its rows are locked, and skipped, not waited for.
        taken_second = queue.take_due(session=second, now=now, until=now, limit=100)
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    assert len(taken_first) == 4
    assert set(taken_first).isdisjoint(taken_second)
    assert set(taken_first) | set(taken_second) == ids


@pytest.mark.parametrize("backend", ["sqlite"])
def test_two_schedulers_on_sqlite_take_turns(env: Env) -> None:
    ids = {submit(to=[f"r{i}@example.org"]) for i in range(10)}
    with db.session_scope() as session:
        session.execute(update(Message).values(dispatched_until=None))
    until = utcnow() + timedelta(minutes=2)
    taken: dict[str, list[str]] = {}
    first_has_taken, first_may_commit = threading.Event(), threading.Event()

    def scheduler(name: str) -> None:
        with db.session_scope() as session:
            taken[name] = queue.take_due(session, now=utcnow(), until=until, limit=100)
            if name == "first":
                first_has_taken.set()
                first_may_commit.wait(5)

    first = threading.Thread(target=scheduler, args=("first",))
    first.start()
    assert first_has_taken.wait(5)
    second = threading.Thread(target=scheduler, args=("second",))
    second.start()
    time.sleep(0.3)
    assert "second" not in taken, "BEGIN IMMEDIATE makes the second wait for the first"
    first_may_commit.set()
    first.join(5)
    second.join(5)
    assert set(taken["first"]) == ids
    assert taken["second"] == [], "then finds everything handed over already"
    with db.session_scope() as session:
        assert all(session.scalars(select(Message.dispatched_until)))
