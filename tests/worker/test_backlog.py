"""A task's ids are a hint: a backlog of one-id tasks is drained in batches, on both backends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app import db
from app.clock import utcnow
from app.messages import service
from app.messages.repository import queue
from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.checks import statuses
from tests.support.flow import CALLER, fetch, submit
from worker import shutdown
from worker.delivery_loop import BATCH, deliver_messages


@pytest.fixture(autouse=True)
def _no_stop_request() -> Iterator[None]:
    shutdown.reset()
    yield
    shutdown.reset()


def test_a_backlog_of_one_id_tasks_is_sent_by_a_few_tasks_that_each_claim_a_batch(
    relay: ScriptedRelay,
) -> None:
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(2 * BATCH + 20)]
    # One task per message, as single POSTs ring while the workers are down.
    claimed_per_task = [deliver_messages([message_id]) for message_id in ids]
    assert [len(claimed) for claimed in claimed_per_task[:3]] == [BATCH, BATCH, 20]
    assert not any(claimed_per_task[3:]), "their ids were taken, nothing else due: no-ops"
    assert set(statuses(ids).values()) == {"sent"}
    sent_to = Counter(rcpt for message in relay.messages for rcpt in message.rcpt_tos)
    assert sent_to == Counter(f"r{i}@example.org" for i in range(len(ids))), "each once"


def test_a_task_claims_its_own_ids_first_then_the_oldest_queued(relay: ScriptedRelay) -> None:
    backlog = [submit(to=[f"r{i}@example.org"]) for i in range(BATCH + 10)]
    newest = backlog[-1]
    claimed = deliver_messages([newest])
    assert len(claimed) == BATCH
    assert newest in claimed
    assert set(claimed) - {newest} == set(backlog[: BATCH - 1]), "then oldest first"


def test_a_batch_never_takes_what_is_not_due(relay: ScriptedRelay) -> None:
    relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted")
    deferred = submit(to=["grey@example.org"])
    deliver_messages([deferred])
    later = (utcnow() + timedelta(hours=1)).isoformat()
    scheduled = submit(to=["later@example.org"], send_at=later)
    canceled = submit(to=["canceled@example.org"])
    with db.session_scope() as session:
        service.cancel_message(session, caller=CALLER, message_id=canceled, now=utcnow())
    queued = submit(to=["now@example.org"])
    assert deliver_messages([queued]) == [queued]
    assert statuses([deferred, scheduled, canceled, queued]) == {
        deferred: "deferred",
        scheduled: "scheduled",
        canceled: "canceled",
        queued: "sent",
    }
    assert [m.rcpt_tos for m in relay.messages] == [["now@example.org"]]
    assert fetch(deferred).attempt_count == 1


def test_a_stopping_worker_claims_only_its_own_ids(relay: ScriptedRelay) -> None:
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(5)]
    shutdown.request_stop()
    assert deliver_messages([ids[0]]) == [ids[0]], "claimed, and handed back"
    assert set(statuses(ids).values()) == {"queued"}
    assert relay.messages == []


@pytest.mark.parametrize("backend", ["postgres"])
def test_two_claims_on_postgresql_take_disjoint_batches_without_waiting(env: Env) -> None:
    ids = {submit(to=[f"r{i}@example.org"]) for i in range(BATCH + 30)}
    now, lease_until = utcnow(), utcnow() + timedelta(minutes=5)
    first, second = db.new_session(), db.new_session()
    try:
        taken_first = queue.claim(
            first, message_ids=[], now=now, lease_until=lease_until, batch=BATCH
        )
        # The first has not committed: its rows are locked, and skipped, not waited for.
        taken_second = queue.claim(
            second, message_ids=[], now=now, lease_until=lease_until, batch=BATCH
        )
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    first_ids, second_ids = {m.id for m in taken_first}, {m.id for m in taken_second}
    assert (len(first_ids), len(second_ids)) == (BATCH, 30)
    assert first_ids.isdisjoint(second_ids)
    assert first_ids | second_ids == ids


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_claim_on_postgresql_leaves_no_row_locked_for_the_task_that_carries_it(
    env: Env,
) -> None:
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(2 * BATCH)]
    older, newer = ids[:BATCH], ids[BATCH:]
    now, lease_until = utcnow(), utcnow() + timedelta(minutes=5)
    first, second = db.new_session(), db.new_session()
    try:
        # A full task of its own ids locks nothing else, not the oldest queued ones...
        taken_first = queue.claim(
            first, message_ids=newer, now=now, lease_until=lease_until, batch=BATCH
        )
        # ...so the task that carries them, at the same moment, gets every one.
        taken_second = queue.claim(
            second, message_ids=older, now=now, lease_until=lease_until, batch=BATCH
        )
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    assert sorted(m.id for m in taken_first) == sorted(newer)
    assert sorted(m.id for m in taken_second) == sorted(older)
    assert set(statuses(ids).values()) == {"sending"}
