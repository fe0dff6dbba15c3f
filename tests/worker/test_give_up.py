"""A recipient that fails because Pochta stopped retrying says so, in the API and the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.logs import JsonFormatter
from harness.relay import ScriptedRelay
from tests.conftest import Env, make_key
from tests.support.flow import run_until_final, submit
from worker.delivery_loop import deliver_messages

GREYLISTED = "451 4.7.1 Greylisted, try later"


def resource(message_id: str) -> dict[str, Any]:
    """The Message resource as GET /v1/messages/{id} answers it."""
    from app.main import create_app

    with TestClient(create_app()) as client:
        response = client.get(
            f"/v1/messages/{message_id}", headers={"Authorization": f"Bearer {make_key()}"}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def failure_lines(caplog: pytest.LogCaptureFixture, message_id: str) -> list[dict[str, Any]]:
    """The worker's WARNING lines about message_id, as POCHTA_LOG_FORMAT=json writes them."""
    return [
        json.loads(JsonFormatter().format(record))
        for record in caplog.records
        if record.name == "pochta.worker"
        and record.levelno == logging.WARNING
        and getattr(record, "message_id", None) == message_id
    ]


def test_greylisted_until_the_attempts_run_out_says_it_gave_up(
    relay: ScriptedRelay, env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env["POCHTA_RETRY_MAX_ATTEMPTS"] = "3"
    relay.script_rcpt("grey@example.org", *[GREYLISTED] * 3)
    message_id = submit(to=["grey@example.org"])
    deliver_messages([message_id])
    (deferred,) = resource(message_id)["recipients"]
    assert (deferred["status"], deferred["error"]) == ("deferred", None)

    with caplog.at_level(logging.INFO, logger="pochta.worker"):
        assert run_until_final(message_id).status == "failed"
    body = resource(message_id)
    assert body["attempt_count"] == 3
    assert body["attempts"][-1]["outcome"] == "deferred", "the relay only said: later"
    (recipient,) = body["recipients"]
    assert recipient == {
        "email": "grey@example.org",
        "status": "failed",
        "smtp_code": 451,
        "enhanced_code": "4.7.1",
        "smtp_reply": "Greylisted, try later",
        "attempts": 3,
        "error": "gave up after 3 attempts",
        # Greylisting is policy (SPEC §8): it never suppresses the address.
        "bounce_class": "policy",
    }
    (line,) = failure_lines(caplog, message_id)
    assert line["msg"] == (
        "message failed: gave up after 3 attempts; last: 451 4.7.1 Greylisted, try later"
    )
    assert (line["smtp_code"], line["enhanced_code"], line["smtp_reply"]) == (
        451,
        "4.7.1",
        "Greylisted, try later",
    )
    assert (line["status"], line["gave_up"], line["attempt"]) == (
        "failed",
        "gave up after 3 attempts",
        3,
    )


def test_greylisted_past_the_retry_lifetime_says_the_lifetime_ran_out(
    relay: ScriptedRelay, env: Env
) -> None:
    env["POCHTA_RETRY_MAX_AGE_SECONDS"] = "0.3"
    relay.script_rcpt("grey@example.org", *[GREYLISTED] * 1000)
    message = run_until_final(submit(to=["grey@example.org"]))
    assert message.status == "failed"
    assert {a.outcome for a in message.attempts} == {"deferred"}, "the relay only said: later"
    (recipient,) = resource(message.id)["recipients"]
    assert (recipient["status"], recipient["smtp_code"], recipient["error"]) == (
        "failed",
        451,
        "retry lifetime of 0.3 seconds exceeded",
    )


def test_a_recipient_the_relay_refused_for_good_has_no_note(
    relay: ScriptedRelay, env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env["POCHTA_RETRY_MAX_ATTEMPTS"] = "1"
    relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user")
    relay.script_rcpt("grey@example.org", GREYLISTED)
    message_id = submit(to=["nobody@example.org", "grey@example.org"])
    with caplog.at_level(logging.INFO, logger="pochta.worker"):
        assert run_until_final(message_id).status == "failed"
    errors = {r["email"]: (r["smtp_code"], r["error"]) for r in resource(message_id)["recipients"]}
    assert errors == {
        "nobody@example.org": (550, None),
        "grey@example.org": (451, "gave up after 1 attempt"),
    }
    (line,) = failure_lines(caplog, message_id)
    # The attempt's reply is its last refusal (docs/delivery.md).
    assert line["msg"] == "message failed: gave up after 1 attempt; last: " + GREYLISTED


def test_a_plain_550_fails_with_the_reply_alone(
    relay: ScriptedRelay, caplog: pytest.LogCaptureFixture
) -> None:
    relay.script_rcpt("nobody@example.org", "550 5.1.1 <nobody@example.org>: No such user here")
    with caplog.at_level(logging.INFO, logger="pochta.worker"):
        message = run_until_final(submit(to=["nobody@example.org"]))
    assert message.status == "failed"
    (recipient,) = resource(message.id)["recipients"]
    assert (recipient["smtp_code"], recipient["error"]) == (550, None)
    (line,) = failure_lines(caplog, message.id)
    assert line["msg"] == "message failed: 550 5.1.1 <nobody@example.org>: No such user here"
    assert line["smtp_reply"] == "<nobody@example.org>: No such user here"
    assert "gave_up" not in line, "a field without a value is left out"


def test_the_openapi_document_describes_the_note(sqlite_env: Env) -> None:
    from app.main import create_app

    with TestClient(create_app()) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    recipient = schemas["RecipientOut"]
    assert "error" in recipient["required"]
    assert {"type": "null"} in recipient["properties"]["error"]["anyOf"]
    assert "gave up after" in recipient["properties"]["error"]["description"]
