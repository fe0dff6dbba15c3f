"""Dependencies every route shares: settings, the unit of work, the caller, JSON bodies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import Settings, get_settings
from app.db import new_session, session_scope
from app.errors import NotFound, Unauthorized, UnsupportedMediaType
from app.keys.service import Caller, authenticate

T = TypeVar("T")


class UnitOfWork:
    """The request's session and caller, and what to do once its work is committed.

    Routes and dependencies touch the database only through `await work.run(...)`: the
    API key check, the work and its commit (or rollback) in one threadpool call. Each
    call there costs the event loop a thread handoff, and under load that costs more
    than the statements themselves. And no transaction stays open between two calls: on
    SQLite an open one holds the write lock, which the requests waiting for a thread
    would then wait for in turn.
    """

    def __init__(self, session: Session, secret: str) -> None:
        self.session = session
        self._secret = secret
        self._caller: Caller | None = None
        self._after_commit: list[Callable[[], object]] = []

    @property
    def caller(self) -> Caller:
        """Who holds the request's API key; Unauthorized if it is unknown or revoked.

        Looked up on first use, inside the first `run()`.
        """
        if self._caller is None:
            self._caller = authenticate(self.session, secret=self._secret)
        return self._caller

    @property
    def tenant(self) -> str | None:
        """The caller's tenant if the key was looked up (for the access log)."""
        return self._caller.tenant if self._caller is not None else None

    def after_commit(self, action: Callable[[], object]) -> None:
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
            raise
        actions, self._after_commit = self._after_commit, []
        for after in actions:
            after()
        return result


def _bearer_secret(request: Request) -> str:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send `Authorization: Bearer <api key>`")
    return secret.strip()


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work; 401 at once without `Authorization: Bearer <key>`."""
    secret = _bearer_secret(request)
    session = new_session()  # no I/O: it connects on first use
    work = UnitOfWork(session, secret)
    try:
        yield work
    finally:
        # No transaction is open (run() ends each one), so this is no I/O either.
        session.close()
        request.state.tenant = work.tenant


async def check_key(request: Request) -> None:
    """Unauthorized unless the request's API key is known and not revoked.

    For an answer given before the route runs (a 422 for its parameters): a caller
    without a valid key hears 401 first, as it would from the route.
    """
    secret = _bearer_secret(request)

    def check() -> str:
        with session_scope() as session:
            return authenticate(session, secret=secret).tenant

    request.state.tenant = await run_in_threadpool(check)


async def json_body(request: Request) -> None:
    """415 for a body that does not say it is JSON (checked before the body is parsed)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")


async def settings() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings)]
WorkDep = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]

# Printable ASCII: what every id Pochta hands out is; anything else cannot name a message.
_MESSAGE_ID = re.compile(r"[!-~]{1,64}")


async def message_id_param(
    message_id: Annotated[
        str,
        Path(
            description="The message's id, as POST /v1/messages returned it.",
            examples=["msg_01jdq3z8x0d4v6m2k7r9t5w1ya"],
        ),
    ],
    _work: WorkDep,
) -> str:
    """The id in the path (after the header check); 404 without a query for a non-id."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise NotFound("no message with that id")
    return message_id


MessageIdDep = Annotated[str, Depends(message_id_param)]
JsonBody = Depends(json_body)
