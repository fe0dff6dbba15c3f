"""Scheduled sends and cancel through the real processes: canceled means never delivered."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.relay import ScriptedRelay
from harness.services import RedisServer
from harness.stack import Stack
from tests.conftest import Env, make_key
from tests.support.checks import copies_by_message_id, message_ids, statuses, submit, wait_until


@pytest.fixture
def own_broker(env: Env) -> Iterator[None]:
    """On PostgreSQL, a Redis of the test's own: other test runs flush the shared one."""
    if env.backend != "postgres":
        yield
        return
    workdir = Path(tempfile.mkdtemp(prefix="pochta-redis-"))
    try:
        with RedisServer(workdir) as server:
            env["POCHTA_BROKER_URL"] = server.url
            yield
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.usefixtures("own_broker")
def test_scheduled_waits_for_send_at_and_canceled_is_never_delivered(
    env: Env, relay: ScriptedRelay, tmp_path: Path
) -> None:
    with Stack(env.for_subprocess(), tmp_path) as stack:
        stack.start("api", "scheduler")  # no worker yet: each doorbell waits on the broker
        with stack.client(make_key()) as client:
            send_at = datetime.now(UTC) + timedelta(seconds=3)
            later = submit(client, 0, send_at=send_at.isoformat())
            later_canceled = submit(client, 1, send_at=send_at.isoformat())
            queued_canceled = submit(client, 2)  # its task is on the broker already
            control = submit(client, 3)
            assert statuses([later, later_canceled, queued_canceled, control]) == {
                later: "scheduled",
                later_canceled: "scheduled",
                queued_canceled: "queued",
                control: "queued",
            }
            for message_id in (later_canceled, queued_canceled):
                canceled = client.post(f"/v1/messages/{message_id}/cancel")
                assert canceled.status_code == 200, canceled.text
                assert canceled.json()["status"] == "canceled"
            stack.start("worker")
            worker_log = tmp_path / "worker.log"
            wait_until(
                lambda: queued_canceled in worker_log.read_text(errors="replace"),
                30,
                stack.logs,
            )
            sent = stack.wait_for_status(client, later, {"sent", "failed"})
            stack.wait_for_status(client, control, {"sent", "failed"})
            assert client.post(f"/v1/messages/{later}/cancel").status_code == 409
    assert statuses([later_canceled, queued_canceled]) == {
        later_canceled: "canceled",
        queued_canceled: "canceled",
    }
    started = datetime.fromisoformat(sent["attempts"][0]["started_at"].replace("Z", "+00:00"))
    assert started >= send_at.replace(microsecond=send_at.microsecond // 1000 * 1000)
    expected = message_ids([later, control])
    assert copies_by_message_id(relay) == {expected[later]: 1, expected[control]: 1}
