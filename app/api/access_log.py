"""The access log: one line per request, so that a 401, a 422 or a 413 is seen by someone.

A pure ASGI middleware, not BaseHTTPMiddleware: that one runs the app in a task of
its own and costs the accept path more than the log line does. It reads what the
request already carries (the matched route, its path parameters, the Location of a
new message, the tenant the API key belongs to) and never a header's value or a body.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("pochta.access")

REQUEST_ID_HEADER = b"x-request-id"
# A caller's own id is kept when it is short and plain: it goes into logs and a header.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
_MESSAGES_PREFIX = b"/v1/messages/"
# What an id Pochta hands out looks like; a path parameter that is not one stays unlogged.
_MESSAGE_ID = re.compile(r"[!-~]{1,64}")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The caller's X-Request-Id if it is sane, else a new random one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER and _SANE_REQUEST_ID.fullmatch(value):
            return value
    # Unique is all an id needs to be, not unguessable: no system call per request.
    return b"%024x" % random.getrandbits(96)


def _path_template(scope: Scope) -> str:
    """`/v1/messages/{message_id}` rather than the id: lines a person can group by."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if isinstance(template, str):
        return template
    # No route matched (404, or answered before routing): the path as it came, still
    # percent-encoded, so that no decoded newline can forge a line of the text log.
    raw = scope.get("raw_path")
    path = raw.decode("ascii", "replace") if raw else quote(scope["path"])
    return path.split("?", 1)[0][:200]


class AccessLog:
    """Adds X-Request-Id to every answer and logs the request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        status = 500  # what the server answers when the app raises before it starts
        created: str | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, created
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if status == 202:
                    created = _created_id(headers)
                headers.append((REQUEST_ID_HEADER, request_id))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info("request", extra=_fields(scope, status, started, request_id, created))


def _created_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The id in a 202's `Location: /v1/messages/{id}`."""
    for name, value in headers:
        if name == b"location" and value.startswith(_MESSAGES_PREFIX):
            return value[len(_MESSAGES_PREFIX) :].decode("ascii", "replace")
    return None


def _message_id(value: object) -> str | None:
    return value if isinstance(value, str) and _MESSAGE_ID.fullmatch(value) else None


def _fields(
    scope: Scope, status: int, started: float, request_id: bytes, created: str | None
) -> dict[str, Any]:
    state = scope.get("state") or {}
    path_params = scope.get("path_params") or {}
    return {
        "method": scope["method"],
        "path": _path_template(scope),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        # Left there by the API key check (app/api/auth.py: request.state.tenant).
        "tenant": state.get("tenant"),
        "message_id": _message_id(path_params.get("message_id")) or created,
        "request_id": request_id.decode(),
    }
