"""`pochta bounces` as a process: VERP out, delivery and complaint reports back in by SMTP."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import db, processes
from app.bounces.verp import make_address
from app.config import get_settings
from app.events.models import Event
from app.suppressions.models import Suppression
from harness.ports import LOOPBACK, free_port
from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.bounces import Bounces, start_bounces
from tests.support.checks import wait_until
from tests.support.flow import fetch, run_until_final, submit
from tests.support.reports import arf_complaint, postfix_dsn

DOMAIN = "bounces.example.org"
# What does not touch the database's own behaviour runs on the embedded backend alone.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
BILLY = "billy@example.org"


@pytest.fixture
def bounces(env: Env, relay: ScriptedRelay, tmp_path: Path) -> Iterator[Bounces]:
    env["POCHTA_BOUNCE_DOMAIN"] = DOMAIN
    running = start_bounces(env, tmp_path)
    try:
        yield running
    finally:
        processes.stop([running.process])


def sent_with_verp(relay: ScriptedRelay, to: str = BILLY) -> tuple[str, str]:
    """A message delivered to the relay: its id and the VERP MAIL FROM it went with."""
    message_id = submit(to=[to])
    assert run_until_final(message_id).status == "sent"
    (received,) = relay.messages
    return message_id, received.mail_from


def events_of(message_id: str) -> list[Event]:
    with db.session_scope() as session:
        query = select(Event).where(Event.message_pk == message_id).order_by(Event.created_at)
        return list(session.scalars(query))


def suppressions() -> list[Suppression]:
    with db.session_scope() as session:
        return list(session.scalars(select(Suppression)))


@SQLITE_ONLY
def test_a_message_goes_out_with_a_verp_mail_from(bounces: Bounces, relay: ScriptedRelay) -> None:
    _, mail_from = sent_with_verp(relay)
    local, _, domain = mail_from.partition("@")
    assert domain == DOMAIN
    assert local.startswith("bounce+")
    assert len(local) <= 64


@SQLITE_ONLY
def test_an_explicit_envelope_from_is_kept(bounces: Bounces, relay: ScriptedRelay) -> None:
    assert run_until_final(submit(envelope_from="bounces@ya.ru")).status == "sent"
    assert relay.messages[0].mail_from == "bounces@ya.ru"


def test_a_postfix_dsn_bounces_the_recipient_and_suppresses_it(
    bounces: Bounces, relay: ScriptedRelay
) -> None:
    message_id, verp = sent_with_verp(relay)
    original = fetch(message_id).message_id
    bounces.send(postfix_dsn(to=verp, recipient=BILLY, message_id=original), verp)

    wait_until(
        lambda: fetch(message_id).recipients[0].status == "bounced",
        timeout=30,
        describe=lambda: f"{fetch(message_id)}\n{bounces.log.read_text()}",
    )
    message = fetch(message_id)
    assert message.status == "sent"
    (recipient,) = message.recipients
    assert (recipient.smtp_code, recipient.enhanced_code) == (550, "5.1.1")
    assert recipient.smtp_reply == (
        f"<{BILLY}>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert recipient.bounce_class == "bad_mailbox"
    (entry,) = suppressions()
    assert (entry.email, entry.reason) == (BILLY, "hard_bounce")
    assert entry.source is not None
    assert entry.source["message_id"] == message_id
    assert entry.source["bounce_class"] == "bad_mailbox"
    types = [event.type.value for event in events_of(message_id)]
    assert "recipient.bounced" in types
    assert "suppression.created" in types
    bounced = next(e for e in events_of(message_id) if e.type == "recipient.bounced")
    assert bounced.data["recipient"]["status"] == "bounced"
    assert bounced.data["recipient"]["bounce_class"] == "bad_mailbox"
    assert bounced.data["report"]["status"] == "5.1.1"
    assert bounces.reports("delivery_status", "true") == 1

    # The same report again (an MTA that retried) changes nothing more.
    bounces.send(postfix_dsn(to=verp, recipient=BILLY, message_id=original), verp)
    wait_until(
        lambda: bounces.reports("delivery_status", "true") == 2,
        timeout=30,
        describe=bounces.log.read_text,
    )
    assert [e.type.value for e in events_of(message_id)].count("recipient.bounced") == 1


def test_an_arf_complaint_suppresses_and_leaves_the_status(
    bounces: Bounces, relay: ScriptedRelay
) -> None:
    message_id, verp = sent_with_verp(relay)
    original = fetch(message_id).message_id
    # Feedback loops write to an address of their own choosing: the token is in the report.
    report = arf_complaint(to=f"fbl@{DOMAIN}", recipient=BILLY, message_id=original, mail_from=verp)
    bounces.send(report, f"fbl@{DOMAIN}", mail_from="fbl@isp.example")

    wait_until(
        lambda: any(e.type == "recipient.complained" for e in events_of(message_id)),
        timeout=30,
        describe=bounces.log.read_text,
    )
    assert fetch(message_id).recipients[0].status == "sent"
    (entry,) = suppressions()
    assert (entry.email, entry.reason) == (BILLY, "complaint")
    complained = next(e for e in events_of(message_id) if e.type == "recipient.complained")
    assert complained.data["report"]["feedback_type"] == "abuse"
    assert bounces.reports("feedback_report", "true") == 1


@SQLITE_ONLY
def test_a_report_before_the_attempt_is_recorded_is_deferred_then_applied(
    bounces: Bounces, relay: ScriptedRelay
) -> None:
    # A relay can bounce within the moment between its 250 and the worker's commit.
    message_id = submit(to=[BILLY])
    address = make_address(get_settings(), message_id, DOMAIN)
    raw = postfix_dsn(to=address, recipient=BILLY, message_id=fetch(message_id).message_id)
    with smtplib.SMTP(LOOPBACK, bounces.port, timeout=30) as client:
        client.ehlo("mx.example.net")
        assert client.mail("<>")[0] == 250
        assert client.rcpt(address)[0] == 250
        code, reply = client.data(raw)
    assert (code, reply) == (
        451,
        b"4.3.0 The message is still being sent; try the report again later",
    )
    assert fetch(message_id).recipients[0].status == "pending"
    assert "recipient.bounced" not in [e.type.value for e in events_of(message_id)]

    assert run_until_final(message_id).status == "sent"
    bounces.send(raw, address)  # the reporting MTA's retry
    wait_until(
        lambda: fetch(message_id).recipients[0].status == "bounced",
        timeout=30,
        describe=bounces.log.read_text,
    )


@SQLITE_ONLY
def test_a_report_found_by_message_id_alone_is_applied(
    bounces: Bounces, relay: ScriptedRelay
) -> None:
    message_id, _ = sent_with_verp(relay)
    original = fetch(message_id).message_id
    # An MTA that lost the envelope: the report reaches a plain address of the domain.
    raw = postfix_dsn(to=f"postmaster@{DOMAIN}", recipient=BILLY, message_id=original)
    bounces.send(raw, f"postmaster@{DOMAIN}")
    wait_until(
        lambda: fetch(message_id).recipients[0].status == "bounced",
        timeout=30,
        describe=bounces.log.read_text,
    )


def test_a_forged_token_changes_nothing(bounces: Bounces, relay: ScriptedRelay) -> None:
    message_id, verp = sent_with_verp(relay)
    original = fetch(message_id).message_id
    local, _, domain = verp.partition("@")
    forged = f"{local[:-4]}{'aaaa' if not local.endswith('aaaa') else 'bbbb'}@{domain}"
    bounces.send(postfix_dsn(to=forged, recipient=BILLY, message_id=original), forged)

    wait_until(
        lambda: bounces.reports("delivery_status", "false") == 1,
        timeout=30,
        describe=bounces.log.read_text,
    )
    assert fetch(message_id).recipients[0].status == "sent"
    assert suppressions() == []
    assert not [e for e in events_of(message_id) if not e.type.startswith("message.")]


@SQLITE_ONLY
def test_mail_that_is_no_report_is_taken_and_dropped(
    bounces: Bounces, relay: ScriptedRelay
) -> None:
    raw = b"From: someone@example.net\r\nSubject: Out of office\r\n\r\nBack Monday.\r\n"
    bounces.send(raw, f"bounce+whatever@{DOMAIN}")
    wait_until(
        lambda: bounces.reports("other", "false") == 1,
        timeout=30,
        describe=bounces.log.read_text,
    )


@SQLITE_ONLY
def test_rcpt_to_another_domain_is_refused_550(bounces: Bounces) -> None:
    with smtplib.SMTP(LOOPBACK, bounces.port, timeout=30) as client:
        client.ehlo("mx.example.net")
        client.mail("<>")
        code, reply = client.rcpt("billy@example.org")
    assert code == 550
    assert reply.startswith(b"5.7.1")


@SQLITE_ONLY
def test_bounces_without_a_bounce_domain_stops_with_one_line(env: Env) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "bounces", "--port", str(free_port())],
        env=env.for_subprocess(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "pochta: POCHTA_BOUNCE_DOMAIN is not set: `pochta bounces` takes mail only for it"
    ]


@SQLITE_ONLY
def test_a_report_over_10_mib_is_refused_at_mail_from(bounces: Bounces) -> None:
    with smtplib.SMTP(LOOPBACK, bounces.port, timeout=30) as client:
        client.ehlo("mx.example.net")
        code, _ = client.mail("<>", options=[f"SIZE={10 * 1024 * 1024 + 1}"])
    assert code == 552
