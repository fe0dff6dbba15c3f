"""A pooled connection the relay has closed (SPEC §3), on both backends.

Relays close connections Pochta still holds: after N messages, on reload, after their own
idle timeout. The next message must not pay a backoff, nor a permanent failure, for that.
"""

from __future__ import annotations

from typing import Any

import pytest

import worker.smtp.pool as pool_module
from harness.relay import ScriptedRelay
from tests.support.flow import fetch, run_until_final, submit
from worker.delivery_loop import deliver_messages


def verbs(relay: ScriptedRelay) -> list[str]:
    return [line.split()[0].upper() for _, line in relay.commands]


@pytest.fixture
def reused_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool hands back its connection without an RSET, however slow this machine is."""
    monkeypatch.setattr(pool_module, "CHECK_AFTER_IDLE_SECONDS", 60.0)


def test_a_connection_closed_after_a_message_is_reopened_within_the_attempt(
    relay: ScriptedRelay,
) -> None:
    relay.close_after_messages = 1
    first, second = submit(to=["a@example.org"]), submit(to=["b@example.org"])
    deliver_messages([first, second])
    for message_id in (first, second):
        message = fetch(message_id)
        assert (message.status, message.attempt_count, len(message.attempts)) == ("sent", 1, 1)
    assert [m.rcpt_tos for m in relay.messages] == [["a@example.org"], ["b@example.org"]]
    assert relay.connections == 2
    # The dead socket cost a new connection, not a check of every live one.
    assert verbs(relay) == ["EHLO", "MAIL", "RCPT", "DATA"] * 2


def test_a_421_to_the_first_mail_on_a_reused_connection_is_reopened_too(
    relay: ScriptedRelay,
) -> None:
    # Exim's smtp_accept_max_per_connection: 421 to the next MAIL, then it hangs up.
    relay.fail_command("MAIL", "421 4.7.0 Too many messages for this connection", after=1)
    first, second = submit(), submit()
    deliver_messages([first, second])
    message = fetch(second)
    assert (message.status, message.attempt_count, len(message.attempts)) == ("sent", 1, 1)
    assert message.attempts[0].smtp_code == 250
    assert len(relay.messages) == 2
    assert relay.connections == 2


def test_a_fresh_connection_that_fails_is_a_real_deferral(
    relay: ScriptedRelay, reused_as_is: None
) -> None:
    relay.close_after_messages = 1
    deliver_messages([submit()])
    relay.fail_command("MAIL", "421 4.3.0 Shutting down")
    message_id = submit()
    deliver_messages([message_id])
    message = fetch(message_id)
    assert (message.status, message.attempt_count) == ("deferred", 1)
    assert (message.attempts[0].stage, message.attempts[0].smtp_code) == ("mail", 421)
    assert relay.connections == 2, "reopened once, not again"
    assert run_until_final(message_id).status == "sent"


def test_a_relay_down_after_dropping_the_connection_defers_at_connect(
    relay: ScriptedRelay, reused_as_is: None
) -> None:
    deliver_messages([submit()])
    relay.script_connect("421 4.3.2 Too busy, come back later")
    relay.reload()
    message_id = submit()
    deliver_messages([message_id])
    message = fetch(message_id)
    assert message.status == "deferred"
    assert (message.attempts[0].stage, message.attempts[0].smtp_code) == ("connect", 421)
    assert relay.connections == 2


# Per need: the relay before its reload, after it, and a message that needs it.
Settings = dict[str, Any]
NEEDS: dict[str, tuple[Settings, Settings, Settings]] = {
    "smtputf8": ({"smtputf8": False}, {"smtputf8": True}, {"to": ["пользователь@пример.рф"]}),
    "size": ({"size": 2000}, {"size": None}, {"text": "x" * 5000}),
}


@pytest.mark.parametrize("need", NEEDS)
def test_a_reloaded_relay_is_judged_by_its_new_ehlo_not_the_dead_connections(
    relay: ScriptedRelay, reused_as_is: None, need: str
) -> None:
    before, after, fields = NEEDS[need]
    relay.reload(**before)
    deliver_messages([submit()])
    relay.reload(**after)
    message_id = submit(**fields)
    deliver_messages([message_id])
    message = fetch(message_id)
    assert (message.status, message.attempt_count, len(message.attempts)) == ("sent", 1, 1)
    assert len(relay.messages) == 2
    assert relay.connections == 2


@pytest.mark.parametrize("need", NEEDS)
def test_a_live_connection_is_checked_before_a_permanent_refusal(
    relay: ScriptedRelay, reused_as_is: None, need: str
) -> None:
    before, _, fields = NEEDS[need]
    relay.reload(**before)
    deliver_messages([submit()])
    message_id = submit(**fields)
    deliver_messages([message_id])
    message = fetch(message_id)
    assert message.status == "failed"
    (recipient,) = message.recipients
    assert recipient.enhanced_code == ("5.6.7" if need == "smtputf8" else "5.3.4")
    # The connection answered RSET, so what it announced still holds: refused on it.
    assert verbs(relay)[-1] == "RSET"
    assert relay.connections == 1
    assert len(relay.messages) == 1
