"""Several relays in-process, on both backends (SPEC §10): routes, failover within an
attempt, down marks and pauses shared through the store, postponing without an attempt."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app import db
from app.clock import utcnow
from app.config import get_settings
from app.keys.service import Caller
from app.messages import service
from app.messages.schemas import MessageOut, SubmitMessage
from app.messages.serializers import message_out
from app.relays.config import get_relays
from app.relays.state import RelayCondition, store_for
from harness.ports import free_port
from harness.relay import ScriptedRelay
from tests.conftest import Env
from worker.delivery_loop import deliver_messages


def submit(tenant: str = "acme", **fields: Any) -> str:
    body: dict[str, Any] = {"from": "sender@example.org", "to": ["rcpt@example.org"], "text": "hi"}
    body.update(fields)
    with db.session_scope() as session:
        message = service.submit_message(
            session,
            caller=Caller(key_id="key_test", tenant=tenant),
            submit=SubmitMessage.model_validate(body),
            settings=get_settings(),
            now=utcnow(),
        )
        return message.id


def fetch(message_id: str, tenant: str = "acme") -> MessageOut:
    with db.session_scope() as session:
        caller = Caller(key_id="key_test", tenant=tenant)
        return message_out(service.get_message(session, caller=caller, message_id=message_id))


@pytest.fixture
def two_relays(env: Env) -> Iterator[tuple[ScriptedRelay, ScriptedRelay]]:
    with ScriptedRelay() as first, ScriptedRelay() as second:
        yield first, second


def write_relays(env: Env, tmp_path: Path, text: str) -> None:
    path = tmp_path / "relays.toml"
    path.write_text(text)
    env["POCHTA_RELAYS_FILE"] = str(path)


def relay_table(name: str, port: int, extra: str = "") -> str:
    return f'[relays.{name}]\nhost = "127.0.0.1"\nport = {port}\n{extra}\n'


def test_a_refused_relay_fails_over_to_the_backup_in_the_same_attempt(
    env: Env, tmp_path: Path, two_relays: tuple[ScriptedRelay, ScriptedRelay]
) -> None:
    _, backup = two_relays
    dead = free_port()
    write_relays(
        env,
        tmp_path,
        relay_table("primary", dead)
        + relay_table("backup", backup.port)
        + '[[routes]]\nrelays = ["primary", "backup"]\n',
    )
    ids = [submit(to=[f"r{i}@example.org"]) for i in range(3)]
    deliver_messages(ids)
    assert len(backup.wait_for(3)) == 3
    for message_id in ids:
        message = fetch(message_id)
        assert message.status == "sent"
        assert [a.relay for a in message.attempts] == [f"backup 127.0.0.1:{backup.port}"]
    # Every worker skips it now: the store says so, with why.
    state = store_for(get_settings()).read(["primary"])["primary"]
    assert state.condition(utcnow()) is RelayCondition.down
    assert state.reason is not None
    assert "Refused" in state.reason


def test_each_tenant_reaches_its_relay_and_the_rest_the_default(
    env: Env, tmp_path: Path, two_relays: tuple[ScriptedRelay, ScriptedRelay]
) -> None:
    relay_a, relay_b = two_relays
    with ScriptedRelay() as default:
        write_relays(
            env,
            tmp_path,
            relay_table("a", relay_a.port)
            + relay_table("b", relay_b.port)
            + relay_table("main", default.port)
            + '[[routes]]\ntenant = "tenant-a"\nrelays = ["a"]\n'
            + '[[routes]]\ntenant = "tenant-b"\nrelays = ["b"]\n'
            + '[[routes]]\nrelays = ["main"]\n',
        )
        sent = {
            tenant: submit(tenant, to=[f"{tenant}@example.org"])
            for tenant in ("tenant-a", "tenant-b", "other")
        }
        deliver_messages(list(sent.values()))
        assert [m.rcpt_tos for m in relay_a.wait_for(1)] == [["tenant-a@example.org"]]
        assert [m.rcpt_tos for m in relay_b.wait_for(1)] == [["tenant-b@example.org"]]
        assert [m.rcpt_tos for m in default.wait_for(1)] == [["other@example.org"]]
        assert (
            fetch(sent["tenant-b"], "tenant-b").attempts[0].relay == f"b 127.0.0.1:{relay_b.port}"
        )


def test_a_slow_down_reply_pauses_the_relay_and_its_messages_go_to_the_next(
    env: Env, tmp_path: Path, two_relays: tuple[ScriptedRelay, ScriptedRelay]
) -> None:
    primary, backup = two_relays
    env["POCHTA_RETRY_BASE_SECONDS"] = "300"
    env["POCHTA_RETRY_MAX_SECONDS"] = "600"
    env["POCHTA_RELAY_BACKOFF_SECONDS"] = "30"
    write_relays(
        env,
        tmp_path,
        relay_table("primary", primary.port, 'rate = "40/s"')
        + relay_table("backup", backup.port)
        + '[[routes]]\nrelays = ["primary", "backup"]\n',
    )
    primary.script_mail("454 4.7.0 Throttling failure: Maximum sending rate exceeded")
    first, second = submit(to=["first@example.org"]), submit(to=["second@example.org"])
    before = utcnow()
    deliver_messages([first, second])
    throttled = fetch(first)
    assert throttled.status == "deferred"
    assert (throttled.attempts[0].smtp_code, throttled.attempts[0].relay) == (
        454,
        f"primary 127.0.0.1:{primary.port}",
    )
    # Tried again when the pause ends, not after the 300-s retry backoff.
    assert throttled.next_attempt_at is not None
    assert before + timedelta(seconds=29) <= throttled.next_attempt_at
    assert throttled.next_attempt_at <= utcnow() + timedelta(seconds=31)
    assert [m.rcpt_tos for m in backup.wait_for(1)] == [["second@example.org"]]
    assert fetch(second).attempts[0].relay == f"backup 127.0.0.1:{backup.port}"
    state = store_for(get_settings()).read(["primary"])["primary"]
    assert state.condition(utcnow()) is RelayCondition.paused
    assert state.rate(get_relays(get_settings()).by_name["primary"], utcnow()) == 20


def test_with_its_only_relay_paused_a_message_waits_without_an_attempt(
    env: Env, relay: ScriptedRelay
) -> None:
    env["POCHTA_RELAY_BACKOFF_SECONDS"] = "30"
    relay.script_mail("421 4.7.0 Too many messages, slow down")
    first, second = submit(to=["first@example.org"]), submit(to=["second@example.org"])
    deliver_messages([first, second])
    assert fetch(first).attempt_count == 1
    waiting = fetch(second)
    assert (waiting.status, waiting.attempt_count, waiting.attempts) == ("queued", 0, [])
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at > utcnow() + timedelta(seconds=25)
    assert relay.messages == []


def test_a_greeting_of_too_many_connections_pauses_and_fails_over(
    env: Env, tmp_path: Path, two_relays: tuple[ScriptedRelay, ScriptedRelay]
) -> None:
    primary, backup = two_relays
    env["POCHTA_RELAY_BACKOFF_SECONDS"] = "30"
    write_relays(
        env,
        tmp_path,
        relay_table("primary", primary.port)
        + relay_table("backup", backup.port)
        + '[[routes]]\nrelays = ["primary", "backup"]\n',
    )
    primary.script_connect("421 4.7.0 Too many connections, try again later")
    message_id = submit()
    deliver_messages([message_id])
    backup.wait_for(1)
    assert [a.relay for a in fetch(message_id).attempts] == [f"backup 127.0.0.1:{backup.port}"]
    state = store_for(get_settings()).read(["primary"])["primary"]
    assert state.condition(utcnow()) is RelayCondition.paused
    assert state.reason is not None
    assert "Too many connections" in state.reason


def test_the_worker_shows_each_relays_state_rate_and_sessions_as_metrics(
    env: Env,
    tmp_path: Path,
    two_relays: tuple[ScriptedRelay, ScriptedRelay],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primary, _ = two_relays
    write_relays(
        env,
        tmp_path,
        relay_table("primary", primary.port, 'rate = "40/s"')
        + relay_table("dead", free_port())
        + '[[routes]]\nrelays = ["dead", "primary"]\n',
    )
    deliver_messages([submit()])
    primary.wait_for(1)
    # The gauges show the shared state as read: read it again for the next message.
    monkeypatch.setattr("worker.relays.STATE_TTL_SECONDS", 0.0)
    deliver_messages([submit()])

    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert sample("pochta_relay_state", relay="dead", state="down") == 1
    assert sample("pochta_relay_state", relay="dead", state="up") == 0
    assert sample("pochta_relay_state", relay="primary", state="up") == 1
    assert sample("pochta_relay_rate", relay="primary") == 40
    assert sample("pochta_relay_sessions", relay="primary") == 1
