"""The request's unit of work: one session, committed work, and what to do after commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.db import new_session

T = TypeVar("T")


class UnitOfWork:
    """The request's session, and what to do once its work is committed.

    Routes and dependencies touch the database only through `await work.run(...)`: the
    work and its commit (or rollback) in one threadpool call. Each call there costs the
    event loop a thread handoff, and under load that costs more than the statements
    themselves. And no transaction stays open between two calls: on SQLite an open one
    holds the write lock, which the requests waiting for a thread would then wait for
    in turn.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._after_commit: list[Callable[[], object]] = []

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run action once the current run() commits; never if it rolls back."""
        self._after_commit.append(action)

    async def run(self, action: Callable[[], T]) -> T:
        """action() in the threadpool, committed if it returns, rolled back if it raises."""
        return await run_in_threadpool(self._committed, action)

    def _committed(self, action: Callable[[], T]) -> T:
        try:
            result = action()
            self.session.commit()
        except BaseException:
            self.session.rollback()
            # What the rolled-back work registered belongs to it: a later run() that
            # commits (releasing an Idempotency-Key, say) must not fire it.
            self._after_commit = []
            raise
        actions, self._after_commit = self._after_commit, []
        for after in actions:
            after()
        return result


async def unit_of_work() -> AsyncIterator[UnitOfWork]:
    session = new_session()  # no I/O: it connects on first use
    try:
        yield UnitOfWork(session)
    finally:
        # No transaction is open (run() ends each one), so this is no I/O either.
        session.close()


WorkDep = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
