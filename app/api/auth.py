"""Who is calling: the request's API key, in one place, and 401 before any other refusal.

Routes of the /v1 API use AuthenticatedRoute. A request without `Authorization: Bearer`
is refused before anything else is read. A key is looked up in the route's first
database call (`credentials.caller(work.session)` inside `work.run`), sharing its
threadpool handoff: a second handoff per request would cost about a fifth of the
accept throughput. A request refused before that call (a 422 from validation, a 415,
a 400 or 404 from the path) has its key checked first, here, so a caller without a
valid key hears 401 and nothing that would tell it about the API; the error handlers
never touch the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from app.db import session_scope
from app.errors import PayloadTooLarge, PochtaError, Unauthorized
from app.keys.service import Caller, authenticate


def bearer_secret(request: Request) -> str:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send `Authorization: Bearer <api key>`")
    return secret.strip()


class Credentials:
    """The request's bearer key, and the caller it belongs to once looked up."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._caller: Caller | None = None

    @property
    def checked(self) -> bool:
        return self._caller is not None

    @property
    def tenant(self) -> str | None:
        """The key's tenant once looked up (for the access log), else None."""
        return self._caller.tenant if self._caller is not None else None

    def caller(self, session: Session) -> Caller:
        """Who holds the key; Unauthorized if it is unknown or revoked. Looked up once."""
        if self._caller is None:
            self._caller = authenticate(session, secret=self._secret)
        return self._caller

    async def check(self) -> None:
        """Look the key up on its own (for a request refused before its first call)."""

        def lookup() -> None:
            with session_scope() as session:
                self.caller(session)

        await run_in_threadpool(lookup)


class AuthenticatedRoute(APIRoute):
    """A route whose every refusal is a 401 first, when the key is not valid."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def authenticated_first(request: Request) -> Response:
            credentials = Credentials(bearer_secret(request))  # 401 without I/O
            request.state.credentials = credentials
            try:
                return await handle(request)
            except (RequestValidationError, HTTPException, PochtaError) as refused:
                if credentials.checked or isinstance(refused, Unauthorized | PayloadTooLarge):
                    raise
                # The database being away leaves the first refusal true.
                with contextlib.suppress(DBAPIError):
                    await credentials.check()
                raise
            finally:
                # The access log (app/api/access_log.py) reads it from the ASGI scope.
                request.state.tenant = credentials.tenant

        return authenticated_first


async def request_credentials(request: Request) -> Credentials:
    """The credentials AuthenticatedRoute took from this request."""
    credentials: Credentials = request.state.credentials
    return credentials


CredentialsDep = Annotated[Credentials, Depends(request_credentials)]
