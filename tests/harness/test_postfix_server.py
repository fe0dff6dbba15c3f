"""Smoke tests of harness/postfix.py against a real Debian Postfix."""

from __future__ import annotations

import os
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postfix import (
    PostfixRelay,
    Recorder,
    self_signed_certificate,
    smtp_sink_path,
)

GREY = "grey@example.org"
NOBODY = "nobody@example.org"
SIZE_LIMIT = 100_000
TIMEOUT = 10


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    """One recorder behind every relay of this module."""
    with Recorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, recorder: Recorder, tls_files: tuple[Path, Path]
) -> Iterator[PostfixRelay]:
    """One instance with every option on, shared by the tests that only talk to it."""
    cert, key = tls_files
    instance = PostfixRelay(
        tmp_path_factory.mktemp("postfix"),
        relay_to=recorder.address,
        recipient_access={
            GREY: "451 4.7.1 Greylisted, try later",
            NOBODY: "550 5.1.1 No such user",
        },
        message_size_limit=SIZE_LIMIT,
        recipient_limit=2,
        tls_cert=cert,
        tls_key=key,
    )
    with instance:
        yield instance


@pytest.fixture
def client(relay: PostfixRelay, recorder: Recorder) -> Iterator[smtplib.SMTP]:
    """An EHLO'd smtplib client of the shared relay, with the recorder emptied."""
    recorder.clear()
    with smtplib.SMTP(relay.host, relay.port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.test")
        yield smtp


def message(to: str, subject: str = "Smoke") -> bytes:
    """A complete message (Date and Message-ID included, so Postfix adds nothing)."""
    return (
        "From: Sender <sender@example.com>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n"
        "Message-ID: <smoke.1@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Grüße aus Pochta.\r\n"
        ".a line that starts with a dot\r\n"
        "   trailing spaces stay   \r\n"
    ).encode()


def test_relays_a_message_with_its_bytes_intact(
    client: smtplib.SMTP, recorder: Recorder, relay: PostfixRelay
) -> None:
    """An ordinary recipient's message reaches the recorder byte for byte."""
    sent = message("someone@example.net")
    refused = client.sendmail("sender@example.com", ["someone@example.net"], sent)
    assert refused == {}
    [got] = recorder.wait_for(1)
    assert got.mail_from == "sender@example.com"
    assert got.rcpt_tos == ("someone@example.net",)
    assert got.content.startswith(b"Received: from "), relay.log()
    assert got.original_content == sent, relay.log()


def test_greylisted_recipient_gets_451(client: smtplib.SMTP) -> None:
    """A recipient mapped to 451 is refused temporarily at RCPT."""
    client.mail("sender@example.com")
    code, reply = client.rcpt(GREY)
    # Observed: 451 4.7.1 <grey@example.org>: Recipient address rejected: Greylisted, try later
    assert code == 451
    assert reply == b"4.7.1 <grey@example.org>: Recipient address rejected: Greylisted, try later"


def test_unknown_recipient_gets_550(client: smtplib.SMTP) -> None:
    """A recipient mapped to 550 is refused for good at RCPT."""
    client.mail("sender@example.com")
    code, reply = client.rcpt(NOBODY)
    # Observed: 550 5.1.1 <nobody@example.org>: Recipient address rejected: No such user
    assert code == 550
    assert reply == b"5.1.1 <nobody@example.org>: Recipient address rejected: No such user"


def test_size_above_limit_is_refused_at_mail_from(client: smtplib.SMTP) -> None:
    """EHLO announces the limit and MAIL FROM with a larger SIZE gets 552."""
    assert client.esmtp_features["size"] == str(SIZE_LIMIT)
    code, reply = client.mail("sender@example.com", [f"SIZE={SIZE_LIMIT + 1}"])
    # Observed: 552 5.3.4 Message size exceeds fixed limit
    assert code == 552
    assert reply == b"5.3.4 Message size exceeds fixed limit"
    # Observed quirk: the refused SIZE sticks to the session, so even a MAIL FROM
    # without SIZE is refused the same way until RSET (a new SIZE replaces it).
    assert client.mail("sender@example.com")[0] == 552
    assert client.rset()[0] == 250
    assert client.mail("sender@example.com", [f"SIZE={SIZE_LIMIT}"])[0] == 250


def test_recipient_limit_refuses_the_third_rcpt(
    client: smtplib.SMTP, recorder: Recorder, relay: PostfixRelay
) -> None:
    """With smtpd_recipient_limit=2 the third accepted-looking RCPT gets 452."""
    client.mail("sender@example.com")
    # Observed: refused recipients don't count towards the limit.
    assert client.rcpt(GREY)[0] == 451
    assert client.rcpt("one@example.net")[0] == 250
    assert client.rcpt("two@example.net")[0] == 250
    code, reply = client.rcpt("three@example.net")
    # Observed: 452 4.5.3 Error: too many recipients
    assert code == 452
    assert reply == b"4.5.3 Error: too many recipients"
    assert client.rcpt("four@example.net")[0] == 452
    assert client.data(message("one@example.net"))[0] == 250
    [got] = recorder.wait_for(1)
    assert got.rcpt_tos == ("one@example.net", "two@example.net"), relay.log()


def test_starttls_with_the_given_certificate(
    client: smtplib.SMTP, recorder: Recorder, relay: PostfixRelay, tls_files: tuple[Path, Path]
) -> None:
    """STARTTLS is offered, presents our self-signed certificate, and mail still flows."""
    cert, _ = tls_files
    assert client.has_extn("starttls")
    # Verifying against the test's own certificate proves Postfix serves that one.
    context = ssl.create_default_context(cafile=str(cert))
    code, _ = client.starttls(context=context)
    assert code == 220
    assert isinstance(client.sock, ssl.SSLSocket)
    client.ehlo("client.test")
    assert not client.has_extn("starttls")
    sent = message("tls@example.net", subject="Over TLS")
    assert client.sendmail("sender@example.com", ["tls@example.net"], sent) == {}
    [got] = recorder.wait_for(1)
    assert got.original_content == sent
    assert "Anonymous TLS connection established from" in relay.log()


def test_smtputf8_recipient_is_accepted_and_relayed(
    client: smtplib.SMTP, recorder: Recorder, relay: PostfixRelay
) -> None:
    """EHLO lists SMTPUTF8 and a non-ASCII recipient sent with it arrives unchanged."""
    assert client.has_extn("smtputf8")
    rcpt = "jürgen@example.org"
    sent = message(rcpt, subject="Grüße")
    refused = client.sendmail("sender@example.com", [rcpt], sent, mail_options=["SMTPUTF8"])
    assert refused == {}
    [got] = recorder.wait_for(1)
    assert got.rcpt_tos == (rcpt,)
    assert got.smtputf8
    assert "SMTPUTF8" in got.mail_options, relay.log()
    assert got.original_content == sent


def _alive(pids: list[int]) -> list[int]:
    """The pids among `pids` that are still running (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


class SimulatedFailure(Exception):
    """Stands for a failing assertion inside a test that holds instances."""


def _use_both_then_fail(
    first: PostfixRelay, second: PostfixRelay, recorder: Recorder, pids: list[int]
) -> None:
    """Run both instances at once, deliver through each, note their pids, then fail."""
    with first, second:
        assert first.port != second.port
        for instance, rcpt in ((first, "first@example.net"), (second, "second@example.net")):
            with smtplib.SMTP(instance.host, instance.port, timeout=TIMEOUT) as smtp:
                smtp.ehlo("client.test")
                assert smtp.has_extn("smtputf8") is instance.smtputf8
                smtp.sendmail("sender@example.com", [rcpt], message(rcpt))
        got = recorder.wait_for(2)
        assert sorted(m.rcpt_tos[0] for m in got) == ["first@example.net", "second@example.net"]
        pids.extend(first.pids() + second.pids())
        raise SimulatedFailure


def test_two_instances_at_once_and_stop_leaves_nothing(tmp_path: Path, recorder: Recorder) -> None:
    """Two independent instances run side by side; stop(), even on error, ends them all."""
    recorder.clear()
    first = PostfixRelay(tmp_path / "first", relay_to=recorder.address)
    second = PostfixRelay(tmp_path / "second", relay_to=recorder.address, smtputf8=False)
    pids: list[int] = []
    with pytest.raises(SimulatedFailure):
        _use_both_then_fail(first, second, recorder, pids)
    # Each had at least master, qmgr, postlogd and smtpd running.
    assert len(pids) >= 8
    assert _alive(pids) == []
    ps = subprocess.run(["ps", "-eo", "pid=,stat="], capture_output=True, text=True, check=True)
    listed = {int(line.split()[0]) for line in ps.stdout.splitlines() if "Z" not in line.split()[1]}
    assert listed.isdisjoint(pids)
    first.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(first.host, first.port, timeout=TIMEOUT)


def test_smtp_sink_path_points_at_the_binary() -> None:
    """smtp_sink_path() finds Postfix's smtp-sink."""
    path = smtp_sink_path()
    assert os.access(path, os.X_OK)
    assert path.endswith("/smtp-sink")
