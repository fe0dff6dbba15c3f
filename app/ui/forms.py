"""Reading the dashboard's filter forms into the API's query models."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import NotFound, PochtaError, validation_problem

Q = TypeVar("Q", bound=BaseModel)

# What a browser's datetime-local field sends: a minute (or second) with no zone.
_LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?")
TIME_FIELDS = ("created_after", "created_before")
# Printable ASCII, as every id Pochta hands out: anything else names nothing.
_ID = re.compile(r"[!-~]{1,64}")


def checked_id(value: str, what: str) -> str:
    """An id from the path; NotFound, without a query, for what cannot be one."""
    if not _ID.fullmatch(value):
        raise NotFound(f"no {what} with that id")
    return value


def as_utc(value: str) -> str:
    """A datetime-local value read as UTC, as the forms say; anything else as given."""
    if not _LOCAL_TIME.fullmatch(value):
        return value
    return value + ("Z" if value.count(":") == 2 else ":00Z")


def field_errors(error: PochtaError) -> list[str]:
    """`loc: message` for each field a refusal names (the API's 422 problem, as lines)."""
    if error.errors:
        return [f"{e.loc}: {e.message}" for e in error.errors]
    return [error.detail]


def read_query(model: type[Q], filters: dict[str, str], cursor: str) -> tuple[Q | None, list[str]]:
    """The query model from the non-empty filters, or None and the fields it refused."""
    given: dict[str, Any] = {name: value for name, value in filters.items() if value}
    for name in TIME_FIELDS:
        if name in given:
            given[name] = as_utc(given[name])
    if cursor:
        given["cursor"] = cursor
    try:
        return model.model_validate(given), []
    except ValidationError as error:
        return None, field_errors(validation_problem(error.errors()))
