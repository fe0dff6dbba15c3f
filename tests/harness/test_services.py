"""Smoke tests for harness/services.py against real redis-server and PostgreSQL."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from harness.ports import free_port, wait_for_port
from harness.services import PostgresServer, RedisServer, create_database, drop_database

SHARED_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _libpq(url: str) -> str:
    """SQLAlchemy URL -> libpq URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _refused(port: int) -> bool:
    """Whether a TCP connect to 127.0.0.1:port is refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_free_port_and_wait_for_port() -> None:
    port = free_port()
    assert 0 < port < 65536
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", port, timeout=0.2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        wait_for_port("127.0.0.1", port, timeout=2)


def test_redis_stop_and_restart_on_same_port(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        try:
            client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"

            server.stop()
            server.stop()  # idempotent
            assert _refused(server.port)
            with pytest.raises(redis.ConnectionError):
                client.ping()

            server.start()
            assert client.ping()
            client.set("again", "1")
            assert client.get("again") == b"1"
        finally:
            client.close()
    assert _refused(server.port)


def test_redis_flushall(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        try:
            client.set("a", "1")
            client.select(3)
            client.set("b", "2")
            server.flushall()
            assert client.dbsize() == 0
            client.select(0)
            assert client.dbsize() == 0
        finally:
            client.close()


def test_postgres_data_survives_restart_on_same_port(tmp_path: Path) -> None:
    with PostgresServer(tmp_path) as server:
        assert server.url() == f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres"
        with psycopg.connect(_libpq(server.url()), autocommit=True) as conn:
            conn.execute("CREATE TABLE note (id int PRIMARY KEY, body text)")
            conn.execute("INSERT INTO note VALUES (1, 'kept')")

        server.stop()
        server.stop()  # idempotent
        assert _refused(server.port)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(_libpq(server.url()), connect_timeout=2)

        server.start()
        with psycopg.connect(_libpq(server.url())) as conn:
            assert conn.execute("SELECT body FROM note WHERE id = 1").fetchone() == ("kept",)

        url = server.create_database("second")
        assert url == server.url("second")
        with psycopg.connect(_libpq(url)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("second",)
    assert _refused(server.port)


def test_create_and_drop_database_on_shared_server() -> None:
    name = f"pochta_test_{uuid.uuid4().hex}"
    try:
        url = create_database(SHARED_PG_ADMIN_URL, name)
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        # An open connection must not stop drop_database.
        lingering = psycopg.connect(_libpq(url))
        assert lingering.execute("SELECT current_database()").fetchone() == (name,)
        drop_database(SHARED_PG_ADMIN_URL, name)
        lingering.close()
    finally:
        drop_database(SHARED_PG_ADMIN_URL, name)
    with psycopg.connect(_libpq(SHARED_PG_ADMIN_URL)) as admin:
        row = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert row.fetchone() == (0,)
