"""Errors as types: each carries the HTTP status and problem type the API answers with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    loc: str
    message: str


class PochtaError(Exception):
    """A failure a client can be told about as an RFC 9457 problem."""

    status = 500
    type = "about:blank"
    title = "Internal Server Error"

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors

    def as_problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = [{"loc": e.loc, "message": e.message} for e in self.errors]
        return body


class BadRequest(PochtaError):
    status = 400
    type = "/problems/malformed-request"
    title = "Malformed request"


class Unauthorized(PochtaError):
    status = 401
    type = "/problems/unauthorized"
    title = "Unauthorized"


class Forbidden(PochtaError):
    status = 403
    type = "/problems/forbidden"
    title = "Forbidden"


class NotFound(PochtaError):
    status = 404
    type = "/problems/not-found"
    title = "Not found"


class Conflict(PochtaError):
    status = 409
    type = "/problems/conflict"
    title = "Conflict"


class PayloadTooLarge(PochtaError):
    status = 413
    type = "/problems/too-large"
    title = "Payload too large"


class UnsupportedMediaType(PochtaError):
    status = 415
    type = "/problems/unsupported-media-type"
    title = "Unsupported media type"


class InvalidFields(PochtaError):
    status = 422
    type = "/problems/validation"
    title = "Invalid request"

    @classmethod
    def at(cls, loc: str, message: str) -> InvalidFields:
        return cls(f"{loc} {message}", errors=[FieldError(loc, message)])


class Unavailable(PochtaError):
    status = 503
    type = "/problems/unavailable"
    title = "Service unavailable"


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
