"""With POCHTA_BOUNCE_DOMAIN, submit and batch store a VERP envelope sender (SPEC §9)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from app import db
from app.bounces import verp
from app.config import Settings, describe_error, get_settings
from app.messages.models import Message
from tests.conftest import Env

DOMAIN = "bounces.example.org"
BODY = {"from": "sender@example.org", "to": ["billy@example.org"], "text": "hi"}


def envelope_of(message_id: str) -> str:
    with db.session_scope() as session:
        return session.scalars(select(Message.envelope_from).where(Message.id == message_id)).one()


def test_submit_and_batch_get_a_verp_envelope_that_names_the_message(
    api: TestClient, sqlite_env: Env
) -> None:
    sqlite_env["POCHTA_BOUNCE_DOMAIN"] = DOMAIN.upper()
    one = api.post("/v1/messages", json=BODY)
    assert one.status_code == 202, one.text
    batch = api.post("/v1/messages/batch", json={"messages": [BODY, BODY]})
    ids = [one.json()["id"]] + [item["message"]["id"] for item in batch.json()["results"]]
    for message_id in ids:
        envelope = envelope_of(message_id)
        assert envelope.endswith(f"@{DOMAIN}"), envelope
        assert verp.read_address(get_settings(), envelope) == message_id
    assert "envelope_from" not in one.json()


def test_an_explicit_envelope_from_wins_and_no_domain_means_no_verp(
    api: TestClient, sqlite_env: Env
) -> None:
    plain = api.post("/v1/messages", json=BODY).json()["id"]
    assert envelope_of(plain) == "sender@example.org"
    sqlite_env["POCHTA_BOUNCE_DOMAIN"] = DOMAIN
    given = api.post("/v1/messages", json={**BODY, "envelope_from": "bounces@ya.ru"}).json()["id"]
    assert envelope_of(given) == "bounces@ya.ru"


def test_a_bad_bounce_domain_is_a_bad_setting(sqlite_env: Env) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(bounce_domain="not a domain")
    assert describe_error(raised.value).startswith("POCHTA_BOUNCE_DOMAIN: ")
    assert Settings(bounce_domain="Почта.example").bounce_domain == "xn--80a1acny.example"
