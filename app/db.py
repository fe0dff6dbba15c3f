"""Sessions on this process's engine (app/runtime.py makes it at process start)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
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


@contextmanager
def repeatable_scope() -> Iterator[Session]:
    """A unit of work that, lost, is only done again: a webhook claimed, sent or fanned out.

    On PostgreSQL it commits without waiting for its WAL to reach the disk. A database
    crash can lose the last such commits (never half of one, and never one before a later
    durable commit); what they recorded is then redone, which at-least-once delivery
    allows (docs/webhooks.md). The flush they skip is what email's own commits wait for.
    """
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        yield session
