"""/metrics in one process: what acceptance, attempts and relay connections add up to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from harness.relay import ScriptedRelay
from tests.conftest import Env, make_key
from tests.support.prometheus import Samples, parse, value
from worker.delivery_loop import deliver_messages


@pytest.fixture
def relay(sqlite_env: Env) -> Iterator[ScriptedRelay]:
    with ScriptedRelay() as server:
        sqlite_env["POCHTA_SMTP_HOST"] = server.host
        sqlite_env["POCHTA_SMTP_PORT"] = str(server.port)
        yield server


def test_metrics_follow_acceptance_attempts_statuses_and_relay_connections(
    relay: ScriptedRelay,
) -> None:
    from app.main import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {make_key()}"

    def scrape() -> Samples:
        response = client.get("/metrics", headers={"Authorization": ""})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return parse(response.text)

    def submit(to: str) -> str:
        body = {"from": "a@example.org", "to": [to], "text": "x"}
        response = client.post("/v1/messages", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    before = scrape()
    deliver_messages([submit("ok@example.org")])  # opens a connection: sent, 250
    relay.script_rcpt("later@example.org", "451 4.7.1 Greylisted, try later")
    deliver_messages([submit("later@example.org")])  # same connection: deferred, 451
    relay.fail_command("MAIL", "421 4.3.2 Shutting down")
    deliver_messages([submit("closing@example.org")])  # 421: we close the connection
    relay.stop()
    deliver_messages([submit("nobody-home@example.org")])  # a new connection fails
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("pochta_messages_accepted_total") == 4
    assert delta("pochta_attempts_total", outcome="sent", reply_class="2xx") == 1
    assert delta("pochta_attempts_total", outcome="deferred", reply_class="4xx") == 2
    assert delta("pochta_attempts_total", outcome="deferred", reply_class="none") == 1
    assert delta("pochta_attempts_total", outcome="failed", reply_class="5xx") == 0
    assert delta("pochta_delivery_latency_seconds_count", status="sent") == 1
    assert delta("pochta_delivery_latency_seconds_bucket", status="sent", le="+Inf") == 1
    assert delta("pochta_relay_connections_total", event="opened") == 1
    assert delta("pochta_relay_connections_total", event="closed") == 1
    assert delta("pochta_relay_connections_total", event="failed") == 1
    # Computed from the database at scrape time: this test's database only.
    assert value(after, "pochta_messages", status="sent") == 1
    assert value(after, "pochta_messages", status="deferred") == 3
    assert value(after, "pochta_messages", status="canceled") == 0
