"""A bounce written by a real Postfix comes back through `pochta bounces` (SPEC §9).

Postfix takes the message for an unknown local user, then its local(8) agent refuses
it and bounce(8) writes the delivery report to the VERP sender; transport_maps routes
the bounce domain to `pochta bounces`. No test code writes the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import db, processes
from app.suppressions.models import Suppression
from harness.ports import LOOPBACK
from harness.postfix import PostfixRelay, Recorder
from tests.conftest import Env
from tests.support.bounces import Bounces, start_bounces
from tests.support.checks import wait_until
from tests.support.flow import fetch, run_until_final, submit

DOMAIN = "bounces.example.com"
UNKNOWN = "no-such-user-7f3a@local.example.net"


@pytest.fixture
def bounces(env: Env, tmp_path: Path) -> Iterator[Bounces]:
    env["POCHTA_BOUNCE_DOMAIN"] = DOMAIN
    running = start_bounces(env, tmp_path)
    try:
        yield running
    finally:
        processes.stop([running.process])


@pytest.fixture
def postfix(env: Env, bounces: Bounces, tmp_path: Path) -> Iterator[PostfixRelay]:
    with (
        Recorder() as recorder,
        PostfixRelay(
            tmp_path / "postfix",
            relay_to=recorder.address,
            local_domains=["local.example.net"],
            transports={DOMAIN: f"smtp:[{LOOPBACK}]:{bounces.port}"},
        ) as instance,
    ):
        env["POCHTA_SMTP_HOST"] = instance.host
        env["POCHTA_SMTP_PORT"] = str(instance.port)
        yield instance


def test_postfix_bounces_an_unknown_local_user_and_the_recipient_ends_bounced(
    env: Env, bounces: Bounces, postfix: PostfixRelay
) -> None:
    message_id = submit(to=[UNKNOWN])
    # Postfix took it: the relay's 250 is all Pochta knows at first.
    assert run_until_final(message_id).status == "sent"

    wait_until(
        lambda: fetch(message_id).recipients[0].status == "bounced",
        timeout=60,
        describe=lambda: (
            f"{fetch(message_id)}\n--- postfix\n{postfix.log()}\n"
            f"--- bounces\n{bounces.log.read_text()}"
        ),
    )
    (recipient,) = fetch(message_id).recipients
    assert recipient.enhanced_code == "5.1.1"
    assert recipient.smtp_reply is not None
    assert "unknown user" in recipient.smtp_reply
    assert recipient.bounce_class == "bad_mailbox"
    with db.session_scope() as session:
        entry = session.scalars(select(Suppression)).one()
        assert (entry.email, entry.reason) == (UNKNOWN, "hard_bounce")
    assert bounces.reports("delivery_status", "true") == 1
