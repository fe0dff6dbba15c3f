"""What /openapi.json says beyond what FastAPI infers: problem responses, and examples.

Every route names the problems it can answer with (`problems(401, 404, ...)`); each is
`application/problem+json` with the Problem schema, which FastAPI cannot express itself
(it would file the schema under application/json). Examples of the main shapes are added
to their component schemas here, so that the models stay about validation.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from app.api.problems import PROBLEM_JSON

_REF = "#/components/schemas/{model}"


class ProblemFieldError(BaseModel):
    loc: str = Field(description="The field, e.g. `to[1]`, `headers.X-Campaign`, `limit`.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document: every error Pochta answers with."""

    type: str = Field(description="A URI reference naming the kind of problem.")
    title: str
    status: int = Field(description="The HTTP status code, repeated.")
    detail: str = Field(description="What went wrong with this request, for a person.")
    errors: list[ProblemFieldError] | None = Field(
        default=None, description="Each bad field; present on validation problems (422) only."
    )


_PROBLEMS: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "The body is not valid JSON.",
        {"type": "/problems/malformed-request", "title": "Malformed request", "status": 400,
         "detail": "the body is not valid JSON"},
    ),
    401: (
        "`Authorization: Bearer <api key>` is missing, or the key is unknown or revoked.",
        {"type": "/problems/unauthorized", "title": "Unauthorized", "status": 401,
         "detail": "the API key is unknown or revoked"},
    ),
    403: (
        "The API key's scope does not cover this route: a `send` key may only submit and "
        "cancel, a `read` key only read.",
        {"type": "/problems/forbidden", "title": "Forbidden", "status": 403,
         "detail": "a read key cannot POST /v1/messages; it needs a send or full key"},
    ),
    404: (
        "No such message for this API key's tenant.",
        {"type": "/problems/not-found", "title": "Not found", "status": 404,
         "detail": "no message msg_01jdq3z8x0d4v6m2k7r9t5w1ya"},
    ),
    409: (
        "The message is sending or finished (cancel), or the same Idempotency-Key is in flight.",
        {"type": "/problems/conflict", "title": "Conflict", "status": 409,
         "detail": "message msg_01jdq3z8x0d4v6m2k7r9t5w1ya is sent and cannot be canceled"},
    ),
    413: (
        "The request body is over POCHTA_MAX_REQUEST_BYTES, or the built message over "
        "POCHTA_MAX_MESSAGE_BYTES.",
        {"type": "/problems/too-large", "title": "Payload too large", "status": 413,
         "detail": "the request body is over POCHTA_MAX_REQUEST_BYTES (15728640 bytes)"},
    ),
    415: (
        "The body is not sent as application/json.",
        {"type": "/problems/unsupported-media-type", "title": "Unsupported media type",
         "status": 415, "detail": "send the body as application/json"},
    ),
    422: (
        "A field is invalid; `errors` names each one.",
        {"type": "/problems/validation", "title": "Invalid request", "status": 422,
         "detail": "to[1]: is not a valid address: The email address is not valid.",
         "errors": [{"loc": "to[1]", "message": "is not a valid address: ..."}]},
    ),
    503: (
        "The database (or, for /readyz, the broker) does not answer; retry shortly.",
        {"type": "/problems/unavailable", "title": "Service unavailable", "status": 503,
         "detail": "the database is unavailable; retry shortly"},
    ),
}  # fmt: skip


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these problem statuses, for a route decorator."""
    return {
        status: {
            "description": _PROBLEMS[status][0],
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": _REF.format(model="Problem")},
                    "example": _PROBLEMS[status][1],
                }
            },
        }
        for status in statuses
    }


def example(status: int, body: Any) -> dict[int | str, dict[str, Any]]:
    """A `responses=` entry giving a JSON success response its example."""
    return {status: {"content": {"application/json": {"example": body}}}}


LOCATION = {
    "Location": {
        "description": "The new message: `/v1/messages/{id}`.",
        "schema": {"type": "string"},
    }
}

_SUBMIT_EXAMPLE: dict[str, Any] = {
    "from": "Вася Пупкин <vasiapupkin@ya.ru>",
    "to": ["billy@example.org", "Billy G <billy.g@example.org>"],
    "cc": [],
    "bcc": ["audit@ya.ru"],
    "subject": "Hello Billy",
    "text": "plain body",
    "html": "<p>html body</p>",
    "attachments": [{"filename": "hello.txt", "content_type": "text/plain", "content": "aGVsbG8K"}],
    "headers": {"X-Campaign": "welcome"},
    "envelope_from": "bounces@ya.ru",
    "tags": ["welcome"],
    "metadata": {"user_id": "42"},
}

_MESSAGE_EXAMPLE: dict[str, Any] = {
    "id": "msg_01jdq3z8x0d4v6m2k7r9t5w1ya",
    "status": "deferred",
    "from": "Вася Пупкин <vasiapupkin@ya.ru>",
    "to": ["billy@example.org"],
    "cc": [],
    "bcc": [],
    "reply_to": [],
    "subject": "Hello Billy",
    "message_id": "<01jdq3z8x0d4v6m2k7r9t5w1ya@ya.ru>",
    "tags": ["welcome"],
    "metadata": {"user_id": "42"},
    "created_at": "2026-11-27T12:00:03.120Z",
    "send_at": None,
    "updated_at": "2026-11-27T12:00:03.410Z",
    "next_attempt_at": "2026-11-27T12:05:03.410Z",
    "attempt_count": 1,
    "recipients": [
        {
            "email": "billy@example.org",
            "status": "deferred",
            "smtp_code": 451,
            "enhanced_code": "4.7.1",
            "smtp_reply": "Greylisted, try later",
            "attempts": 1,
        }
    ],
    "attempts": [
        {
            "number": 1,
            "started_at": "2026-11-27T12:00:03.190Z",
            "finished_at": "2026-11-27T12:00:03.400Z",
            "relay": "smtp.example.org:587",
            "outcome": "deferred",
            "stage": "rcpt",
            "smtp_code": 451,
            "enhanced_code": "4.7.1",
            "smtp_reply": "Greylisted, try later",
            "error": None,
        }
    ],
}

_EVENT_EXAMPLE: dict[str, Any] = {
    "id": "evt_01jdq3z8x8m4c2w6z0r5t9k3qe",
    "type": "message.deferred",
    "timestamp": "2026-11-27T12:00:03.400Z",
    "data": {
        "message": {k: v for k, v in _MESSAGE_EXAMPLE.items() if k != "attempts"},
        "attempt": _MESSAGE_EXAMPLE["attempts"][0],
    },
}

_EXAMPLES: dict[str, Any] = {
    "SubmitMessage": _SUBMIT_EXAMPLE,
    "SubmitBatch": {"messages": [_SUBMIT_EXAMPLE]},
    "MessageOut": _MESSAGE_EXAMPLE,
    "MessagePage": {"data": [_MESSAGE_EXAMPLE], "next_cursor": "WzEsMTc2NDI0NDgwMzEyMDAwMF0"},
    "EventOut": _EVENT_EXAMPLE,
    "EventPage": {"data": [_EVENT_EXAMPLE], "next_cursor": None},
    "BatchResults": {
        "results": [
            {"index": 0, "status": 202, "message": _MESSAGE_EXAMPLE},
            {"index": 1, "status": 422, "error": _PROBLEMS[422][1]},
        ]
    },
}

# FastAPI's own validation-error shapes: Pochta never answers with them (problems.py).
_UNUSED = ("HTTPValidationError", "ValidationError")


def _tidy(operation: dict[str, Any]) -> None:
    """Say what the API does, where FastAPI's defaults say otherwise."""
    responses = operation.get("responses", {})
    default_422 = responses.get("422", {}).get("content", {}).get("application/json")
    if default_422 is not None:
        # FastAPI's own 422 shape; a route that can answer 422 declares problems(422).
        del responses["422"]
    for parameter in operation.get("parameters", []):
        # An optional parameter (query, header) is absent or a string, never JSON null.
        schema = parameter.get("schema", {})
        variants = schema.get("anyOf")
        if variants and {"type": "null"} in variants:
            rest = [v for v in variants if v != {"type": "null"}]
            if len(rest) == 1:
                del schema["anyOf"]
                schema.update(rest[0])


def install(app: FastAPI) -> None:
    """Make app.openapi() add the Problem schema and the examples to what FastAPI builds."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in (ProblemFieldError, Problem):
                schema = model.model_json_schema(ref_template=_REF)
                schema.pop("$defs", None)  # each is a component of its own
                schemas[model.__name__] = schema
            for name, example in _EXAMPLES.items():
                if name in schemas:
                    schemas[name]["examples"] = [example]
            for name in _UNUSED:
                schemas.pop(name, None)
            document["components"]["securitySchemes"] = {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A key from `pochta keys create`: `Authorization: Bearer pk_…`.",
                }
            }
            for path, item in document.get("paths", {}).items():
                for operation in item.values():
                    _tidy(operation)
                    if path.startswith("/v1/"):
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
