"""Sessions on this process's engine (app/runtime.py makes it at process start)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app import runtime


def get_engine() -> Engine:
    return runtime.current().engine


def new_session() -> Session:
    """A session on this process's engine (no I/O: it connects on first use)."""
    return runtime.current().sessions()


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
