"""One engine per process, made on first use (after a worker forks), and session scopes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings

_engine: Engine | None = None
_engine_pid: int | None = None
_sessionmaker: sessionmaker[Session] | None = None


def _prepare_sqlite(engine: Engine) -> None:
    # Several processes write one file: WAL lets readers run beside the writer, and
    # BEGIN IMMEDIATE takes the write lock up front so a read-then-write transaction
    # waits its turn (busy_timeout) instead of failing with SQLITE_BUSY mid-way.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for url, with SQLite made safe for several processes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _prepare_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_engine() -> Engine:
    """This process's engine; a forked child makes its own instead of sharing sockets."""
    global _engine, _engine_pid, _sessionmaker
    if _engine is None or _engine_pid != os.getpid():
        _engine = make_engine(get_settings().database_url)
        _engine_pid = os.getpid()
        _sessionmaker = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def dispose_engine() -> None:
    """Forget this process's engine (tests switch databases; workers re-make it after fork)."""
    global _engine, _engine_pid, _sessionmaker
    if _engine is not None and _engine_pid == os.getpid():
        _engine.dispose()
    _engine = None
    _engine_pid = None
    _sessionmaker = None


def new_session() -> Session:
    """A session on this process's engine."""
    get_engine()
    assert _sessionmaker is not None
    return _sessionmaker()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: committed if the block ends normally, rolled back otherwise."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
