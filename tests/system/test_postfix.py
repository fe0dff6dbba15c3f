"""Delivery through a real Debian Postfix, which relays what it accepts to a recorder."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from app import db
from app.messages.repository import api as repository
from harness.postfix import PostfixRelay, Recorder, self_signed_certificate
from tests.conftest import Env
from tests.support.flow import fetch, run_until_final, submit
from worker.delivery_loop import deliver_messages

GREY = "grey@example.org"
NOBODY = "nobody@example.org"
SIZE_LIMIT = 20_000


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    with Recorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def _postfix(
    tmp_path_factory: pytest.TempPathFactory,
    recorder: Recorder,
    certificate: tuple[Path, Path],
    *,
    smtputf8: bool,
) -> Iterator[PostfixRelay]:
    cert, key = certificate
    with PostfixRelay(
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
        smtputf8=smtputf8,
    ) as instance:
        yield instance


@pytest.fixture(scope="module")
def postfix(
    tmp_path_factory: pytest.TempPathFactory, recorder: Recorder, certificate: tuple[Path, Path]
) -> Iterator[PostfixRelay]:
    yield from _postfix(tmp_path_factory, recorder, certificate, smtputf8=True)


@pytest.fixture
def through_postfix(
    env: Env, postfix: PostfixRelay, recorder: Recorder, certificate: tuple[Path, Path]
) -> Recorder:
    """Pochta pointed at Postfix over verified STARTTLS; the recorder emptied."""
    env["POCHTA_SMTP_HOST"] = postfix.host
    env["POCHTA_SMTP_PORT"] = str(postfix.port)
    env["POCHTA_SMTP_SECURITY"] = "starttls"
    env["POCHTA_SMTP_CA_FILE"] = str(certificate[0])
    recorder.clear()
    return recorder


def test_a_message_arrives_byte_for_byte_over_starttls(through_postfix: Recorder) -> None:
    message_id = submit(
        **{"from": "Вася Пупкин <vasiapupkin@ya.ru>"},
        to=["billy@example.org"],
        subject="Привет",
        text=".dot line\nТекст",
    )
    assert run_until_final(message_id).status == "sent"
    (received,) = through_postfix.wait_for(1)
    with db.session_scope() as session:
        raw = repository.get_raw(session, tenant="acme", message_id=message_id)
    assert received.original_content == raw
    parsed = message_from_bytes(received.original_content, policy=policy.default)
    assert str(parsed["From"]) == "Вася Пупкин <vasiapupkin@ya.ru>"


def test_postfix_451_defers_with_its_exact_reply(through_postfix: Recorder) -> None:
    message_id = submit(to=[GREY])
    deliver_messages([message_id])
    message = fetch(message_id)
    assert message.status == "deferred"
    (recipient,) = message.recipients
    assert (recipient.smtp_code, recipient.enhanced_code, recipient.smtp_reply) == (
        451,
        "4.7.1",
        f"<{GREY}>: Recipient address rejected: Greylisted, try later",
    )


def test_postfix_550_fails_and_the_other_recipient_gets_one_copy(
    through_postfix: Recorder,
) -> None:
    message = run_until_final(submit(to=["ok@example.org", NOBODY]))
    assert message.status == "partially_sent"
    failed = next(r for r in message.recipients if r.email == NOBODY)
    assert (failed.smtp_code, failed.enhanced_code) == (550, "5.1.1")
    assert failed.smtp_reply == f"<{NOBODY}>: Recipient address rejected: No such user"
    (received,) = through_postfix.wait_for(1)
    assert received.rcpt_tos == ("ok@example.org",)


def test_retries_exhausted_against_postfix_fail_with_the_last_reply(
    through_postfix: Recorder, env: Env
) -> None:
    env["POCHTA_RETRY_MAX_ATTEMPTS"] = "2"
    message = run_until_final(submit(to=[GREY]))
    assert message.status == "failed"
    assert message.attempt_count == 2
    assert message.recipients[0].smtp_code == 451


def test_five_recipients_against_a_limit_of_two_all_sent_without_backoff(
    through_postfix: Recorder,
) -> None:
    recipients = [f"r{i}@example.org" for i in range(5)]
    message = run_until_final(submit(to=recipients))
    assert message.status == "sent"
    assert message.attempt_count == 1
    received = through_postfix.wait_for(3)
    assert len(received) >= 3, "at least three transactions"
    assert sorted(r for m in received for r in m.rcpt_tos) == recipients


def test_a_message_over_postfix_size_limit_fails_5_3_4_unsent(through_postfix: Recorder) -> None:
    message = run_until_final(submit(text="x" * (SIZE_LIMIT * 2)))
    assert message.status == "failed"
    assert message.recipients[0].enhanced_code == "5.3.4"
    assert through_postfix.messages == []


def test_a_non_ascii_address_is_sent_through_postfix_with_smtputf8(
    through_postfix: Recorder,
) -> None:
    message = run_until_final(submit(to=["пользователь@пример.рф"]))
    assert message.status == "sent"
    (received,) = through_postfix.wait_for(1)
    assert received.rcpt_tos == ("пользователь@пример.рф",)


def test_a_non_ascii_address_fails_clearly_when_postfix_has_no_smtputf8(
    env: Env,
    tmp_path_factory: pytest.TempPathFactory,
    recorder: Recorder,
    certificate: tuple[Path, Path],
) -> None:
    for instance in _postfix(tmp_path_factory, recorder, certificate, smtputf8=False):
        env["POCHTA_SMTP_HOST"] = instance.host
        env["POCHTA_SMTP_PORT"] = str(instance.port)
        message = run_until_final(submit(to=["пользователь@пример.рф"]))
        assert message.status == "failed"
        (recipient,) = message.recipients
        assert recipient.enhanced_code == "5.6.7"
        assert recipient.smtp_reply is not None
        assert "SMTPUTF8" in recipient.smtp_reply
