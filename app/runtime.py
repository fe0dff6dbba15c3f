"""What one process makes from its settings: the database engine and its sessions.

Made once when the process starts: the API's lifespan, each Celery pool process at
`worker_process_init` (worker/process.py), or first use in a command or a test. A forked
child never uses its parent's: `start(forked=True)` drops the inherited connections
without closing the parent's sockets and makes its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from app.config import Settings, get_settings


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


class Runtime:
    """This process's engine and session factory, made from one Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self, *, inherited: bool = False) -> None:
        # An inherited pool's sockets are the parent's: forget them, never close them.
        self.engine.dispose(close=not inherited)


_current: Runtime | None = None


def start(*, forked: bool = False) -> Runtime:
    """Make this process's runtime from the current settings, replacing any before it."""
    global _current
    if _current is not None:
        _current.close(inherited=forked)
    _current = Runtime(get_settings())
    return _current


def current() -> Runtime:
    """The runtime started for this process; one is started on first use if none was."""
    return _current if _current is not None else start()


def stop() -> None:
    """Close this process's runtime (tests switch settings; a process that ends)."""
    global _current
    if _current is not None:
        _current.close()
    _current = None
