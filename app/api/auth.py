"""Who is calling: the API key, checked once per request before anything else is read.

Routes of the /v1 API use AuthenticatedRoute: the key is checked before FastAPI reads,
parses or validates the body, the path or the query, so a caller without a valid key
hears 401 and nothing else (no 415 or 422 that would tell it about the API).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from app.db import session_scope
from app.errors import Unauthorized
from app.keys.service import Caller, authenticate


def bearer_secret(request: Request) -> str:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send `Authorization: Bearer <api key>`")
    return secret.strip()


async def authenticate_request(request: Request) -> Caller:
    """The caller the request's bearer key belongs to; Unauthorized if unknown or revoked."""
    secret = bearer_secret(request)  # 401 without I/O when there is no key at all

    def check() -> Caller:
        with session_scope() as session:
            return authenticate(session, secret=secret)

    return await run_in_threadpool(check)


class AuthenticatedRoute(APIRoute):
    """A route that answers 401 before its request is read any further."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def authenticated_first(request: Request) -> Response:
            request.state.caller = await authenticate_request(request)
            return await handle(request)

        return authenticated_first


async def current_caller(request: Request) -> Caller:
    """The caller AuthenticatedRoute found for this request."""
    caller: Caller = request.state.caller
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
