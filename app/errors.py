"""Errors as types: each carries the HTTP status and problem type the API answers with."""

from __future__ import annotations

from dataclasses import dataclass


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


class BadRequest(PochtaError):
    status = 400
    type = "/problems/malformed-request"
    title = "Malformed request"


class Unauthorized(PochtaError):
    status = 401
    type = "/problems/unauthorized"
    title = "Unauthorized"


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
