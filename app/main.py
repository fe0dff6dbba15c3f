"""create_app(): routers, problem handlers and the request-size guard."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import runtime
from app.api import (
    access_log,
    docs_pages,
    events,
    health,
    idempotency,
    messages,
    metrics,
    openapi,
    problems,
    suppressions,
    webhooks,
)
from app.config import get_settings
from app.errors import PayloadTooLarge
from app.outbox.doorbell import doorbell
from app.ui import app as ui

DOORBELL_FLUSH_SECONDS = 5.0
API_THREADS = 8


class BodyLimit:
    """413 for a body over the limit, without reading more of it than the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                response = problems.problem_response(_too_large(limit))
                await response(scope, receive, send)
                return
        seen = 0
        overflowed = False

        async def counted() -> Message:
            nonlocal seen, overflowed
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                overflowed = True
                raise _too_large(limit)
            return message

        async def unless_overflowed(message: Message) -> None:
            # Frameworks turn a failed body read into their own 400; ours is the answer.
            if not overflowed:
                await send(message)

        with contextlib.suppress(PayloadTooLarge):
            await self.app(scope, counted, unless_overflowed)
        if overflowed:
            await problems.problem_response(_too_large(limit))(scope, receive, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over POCHTA_MAX_REQUEST_BYTES ({limit} bytes)")


@contextlib.asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Route work is CPU-bound Python: more threads than this only queue on the GIL, and
    # each waits longer for its turn (anyio's default is 40, above the database pool's 30).
    to_thread.current_default_thread_limiter().total_tokens = API_THREADS
    runtime.start()
    doorbell.start()
    yield
    # Ring for what was accepted last before the process goes; the scheduler would, later.
    await run_in_threadpool(doorbell.flush, DOORBELL_FLUSH_SECONDS)


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        # FastAPI's pages load their scripts from a CDN; docs_pages serves them itself.
        docs_url=None,
        redoc_url=None,
        title="Pochta",
        version="1",
        summary="Send email over HTTP; ask what the relay said to every recipient.",
    )
    problems.install(app)
    idempotency.install(app)
    app.include_router(health.router)
    app.include_router(messages.router)
    app.include_router(events.router)
    app.include_router(metrics.router)
    app.include_router(webhooks.router)
    app.include_router(suppressions.router)
    openapi.install(app)
    docs_pages.install(app)
    ui.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    # Outermost (added last), so that the 413s BodyLimit answers are logged too.
    app.add_middleware(access_log.AccessLog)
    return app
