"""Tests for harness/relay.py, driven by smtplib over real sockets."""

from __future__ import annotations

import base64
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.relay import Received, ScriptedRelay, make_tls_contexts

MSG = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


def connect(relay: ScriptedRelay, timeout: float = 5.0) -> smtplib.SMTP:
    """An smtplib client connected to relay (a fixed local name: getfqdn() can be slow)."""
    return smtplib.SMTP(relay.host, relay.port, local_hostname="client.test", timeout=timeout)


def plain(user: str, password: str) -> str:
    """An AUTH PLAIN initial response."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


@pytest.fixture
def relay() -> Iterator[ScriptedRelay]:
    with ScriptedRelay() as started:
        yield started


def test_capabilities_listed() -> None:
    with ScriptedRelay(size=1000, extra_ehlo=["X-RCPTLIMIT 2"]) as relay:
        with connect(relay) as client:
            code, _ = client.ehlo()
            features = client.esmtp_features
        assert code == 250
        assert features["size"] == "1000"
        assert features["x-rcptlimit"] == "2"
        for name in ("8bitmime", "smtputf8", "enhancedstatuscodes", "pipelining"):
            assert name in features
        assert "auth" not in features
        assert "starttls" not in features
        assert relay.port != 0
        assert relay.connections == 1
        # Verbatim: smtplib sends lower-case verbs, except QUIT from its context manager.
        assert relay.commands == [(1, "ehlo client.test"), (1, "QUIT")]

    with ScriptedRelay(eightbitmime=False, smtputf8=False, enhanced_status_codes=False) as relay:
        with connect(relay) as client:
            client.ehlo()
            features = client.esmtp_features
        for name in ("size", "8bitmime", "smtputf8", "enhancedstatuscodes"):
            assert name not in features


def test_size_refused_when_declared_too_big() -> None:
    with ScriptedRelay(size=100) as relay, connect(relay) as client:
        client.ehlo()
        code, text = client.mail("a@example.com", ["SIZE=101"])
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed maximum message size")
        assert client.mail("a@example.com", ["SIZE=100"])[0] == 250
        client.rset()
        # smtplib declares SIZE itself when the relay announces it.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@example.com", ["b@example.com"], MSG + b"x" * 100)
        assert refused.value.smtp_code == 552
        # Content over the limit is refused even when SIZE was not declared.
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        assert client.data(MSG + b"x" * 100)[0] == 552
    assert relay.messages == []


def test_script_rcpt_across_transactions_and_connections(relay: ScriptedRelay) -> None:
    relay.script_rcpt("B@example.com", "451 4.7.1 Greylisted, try later")
    with connect(relay) as client:
        refused = client.sendmail("a@example.com", ["b@example.com", "c@example.com"], MSG)
        assert refused == {"b@example.com": (451, b"4.7.1 Greylisted, try later")}
        client.rset()
        assert client.sendmail("a@example.com", ["b@example.com"], MSG) == {}
    with connect(relay) as client:
        client.sendmail("", ["d@example.com"], MSG)

    first, second, third = relay.wait_for(3)
    assert first == Received(
        mail_from="a@example.com",
        rcpt_tos=["c@example.com"],
        mail_options=[],
        data=MSG,
        connection=1,
    )
    assert (second.rcpt_tos, second.connection) == (["b@example.com"], 1)
    assert (third.mail_from, third.connection) == ("", 2)
    assert relay.connections == 2
    assert (1, "rset") in relay.commands
    assert (1, "mail FROM:<a@example.com>") in relay.commands
    assert (2, "mail FROM:<>") in relay.commands


def test_script_mail_and_data(relay: ScriptedRelay) -> None:
    relay.script_mail("451 4.3.2 Not now")
    relay.script_data("554 5.7.1 Spam", "250 2.0.0 Queued as ABC")
    with connect(relay) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as mail_refused:
            client.sendmail("a@example.com", ["b@example.com"], MSG)
        assert mail_refused.value.smtp_code == 451
        with pytest.raises(smtplib.SMTPDataError) as data_refused:
            client.sendmail("a@example.com", ["b@example.com"], MSG)
        assert data_refused.value.smtp_code == 554
        client.ehlo()
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        assert client.data(MSG) == (250, b"2.0.0 Queued as ABC")
    assert len(relay.wait_for(1)) == 1


def test_connect_421_then_normal_greeting(relay: ScriptedRelay) -> None:
    relay.script_connect("421 4.3.2 Service not available")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        connect(relay)
    assert refused.value.smtp_code == 421
    with connect(relay) as client:
        assert client.noop()[0] == 250
    assert relay.connections == 2


def test_fail_command_rcpt_421_closes_connection(relay: ScriptedRelay) -> None:
    relay.fail_command("RCPT", "421 4.4.2 Going away", after=1)
    relay.fail_command("NOOP", "500 5.5.1 Not today")
    client = connect(relay)
    assert client.noop() == (500, b"5.5.1 Not today")
    assert client.noop()[0] == 250
    client.ehlo()
    client.mail("a@example.com")
    assert client.rcpt("b@example.com")[0] == 250
    assert client.rcpt("c@example.com") == (421, b"4.4.2 Going away")
    assert client.sock is not None
    assert client.sock.recv(1) == b""  # the relay hung up
    client.close()


@pytest.mark.parametrize(
    ("enhanced", "expected"),
    [(True, b"4.5.3 Too many recipients"), (False, b"Too many recipients")],
)
def test_rcpt_limit_452(enhanced: bool, expected: bytes) -> None:
    with (
        ScriptedRelay(rcpt_limit=2, enhanced_status_codes=enhanced) as relay,
        connect(relay) as client,
    ):
        client.ehlo()
        client.mail("a@example.com")
        assert client.rcpt("b@example.com")[0] == 250
        assert client.rcpt("c@example.com")[0] == 250
        assert client.rcpt("d@example.com") == (452, expected)
        # The limit counts per transaction.
        client.rset()
        client.mail("a@example.com")
        assert client.rcpt("d@example.com")[0] == 250


def test_auth_right_and_wrong_password() -> None:
    with ScriptedRelay(auth={"user": "secret"}) as relay, connect(relay) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert client.mail("a@example.com") == (530, b"5.7.0 Authentication required")
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login("user", "nope")
        assert wrong.value.smtp_code == 535
        assert wrong.value.smtp_error == b"5.7.8 Authentication credentials invalid"
        # LOGIN too, not only the PLAIN smtplib prefers.
        client.user, client.password = "user", "secret"
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    assert len(relay.wait_for(1)) == 1
    # The continuation lines of AUTH LOGIN are answers, not commands.
    # smtplib's login() tries PLAIN then LOGIN before giving up on the wrong password.
    verbs = [line.split()[0].lower() for _, line in relay.commands]
    assert verbs == ["ehlo", "mail", "auth", "auth", "auth", "mail", "rcpt", "data", "quit"]


def test_starttls_and_auth_requires_tls(tmp_path: Path) -> None:
    server_ctx, client_ctx, _ = make_tls_contexts(tmp_path)
    relay = ScriptedRelay(tls_context=server_ctx, auth={"user": "secret"}, auth_requires_tls=True)
    with relay, connect(relay) as client:
        client.ehlo()
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features
        assert client.docmd("AUTH", f"PLAIN {plain('user', 'secret')}")[0] == 538
        assert client.starttls(context=client_ctx)[0] == 220
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        assert "auth" in client.esmtp_features
        client.login("user", "secret")
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    assert relay.wait_for(1)[0].connection == 1
    assert relay.connections == 1


def test_implicit_tls(tmp_path: Path) -> None:
    server_ctx, client_ctx, _ = make_tls_contexts(tmp_path)
    relay = ScriptedRelay(
        tls_context=server_ctx, implicit_tls=True, auth={"user": "secret"}, auth_requires_tls=True
    )
    with (
        relay,
        smtplib.SMTP_SSL(
            relay.host, relay.port, local_hostname="client.test", timeout=5, context=client_ctx
        ) as client,
    ):
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        assert "auth" in client.esmtp_features
        client.login("user", "secret")
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    assert relay.wait_for(1)[0].data == MSG
    assert relay.connections == 1
    # A plain-text client gets no greeting from a TLS port.
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        connect(relay, timeout=2).quit()


def test_stall_after_data_trips_client_timeout(relay: ScriptedRelay) -> None:
    relay.stall_after_data = 2.0
    client = connect(relay, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    assert time.monotonic() - started < 1.5
    client.close()
    # The relay saw the client leave before it answered, so nothing was taken.
    time.sleep(0.1)
    assert relay.messages == []


def test_stall_blocks_only_that_session(relay: ScriptedRelay) -> None:
    relay.stall_after_data = 1.0
    outcome: list[object] = []

    def patient() -> None:
        with connect(relay) as client:
            outcome.append(client.sendmail("a@example.com", ["b@example.com"], MSG))

    sender = threading.Thread(target=patient)
    sender.start()
    while (1, "data") not in relay.commands:
        time.sleep(0.01)
    started = time.monotonic()
    with connect(relay) as other:
        assert other.noop()[0] == 250
    assert time.monotonic() - started < 0.5
    sender.join(5)
    assert outcome == [{}]
    assert relay.wait_for(1)[0].connection == 1


def test_stop_does_not_hang_mid_stall() -> None:
    relay = ScriptedRelay()
    relay.start()
    relay.stall_after_data = 30.0
    errors: list[BaseException] = []

    def stuck() -> None:
        try:
            with connect(relay, timeout=20) as client:
                client.sendmail("a@example.com", ["b@example.com"], MSG)
        except (smtplib.SMTPException, OSError) as error:
            errors.append(error)

    sender = threading.Thread(target=stuck)
    sender.start()
    while (1, "data") not in relay.commands:
        time.sleep(0.01)
    time.sleep(0.2)
    started = time.monotonic()
    relay.stop()
    sender.join(5)
    assert time.monotonic() - started < 3
    assert not sender.is_alive()
    assert len(errors) == 1
    assert relay.messages == []


def test_drop_during_data(relay: ScriptedRelay) -> None:
    relay.drop_during_data = True
    with connect(relay) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    assert relay.messages == []
    assert (1, "data") in relay.commands
    relay.drop_during_data = False
    with connect(relay) as client:
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    assert relay.wait_for(1)[0].connection == 2


def test_smtputf8_address_accepted_only_with_parameter(relay: ScriptedRelay) -> None:
    with connect(relay) as client:
        refused = client.sendmail(
            "jürgen@exämple.de", ["renée@example.com"], MSG, mail_options=["SMTPUTF8"]
        )
        assert refused == {}
        # Without SMTPUTF8 smtplib would not even encode it; force the bytes out.
        client.command_encoding = "utf-8"
        assert client.mail("jürgen@exämple.de") == (
            553,
            b"5.6.7 Non-ASCII address needs SMTPUTF8",
        )
        assert client.mail("a@example.com")[0] == 250
        assert client.rcpt("renée@example.com")[0] == 553
    (message,) = relay.wait_for(1)
    assert message.mail_from == "jürgen@exämple.de"
    assert message.rcpt_tos == ["renée@example.com"]
    assert "SMTPUTF8" in message.mail_options
    assert (1, "mail FROM:<jürgen@exämple.de> SMTPUTF8") in relay.commands

    with ScriptedRelay(smtputf8=False) as strict, connect(strict) as client:
        client.ehlo()
        client.command_encoding = "utf-8"
        assert client.docmd("MAIL", "FROM:<jürgen@exämple.de> SMTPUTF8")[0] == 555
        assert client.docmd("MAIL", "FROM:<jürgen@exämple.de>")[0] == 553


def test_helo_fallback_when_ehlo_refused() -> None:
    with ScriptedRelay(ehlo_refused=True) as relay:
        with connect(relay) as client:
            assert client.docmd("EHLO", "client.test")[0] == 502
        with connect(relay) as client:
            client.sendmail("a@example.com", ["b@example.com"], MSG)
    (message,) = relay.wait_for(1)
    assert message.mail_options == []
    assert (2, "ehlo client.test") in relay.commands
    assert (2, "helo client.test") in relay.commands


def test_leading_dots_arrive_intact(relay: ScriptedRelay) -> None:
    body = MSG + b".hidden\r\n..two\r\n.\r\n. \r\nend\r\n"
    with connect(relay) as client:
        client.sendmail("a@example.com", ["b@example.com"], body)
    assert relay.wait_for(1)[0].data == body


def test_wait_for_times_out_with_listing_and_reset(relay: ScriptedRelay) -> None:
    with connect(relay) as client:
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    with pytest.raises(AssertionError, match=r"expected 2 message\(s\).*a@example.com"):
        relay.wait_for(2, timeout=0.2)
    relay.script_connect("421 4.3.2 Later")
    relay.reset()
    assert (relay.messages, relay.commands, relay.connections) == ([], [], 0)
    with connect(relay) as client:
        assert client.noop()[0] == 250
    assert relay.connections == 1


def test_ports_are_free_and_distinct() -> None:
    with ScriptedRelay() as one, ScriptedRelay() as two:
        assert one.port != two.port
        with socket.create_connection((two.host, two.port), timeout=2) as raw:
            assert raw.recv(100).startswith(b"220 ")


def test_throttle_answers_454_past_its_rate_then_takes_mail_again(relay: ScriptedRelay) -> None:
    relay.throttle = (2, 0.3)
    with connect(relay) as client:
        client.sendmail("a@example.com", ["b@example.com"], MSG)
        client.sendmail("a@example.com", ["b@example.com"], MSG)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@example.com", ["b@example.com"], MSG)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (
            454,
            b"4.7.0 Throttling failure: Maximum sending rate exceeded",
        )
        client.rset()
        # The throttle's window is time itself: once it has passed, MAIL is taken again.
        time.sleep(0.35)
        client.sendmail("a@example.com", ["b@example.com"], MSG)
    assert relay.throttled == 1
    first, second, third = relay.wait_for(3)
    assert first.at <= second.at <= third.at
    assert third.at - first.at >= 0.3


def test_peak_sessions_counts_clients_open_at_once(relay: ScriptedRelay) -> None:
    with connect(relay), connect(relay):
        pass
    with connect(relay):
        pass
    assert relay.peak_sessions == 2
    relay.reset()
    assert relay.peak_sessions == 0
