"""Each attempt's SMTP dialogue (SPEC §11): what it shows, what it hides, when it is kept."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from app.messages.schemas import AttemptOut, MessageOut
from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.flow import fetch, run_until_final, submit
from worker.delivery_loop import deliver_messages

PASSWORD = "pa55-w0rd-that-must-never-show"


def lines(attempt: AttemptOut) -> list[str]:
    assert attempt.transcript is not None, f"attempt {attempt.number} kept no transcript"
    return [line.line for line in attempt.transcript]


def said(attempt: AttemptOut, direction: str) -> list[str]:
    assert attempt.transcript is not None
    return [line.line for line in attempt.transcript if line.dir == direction]


def test_a_refused_recipient_keeps_the_whole_dialogue_of_its_new_connection(
    relay: ScriptedRelay,
) -> None:
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user here")
    message = run_until_final(submit(to=["nobody@example.org"]))
    assert message.status == "failed"
    (attempt,) = message.attempts
    dialogue = lines(attempt)
    # The greeting and EHLO belong to the attempt that opened the connection.
    assert dialogue[0].startswith("220 ")
    assert dialogue[1] == "EHLO pochta.test"
    assert "250 PIPELINING" in dialogue or "250-PIPELINING" in dialogue
    assert "MAIL FROM:<sender@example.org>" in said(attempt, "out")
    assert "RCPT TO:<nobody@example.org>" in said(attempt, "out")
    assert dialogue[-1] == "550 5.1.1 No such user here"
    assert attempt.transcript is not None
    at = [line.at_ms for line in attempt.transcript]
    assert at == sorted(at)
    assert at[0] >= 0


def test_data_is_shown_as_its_size_and_a_sent_attempt_keeps_nothing_by_default(
    relay: ScriptedRelay,
) -> None:
    relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted, try later")
    message = run_until_final(submit(to=["grey@example.org", "ok@example.org"]))
    assert message.status == "sent"
    first, second = message.attempts
    assert (first.outcome, second.outcome) == ("mixed", "sent")
    out = said(first, "out")
    size = len(relay.messages[0].data)
    assert out[-1] == f"[{size} bytes]", "the content itself never shows"
    assert out[-2] == "DATA"
    assert "451 4.7.1 Greylisted, try later" in said(first, "in")
    assert second.transcript is None, "POCHTA_TRANSCRIPTS=failures keeps only what did not send"


def test_the_451_then_250_message_keeps_the_first_attempt_only(relay: ScriptedRelay) -> None:
    relay.script_rcpt("billy@example.org", "451 4.7.1 Greylisted, try later")
    message = run_until_final(submit(to=["billy@example.org"]))
    first, second = message.attempts
    assert (first.outcome, second.outcome) == ("deferred", "sent")
    assert lines(first)[-1] == "451 4.7.1 Greylisted, try later"
    assert second.transcript is None


def test_a_reused_connection_s_attempt_starts_at_its_own_transaction(
    relay: ScriptedRelay, env: Env
) -> None:
    env["POCHTA_TRANSCRIPTS"] = "all"
    first, second = submit(to=["a@example.org"]), submit(to=["b@example.org"])
    deliver_messages([first, second])
    assert relay.connections == 1
    opened, reused = fetch(first).attempts[0], fetch(second).attempts[0]
    assert lines(opened)[0].startswith("220 ")
    assert said(opened, "out")[0] == "EHLO pochta.test"
    # RSET when the pool checked an idle connection first, else MAIL FROM: never the EHLO.
    assert said(reused, "out")[0].split()[0] in ("RSET", "MAIL")
    assert "RCPT TO:<a@example.org>" not in lines(reused)
    assert "QUIT" not in lines(opened) + lines(reused)


def test_none_keeps_no_transcript_even_for_a_failure(relay: ScriptedRelay, env: Env) -> None:
    env["POCHTA_TRANSCRIPTS"] = "none"
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user here")
    message = run_until_final(submit(to=["nobody@example.org"]))
    assert message.status == "failed"
    assert message.attempts[0].transcript is None


def test_a_greeting_refused_is_the_transcript_of_a_connect_failure(
    relay: ScriptedRelay,
) -> None:
    relay.script_connect("421 4.3.2 Too busy, come back later")
    message_id = submit()
    deliver_messages([message_id])
    (attempt,) = fetch(message_id).attempts
    assert attempt.stage == "connect"
    assert lines(attempt) == ["421 4.3.2 Too busy, come back later"]


@pytest.fixture
def auth_relay(sqlite_env: Env, request: pytest.FixtureRequest) -> Iterator[ScriptedRelay]:
    """A relay that offers only the mechanism the test is parametrised with."""
    with ScriptedRelay(auth={"vasia": PASSWORD}, auth_mechanisms=(request.param,)) as relay:
        sqlite_env["POCHTA_SMTP_HOST"] = relay.host
        sqlite_env["POCHTA_SMTP_PORT"] = str(relay.port)
        sqlite_env["POCHTA_SMTP_USERNAME"] = "vasia"
        sqlite_env["POCHTA_TRANSCRIPTS"] = "all"
        yield relay


def secrets_of(password: str) -> list[str]:
    """The password and every base64 form of it an AUTH PLAIN or LOGIN exchange sends."""
    plain = base64.b64encode(f"\0vasia\0{password}".encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    return [password, plain, login, plain.rstrip("="), login.rstrip("=")]


def assert_hidden(message: MessageOut, password: str) -> None:
    text = message.model_dump_json()
    for secret in secrets_of(password):
        assert secret not in text


@pytest.mark.parametrize("auth_relay", ["PLAIN", "LOGIN"], indirect=True)
def test_auth_arguments_never_show(auth_relay: ScriptedRelay, sqlite_env: Env) -> None:
    mechanism = auth_relay.auth_mechanisms[0]
    sqlite_env["POCHTA_SMTP_PASSWORD"] = PASSWORD
    message = run_until_final(submit())
    assert message.status == "sent"
    (attempt,) = message.attempts
    out = said(attempt, "out")
    assert f"AUTH {mechanism} ***" in out
    if mechanism == "LOGIN":
        # The answer to the relay's 334 password challenge is hidden as a whole line.
        assert out[out.index("AUTH LOGIN ***") + 1] == "***"
        assert any(line.startswith("334 ") for line in said(attempt, "in"))
    assert "235 2.7.0 Authentication successful" in said(attempt, "in")
    assert_hidden(message, PASSWORD)


@pytest.mark.parametrize("auth_relay", ["PLAIN", "LOGIN"], indirect=True)
def test_a_refused_password_never_shows_either(auth_relay: ScriptedRelay, sqlite_env: Env) -> None:
    wrong = "wr0ng-pa55word-also-secret"
    sqlite_env["POCHTA_SMTP_PASSWORD"] = wrong
    message_id = submit()
    deliver_messages([message_id])
    message = fetch(message_id)
    (attempt,) = message.attempts
    assert (attempt.stage, attempt.smtp_code) == ("auth", 535)
    assert lines(attempt)[-1].startswith("535 ")
    assert_hidden(message, wrong)
