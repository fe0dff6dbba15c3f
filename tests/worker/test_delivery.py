"""Delivery to a scripted relay, on both backends: each recipient's fate, exactly recorded."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import event, select

from app import db
from app.messages.models import Message
from app.outbox.publisher import CHUNK
from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.checks import statuses
from tests.support.flow import fetch, run_until_final, submit
from worker.delivery_loop import deliver_messages


def test_greylisted_then_accepted_ends_sent_after_two_attempts(relay: ScriptedRelay) -> None:
    relay.script_rcpt("billy@example.org", "451 4.7.1 Greylisted, try later")
    message = run_until_final(submit(to=["billy@example.org"]))
    assert message.status == "sent"
    assert message.attempt_count >= 2
    first = message.attempts[0]
    assert (first.outcome, first.stage, first.smtp_code, first.enhanced_code, first.smtp_reply) == (
        "deferred",
        "rcpt",
        451,
        "4.7.1",
        "Greylisted, try later",
    )
    assert message.attempts[-1].outcome == "sent"
    (recipient,) = message.recipients
    assert (recipient.status, recipient.smtp_code, recipient.attempts) == ("sent", 250, 2)
    assert len(relay.messages) == 1


def test_a_deferred_message_waits_for_its_backoff(relay: ScriptedRelay, env: Env) -> None:
    env["POCHTA_RETRY_BASE_SECONDS"] = "30"
    env["POCHTA_RETRY_MAX_SECONDS"] = "60"
    relay.script_rcpt("billy@example.org", "451 4.7.1 Greylisted, try later")
    message_id = submit(to=["billy@example.org"])
    deliver_messages([message_id])
    deferred = fetch(message_id)
    assert deferred.status == "deferred"
    assert deferred.next_attempt_at is not None
    wait = (deferred.next_attempt_at - deferred.updated_at).total_seconds()
    assert 27 <= wait <= 60
    assert deliver_messages([message_id]) == [], "not due yet: a repeated task is a no-op"


def test_permanent_rejection_fails_at_once_with_the_exact_reply(relay: ScriptedRelay) -> None:
    relay.script_rcpt("nobody@example.org", "550 5.1.1 <nobody@example.org>: No such user here")
    message = run_until_final(submit(to=["nobody@example.org"]))
    assert message.status == "failed"
    assert message.attempt_count == 1
    (recipient,) = message.recipients
    assert recipient.smtp_code == 550
    assert recipient.enhanced_code == "5.1.1"
    assert recipient.smtp_reply == "<nobody@example.org>: No such user here"
    assert relay.messages == []


def test_a_reply_with_a_nul_byte_is_recorded_with_a_replacement_character(
    relay: ScriptedRelay, env: Env
) -> None:
    # No PostgreSQL text holds NUL: stored as sent, it failed the group's recording on
    # every retry, and the message never left `sending`.
    env["POCHTA_TRANSCRIPTS"] = "all"
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such\x00user")
    message = run_until_final(submit(to=["nobody@example.org"]))
    assert message.status == "failed"
    (recipient,) = message.recipients
    assert recipient.smtp_reply == "No such\ufffduser"
    (attempt,) = message.attempts
    assert attempt.smtp_reply == "No such\ufffduser"
    assert attempt.transcript is not None
    assert "550 5.1.1 No such\ufffduser" in [line.line for line in attempt.transcript]


def test_one_accepted_one_rejected_is_partially_sent_with_one_copy(relay: ScriptedRelay) -> None:
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user")
    message = run_until_final(submit(to=["ok@example.org", "nobody@example.org"]))
    assert message.status == "partially_sent"
    assert {r.email: r.status for r in message.recipients} == {
        "ok@example.org": "sent",
        "nobody@example.org": "failed",
    }
    assert message.attempts[0].outcome == "mixed"
    assert [m.rcpt_tos for m in relay.messages] == [["ok@example.org"]]


def test_only_open_recipients_are_tried_again(relay: ScriptedRelay) -> None:
    relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted", "451 4.7.1 Greylisted")
    message = run_until_final(submit(to=["ok@example.org", "grey@example.org"]))
    assert message.status == "sent"
    assert [m.rcpt_tos for m in relay.messages] == [["ok@example.org"], ["grey@example.org"]]


def test_retries_exhausted_fail_with_the_last_reply(relay: ScriptedRelay, env: Env) -> None:
    env["POCHTA_RETRY_MAX_ATTEMPTS"] = "3"
    relay.script_rcpt("full@example.org", *["452 4.2.2 Mailbox full"] * 3)
    message = run_until_final(submit(to=["full@example.org"]))
    assert message.status == "failed"
    assert message.attempt_count == 3
    (recipient,) = message.recipients
    assert (recipient.status, recipient.smtp_code, recipient.smtp_reply) == (
        "failed",
        452,
        "Mailbox full",
    )


def test_rejected_data_applies_to_the_accepted_recipients(relay: ScriptedRelay) -> None:
    relay.script_data("554 5.6.0 Content rejected")
    message = run_until_final(submit(to=["a@example.org", "b@example.org"]))
    assert message.status == "failed"
    assert {r.smtp_reply for r in message.recipients} == {"Content rejected"}
    assert message.attempts[0].stage == "data"


def test_relay_down_then_up_ends_sent(relay: ScriptedRelay) -> None:
    relay.stop()
    message_id = submit()
    deliver_messages([message_id])
    down = fetch(message_id)
    assert down.status == "deferred"
    assert down.attempts[0].stage == "connect"
    assert down.attempts[0].error is not None
    assert "refused" in down.attempts[0].error.lower()
    relay.start()
    message = run_until_final(message_id)
    assert message.status == "sent"
    assert len(relay.messages) == 1


def test_what_arrives_is_what_was_built(relay: ScriptedRelay) -> None:
    message_id = submit(
        **{"from": "Вася Пупкин <vasiapupkin@ya.ru>"},
        to=["billy@example.org"],
        bcc=["secret@example.org"],
        envelope_from="bounces@ya.ru",
        subject="Привет",
        text=".leading dot\n..two dots\n.\nend",
    )
    run_until_final(message_id)
    (received,) = relay.messages
    assert received.mail_from == "bounces@ya.ru"
    assert sorted(received.rcpt_tos) == ["billy@example.org", "secret@example.org"]
    assert b"secret@example.org" not in received.data
    parsed = message_from_bytes(received.data, policy=policy.default)
    assert str(parsed["From"]) == "Вася Пупкин <vasiapupkin@ya.ru>"
    assert str(parsed["Subject"]) == "Привет"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == ".leading dot\n..two dots\n.\nend\n"
    from app import db
    from app.messages.repository import api as repository

    with db.session_scope() as session:
        raw = repository.get_raw(session, tenant="acme", message_id=message_id)
    assert received.data == raw


def test_a_canceled_message_is_never_delivered(relay: ScriptedRelay) -> None:
    from app import db
    from app.clock import utcnow
    from app.messages.repository import api as repository

    message_id = submit()
    with db.session_scope() as session:
        assert repository.cancel(session, tenant="acme", message_id=message_id, now=utcnow())
    assert deliver_messages([message_id]) == []
    assert fetch(message_id).status == "canceled"
    assert relay.connections == 0


@pytest.fixture
def one_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's outcomes wait for the end of the task, however slow the machine is."""
    monkeypatch.setattr("worker.recording.FLUSH_AFTER", timedelta(minutes=1))


class Statements:
    """Counts what the worker sends the database: statements and commits."""

    def __init__(self) -> None:
        self.executed = 0
        self.commits = 0

    def __enter__(self) -> Statements:
        engine = db.get_engine()
        event.listen(engine, "before_cursor_execute", self._executed)
        event.listen(engine, "commit", self._committed)
        return self

    def __exit__(self, *_: object) -> None:
        engine = db.get_engine()
        event.remove(engine, "before_cursor_execute", self._executed)
        event.remove(engine, "commit", self._committed)

    def _executed(self, *_: object) -> None:
        self.executed += 1

    def _committed(self, *_: object) -> None:
        self.commits += 1


@pytest.mark.usefixtures("one_group")
def test_a_task_records_every_outcome_of_its_messages_at_once(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The relays' shared state is read once a second and a session counted once per
    # connection (worker/relays.py): done here first, so only the messages' own count.
    monkeypatch.setattr("worker.relays.STATE_TTL_SECONDS", 3600.0)
    deliver_messages([submit(to=["warm@example.org"])])
    relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted")
    relay.script_rcpt("nobody@example.org", *["550 5.1.1 No such user"] * 2)
    ids = {
        "sent": submit(to=["a@example.org", "b@example.org"]),
        "deferred": submit(to=["grey@example.org"]),
        "failed": submit(to=["nobody@example.org"]),
        "partially_sent": submit(to=["ok@example.org", "nobody@example.org"]),
    }
    with Statements() as counted:
        assert sorted(deliver_messages(list(ids.values()))) == sorted(ids.values())
    assert counted.commits == 2, "claim and load, then every outcome in one transaction"
    messages = {expected: fetch(message_id) for expected, message_id in ids.items()}
    assert {expected: m.status for expected, m in messages.items()} == {s: s for s in ids}
    assert all(m.attempt_count == 1 and len(m.attempts) == 1 for m in messages.values())
    assert [(r.status, r.smtp_code, r.attempts) for r in messages["sent"].recipients] == [
        ("sent", 250, 1),
        ("sent", 250, 1),
    ]
    deferred = messages["deferred"]
    assert deferred.next_attempt_at is not None
    assert (deferred.attempts[0].outcome, deferred.attempts[0].smtp_code) == ("deferred", 451)
    (failed,) = messages["failed"].recipients
    assert (failed.status, failed.enhanced_code, failed.smtp_reply) == (
        "failed",
        "5.1.1",
        "No such user",
    )
    mixed = messages["partially_sent"]
    assert {r.email: r.status for r in mixed.recipients} == {
        "ok@example.org": "sent",
        "nobody@example.org": "failed",
    }
    assert (mixed.attempts[0].outcome, mixed.attempts[0].stage) == ("mixed", "rcpt")
    assert all(m.next_attempt_at is None for k, m in messages.items() if k != "deferred")
    with db.session_scope() as session:
        leases = session.scalars(
            select(Message.lease_expires_at).where(Message.id.in_(ids.values()))
        )
        assert set(leases) == {None}


@pytest.mark.usefixtures("one_group")
def test_the_statements_of_a_task_do_not_grow_with_its_messages(
    relay: ScriptedRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.relays.STATE_TTL_SECONDS", 3600.0)
    deliver_messages([submit(to=["warm@example.org"])])

    def statements_for(count: int) -> int:
        ids = [submit(to=[f"r{i}@example.org", f"s{i}@example.org"]) for i in range(count)]
        with Statements() as counted:
            deliver_messages(ids)
        assert set(statuses(ids).values()) == {"sent"}
        return counted.executed

    assert statements_for(1) == statements_for(CHUNK), "no statement per message"
