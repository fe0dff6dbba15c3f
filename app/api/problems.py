"""RFC 9457 problem responses for every error, and the handlers that make them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import BadRequest, FieldError, InvalidFields, PochtaError, Unavailable

log = logging.getLogger("pochta.api")

PROBLEM_JSON = "application/problem+json"


def problem_response(error: PochtaError, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {
        "type": error.type,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if error.errors is not None:
        body["errors"] = [{"loc": e.loc, "message": e.message} for e in error.errors]
    return Response(
        orjson.dumps(body), status_code=error.status, media_type=PROBLEM_JSON, headers=headers
    )


def _loc(parts: Sequence[int | str]) -> str:
    """('body', 'to', 1) -> 'to[1]'; ('query', 'limit') -> 'limit'."""
    text = ""
    for part in parts[1:] if parts and parts[0] in ("body", "query", "path", "header") else parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part:
            text += f".{part}" if text else str(part)
    return text or "body"


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


def validation_problem(errors: Sequence[Any]) -> PochtaError:
    """A pydantic/FastAPI error list as a 400 (unparseable JSON) or 422 naming each field."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return BadRequest("the body is not valid JSON")
    fields = [FieldError(_loc(e.get("loc", ())), _message(e)) for e in errors]
    detail = "; ".join(f"{f.loc}: {f.message}" for f in fields)
    return InvalidFields(detail, errors=fields)


_STATUS_TITLES = {404: "Not found", 405: "Method not allowed"}


def install(app: FastAPI) -> None:
    """Route every error through problem_response: never HTML, never a traceback."""

    @app.exception_handler(PochtaError)
    async def _pochta(_: Request, error: PochtaError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return problem_response(error, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> Response:
        return problem_response(validation_problem(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> Response:
        problem = PochtaError(str(error.detail))
        problem.status = error.status_code
        problem.title = _STATUS_TITLES.get(error.status_code, "Error")
        return problem_response(problem, headers=dict(error.headers or {}))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(_: Request, error: Exception) -> Response:
        log.error("database unavailable: %s", error.__class__.__name__)
        return problem_response(Unavailable("the database is unavailable; retry shortly"))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(PochtaError("an unexpected error occurred"))
