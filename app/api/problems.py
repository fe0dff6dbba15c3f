"""RFC 9457 problem responses for every error, and the handlers that make them."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import BadRequest, PochtaError, Unavailable, validation_problem

log = logging.getLogger("pochta.api")

PROBLEM_JSON = "application/problem+json"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def problem_response(error: PochtaError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(error.as_problem()),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


_STATUS_TITLES = {404: "Not found", 405: "Method not allowed"}


def _path_matches(template: str, path: str) -> bool:
    """'/v1/messages/{message_id}' matches '/v1/messages/msg_1', segment by segment."""
    want, have = template.strip("/").split("/"), path.strip("/").split("/")
    return len(want) == len(have) and all(
        w == h or (w.startswith("{") and bool(h)) for w, h in zip(want, have, strict=True)
    )


def _allowed_methods(request: Request) -> str | None:
    """Every method documented at this path (Starlette names only its first route's)."""
    paths: dict[str, dict[str, object]] = request.app.openapi().get("paths", {})
    path = request.url.path.rstrip("/") or "/"
    # As in OpenAPI, a concrete path wins over a template (/batch is not a message id).
    matching = (
        [paths[path]]
        if path in paths
        else [operations for template, operations in paths.items() if _path_matches(template, path)]
    )
    methods = {method.upper() for operations in matching for method in operations}
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever GET is
    return ", ".join(sorted(methods)) or None


def install(app: FastAPI) -> None:
    """Route every error through problem_response: never HTML, never a traceback."""

    @app.exception_handler(PochtaError)
    async def _pochta(_: Request, error: PochtaError) -> Response:
        headers = UNAUTHORIZED_HEADERS if error.status == 401 else None
        return problem_response(error, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> Response:
        # The caller's key was checked before the request was read (api/auth.py).
        return problem_response(validation_problem(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        problem = PochtaError(str(error.detail))
        problem.status = error.status_code
        problem.title = _STATUS_TITLES.get(error.status_code, "Error")
        if error.status_code == 400:
            # FastAPI's "error parsing the body" (JSON nested too deep, a number too long).
            problem = BadRequest("the body is not JSON that can be read")
        headers = dict(error.headers or {})
        allowed = _allowed_methods(request) if error.status_code == 405 else None
        if allowed:
            headers["Allow"] = allowed
        return problem_response(problem, headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(_: Request, error: Exception) -> Response:
        log.error("database unavailable: %s", error.__class__.__name__)
        return problem_response(Unavailable("the database is unavailable; retry shortly"))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(PochtaError("an unexpected error occurred"))
