"""Internationalised domains: sent as A-labels; only a UTF-8 local part needs SMTPUTF8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.flow import fetch, run_until_final, submit


@pytest.fixture
def plain_relay(sqlite_env: Env) -> Iterator[ScriptedRelay]:
    """A relay that does not offer SMTPUTF8, as many do not."""
    with ScriptedRelay(smtputf8=False) as relay:
        sqlite_env["POCHTA_SMTP_HOST"] = relay.host
        sqlite_env["POCHTA_SMTP_PORT"] = str(relay.port)
        yield relay


@pytest.mark.parametrize("written", ["user@xn--e1afmkfd.xn--p1ai", "user@пример.рф"])
def test_an_idn_domain_reaches_a_relay_without_smtputf8_as_its_a_label(
    plain_relay: ScriptedRelay, written: str
) -> None:
    message = run_until_final(submit(to=[f"User <{written}>"], envelope_from="b@пример.рф"))
    assert message.status == "sent", message
    (received,) = plain_relay.messages
    assert received.rcpt_tos == ["user@xn--e1afmkfd.xn--p1ai"]
    assert received.mail_from == "b@xn--e1afmkfd.xn--p1ai"
    assert "SMTPUTF8" not in received.mail_options
    assert b"To: User <user@xn--e1afmkfd.xn--p1ai>" in received.data
    assert received.data.isascii()


def test_the_message_resource_shows_the_address_as_written(plain_relay: ScriptedRelay) -> None:
    message_id = submit(to=["user@xn--e1afmkfd.xn--p1ai", "Вася <vasia@Пример.рф>"])
    assert fetch(message_id).to == ["user@xn--e1afmkfd.xn--p1ai", "Вася <vasia@пример.рф>"]
