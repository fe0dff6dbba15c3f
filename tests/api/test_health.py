"""/healthz and /readyz against private PostgreSQL and Redis servers that the test stops."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from harness.ports import free_port
from harness.services import PostgresServer, RedisServer
from tests.conftest import Env


def test_readyz_names_what_is_down_and_healthz_does_not_care(
    sqlite_env: Env, tmp_path: Path
) -> None:
    with RedisServer(tmp_path / "redis") as broker, PostgresServer(tmp_path / "pg") as database:
        sqlite_env["POCHTA_DATABASE_URL"] = database.url()
        sqlite_env["POCHTA_BROKER_URL"] = broker.url
        from app.main import create_app

        client = TestClient(create_app(), raise_server_exceptions=False)

        def ready() -> tuple[int, str]:
            response = client.get("/readyz")
            if response.status_code == 200:
                assert response.json() == {"status": "ready"}
                return 200, ""
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert body["status"] == response.status_code
            return response.status_code, body["detail"]

        assert ready() == (200, "")
        broker.stop()
        assert ready() == (503, "unreachable: broker")
        database.stop()
        assert ready() == (503, "unreachable: database, broker")
        assert client.get("/healthz").json() == {"status": "ok"}, "liveness does no I/O"
        broker.start()
        assert ready() == (503, "unreachable: database")
        database.start()
        assert ready() == (200, "")


def test_head_on_both_probes_answers_like_get_without_a_body(sqlite_env: Env) -> None:
    from app.main import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    for path in ("/healthz", "/readyz"):
        got, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))

    sqlite_env["POCHTA_BROKER_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    down = TestClient(create_app(), raise_server_exceptions=False).head("/readyz")
    assert (down.status_code, down.content) == (503, b"")
    assert down.headers["content-type"] == "application/problem+json"
