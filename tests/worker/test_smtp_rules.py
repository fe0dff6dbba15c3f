"""The relay session's rules (SPEC §3, RFC 5321) against scripted relays."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from harness.relay import ScriptedRelay, make_tls_contexts
from tests.conftest import Env
from tests.support.flow import fetch, run_until_final, submit
from worker.delivery_loop import deliver_messages
from worker.smtp.pool import CHECK_AFTER_IDLE_SECONDS

RelayFactory = Callable[..., ScriptedRelay]


@pytest.fixture
def start_relay(sqlite_env: Env) -> Iterator[RelayFactory]:
    """Start a relay with the given options and point Pochta at it."""
    started: list[ScriptedRelay] = []

    def start(**options: Any) -> ScriptedRelay:
        relay = ScriptedRelay(**options)
        relay.start()
        started.append(relay)
        sqlite_env["POCHTA_SMTP_HOST"] = relay.host
        sqlite_env["POCHTA_SMTP_PORT"] = str(relay.port)
        return relay

    yield start
    for relay in started:
        relay.stop()


def verbs(relay: ScriptedRelay) -> list[str]:
    return [line.split()[0].upper() for _, line in relay.commands]


def test_fifty_messages_share_one_connection_back_to_back(start_relay: RelayFactory) -> None:
    relay = start_relay()
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(50)]
    for start in range(0, 50, 20):
        deliver_messages(ids[start : start + 20])
    assert {fetch(i).status for i in ids} == {"sent"}
    assert relay.connections == 1
    assert verbs(relay).count("EHLO") == 1
    # Each transaction ended with the reply to its final dot: no RSET between them.
    assert verbs(relay).count("RSET") == 0
    assert verbs(relay).count("MAIL") == 50


def test_an_idle_connection_is_checked_with_rset_and_one_left_open_is_reset(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay()
    deliver_messages([submit()])
    time.sleep(CHECK_AFTER_IDLE_SECONDS + 0.2)
    deliver_messages([submit()])
    assert verbs(relay).count("RSET") == 1, "the idle connection was checked first"
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user here")
    refused = submit(to=["nobody@example.org"])
    deliver_messages([refused, submit()])
    assert fetch(refused).status == "failed"
    # MAIL FROM without DATA leaves a transaction open: the next message resets it first.
    assert verbs(relay)[-6:] == ["MAIL", "RCPT", "RSET", "MAIL", "RCPT", "DATA"]
    assert relay.connections == 1


def test_a_connection_is_reopened_after_the_per_connection_cap(
    start_relay: RelayFactory, sqlite_env: Env
) -> None:
    sqlite_env["POCHTA_SMTP_MAX_MESSAGES_PER_CONNECTION"] = "3"
    relay = start_relay()
    deliver_messages([submit() for _ in range(7)])
    assert relay.connections == 3


def test_421_mid_session_defers_and_the_next_message_uses_a_new_connection(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay()
    first, second = submit(), submit()
    relay.fail_command("RCPT", "421 4.3.0 Service shutting down")
    deliver_messages([first, second])
    deferred = fetch(first)
    assert deferred.status == "deferred"
    assert (deferred.attempts[0].stage, deferred.attempts[0].smtp_code) == ("rcpt", 421)
    assert fetch(second).status == "sent"
    assert relay.connections == 2
    assert run_until_final(first).status == "sent"


def test_421_greeting_defers_without_a_transaction(start_relay: RelayFactory) -> None:
    relay = start_relay()
    relay.script_connect("421 4.3.2 Too busy, come back later")
    message_id = submit()
    deliver_messages([message_id])
    attempt = fetch(message_id).attempts[0]
    assert (attempt.stage, attempt.smtp_code, attempt.smtp_reply) == (
        "connect",
        421,
        "Too busy, come back later",
    )
    assert run_until_final(message_id).status == "sent"


def test_recipients_over_an_announced_limit_go_in_several_transactions(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay(extra_ehlo=["X-RCPTLIMIT 2"])
    message = run_until_final(submit(to=[f"r{i}@example.org" for i in range(5)]))
    assert message.status == "sent"
    assert message.attempt_count == 1, "no backoff between the transactions"
    assert [len(m.rcpt_tos) for m in relay.messages] == [2, 2, 1]


def test_452_too_many_recipients_sends_the_rest_at_once(start_relay: RelayFactory) -> None:
    relay = start_relay(rcpt_limit=2)
    message = run_until_final(submit(to=[f"r{i}@example.org" for i in range(5)]))
    assert message.status == "sent"
    assert message.attempt_count == 1
    assert [len(m.rcpt_tos) for m in relay.messages] == [2, 2, 1]
    assert sorted(r for m in relay.messages for r in m.rcpt_tos) == [
        f"r{i}@example.org" for i in range(5)
    ]


def test_552_to_rcpt_is_too_many_recipients_too(start_relay: RelayFactory) -> None:
    relay = start_relay()
    relay.script_rcpt("r1@example.org", "552 5.5.3 Too many recipients")
    message = run_until_final(submit(to=["r0@example.org", "r1@example.org"]))
    assert message.status == "sent"
    assert message.attempt_count == 1
    assert [m.rcpt_tos for m in relay.messages] == [["r0@example.org"], ["r1@example.org"]]


def test_a_message_over_the_relays_size_fails_5_3_4_without_data(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay(size=2000)
    message = run_until_final(submit(text="x" * 5000))
    assert message.status == "failed"
    (recipient,) = message.recipients
    assert recipient.enhanced_code == "5.3.4"
    assert recipient.smtp_reply is not None
    assert "2000" in recipient.smtp_reply
    assert "DATA" not in verbs(relay)
    assert "MAIL" not in verbs(relay)


def test_size_is_declared_on_mail_from(start_relay: RelayFactory) -> None:
    relay = start_relay(size=100_000)
    message_id = submit()
    run_until_final(message_id)
    (received,) = relay.messages
    assert f"SIZE={len(received.data)}" in received.mail_options


def test_without_8bitmime_the_body_is_7bit_and_decodes_to_the_same_text(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay(eightbitmime=False, smtputf8=False)
    run_until_final(
        submit(**{"from": "Вася <v@example.org>"}, subject="Привет", text="Съешь ещё этих булок")
    )
    (received,) = relay.messages
    assert received.data.isascii()
    assert not any(o.startswith("BODY=") for o in received.mail_options)
    parsed = message_from_bytes(received.data, policy=policy.default)
    assert str(parsed["Subject"]) == "Привет"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().rstrip() == "Съешь ещё этих булок"


def test_non_ascii_address_without_smtputf8_fails_with_a_clear_reply(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay(smtputf8=False)
    message = run_until_final(submit(to=["пользователь@пример.рф"]))
    assert message.status == "failed"
    (recipient,) = message.recipients
    assert recipient.enhanced_code == "5.6.7"
    assert recipient.smtp_reply is not None
    assert "SMTPUTF8" in recipient.smtp_reply
    assert relay.messages == []


def test_non_ascii_address_with_smtputf8_is_sent(start_relay: RelayFactory) -> None:
    relay = start_relay(smtputf8=True)
    message = run_until_final(submit(to=["пользователь@пример.рф"]))
    assert message.status == "sent"
    (received,) = relay.messages
    assert received.rcpt_tos == ["пользователь@пример.рф"]
    assert "SMTPUTF8" in received.mail_options
    assert "BODY=8BITMIME" in received.mail_options


def test_enhanced_codes_are_parsed_only_when_the_relay_sends_them(
    start_relay: RelayFactory,
) -> None:
    start_relay(enhanced_status_codes=False)
    message = run_until_final(submit())
    (recipient,) = message.recipients
    assert (recipient.smtp_code, recipient.enhanced_code) == (250, None)


def test_helo_is_used_when_ehlo_is_refused(start_relay: RelayFactory) -> None:
    relay = start_relay(ehlo_refused=True)
    assert run_until_final(submit()).status == "sent"
    assert verbs(relay)[:2] == ["EHLO", "HELO"]


def test_stall_after_data_defers_with_the_may_have_been_delivered_note(
    start_relay: RelayFactory, sqlite_env: Env
) -> None:
    sqlite_env["POCHTA_SMTP_TIMEOUT"] = "0.5"
    relay = start_relay()
    relay.stall_after_data = 3
    message_id = submit()
    deliver_messages([message_id])
    message = fetch(message_id)
    assert message.status == "deferred"
    attempt = message.attempts[0]
    assert attempt.stage == "data"
    assert attempt.error is not None
    assert attempt.error.startswith("no reply after DATA: may have been delivered")
    relay.stall_after_data = 0
    sent = run_until_final(message_id)
    assert sent.status == "sent"
    assert sent.message_id == message.message_id, "the same Message-ID on the next attempt"


def test_drop_during_data_defers(start_relay: RelayFactory) -> None:
    relay = start_relay()
    relay.drop_during_data = True
    message_id = submit()
    deliver_messages([message_id])
    assert fetch(message_id).status == "deferred"
    relay.drop_during_data = False
    assert run_until_final(message_id).status == "sent"


def _tls_env(sqlite_env: Env, tmp_path: Path, security: str) -> Any:
    server, _, cert = make_tls_contexts(tmp_path)
    sqlite_env["POCHTA_SMTP_SECURITY"] = security
    sqlite_env["POCHTA_SMTP_CA_FILE"] = str(cert)
    return server


def test_auth_after_starttls_when_the_relay_offers_it_only_then(
    start_relay: RelayFactory, sqlite_env: Env, tmp_path: Path
) -> None:
    server = _tls_env(sqlite_env, tmp_path, "starttls")
    sqlite_env["POCHTA_SMTP_USERNAME"] = "vasia"
    sqlite_env["POCHTA_SMTP_PASSWORD"] = "right"
    relay = start_relay(tls_context=server, auth={"vasia": "right"}, auth_requires_tls=True)
    assert run_until_final(submit()).status == "sent"
    assert verbs(relay)[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]


def test_implicit_tls_with_auth(start_relay: RelayFactory, sqlite_env: Env, tmp_path: Path) -> None:
    server = _tls_env(sqlite_env, tmp_path, "tls")
    sqlite_env["POCHTA_SMTP_USERNAME"] = "vasia"
    sqlite_env["POCHTA_SMTP_PASSWORD"] = "right"
    start_relay(tls_context=server, implicit_tls=True, auth={"vasia": "right"})
    assert run_until_final(submit()).status == "sent"


def test_a_wrong_relay_password_defers_and_the_right_one_sends(
    start_relay: RelayFactory, sqlite_env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = _tls_env(sqlite_env, tmp_path, "starttls")
    sqlite_env["POCHTA_SMTP_USERNAME"] = "vasia"
    sqlite_env["POCHTA_SMTP_PASSWORD"] = "wrong"
    relay = start_relay(tls_context=server, auth={"vasia": "right"})
    message_id = submit()
    deliver_messages([message_id])
    deliver_messages([message_id])
    message = fetch(message_id)
    assert message.status == "deferred", "a relay's AUTH failure is never the message's fault"
    attempt = message.attempts[0]
    assert (attempt.stage, attempt.smtp_code, attempt.enhanced_code) == ("auth", 535, "5.7.8")
    assert any(
        r.levelname == "ERROR" and "POCHTA_SMTP_PASSWORD" in r.getMessage() for r in caplog.records
    )
    assert "wrong" not in caplog.text
    sqlite_env["POCHTA_SMTP_PASSWORD"] = "right"
    assert run_until_final(message_id).status == "sent"
    assert len(relay.messages) == 1


def test_an_unverifiable_certificate_defers_with_the_reason(
    start_relay: RelayFactory, sqlite_env: Env, tmp_path: Path
) -> None:
    server, _, _ = make_tls_contexts(tmp_path)
    sqlite_env["POCHTA_SMTP_SECURITY"] = "starttls"
    relay = start_relay(tls_context=server)
    message_id = submit()
    deliver_messages([message_id])
    attempt = fetch(message_id).attempts[0]
    assert fetch(message_id).status == "deferred"
    assert attempt.stage == "starttls"
    assert attempt.error is not None
    assert "certificate verify failed" in attempt.error
    sqlite_env["POCHTA_SMTP_TLS_VERIFY"] = "false"
    assert run_until_final(message_id).status == "sent"
    assert len(relay.messages) == 1


def test_a_stalled_relay_never_pins_a_worker(start_relay: RelayFactory, sqlite_env: Env) -> None:
    sqlite_env["POCHTA_SMTP_TIMEOUT"] = "0.3"
    relay = start_relay()
    relay.stall_after_data = 5
    message_id = submit()
    deliver_messages([message_id])
    message = fetch(message_id)
    assert message.status == "deferred"
    attempt = message.attempts[0]
    # The relay stalls for 5 s; the 0.3 s command timeout ends the attempt long before.
    assert (attempt.finished_at - attempt.started_at).total_seconds() < 3


def test_a_5xx_greeting_is_the_relays_problem_not_the_messages(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay()
    relay.script_connect("554 5.3.2 No SMTP service here")
    message_id = submit()
    deliver_messages([message_id])
    message = fetch(message_id)
    assert message.status == "deferred"
    assert (message.attempts[0].stage, message.attempts[0].smtp_code) == ("connect", 554)
    assert run_until_final(message_id).status == "sent"
